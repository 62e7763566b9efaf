#!/usr/bin/env bash
# End to end through the command line: generate, train, eval, adapt, predict, CSV input, and errors.
# Usage: LRSMETA=path/to/lrsmeta cli_end_to_end.sh WORK_DIR
set -euo pipefail
work=$1
bin=${LRSMETA:?set LRSMETA to the lrsmeta executable}
rm -rf "$work" && mkdir -p "$work" && cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_error() {  # expect_error "needle" command...
  local needle=$1; shift
  if "$@" > out.txt 2> err.txt; then fail "no error from: $*"; fi
  grep -q -- "$needle" err.txt || fail "error for '$*' does not mention '$needle': $(cat err.txt)"
}

# (Outputs go to files before grep -q reads them: grep ending a pipe early would fail it under pipefail.)
"$bin" --help > help.txt
grep -q "generate" help.txt || fail "--help lists no subcommands"
for sub in generate train adapt predict eval; do
  "$bin" "$sub" --help > help.txt || fail "$sub --help"
  grep -q -- "--" help.txt || fail "$sub --help prints no options"
done

# Noiseless synthetic data: exact recovery through the CLI.
"$bin" generate --out data --tasks 1000 --samples 60 -d 40 -r 3 -k 2 --seed 3 > /dev/null
for f in X.npy y.npy task_offsets.npy truth/U.npy truth/W.npy truth/B.npy; do [[ -f data/$f ]] || fail "generate wrote no $f"; done
"$bin" train --data data -r 3 -k 2 --out model --iterations 30 --relative-tolerance 0 --metrics-out metrics.json > train.txt 2> train.err
# (OpenBLAS's warning that its kernels are below the processor's is not progress: linalg/blas_lapack.hpp.)
! grep -v '^warning: OpenBLAS' train.err | grep -q . || fail "progress printed to a non-terminal stderr: $(cat train.err)"
for f in U.npy W.npy B_index.npy B_value.npy model.json; do [[ -f model/$f ]] || fail "model has no $f"; done
grep -q '"iterations_run": 30' metrics.json || fail "metrics.json does not report 30 iterations"
grep -q '"history"' metrics.json || fail "metrics.json has no history"
# The priors' settings were estimated from all rows (the default) and the report says so; with
# --select validation they are chosen on validation rows, and it says that.
grep -q "^estimated from all rows: r = 3, k = 2, tau2 " train.txt || fail "train did not report its estimates: $(cat train.txt)"
grep -q '"method": "evidence"' model/model.json || fail "model.json does not record the estimates"
"$bin" train --data data -r 3 -k 2 --select validation --out model_val --iterations 30 > train_val.txt
grep -q "^chosen on [0-9]* validation rows" train_val.txt || fail "train --select validation did not report its choice on validation rows: $(cat train_val.txt)"
grep -q '"method": "validation"' model_val/model.json || fail "model.json does not record the choice on validation rows"
# --select kfold: every row of the tasks (of 2 rows or more) held out once, in K fits a candidate.
"$bin" train --data data -r 3 -k 2 --select kfold --folds 3 --out model_kfold --iterations 30 > train_kfold.txt
rows=60000  # data: 1000 tasks of 60 rows
grep -q "^chosen on $rows held-out rows in 3 folds" train_kfold.txt || fail "train --select kfold did not report its choice on all $rows rows in 3 folds: $(cat train_kfold.txt)"
grep -q '"method": "kfold"' model_kfold/model.json || fail "model.json does not record the choice by folds"
grep -q '"folds": 3' model_kfold/model.json || fail "model.json does not record the folds"
# With r and k estimated, train lists every candidate's log marginal likelihood and score (less
# BIC's charge) and marks those abandoned (they could not catch the best, so their score is that
# of an unfinished fit).
"$bin" generate --out noisy --tasks 400 --samples 20 -d 12 -r 2 -k 1 --noise 0.3 --seed 4 -q > /dev/null
"$bin" train --data noisy --out model_noisy > train_noisy.txt
grep -q "^estimated from all rows (log marginal likelihood of each (r, k) tried, and its score less BIC's charge: .*, score .*(abandoned).*): r = 2, k = 1" train_noisy.txt ||
  fail "train does not list the candidates with their scores and the abandoned ones marked, or missed r = 2, k = 1: $(cat train_noisy.txt)"
