// The options table (lrsmeta/option_table.hpp): each option's names, type, range, help and field
// of Options, once. The front ends and model.json go through it; validate() checks its ranges.
#include "core/option_fields.hpp"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <limits>
#include <functional>
#include <map>

namespace lrsmeta {
namespace core {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kIntMax = std::numeric_limits<int>::max();

// One row of the table: its description, and where its value lives in Options.
struct Row {
  OptionField field;
  Row& range(double low, double high, bool low_open = false, bool high_open = false) {
    field.spec.low = low, field.spec.high = high, field.spec.low_open = low_open, field.spec.high_open = high_open;
    return *this;
  }
  Row& left_to_library(const char* word, const char* means, bool (*is_unset)(const Options&), void (*make_unset)(Options&)) {
    field.spec.unset = word, field.spec.unset_means = means;
    field.is_unset = is_unset, field.make_unset = make_unset;
    return *this;
  }
  Row& also(void (*on_set)(Options&)) {
    field.on_set = on_set;
    return *this;
  }
  Row& privacy() {
    field.spec.group = "privacy";
    return *this;
  }
  Row& short_flag(const char* letter) {
    field.spec.cli_short = letter;
    return *this;
  }
  Row& json(const char* name, const char* before = nullptr) {
    if (name) field.json_name = name;
    if (before) field.json_before = before;
    return *this;
  }
  // model.json records whether the option is set, under `name`, never its value (the noise seed).
  Row& json_presence(const char* name) {
    field.json_name = name;
    field.json_presence = true;
    return *this;
  }
};

Row row(const char* name, const char* python, const char* cli, OptionType type, const char* help) {
  Row r;
  r.field.spec.name = name;
  r.field.spec.python = python;
  r.field.spec.cli = cli;
  r.field.spec.type = type;
  r.field.spec.help = help;
  r.field.json_name = name;
  return r;
}
Row integer(const char* name, const char* python, const char* cli, int& (*f)(Options&), const char* help) {
  Row r = row(name, python, cli, OptionType::integer, help);
  r.field.int_field = f;
  r.field.spec.low = 0, r.field.spec.high = kIntMax;
  return r;
}
// Integers in 64-bit fields: a count of tasks, and the seeds (unsigned, any 64-bit value).
Row integer64(const char* name, const char* python, const char* cli, std::int64_t& (*f)(Options&), const char* help) {
  Row r = row(name, python, cli, OptionType::integer, help);
  r.field.int64_field = f;
  r.field.spec.low = 0, r.field.spec.high = kInf;
  return r;
}
Row seed(const char* name, const char* python, const char* cli, std::uint64_t& (*f)(Options&), const char* help) {
  Row r = row(name, python, cli, OptionType::integer, help);
  r.field.uint64_field = f;
  r.field.spec.low = 0, r.field.spec.high = kInf;
  return r;
}
Row number(const char* name, const char* python, const char* cli, double& (*f)(Options&), const char* help) {
  Row r = row(name, python, cli, OptionType::number, help);
  r.field.number_field = f;
  r.field.spec.low = 0, r.field.spec.high = kInf;
  return r;
}
Row flag(const char* name, const char* python, const char* cli, bool& (*f)(Options&), const char* help) {
  Row r = row(name, python, cli, OptionType::flag, help);
  r.field.flag_field = f;
  return r;
}
Row choice(const char* name, const char* python, const char* cli, std::vector<std::string> words,
           std::string (*get)(const Options&), void (*set)(Options&, const std::string&), const char* help) {
  Row r = row(name, python, cli, OptionType::choice, help);
  r.field.spec.choices = std::move(words);
  r.field.get_choice = get;
  r.field.set_choice = set;
  return r;
}

#define FIELD(type, member) [](Options& o) -> type& { return o.member; }

std::vector<OptionField> make_table() {
  std::vector<Row> rows = {
      integer("rank", "rank", "rank", FIELD(int, rank), "rank r of the shared U; 0: sparse only")
          .short_flag("r")
          .left_to_library("auto", "chosen, see select", [](const Options& o) { return o.rank == Options::kAuto || !o.rank_candidates.empty(); },
                           [](Options& o) { o.rank = Options::kAuto; }),
      integer("sparsity", "sparsity", "sparsity", FIELD(int, sparsity), "non-zeros k of each b_i; 0: low-rank only")
          .short_flag("k")
          .left_to_library("auto", "chosen, see select",
                           [](const Options& o) { return o.sparsity == Options::kAuto || !o.sparsity_candidates.empty(); },
                           [](Options& o) { o.sparsity = Options::kAuto; }),
      choice("low_rank_basis", "low_rank_basis", "low-rank-basis", {"auto", "learned", "intercept", "slopes"},
             [](const Options& o) -> std::string { return to_string(o.low_rank_basis); },
             [](Options& o, const std::string& s) { o.low_rank_basis = parse_low_rank_basis(s); },
             "prior auto: U learned; intercept: held at the constant feature's axis, r = 1 (a random intercept per task, "
             "lme4's (1 | g)); slopes: held at the features' axes, r = d, Sigma diagonal with the constant feature's "
             "variance and one shared by the others (random intercept and slopes); auto: learned, and where r is auto "
             "the other two are candidates too")
          .json(nullptr, "learned"),
      choice("selection", "select", "select", {"evidence", "validation", "kfold"},
             [](const Options& o) -> std::string { return to_string(o.selection); },
             [](Options& o, const std::string& s) { o.selection = parse_selection(s); },
             "how what is auto is found: evidence (estimated from all rows by EM and the marginal likelihood, no rows held "
             "out), validation (chosen on held-out rows of each task, then refitted) or kfold (chosen on folds of each "
             "task's rows, then refitted)")
          .json(nullptr, "validation"),
      integer("folds", "folds", "folds", FIELD(int, folds),
              "K under select kfold: every row of a task with 2 rows or more is held out in one of K fits")
          .range(2, 100),
      flag("standardize", "standardize", "no-standardize", FIELD(bool, standardize),
           "on: under the prior, the features are divided inside the fit by powers of two that bring them to a common "
           "scale (a copy of X where they do not share one), and the model mapped back; off: the features as given")
          .json(nullptr, "false"),
      choice("prior", "prior", "prior", {"auto", "none"}, [](const Options& o) -> std::string { return to_string(o.prior); },
             [](Options& o, const std::string& s) { o.prior = parse_prior(s); },
             "auto: the empirical-Bayes model (beta + U w_i + b_i, priors estimated from all tasks); none: the paper's AMHT-LRS")
          .json(nullptr, "none"),
      flag("population_prior", "population_prior", "no-population-prior", FIELD(bool, population_prior),
           "on: under the prior, beta has its own ridge prior (its variance from the global fit's generalised "
           "cross-validation); off: beta unpenalised, as in the classical mixed model"),
      flag("em_acceleration", "em_acceleration", "no-em-acceleration", FIELD(bool, em_acceleration),
           "on: under the prior, EM's steps for s2 and Sigma are stretched (up to 16 times) while they keep going the "
           "same way and the evidence rises; off: EM's own steps (same fixed point, more iterations where a variance "
           "is poorly determined)")
          .json(nullptr, "false"),
      number("sparse_prior_scale", "sparse_prior_scale", "sparse-prior-scale", FIELD(double, sparse_prior_scale),
             "prior variance of b's non-zeros in units of the data's coefficient scale")
          .range(0, kInf, true)
          .left_to_library("auto", "estimated by EM under select evidence, else chosen on held-out rows",
                           [](const Options& o) { return o.sparse_prior_scale < 0; }, [](Options& o) { o.sparse_prior_scale = -1.0; }),
      number("support_threshold", "support_threshold", "support-threshold", FIELD(double, support_threshold),
             "c: a non-zero of b is kept only where b_q^2 > c Var(b_q | data)")
          .left_to_library("auto", "2 under select evidence, else chosen with the b prior's scale on held-out rows",
                           [](const Options& o) { return o.support_threshold < 0; }, [](Options& o) { o.support_threshold = -1.0; }),
      number("covariance_shrinkage", "covariance_shrinkage", "covariance-shrinkage", FIELD(double, covariance_shrinkage),
             "f: shrink Sigma towards isotropic, (S + f (tr S / r) I) / (1 + f); 0: the plain mixed model")
          .left_to_library("auto", "estimated by marginal likelihood under select evidence, else chosen on held-out rows",
                           [](const Options& o) { return o.covariance_shrinkage < 0; }, [](Options& o) { o.covariance_shrinkage = -1.0; }),
      number("validation_fraction", "validation_fraction", "validation-fraction", FIELD(double, validation_fraction),
             "share of each task's rows held out when choosing on validation rows")
          .range(0, 0.5, true),
      integer64("selection_tasks", "selection_tasks", "selection-tasks", FIELD(std::int64_t, selection_tasks),
                "with more tasks than this, choose on held-out rows of this many tasks drawn at random (the final fit uses "
                "all; 0: every task)"),
      number("selection_tolerance", "selection_tolerance", "selection-tolerance", FIELD(double, selection_tolerance),
             "choosing on held-out rows: the smallest model within this relative margin of the best held-out error is taken"),
      choice("variant", "variant", "variant", {"pursuit", "htp", "iht"},
             [](const Options& o) -> std::string { return to_string(o.variant); },
             [](Options& o, const std::string& s) { o.variant = parse_variant(s); }, "task step"),
      integer("iterations", "iterations", "iterations", FIELD(int, iterations),
              "most outer iterations (fewer once a tolerance stops training)")
          .short_flag("L"),
      integer("inner_iterations", "inner_iterations", "inner-iterations", FIELD(int, inner_iterations),
              "task-step iterations per outer iteration")
          .range(1, kIntMax),
      integer("warm_start_iterations", "warm_start", "warm-start", FIELD(int, warm_start_iterations),
              "first outer iterations with k = 0"),
      number("ridge", "ridge", "ridge", FIELD(double, ridge), "ridge lambda on the dr x dr system for U"),
      number("task_ridge", "task_ridge", "task-ridge", FIELD(double, task_ridge), "relative ridge on each task's small system"),
      number("step_size", "step_size", "step-size", FIELD(double, step_size), "iht/htp: eta * m_i (0: the variant's default)"),
      choice("init", "init", "init", {"auto", "random", "spectral"}, [](const Options& o) -> std::string { return to_string(o.init); },
             [](Options& o, const std::string& s) { o.init = parse_init(s); },
             "initialisation of U (auto: spectral with the prior, random otherwise)"),
      number("tolerance", "tolerance", "tolerance", FIELD(double, tolerance), "stop when the change in U falls below this (0: never)"),
      number("relative_tolerance", "relative_tolerance", "relative-tolerance", FIELD(double, relative_tolerance),
             "prior auto: stop once an iteration changes s2 and the training loss by less than this, relatively (0: never)"),
      choice("device", "device", "device", {"cpu", "cuda", "auto"}, [](const Options& o) -> std::string { return to_string(o.device); },
             [](Options& o, const std::string& s) { o.device = parse_device(s); }, "where to train"),
      choice("u_solver", "u_solver", "u-solver", {"direct", "cg", "auto"},
             [](const Options& o) -> std::string { return to_string(o.u_solver); },
             [](Options& o, const std::string& s) { o.u_solver = parse_u_solver(s); },
             "the U step: direct (form and factor G), cg (conjugate gradients, no G: any d r), auto (the cheaper by a cost "
             "model; direct for private training)")
          .json(nullptr, "direct"),
      number("cg_tolerance", "cg_tolerance", "cg-tolerance", FIELD(double, cg_tolerance), "cg: stop at this relative residual")
          .range(0, kInf, true),
      number("cg_forcing", "cg_forcing", "cg-forcing", FIELD(double, cg_forcing),
             "cg: also stop once the residual is this fraction of the warm start's (0: solve every U step to cg_tolerance)")
          .range(0, 1, false, true)
          .json(nullptr, "0"),
      integer("cg_max_steps", "cg_max_steps", "cg-max-steps", FIELD(int, cg_max_steps), "cg: most steps per U step")
          .range(1, kIntMax),
      seed("seed", "random_state", "seed", FIELD(std::uint64_t, seed), "seed of the random initialisation and of the held-out rows"),
      integer("threads", "threads", "threads", FIELD(int, threads), "CPU threads (0: all cores)"),
      flag("private", "", "", [](Options& o) -> bool& { return o.privacy.enabled; },
           "differential privacy (Python and the CLI: on where epsilon is given)")
          .privacy()
          .json("enabled", "false"),
      number("epsilon", "epsilon", "epsilon", FIELD(double, privacy.epsilon),
             "differential privacy: target epsilon (with delta); setting it asks for private training")
          .range(0, kInf, true)
          .privacy()
          .left_to_library("unset", "training without privacy", [](const Options& o) { return !o.privacy.enabled; },
                           [](Options& o) { o.privacy.enabled = false; })
          .also([](Options& o) { o.privacy.enabled = true; }),
      number("delta", "delta", "delta", FIELD(double, privacy.delta), "differential privacy: target delta")
          .range(0, 1, true, true)
          .privacy()
          .left_to_library("unset", "training without privacy", [](const Options& o) { return !o.privacy.enabled; },
                           [](Options& o) { o.privacy.enabled = false; }),
      number("clip_x", "clip_x", "clip-x", FIELD(double, privacy.clip_x), "row-norm bound C_x").range(0, kInf, true).privacy(),
      number("clip_y", "clip_y", "clip-y", FIELD(double, privacy.clip_y), "residual bound C_y").range(0, kInf, true).privacy(),
      number("clip_w", "clip_w", "clip-w", FIELD(double, privacy.clip_w), "coefficient bound C_w on ||w_i||").range(0, kInf, true).privacy(),
      integer("max_samples", "max_samples", "max-samples", FIELD(int, privacy.max_samples), "rows of a task that contribute (m_max)")
          .range(1, kIntMax)
          .privacy(),
      number("noise_multiplier", "noise_multiplier", "noise-multiplier", FIELD(double, privacy.noise_multiplier),
             "noise multiplier z (sigma = z times the sensitivity)")
          .privacy()
          .left_to_library("unset", "calibrated to epsilon and delta", [](const Options& o) { return o.privacy.noise_multiplier < 0; },
                           [](Options& o) { o.privacy.noise_multiplier = -1.0; }),
      seed("noise_seed", "noise_seed", "noise-seed", FIELD(std::uint64_t, privacy.noise_seed),
           "fix the noise seed: reproducible, NO privacy guarantee")
          .privacy()
          .left_to_library("unset", "fresh noise (the guarantee holds)", [](const Options& o) { return !o.privacy.fixed_seed; },
                           [](Options& o) { o.privacy.fixed_seed = false; })
          .also([](Options& o) { o.privacy.fixed_seed = true; })
          .json_presence("fixed_seed"),
  };
  std::vector<OptionField> table;
  for (Row& r : rows) {
    OptionField& f = r.field;
    f.spec.cli_negated = f.spec.cli.rfind("no-", 0) == 0;  // --no-standardize turns standardize off
    table.push_back(std::move(f));
  }
  const Options defaults = default_options();
  for (OptionField& f : table) f.spec.default_value = value_text(defaults, f);
  return table;
}
#undef FIELD

}  // namespace

const std::vector<OptionField>& option_fields() {
  static const std::vector<OptionField> table = make_table();
  return table;
}

const OptionField& option_field(const std::string& name) {
  static const std::map<std::string, const OptionField*> by_name = [] {
    std::map<std::string, const OptionField*> m;
    for (const OptionField& f : option_fields()) m[f.spec.name] = &f;
    return m;
  }();
  const auto it = by_name.find(name);
  if (it == by_name.end()) throw Error("unknown option '" + name + "'");
  return *it->second;
}

std::string number_text(double v) {
  char buf[40];
  for (int digits = 15; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

std::string value_text(const Options& o, const OptionField& f) {
  if (f.is_unset && f.is_unset(o)) return f.spec.unset == "auto" ? "auto" : "";
  Options& m = const_cast<Options&>(o);  // read only: the fields' accessors are shared with the setters
  if (f.int_field) return std::to_string(f.int_field(m));
  if (f.int64_field) return std::to_string(f.int64_field(m));
  if (f.uint64_field) return std::to_string(f.uint64_field(m));
  if (f.number_field) return number_text(f.number_field(m));
  if (f.flag_field) return f.flag_field(m) ? "true" : "false";
  return f.get_choice(o);
}

// What the option takes, for messages: "a non-negative integer", "a positive number or auto", ...
std::string takes(const OptionField& f) {
  const OptionSpec& s = f.spec;
  if (s.type == OptionType::flag) return "true or false (1 or 0)";
  std::string what;
  if (s.type == OptionType::choice) {
    for (const std::string& c : s.choices) what += (what.empty() ? "" : "|") + c;
    return "one of " + what;
  }
  const bool integral = s.type == OptionType::integer;
  const bool unbounded = std::isinf(s.high) || (integral && s.high == kIntMax);
  if (unbounded && s.low == 0 && !s.low_open) what = integral ? "a non-negative integer" : "a number >= 0";
  else if (unbounded && s.low == 0) what = integral ? "a positive integer" : "a positive number";
  else if (unbounded) what = std::string(integral ? "an integer" : "a number") + (s.low_open ? " > " : " >= ") + number_text(s.low);
  else
    what = std::string(integral ? "an integer in " : "in ") + (s.low_open ? "(" : "[") + number_text(s.low) + ", " +
           number_text(s.high) + (s.high_open ? ")" : "]");
  return s.unset == "auto" ? what + " or auto" : what;
}

bool in_range(const OptionSpec& s, double v) {
  return std::isfinite(v) && (s.low_open ? v > s.low : v >= s.low) && (s.high_open ? v < s.high : v <= s.high);
}

namespace {
std::string shown_name(const OptionField& f, const std::string& shown) { return shown.empty() ? f.spec.name : shown; }

// An integer read from text: digits only (a sign for the signed fields), no rounding, within the field.
void set_integer_text(Options& o, const OptionField& f, const std::string& text, const std::string& shown) {
  const auto bad = [&] { return Error(shown_name(f, shown) + " must be " + takes(f) + ", not '" + text + "'"); };
  if (text.empty() || text.find_first_not_of("+-0123456789") != std::string::npos) throw bad();
  errno = 0;
  char* end = nullptr;
  if (f.uint64_field) {
    if (text[0] == '-') throw bad();
    const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
    if (errno != 0 || *end != '\0') throw bad();
    f.uint64_field(o) = v;
    if (f.on_set) f.on_set(o);
    return;
  }
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || *end != '\0') throw bad();
  // The CLI refuses what is out of range at once; the C API and Python leave the range to validate().
  if (f.spec.low >= 0 && v < 0 && f.spec.unset == "auto") throw bad();
  set_integer(o, f, v, shown);
}
}  // namespace

void set_integer(Options& o, const OptionField& f, std::int64_t v, const std::string& shown) {
  if (f.spec.type != OptionType::integer) throw Error(shown_name(f, shown) + " must be " + takes(f) + ", not the integer " + std::to_string(v));
  if (f.uint64_field) {
    if (v < 0) throw Error(shown_name(f, shown) + " must be >= 0");
    f.uint64_field(o) = static_cast<std::uint64_t>(v);
  } else if (f.int64_field) {
    f.int64_field(o) = v;
  } else {
    if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max())
      throw Error(shown_name(f, shown) + " = " + std::to_string(v) + " is out of range");
    f.int_field(o) = static_cast<int>(v);
  }
  if (f.on_set) f.on_set(o);
}

void set_text(Options& o, const OptionField& f, const std::string& text, const std::string& shown) {
  const std::string name = shown_name(f, shown);
  if (text == "auto" && f.spec.unset == "auto") {
    f.make_unset(o);
    return;
  }
  switch (f.spec.type) {
    case OptionType::choice:
      try {
        f.set_choice(o, text);  // the parser's own message: "unknown selection 'x' (expected ...)"
      } catch (const Error& e) {
        throw Error(name + ": " + e.what());
      }
      return;
    case OptionType::flag:
      if (text == "true" || text == "1") f.flag_field(o) = true;
      else if (text == "false" || text == "0") f.flag_field(o) = false;
      else throw Error(name + " must be " + takes(f) + ", not '" + text + "'");
      return;
    case OptionType::integer: return set_integer_text(o, f, text, shown);
    case OptionType::number: {
      char* end = nullptr;
      const double v = text.empty() ? NAN : std::strtod(text.c_str(), &end);
      // Numbers that may be auto are left to the library by a negative value: one typed is refused.
      const bool out = f.spec.unset == "auto" && !in_range(f.spec, v);
      if (text.empty() || *end != '\0' || !std::isfinite(v) || out) throw Error(name + " must be " + takes(f) + ", not '" + text + "'");
      f.number_field(o) = v;
      if (f.on_set) f.on_set(o);
      return;
    }
  }
}

void set_number(Options& o, const OptionField& f, double v, const std::string& shown) {
  const std::string name = shown_name(f, shown);
  if (f.spec.type == OptionType::number) {
    f.number_field(o) = v;
    if (f.on_set) f.on_set(o);
  } else if (f.spec.type == OptionType::integer && std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9.2e18) {
    set_integer(o, f, static_cast<std::int64_t>(v), shown);
  } else if (f.spec.type == OptionType::flag && (v == 0 || v == 1)) {
    f.flag_field(o) = v == 1;
  } else {
    throw Error(name + " must be " + takes(f) + ", not " + number_text(v));
  }
}

void unset(Options& o, const OptionField& f, const std::string& shown) {
  if (!f.make_unset) throw Error(shown_name(f, shown) + " must be " + takes(f) + ": it cannot be left out");
  f.make_unset(o);
}

std::string out_of_range(const Options& o, const std::function<std::string(const OptionSpec&)>& shown) {
  for (const OptionField& f : option_fields()) {
    const OptionSpec& s = f.spec;
    if (s.type != OptionType::integer && s.type != OptionType::number) continue;
    if (s.group == "privacy" && !o.privacy.enabled) continue;
    if (f.is_unset && f.is_unset(o)) continue;
    if (s.name == "rank" || s.name == "sparsity") continue;  // checked against d (validate)
    Options& m = const_cast<Options&>(o);
    const std::string name = shown(s);
    if (f.number_field) {
      const double v = f.number_field(m);
      if (!in_range(s, v)) return name + " must be " + takes(f) + " (got " + number_text(v) + ")";
      continue;
    }
    const double v = f.int_field ? f.int_field(m) : f.int64_field ? static_cast<double>(f.int64_field(m)) : 0.0;
    if (f.uint64_field || in_range(s, v)) continue;
    const std::string value = f.int_field ? std::to_string(f.int_field(m)) : std::to_string(f.int64_field(m));
    if (s.low == 0 && v < 0) return name + " = " + value + " is negative";
    return name + " = " + value + " must be " + takes(f);
  }
  return std::string();
}

void check_ranges(const Options& o) {
  // Named in words ("inner iterations"), as every front end's user reads them.
  const std::string problem = out_of_range(o, [](const OptionSpec& s) {
    std::string words = s.name;
    std::replace(words.begin(), words.end(), '_', ' ');
    return (s.group.empty() ? "" : s.group + ": ") + words;
  });
  if (!problem.empty()) throw Error("options: " + problem);
}

}  // namespace core

