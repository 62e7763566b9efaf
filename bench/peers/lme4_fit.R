# lme4's lmer on a CSV of grouped rows (bench/peers/lme4_grouped.py): fits by REML and predicts
# held-out rows, new groups at the fixed effects.
#
#   Rscript lme4_fit.R TRAIN.csv TEST.csv FORMULA PREDICTIONS.txt
#
# The CSVs have columns group, y and the features. FORMULA is lmer's, e.g. "y ~ . + (1 | group)"
# where "." stands for every feature column. Writes one prediction per test row, then prints the
# fit's seconds (lmer alone, not reading the files) on stdout.
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 4) stop("usage: Rscript lme4_fit.R TRAIN.csv TEST.csv FORMULA PREDICTIONS.txt")
train <- read.csv(args[1])
test <- read.csv(args[2])
train$group <- factor(train$group)
test$group <- factor(test$group, levels = levels(train$group))
features <- setdiff(names(train), c("group", "y"))
formula <- as.formula(sub(".", paste(features, collapse = " + "), args[3], fixed = TRUE))
started <- proc.time()[["elapsed"]]
fit <- lmer(formula, data = train, REML = TRUE)
seconds <- proc.time()[["elapsed"]] - started
prediction <- predict(fit, newdata = test, allow.new.levels = TRUE)
write(format(prediction, digits = 17), args[4], ncolumns = 1)
cat(seconds, "\n")