grep -q '"abandoned": true' model_noisy/model.json || fail "model.json does not mark the abandoned candidates"
grep -q '"score": -*[0-9]' model_noisy/model.json || fail "model.json does not record the candidates' scores"
"$bin" eval --model model --data data --truth data/truth --json eval.json > eval.txt
err=$(sed -n 's/.*"relative_parameter_error": \([^,]*\),*/\1/p' eval.json)
awk -v e="$err" 'BEGIN { exit !(e < 1e-8) }' || fail "relative parameter error $err is not below 1e-8"

# generate streams X (float32 on request) and, stopped by SIGINT, exits 130 leaving nothing behind.
"$bin" generate --out data32 --tasks 50 --samples 10 -d 8 --dtype float32 > gen32.txt
grep -q "X float32" gen32.txt || fail "generate --dtype float32 does not say so: $(cat gen32.txt)"
head -c 128 data32/X.npy | grep -a -q "'descr': '<f4'" || fail "generate --dtype float32 wrote no float32 X"
set +e
timeout --preserve-status -s INT 1 "$bin" generate --out stopped --tasks 100000 --samples 20 -d 100 --dtype float32 > stop.txt 2> stop.err
status=$?
set -e
[[ $status -eq 130 ]] || fail "generate stopped by SIGINT exited $status, not 130: $(cat stop.err)"
grep -q "stopped by SIGINT; nothing was written" stop.err || fail "no line saying generate was stopped: $(cat stop.err)"
if ls -a | grep -q "stopped"; then fail "an interrupted generate left $(ls -a | grep stopped)"; fi

# train stopped by SIGINT ends its iteration, writes no model and exits 130 with one line.
"$bin" generate --out data_int --tasks 20000 --samples 20 -d 50 --dtype float32 > /dev/null
set +e
timeout --preserve-status -s INT 2 "$bin" train --data data_int --out model_int -r 5 -k 2 --prior none --iterations 1000000 \
  > int.txt 2> int.err
status=$?
set -e
[[ $status -eq 130 ]] || fail "train stopped by SIGINT exited $status, not 130: $(cat int.err)"
grep -q "train: stopped by SIGINT after outer iteration .*; no model was written (give --checkpoint" int.err ||
  fail "no line saying train was stopped: $(cat int.err)"
if ls -a | grep -q "model_int"; then fail "an interrupted train left $(ls -a | grep model_int)"; fi
rm -rf data_int

# Once FILE has a line matching PATTERN (or after 10 s), sends SIGNAL to the process PID and sets
# status to its exit status.
stop_when_seen() {  # PID SIGNAL PATTERN FILE
  for _ in $(seq 1 2000); do grep -q "$3" "$4" 2> /dev/null && break; sleep 0.005; done
  kill "-$2" "$1"
  set +e
  wait "$1"
  status=$?
  set -e
}

# train --checkpoint stopped by SIGTERM writes a checkpoint (between the every-5 ones too), prints
# the command that resumes it, and that command ends with the model of an uninterrupted run, bit
# for bit.
"$bin" generate --out data_ck --tasks 4000 --samples 20 -d 20 -r 3 -k 2 --noise 0.5 --dtype float32 > /dev/null
ck_opts=(--data data_ck -r 3 -k 2 --iterations 40 --relative-tolerance 0 --threads 2 --sparse-prior-scale 0.1
         --support-threshold 2 --covariance-shrinkage 10)
"$bin" train "${ck_opts[@]}" --out straight > /dev/null
"$bin" train "${ck_opts[@]}" --out resumed --checkpoint ck --checkpoint-every 5 --verbose > ck.txt 2> ck.err &
stop_when_seen $! TERM "iteration 2/" ck.err
[[ $status -eq 143 ]] || fail "train stopped by SIGTERM exited $status, not 143: $(cat ck.err)"
[[ ! -e resumed ]] || fail "a stopped train wrote its model"
grep -q "train: stopped by SIGTERM after outer iteration [0-9]*; the checkpoint is in ck; to continue:" ck.err ||
  fail "no line saying how to resume: $(cat ck.err)"