Options default_options() {
  Options o;
  o.rank = o.sparsity = Options::kAuto;
  return o;
}

const std::vector<OptionSpec>& option_table() {
  static const std::vector<OptionSpec> specs = [] {
    std::vector<OptionSpec> out;
    for (const core::OptionField& f : core::option_fields()) out.push_back(f.spec);
    return out;
  }();
  return specs;
}
const OptionSpec& option_spec(const std::string& name) { return core::option_field(name).spec; }
std::string option_value(const Options& options, const std::string& name) { return core::value_text(options, core::option_field(name)); }
void set_option(Options& options, const std::string& name, const std::string& text, const std::string& shown) {
  core::set_text(options, core::option_field(name), text, shown);
}
void set_option(Options& options, const std::string& name, double value, const std::string& shown) {
  core::set_number(options, core::option_field(name), value, shown);
}
void set_option_integer(Options& options, const std::string& name, std::int64_t value, const std::string& shown) {
  core::set_integer(options, core::option_field(name), value, shown);
}
std::string option_out_of_range(const Options& options, const std::function<std::string(const OptionSpec&)>& shown) {
  return core::out_of_range(options, shown ? shown : [](const OptionSpec& s) { return s.name; });
}
void unset_option(Options& options, const std::string& name, const std::string& shown) {
  core::unset(options, core::option_field(name), shown);
}

}  // namespace lrsmeta