stopped_at=$(sed -n 's/.*after outer iteration \([0-9]*\);.*/\1/p' ck.err)
[[ $(cat ck/latest) == "iteration-$(printf %06d "$stopped_at")" ]] || fail "the checkpoint is not of iteration $stopped_at: $(cat ck/latest)"
resume_line=$(tail -n 1 ck.err)
[[ $resume_line == *"--resume ck" && $resume_line != *"--checkpoint "* ]] || fail "odd resume command: $resume_line"
eval "$resume_line" > resume.txt 2> resume.err || fail "the printed resume command failed: $(cat resume.err)"
grep -q "resuming from ck after iteration $stopped_at of 40" resume.txt || fail "resume does not say where it starts: $(cat resume.txt)"
for f in U W B_index B_value beta Sigma; do
  cmp -s straight/$f.npy resumed/$f.npy || fail "the resumed model's $f.npy differs from the uninterrupted run's"
done
[[ $(cat ck/latest) == "iteration-000040" ]] || fail "the resumed run did not go on checkpointing into ck: $(cat ck/latest)"
expect_error "ck holds a checkpoint already (iteration 40): continue it with --resume ck" \
  "$bin" train "${ck_opts[@]}" --out again --checkpoint ck
expect_error "lrsmeta train: error: resume: the checkpoint was made with other options (checkpoint against this run: rank: 3 against 2)" \
  "$bin" train "${ck_opts[@]:0:2}" -r 2 "${ck_opts[@]:4}" --out again --resume ck
printf 'x' | dd of=ck/iteration-000040/U.npy bs=1 seek=140 conv=notrunc 2> /dev/null
expect_error "U.npy: damaged" "$bin" train "${ck_opts[@]}" --out again --resume ck
expect_error "nowhere: not a checkpoint folder" "$bin" train "${ck_opts[@]}" --out again --resume nowhere
[[ ! -e again ]] || fail "a refused train wrote a model"
rm -rf data_ck ck straight resumed

# A choice on folds stopped by SIGINT after some of its fits: the checkpoint holds the fits that
# ended, and the printed command resumes without fitting them again, to the uninterrupted model.
"$bin" generate --out data_kf --tasks 200 --samples 10 -d 6 -r 2 -k 1 --noise 0.3 > /dev/null
kf_opts=(--data data_kf --select kfold --folds 3 --threads 2)
"$bin" train "${kf_opts[@]}" --out kf_straight > /dev/null
"$bin" train "${kf_opts[@]}" --out kf_resumed --checkpoint kf_ck --verbose > kf.txt 2> kf.err &
stop_when_seen $! INT "^candidate 3 (r = [0-9]*), fold 2 of 3: iteration 2/" kf.err
[[ $status -eq 130 ]] || fail "train --select kfold stopped by SIGINT exited $status, not 130: $(tail -n 3 kf.err)"
grep -q "^checkpoint of the choice (1 fit on held-out rows ended) written to kf_ck" kf.err ||
  fail "no checkpoint after the choice's first fit: $(grep checkpoint kf.err | head -n 3)"
grep -q "train: stopped by SIGINT while choosing on folds of each task's rows; the checkpoint ([0-9]* fits\? on held-out rows ended, which a resume does not fit again) is in kf_ck; to continue:" kf.err ||
  fail "no line saying how to resume the choice: $(tail -n 2 kf.err)"
ended=$(sed -n 's/.*the checkpoint (\([0-9]* fits\{0,1\}\) on held-out rows ended.*/\1/p' kf.err)
eval "$(tail -n 1 kf.err)" > kf_resume.txt 2> kf_resume.err || fail "the printed resume command failed: $(cat kf_resume.err)"
grep -q "resuming the choice on held-out rows from kf_ck ($ended on held-out rows ended, not fitted again)" kf_resume.txt ||
  fail "the resume does not say what it takes from the checkpoint: $(head -n 3 kf_resume.txt)"
for f in U W B_index B_value beta Sigma; do
  cmp -s kf_straight/$f.npy kf_resumed/$f.npy || fail "the resumed choice's model's $f.npy differs from the uninterrupted run's"
done
rm -rf data_kf kf_ck kf_straight kf_resumed

# --iterations 4 runs exactly 4; the same seed gives the same model.
"$bin" train --data data -r 3 -k 2 --out m4 --iterations 4 --metrics-out m4.json --variant htp --precision float > /dev/null
grep -q '"iterations_run": 4' m4.json || fail "--iterations 4 did not run 4 iterations"
"$bin" train --data data -r 3 -k 2 --out m4b --iterations 4 --variant htp --precision float --verbose > /dev/null 2> m4b.err
cmp -s m4/U.npy m4b/U.npy || fail "same seed, different U"
[[ $(grep -c "^iteration [1-4]/4 .* s/iteration  at most .* left" m4b.err) -eq 4 ]] ||
  fail "train --verbose did not print one progress line per iteration: $(cat m4b.err)"
grep -q "^loaded data: 60000 rows, 1000 tasks, d = 40, float in [0-9.]* s$" m4b.err || fail "train --verbose did not report the load: $(cat m4b.err)"
grep -q "^writing m4b (1000 tasks' parameters)$" m4b.err || fail "train --verbose did not report the write: $(cat m4b.err)"
# While r is chosen, each line names the candidate and its own iteration cap.
"$bin" train --data data -k 2 --out m_auto --iterations 6 --verbose > /dev/null 2> m_auto.err
grep -q "^candidate 1 (r = 0): iteration 1/6 .* left of it$" m_auto.err || fail "train --verbose does not name the candidate: $(cat m_auto.err)"
"$bin" generate --out data_q --tasks 3000 --samples 2 -d 3 --quiet --verbose > /dev/null 2> q.err
grep -q "generate: 2048/3000 tasks, .* tasks/s, .* left" q.err || fail "generate --verbose printed no progress: $(cat q.err)"
rm -rf data_q
expect_error "train: error: --covariance-shrinkage must be a number >= 0 or auto, not '-1'" \
  "$bin" train --data data --out bad_model --covariance-shrinkage -1
expect_error "train: error: --support-threshold must be a number >= 0 or auto, not 'x'" \
  "$bin" train --data data --out bad_model --support-threshold x
expect_error "train: error: --sparse-prior-scale must be a positive number or auto, not '0'" \
  "$bin" train --data data --out bad_model --sparse-prior-scale 0
expect_error "--dtype" "$bin" generate --out bad_data --dtype int8
[[ ! -e bad_model && ! -e bad_data ]] || fail "a refused command wrote something"

# New tasks from the same U: adapt, then predict.
"$bin" generate --out fresh --tasks 20 --samples 40 -d 40 -r 3 -k 2 --seed 77 --basis-seed 0 > /dev/null
"$bin" adapt --model model --data fresh --out adapted > /dev/null
"$bin" predict --model adapted --data fresh --out pred.npy > /dev/null
[[ -f pred.npy ]] || fail "predict wrote nothing"

# CSV input with non-contiguous tasks and a non-numeric column.
{
  echo "user,name,x1,x2,rating"
  for i in $(seq 0 199); do
    u=$((i % 7)); x1=$(( (i * 37) % 11 - 5 )); x2=$(( (i * 53) % 13 - 6 ))
    echo "u$u,item$i,$x1,$x2,$(( x1 * (u + 1) + 2 * x2 ))"
  done
} > table.csv
"$bin" train --data table.csv --target rating --task user -r 1 -k 1 --out csvmodel --iterations 10 > csvtrain.txt
grep -q '"u0"' csvmodel/model.json || fail "task keys not saved in model.json"
grep -q "features: (intercept), x1, x2" csvtrain.txt || fail "train does not say which columns it used: $(cat csvtrain.txt)"
grep -q "ignored column name: id-like" csvtrain.txt || fail "the id-like column is not reported as ignored"
grep -q '"csv_encoding"' csvmodel/model.json || fail "model.json does not record the CSV encoding"
"$bin" train --data table.csv --target rating --task user -r 1 -k 1 --out csvmodel2 --iterations 3 --no-intercept --ignore x2 > csvtrain2.txt
grep -q "features: x1$" csvtrain2.txt || fail "--no-intercept --ignore x2 should leave x1 alone: $(cat csvtrain2.txt)"
expect_error "lrsmeta eval: error" "$bin" eval --model csvmodel --data missing.csv --target rating --task user
"$bin" eval --model csvmodel --data table.csv --target rating --task user > csveval.txt
"$bin" predict --model csvmodel --data table.csv --target rating --task user --out pred.csv > /dev/null
[[ $(wc -l < pred.csv) -eq 201 ]] || fail "pred.csv should have a header and 200 rows"
# Input order: row i of the table is row i of the predictions, with its own task.
awk -F, 'NR > 1 && ($1 != NR - 2 || $2 != "u" ((NR - 2) % 7)) { bad = 1 } END { exit bad }' pred.csv ||
  fail "pred.csv is not in the input's row order"
# Features in other units (x1 in 1/1024ths, x2 in 64s) give the same predictions: inside the fit
# each feature is divided by a power of two that brings it to a common scale, the model mapped
# back (to rounding: the two fits see the same numbers up to one power of two for all columns).
awk -F, -v OFS=, 'NR == 1 { print; next } { $3 = $3 * 1024; $4 = $4 / 64; print }' table.csv > table_units.csv
"$bin" train --data table_units.csv --target rating --task user -r 1 -k 1 --out unitsmodel --iterations 10 > unitstrain.txt
grep -q "features were divided by a power of two" unitstrain.txt || fail "train does not say it scaled the features: $(cat unitstrain.txt)"
grep -q '"feature_scales"' unitsmodel/model.json || fail "model.json does not record the features' scales"
"$bin" predict --model unitsmodel --data table_units.csv --out pred_units.csv > /dev/null
paste -d, pred.csv pred_units.csv | awk -F, 'NR > 1 { a = $3; b = $6; if ((a - b) ^ 2 > 1e-16 * (1 + a * a)) bad = 1 } END { exit bad }' ||
  fail "the table in other units predicts differently: $(paste -d, pred.csv pred_units.csv | head -3)"
# convert: the table once into a data folder; the model trained on it is the model trained on the
# CSV, and it still takes CSV to predict.
"$bin" convert --data table.csv --target rating --task user --out table_data > convert.txt
grep -q "features: (intercept), x1, x2" convert.txt || fail "convert does not say which columns it used: $(cat convert.txt)"
grep -q "wrote table_data: 7 tasks, 200 rows, d = 3, X float64" convert.txt || fail "convert summary: $(cat convert.txt)"
"$bin" train --data table_data -r 1 -k 1 --out convmodel --iterations 10 > /dev/null
for f in U W B_index B_value beta Sigma; do
  cmp -s csvmodel/$f.npy convmodel/$f.npy || fail "the model trained on the converted folder differs in $f.npy"
done
grep -q '"u0"' convmodel/model.json || fail "the converted folder's task keys did not reach the model"
"$bin" predict --model convmodel --data table.csv --target rating --task user --out pred2.csv > /dev/null
cmp -s pred.csv pred2.csv || fail "predictions from the converted folder's model differ"
# Missing values: an error naming --missing drop; with it, their rows are left out and a note
# counts them, at train and at predict (whose rows keep their numbers in the file).
{ head -1 table.csv; sed -n '2,200p' table.csv | awk -F, 'BEGIN { OFS = "," } NR == 5 { $3 = "NA" } NR == 9 { $5 = "" } { print }'; } > gaps.csv
expect_error "--missing drop" "$bin" train --data gaps.csv --target rating --task user -r 1 -k 1 --out gapmodel --iterations 3
"$bin" train --data gaps.csv --target rating --task user -r 1 -k 1 --out gapmodel --iterations 3 --missing drop > gaps.txt
grep -q "note: 2 of 199 rows had a missing value and were left out (--missing drop); missing by column: target 'rating' 1, 'x1' 1" gaps.txt ||
  fail "train --missing drop does not count the rows it left out: $(cat gaps.txt)"
"$bin" predict --model gapmodel --data gaps.csv --out gaps_pred.csv --missing drop > gaps_pred.txt
grep -q "note: 1 of 199 rows had a missing value" gaps_pred.txt || fail "predict --missing drop: $(cat gaps_pred.txt)"
[[ $(wc -l < gaps_pred.csv) -eq 199 ]] || fail "predict --missing drop should write 198 rows"
grep -q "^4," gaps_pred.csv && fail "the row missing x1 was predicted"
grep -q "^8," gaps_pred.csv || fail "the row missing only its target was not predicted"
# Running out of iterations while still changing is a warning that says what to do; converging is not.
"$bin" generate --out noisy --tasks 200 --samples 6 -d 10 -r 2 -k 1 --noise 0.5 --seed 5 > /dev/null
"$bin" train --data noisy -r 2 -k 1 --iterations 8 --select evidence --out capped > capped.txt 2> capped.err
grep -q "^warning: not converged: the 8 iterations ran out while the fit still changed .* raise the iterations (--iterations)" capped.err ||
  fail "no convergence warning at the iteration cap: $(cat capped.err)"
grep -q '"converged": false' capped/model.json || fail "model.json does not record that the fit did not converge"
"$bin" train --data noisy -r 2 -k 1 --iterations 300 --select evidence --out converged > conv.txt 2> conv.err
! grep -v '^warning: OpenBLAS' conv.err | grep -q . || fail "a converged fit warned: $(cat conv.err)"
grep -q '"converged": true' converged/model.json || fail "model.json does not record convergence"

# Columns as R writes them: quoted numbers are categories' codes, integer codes under an id's name
# are identifiers; --numeric and --categorical override.
{
  echo '"user","grade","movieId","x","y"'
  for i in $(seq 0 119); do echo "\"u$((i % 6))\",\"$((i % 3 + 1))\",$((i % 40 + 1)),$(( (i * 7) % 5 )),$(( (i * 7) % 5 + i % 3 ))"; done
} > r_export.csv
"$bin" train --data r_export.csv --target y --task user -r 1 -k 0 --iterations 3 --out r_model > r_train.txt
grep -q "features: (intercept), grade (one-hot, 3 levels), x$" r_train.txt || fail "quoted codes are not categories: $(cat r_train.txt)"
grep -q "ignored column movieId: id-like (integer codes under an id's name); --numeric movieId or --categorical movieId" r_train.txt ||
  fail "movieId was not left out as an id: $(cat r_train.txt)"
grep -q "note: column grade: quoted numbers, one-hot encoded as categories (--numeric grade" r_train.txt ||
  fail "train does not say that grade's quoted numbers became categories: $(cat r_train.txt)"
"$bin" train --data r_export.csv --target y --task user -r 1 -k 0 --iterations 3 --numeric grade,movieId --out r_model2 > r_train2.txt
grep -q "features: (intercept), grade, movieId, x$" r_train2.txt || fail "--numeric did not read the columns as numbers: $(cat r_train2.txt)"
"$bin" train --data r_export.csv --target y --task user -r 1 -k 0 --iterations 3 --categorical x --out r_model3 > r_train3.txt
grep -q "x (one-hot, 5 levels)" r_train3.txt || fail "--categorical did not one-hot encode x: $(cat r_train3.txt)"
expect_error "both in --numeric and in --categorical" "$bin" train --data r_export.csv --target y --task user --numeric x --categorical x --out bad

# The model remembers its columns: eval, predict and adapt take the CSV without --target and --task,
# and predict needs no target column.
"$bin" eval --model csvmodel --data table.csv > csveval2.txt
cmp -s csveval.txt csveval2.txt || fail "eval without --target/--task differs: $(cat csveval2.txt)"
cut -d, -f1-4 table.csv > features_only.csv
"$bin" predict --model csvmodel --data features_only.csv --out pred3.csv > /dev/null
cmp -s pred.csv pred3.csv || fail "predict on a CSV without the target column differs"
"$bin" predict --model convmodel --data features_only.csv --out pred4.csv > /dev/null
cmp -s pred.csv pred4.csv || fail "predict with the converted folder's model on a CSV without the target differs"
expect_error "no column 'rating'" "$bin" eval --model csvmodel --data features_only.csv
expect_error "task 'u0' is in the model already" "$bin" adapt --model csvmodel --data table.csv --into csvadapted
# adapt --into: the model's tasks and new ones in one model, each predicted as before.
sed 's/^u\([0-9]\),/new\1,/' table.csv > new_tasks.csv
"$bin" adapt --model csvmodel --data new_tasks.csv --out new_alone > /dev/null
cp -r csvmodel combined
"$bin" adapt --model combined --data new_tasks.csv --into combined > into.txt
grep -q "wrote combined (the model's 7 tasks and these)" into.txt || fail "adapt --into does not say what it wrote: $(cat into.txt)"
"$bin" predict --model combined --data new_tasks.csv --out p_new_combined.npy > /dev/null
"$bin" predict --model new_alone --data new_tasks.csv --out p_new_alone.npy > /dev/null
cmp -s p_new_combined.npy p_new_alone.npy || fail "the combined model predicts the new tasks differently"
"$bin" predict --model combined --data table.csv --out p_old_combined.csv > /dev/null
cmp -s p_old_combined.csv pred.csv || fail "the combined model predicts the model's own tasks differently"
# Tasks the model does not have: predicted with the population model (beta), or refused.
{ cat table.csv; tail -n +2 new_tasks.csv | head -n 20; } > mixed.csv
"$bin" predict --model csvmodel --data mixed.csv --out p_mixed.csv > mixed.txt
grep -q "^note: 20 rows of 7 tasks the model does not have were predicted with the population model" mixed.txt ||
  fail "predict does not say it used the population model: $(cat mixed.txt)"
head -n 201 p_mixed.csv | cmp -s - pred.csv || fail "the model's own tasks are predicted differently among unseen ones"
python3 - mixed.csv p_mixed.csv csvmodel/beta.npy <<'PY' || fail "unseen tasks are not predicted with beta"
import csv, struct, sys
rows = list(csv.DictReader(open(sys.argv[1])))[200:]
pred = list(csv.DictReader(open(sys.argv[2])))[200:]
raw = open(sys.argv[3], "rb").read()  # a version 1.0 .npy of float64 (no numpy needed)
start = 10 + int.from_bytes(raw[8:10], "little")
beta = struct.unpack("<%dd" % ((len(raw) - start) // 8), raw[start:])
for r, p in zip(rows, pred):
    expected = beta[0] + beta[1] * float(r["x1"]) + beta[2] * float(r["x2"])
    assert p["task"] == r["user"] and abs(float(p["prediction"]) - expected) <= 1e-9 * (1 + abs(expected)), (r, p, expected)
PY
expect_error "task 'new0' is not in the model (7 such tasks; --unseen population" "$bin" predict --model csvmodel --data mixed.csv --out p_bad.csv --unseen error
[[ ! -e p_bad.csv ]] || fail "a refused predict wrote p_bad.csv"
# eval reports the file's tasks, and each task's error in --json.
head -n 5 table.csv > few_tasks.csv
"$bin" eval --model csvmodel --data few_tasks.csv --json few.json > few.txt
grep -q "^rows 4  tasks 4 (the model has 7)" few.txt || fail "eval does not report the file's tasks: $(cat few.txt)"
python3 - few.json <<'PY' || fail "eval --json has no per-task errors: $(cat few.json)"
import json, sys
r = json.load(open(sys.argv[1]))
tasks = {t["task"]: t for t in r["per_task"]}
assert sorted(tasks) == [f"u{i}" for i in range(4)], tasks
assert r["tasks"] == 4 and r["model_tasks"] == 7
assert sum(t["rows"] for t in r["per_task"]) == r["rows"] == 4
assert abs(sum(t["mse"] * t["rows"] for t in r["per_task"]) / 4 - r["mse"]) < 1e-9 * max(1, r["mse"])
PY
expect_error "lrsmeta convert: error: table.csv: no column 'score'" "$bin" convert --data table.csv --target score --task user --out bad
[[ ! -e bad ]] || fail "a failed convert left its output"

# Private training reports what it spent.
"$bin" train --data data -r 3 -k 2 --out private --iterations 4 --epsilon 2 --delta 1e-6 \
  --clip-x 7 --clip-y 3 --clip-w 3 --max-samples 60 --metrics-out private.json > private.txt
grep -q "privacy spent: epsilon" private.txt || fail "train does not report the privacy spent"
grep -q '"epsilon_spent"' private.json || fail "metrics lack epsilon_spent"
grep -q '"epsilon_spent"' private/model.json || fail "model.json lacks epsilon_spent"
"$bin" train --data data -r 3 -k 2 --out private2 --iterations 2 --epsilon 2 --delta 1e-6 --noise-seed 5 > seeded.txt
grep -q "NO privacy guarantee" seeded.txt || fail "a fixed noise seed is not flagged"

# Errors: non-zero exit, one clear line, nothing half-written.
expect_error "exceeds the dimension" "$bin" train --data data -r 41 -k 2 --out bad
expect_error "no such file" "$bin" train --data missing -r 3 -k 2 --out bad
expect_error "no column 'score'" "$bin" train --data table.csv --target score --task user -r 1 -k 1 --out bad
expect_error "not a model folder" "$bin" train --data data -r 3 -k 2 --out data
expect_error "--rank must be a non-negative integer or auto" "$bin" train --data data -r two -k 2 --out bad
expect_error "lrsmeta train: error" "$bin" train --data data -r 3 -k 2 --out bad --sparse-prior-scale -1
expect_error "device 'cuda' requested, but" "$bin" train --data data -r 3 -k 2 --out bad --device cuda
expect_error "device 'cuda' requested, but" "$bin" train --data data -r 3 -k 2 --out bad --device cuda --prior none
expect_error "requires --delta" "$bin" train --data data -r 3 -k 2 --out bad --epsilon 1
expect_error "delta must be in (0, 1)" "$bin" train --data data -r 3 -k 2 --out bad --epsilon 1 --delta 2
head -c 100 data/X.npy > trunc.npy && mkdir -p truncated && cp trunc.npy truncated/X.npy && cp data/y.npy data/task_offsets.npy truncated/
expect_error "truncated" "$bin" train --data truncated -r 3 -k 2 --out bad
# Parse errors: one line in the house format, the nearest name suggested, ranges said plainly.
one_line_error() {  # one_line_error "expected line" command...
  local expected=$1; shift
  if "$@" > out.txt 2> err.txt; then fail "no error from: $*"; fi
  [[ $(cat err.txt) == "$expected" ]] || fail "for '$*' expected the line '$expected', got: $(cat err.txt)"
}
one_line_error "lrsmeta: error: unknown subcommand 'trian' (did you mean train?); the subcommands are generate, train, convert, adapt, predict, eval" "$bin" trian
one_line_error "lrsmeta train: error: unknown option --rnak (did you mean --rank?); lrsmeta train --help lists them" "$bin" train --rnak 3 --data data --out bad
one_line_error "lrsmeta train: error: --threads must be >= 0 (got -1)" "$bin" train --threads -1 --data data --out bad
one_line_error "lrsmeta generate: error: --tasks takes a number, not 'many'" "$bin" generate --out bad --tasks many
one_line_error "lrsmeta train: error: --select must be one of evidence|validation|kfold (got loocv)" "$bin" train --data data --out bad --select loocv
one_line_error "lrsmeta train: error: --folds must be between 2 and 100 (got 1)" "$bin" train --data data --out bad --select kfold --folds 1
# A range the table states, in the CLI's names and before any data is read (no such folder here).
one_line_error "lrsmeta train: error: --cg-forcing must be in [0, 1) (got 1)" "$bin" train --data no_such_folder --out bad --cg-forcing 1
[[ ! -e bad ]] || fail "a refused train left bad behind"
one_line_error "lrsmeta predict: error: --out pred.txt: the file's name must end in .npy or .csv, the formats predict writes" \
  "$bin" predict --model model --data data --out pred.txt
one_line_error "lrsmeta train: error: --out is required; lrsmeta train --help lists the options" "$bin" train --data data

# Damaged and hostile files: one line naming the file, before anything is allocated or fitted.
printf 'task,x,y\nZ\xfcrich,1,2\nBern,2,3\n' > latin1.csv
expect_error "latin1.csv: line 2, column 'task': not valid UTF-8" "$bin" train --data latin1.csv --target y --task task -r 1 -k 0 --out bad
[[ $(wc -l < err.txt) -eq 1 ]] || fail "the UTF-8 error is not one line: $(cat err.txt)"
mkdir -p hostile && cp data/X.npy data/task_offsets.npy hostile/
dict="{'descr': '<f8', 'fortran_order': False, 'shape': (100000000000,), }"
header_length=$(( (10 + ${#dict} + 1 + 63) / 64 * 64 - 10 ))
printf "\x93NUMPY\x01\x00\x$(printf %02x $header_length)\x00%s%*s\n" "$dict" $((header_length - ${#dict} - 1)) '' > hostile/y.npy
# (Under a 2 GB address-space limit, but for AddressSanitizer builds, whose shadow memory needs terabytes.)
limit=2000000
ldd "$bin" > ldd.txt
if grep -q libasan ldd.txt; then limit=unlimited; fi
( ulimit -v $limit && "$bin" train --data hostile -r 3 -k 2 --out bad > out.txt 2> err.txt ) && fail "a y.npy claiming 1e11 values was accepted"
grep -q "lrsmeta train: error: .*hostile/y.npy: truncated: its header claims shape (100000000000,)" err.txt ||
  fail "a y.npy claiming 1e11 values was not refused as truncated: $(cat err.txt)"
# An output that cannot be written fails before the data is read or anything fitted.
expect_error "lrsmeta train: error: --out trunc.npy/model: cannot be written" "$bin" train --data data -r 3 -k 2 --out trunc.npy/model
[[ ! -s out.txt ]] || fail "train with an unwritable --out did work first: $(cat out.txt)"
expect_error "--metrics-out" "$bin" train --data data -r 3 -k 2 --out bad --metrics-out trunc.npy/m.json
[[ ! -e bad ]] || fail "a failed run left a model folder"
ls -a | grep -q '\.tmp-' && fail "a failed run left a temporary file"
[[ -f data/X.npy ]] || fail "the data folder was damaged"
echo "cli end to end: all checks passed"
