#include "cli/commands.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <unordered_set>
#include <sstream>

#include "cli/interrupt.hpp"
#include "lrsmeta/io.hpp"
#include "lrsmeta/lrsmeta.hpp"
#include "lrsmeta/mpi.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace lrsmeta::cli {
namespace {

// Options shared by the subcommands that read a data set.
struct DataArgs {
  std::string path;
  std::string target, task;
  // CSV features (train only; predict, eval and adapt apply the model's encoding).
  std::vector<std::string> features, ignore, categorical, numeric;
  bool no_intercept = false;
  int max_levels = 50;
  const FeatureEncoding* encoding = nullptr;  // a model's: its CSV columns, target and task are the defaults
  bool target_optional = false;                // predict: a CSV without the target column
  std::string precision = "auto";  // a data folder: X.npy's type; CSV: float on the GPU, double on the CPU
  int threads = 0;
  bool gpu = false;                // set by train when it will run on the GPU
};

void add_data_options(CLI::App* cmd, DataArgs& a, bool required = true) {
  cmd->add_option("--data", a.path, "data folder (X.npy, y.npy, task_offsets.npy) or CSV file")
      ->required(required);
  cmd->add_option("--target", a.target, "CSV: name of the target column (predict, eval, adapt: the model's by default)");
  cmd->add_option("--task", a.task, "CSV: name of the task column (predict, eval, adapt: the model's by default)");
  cmd->add_option("--precision", a.precision, "precision computed in (auto: a data folder's X.npy type, used in place without a copy; CSV: float on the GPU, double on the CPU)")
      ->check(CLI::IsMember({"auto", "float", "double"}))
      ->capture_default_str();
  cmd->add_option("--threads", a.threads, "CPU threads (0: all cores)")->check(CLI::NonNegativeNumber);
}

void add_csv_feature_options(CLI::App* cmd, DataArgs& a) {
  cmd->add_option("--features", a.features, "CSV: the columns to use as features (default: all but the target, task, "
                  "--ignore'd and id-like columns)")->delimiter(',')->group("CSV features");
  cmd->add_option("--ignore", a.ignore, "CSV: columns not to use")->delimiter(',')->group("CSV features");
  cmd->add_option("--categorical", a.categorical, "CSV: columns to one-hot encode even where their values are numbers")
      ->delimiter(',')->group("CSV features");
  cmd->add_option("--numeric", a.numeric, "CSV: columns to read as numbers even where quoted (as R writes factors) or named "
                  "like an id")->delimiter(',')->group("CSV features");
  cmd->add_flag("--no-intercept", a.no_intercept, "CSV: no constant feature (by default one comes first)")->group("CSV features");
  cmd->add_option("--max-levels", a.max_levels, "CSV: most distinct values of a text column to one-hot encode")
      ->capture_default_str()->group("CSV features");
}

// What a CSV's columns became, in one paragraph.
void print_encoding(const FeatureEncoding& enc, std::ostream& out) {
  if (!enc.present) return;
  out << "features:" << (enc.intercept ? " (intercept)," : "");
  for (std::size_t c = 0; c < enc.columns.size(); ++c) {
    const FeatureColumn& col = enc.columns[c];
    out << (c ? ", " : " ") << col.name;
    if (!col.levels.empty()) out << " (one-hot, " << col.levels.size() << " levels)";
  }
  out << "\n";
  for (const std::string& why : enc.ignored) out << "ignored column " << why << "\n";
  for (const std::string& note : enc.notes) out << "note: " << note << "\n";
}

// Whether the data is computed in float: asked for, or (auto) a data folder's X.npy is float32, or
// a CSV table goes to the GPU.
bool single_precision(const DataArgs& a) {
  if (a.precision != "auto") return a.precision == "float";
  return fs::is_directory(a.path) ? data_folder_dtype(a.path) == DType::f32 : a.gpu;
}

// Call f with the data set loaded in the requested precision (float or double).
template <typename F>
void with_dataset(const DataArgs& a, F&& f) {
  CsvOptions csv;
  csv.target = a.target;
  csv.task = a.task;
  csv.intercept = !a.no_intercept;
  csv.features = a.features;
  csv.ignore = a.ignore;
  csv.categorical = a.categorical;
  csv.numeric = a.numeric;
  csv.max_levels = a.max_levels;
  csv.encoding = a.encoding;
  csv.target_optional = a.target_optional;
  if (single_precision(a)) {
    f(load_dataset<float>(a.path, csv));
  } else {
    f(load_dataset<double>(a.path, csv));
  }
}

// As with_dataset, but a data folder's X is used in place (memory-mapped) when it already has the
// precision computed in: training holds no second copy of the data.
template <typename F>
void with_mapped_dataset(const DataArgs& a, F&& f) {
  if (!fs::is_directory(a.path)) return with_dataset(a, std::forward<F>(f));
  if (single_precision(a)) {
    f(map_data_folder<float>(a.path));
  } else {
    f(map_data_folder<double>(a.path));
  }
}

// As with_mapped_dataset, for process `comm`'s shard of a data folder (a fit over many processes):
// every process learns of any one's failure to load, or of bad values in its rows (named by the
// folder's row and task numbers). verbose: each process says what it read.
template <typename F>
void with_mapped_shard(const DataArgs& a, Communicator& comm, F&& f, bool verbose = false) {
  std::string failure;
  MappedDataset<float> as_float;
  MappedDataset<double> as_double;
  bool single = false;
  auto check = [&](const auto& ds) {
    if (ds.t() == 0)
      throw Error(a.path + " has " + std::to_string(ds.folder_tasks) + " tasks, too few for " + std::to_string(comm.size()) +
                  " processes (each needs tasks of its own): use fewer processes");
    try {
      validate(ds.view(), true);
    } catch (const Error& e) {
      throw Error(std::string(e.what()) + " (rows and tasks counted from this process's first: row " + std::to_string(ds.first_row) +
                  " and task " + std::to_string(ds.first_task) + " of " + a.path + ")");
    }
    if (verbose)
      std::fprintf(stderr, "rank %d: tasks %lld .. %lld, rows %lld .. %lld of %s; read %lld bytes (y and offsets of these rows), "
                   "X %s\n", comm.rank(), static_cast<long long>(ds.first_task), static_cast<long long>(ds.first_task + ds.t() - 1),
                   static_cast<long long>(ds.first_row), static_cast<long long>(ds.first_row + ds.n() - 1), a.path.c_str(),
                   static_cast<long long>(ds.bytes_read), ds.X_in_place() ? "mapped in place (these rows' pages only are read)" : "converted");
  };
  try {
    single = single_precision(a);
    if (single) {
      as_float = map_data_folder_shard<float>(a.path, comm.rank(), comm.size());
      check(as_float);
    } else {
      as_double = map_data_folder_shard<double>(a.path, comm.rank(), comm.size());
      check(as_double);
    }
  } catch (const std::exception& e) {
    failure = e.what();
  }
  const std::string first = comm.first_error(failure);
  if (!first.empty()) throw CollectiveError(first);
  if (single) f(as_float);
  else f(as_double);
}

// A data set's rows and tasks in all (a shard's folder's; a loaded table's own).
template <typename T>
std::int64_t all_rows(const MappedDataset<T>& ds) { return ds.folder_rows; }
template <typename T>
std::int64_t all_rows(const Dataset<T>& ds) { return ds.n(); }
template <typename T>
std::int64_t all_tasks(const MappedDataset<T>& ds) { return ds.folder_tasks; }
template <typename T>
std::int64_t all_tasks(const Dataset<T>& ds) { return ds.t(); }
template <typename T>
std::int64_t first_task_of(const MappedDataset<T>& ds) { return ds.first_task; }
template <typename T>
std::int64_t first_task_of(const Dataset<T>&) { return 0; }

// The processes of this run when it was started by mpirun (or srun) with more than one; else null.
Communicator* distributed_processes() {
  if (!launched_by_mpi()) return nullptr;
  Communicator& world = mpi_world();
  return world.size() > 1 ? &world : nullptr;
}

}  // namespace

int process_count() {
  Communicator* comm = launched_by_mpi() && mpi_built() ? &mpi_world() : nullptr;
  return comm ? comm->size() : 1;
}
int process_rank() {
  Communicator* comm = launched_by_mpi() && mpi_built() ? &mpi_world() : nullptr;
  return comm ? comm->rank() : 0;
}

namespace {

// Over many processes: this process's part of a trained model for its shard of a data folder, whose
// tasks must be the model's, in its order (the folder the model was trained on, or held-out rows of
// the same tasks in the same order). Every process learns of any one's failure.
template <typename T>
Model model_part_for(const std::string& model_path, const MappedDataset<T>& ds, Communicator& comm) {
  std::string failure;
  Model part;
  try {
    std::int64_t model_tasks = 0;
    part = load_model_tasks(model_path, ds.first_task, ds.t(), &model_tasks);
    if (model_tasks != ds.folder_tasks)
      throw Error("the data has " + std::to_string(ds.folder_tasks) + " tasks, the model " + std::to_string(model_tasks) +
                  ": over many processes the data's tasks must be the model's, in its order (run in one process to match them by key)");
    if (!part.task_keys.empty() && !ds.task_keys.empty())
      for (std::size_t i = 0; i < ds.task_keys.size(); ++i)
        if (ds.task_keys[i] != part.task_keys[i])
          throw Error("task " + std::to_string(ds.first_task + static_cast<std::int64_t>(i)) + " is '" + ds.task_keys[i] +
                      "' in the data but '" + part.task_keys[i] + "' in the model: over many processes the data's tasks must be "
                      "the model's, in its order (run in one process to match them by key)");
  } catch (const std::exception& e) {
    failure = e.what();
  }
  const std::string first = comm.first_error(failure);
  if (!first.empty()) throw CollectiveError(first);
  return part;
}

// An evaluation over every process's rows (mse and rows; the per-task MSEs stay each process's).
void sum_evaluation(Evaluation& ev, Communicator& comm) {
  double sums[2] = {ev.mse * static_cast<double>(ev.rows), static_cast<double>(ev.rows)};
  comm.sum(sums, 2);
  ev.mse = sums[1] > 0 ? sums[0] / sums[1] : 0.0;
  ev.rows = static_cast<std::int64_t>(sums[1]);
}

template <typename T>
Dataset<T> aligned_to_model(Dataset<T> data, const Model& model) {
  if (!model.task_keys.empty() && !data.task_keys.empty()) return align_tasks(data, model.task_keys);
  return data;
}

bool stderr_is_terminal() { return ::isatty(STDERR_FILENO) == 1; }

// Progress on stderr: rewritten in place on a terminal (unless --quiet), one line each with
// --verbose (also when stderr is not a terminal), nothing otherwise.
struct Progress {
  bool live = false, lines = false;
  Progress(bool quiet, bool verbose) : live(!quiet && !verbose && stderr_is_terminal()), lines(verbose) {}
  void show(const std::string& text) const {
    if (lines) std::fprintf(stderr, "%s\n", text.c_str());
    else if (live) std::fprintf(stderr, "\r%s\033[K", text.c_str());
  }
  void done() const {
    if (live) std::fprintf(stderr, "\n");
  }
};

// "12.3 s" or "4 min 05 s": an estimate of the time left.
std::string eta_text(double seconds) {
  char buf[48];
  if (!(seconds >= 0) || !std::isfinite(seconds)) return "?";
  if (seconds < 60) std::snprintf(buf, sizeof buf, "%.1f s", seconds);
  else std::snprintf(buf, sizeof buf, "%d min %02d s", static_cast<int>(seconds / 60), static_cast<int>(seconds) % 60);
  return buf;
}

// A mapped data folder's X read from disk once, with progress ("load ... 45% of 8.00 GB, 950 MB/s,
// 4.2 s left"), so that the first iteration does not hide the disk's time; a signal stops it. Data
// held in memory (CSV, converted X) is loaded already.
template <typename T>
void prefetch_with_progress(const MappedDataset<T>& ds, const Progress& progress, const std::string& path, const char* command) {
  const auto start = std::chrono::steady_clock::now();
  double shown = -1.0;
  try {
    ds.prefetch([&](std::int64_t done, std::int64_t total) {
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (elapsed - shown < 0.5 && done < total) return !interrupt_requested();  // a line every half second at most
      shown = elapsed;
      const double rate = static_cast<double>(done) / std::max(elapsed, 1e-9);
      char text[200];
      std::snprintf(text, sizeof text, "load %s: %.0f%% of %s, %.0f MB/s, %s left", path.c_str(),
                    100.0 * static_cast<double>(done) / static_cast<double>(total), format_bytes(static_cast<double>(total)).c_str(),
                    rate / 1e6, eta_text(static_cast<double>(total - done) / rate).c_str());
      progress.show(text);
      return !interrupt_requested();
    });
  } catch (const Error&) {
    progress.done();
    if (interrupt_requested())
      throw Interrupted(std::string(command) + ": stopped by " + signal_name(interrupt_signal()) + " while loading " + path +
                            "; nothing was written",
                        interrupt_signal());
    throw;
  }
}
template <typename T>
void prefetch_with_progress(const Dataset<T>&, const Progress&, const std::string&, const char*) {}

void add_progress_options(CLI::App* cmd, bool* quiet, bool* verbose) {
  cmd->add_flag("--quiet,-q", *quiet, "no progress on stderr");
  cmd->add_flag("--verbose,-v", *verbose, "progress as one line per step on stderr, terminal or not");
}

// Outputs are checked before any work (rank 0 writes them): a run that cannot write its result
// fails at once, not after the fit.
void check_outputs(std::initializer_list<std::pair<const char*, std::string>> outputs) {
  if (process_rank() != 0) return;
  for (const auto& [option, path] : outputs)
    if (!path.empty()) check_writable(path, option);
}

void write_json_file(const std::string& path, const json& j) { write_text_file_atomically(path, j.dump(2) + "\n"); }

// An argument as a POSIX shell reads it back.
std::string shell_quoted(const std::string& arg) {
  if (!arg.empty() && arg.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=.,/:@%") == std::string::npos)
    return arg;
  std::string out = "'";
  for (char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The command line that continues a stopped train from the checkpoint folder `dir`: the same
// arguments, with --checkpoint and --resume replaced by --resume dir.
std::string resume_command(const std::vector<std::string>& argv, const std::string& dir) {
  std::string out;
  for (std::size_t a = 0; a < argv.size(); ++a) {
    const std::string& arg = argv[a];
    if (arg == "--checkpoint" || arg == "--resume") {
      ++a;  // and its value
      continue;
    }
    if (arg.rfind("--checkpoint=", 0) == 0 || arg.rfind("--resume=", 0) == 0) continue;
    out += (out.empty() ? "" : " ") + shell_quoted(arg);
  }
  return out + " --resume " + shell_quoted(dir);
}


}  // namespace

void add_generate(CLI::App& app) {
  auto spec = std::make_shared<SyntheticSpec>();
  auto out = std::make_shared<std::string>();
  auto samples = std::make_shared<std::int64_t>(-1);
  CLI::App* cmd = app.add_subcommand("generate", "write synthetic data from the model theta_i = U w_i + b_i, with its truth");
  cmd->add_option("--out", *out, "data folder to write (truth in OUT/truth)")->required();
  cmd->add_option("--tasks,-t", spec->tasks, "number of tasks")->capture_default_str();
  cmd->add_option("--samples,-m", *samples, "rows per task (sets both --min-samples and --max-samples)");
  cmd->add_option("--min-samples", spec->min_samples, "fewest rows of a task")->capture_default_str();
  cmd->add_option("--max-samples", spec->max_samples, "most rows of a task")->capture_default_str();
  cmd->add_option("--dim,-d", spec->d, "features d")->capture_default_str();
  cmd->add_option("--rank,-r", spec->r, "rank r of U")->capture_default_str();
  cmd->add_option("--sparsity,-k", spec->k, "non-zeros k of each b_i")->capture_default_str();
  cmd->add_option("--noise", spec->noise, "standard deviation of the noise on y")->capture_default_str();
  cmd->add_option("--seed", spec->seed, "random seed")->capture_default_str();
  cmd->add_option("--basis-seed", spec->basis_seed, "seed of U alone (0: from --seed); equal values share U");
  auto dtype = std::make_shared<std::string>("float64");
  auto quiet = std::make_shared<bool>(false), verbose = std::make_shared<bool>(false);
  add_progress_options(cmd, quiet.get(), verbose.get());
  cmd->add_option("--dtype", *dtype, "element type of X.npy (y.npy is float64)")
      ->check(CLI::IsMember({"float64", "float32"}))
      ->capture_default_str();
  cmd->callback([=] {
    check_outputs({{"--out", *out}});
    SyntheticSpec s = *spec;
    if (*samples >= 0) s.min_samples = s.max_samples = *samples;
    // Written task by task (memory O(t (r + k)), not O(size of X)); SIGINT or SIGTERM stops it
    // with nothing left behind.
    const InterruptGuard guard;
    const Progress progress(*quiet, *verbose);
    std::int64_t rows = 0;
    const auto start = std::chrono::steady_clock::now();
    auto keep_going = [&](std::int64_t written) {
      if (written > 0) {
        const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const double rate = static_cast<double>(written) / std::max(elapsed, 1e-9);
        char text[160];
        std::snprintf(text, sizeof text, "generate: %lld/%lld tasks, %.0f tasks/s, %s left", static_cast<long long>(written),
                      static_cast<long long>(s.tasks), rate, eta_text(static_cast<double>(s.tasks - written) / rate).c_str());
        progress.show(text);
      }
      return !interrupt_requested();
    };
    try {
      rows = write_synthetic(*out, s, *dtype == "float32" ? DType::f32 : DType::f64, keep_going);
      progress.done();
    } catch (const Error&) {
      progress.done();
      if (interrupt_requested())
        throw Interrupted(std::string("generate: stopped by ") + signal_name(interrupt_signal()) + "; nothing was written", interrupt_signal());
      throw;
    }
    std::cout << "wrote " << *out << ": " << s.tasks << " tasks, " << rows << " rows, d = " << s.d << ", X " << *dtype
              << " (truth: r = " << s.r << ", k = " << s.k << ")\n";
  });
}

void add_train(CLI::App& app, const std::vector<std::string>& command_line) {
  auto data = std::make_shared<DataArgs>();
  auto o = std::make_shared<Options>();
  auto out = std::make_shared<std::string>();
  auto metrics = std::make_shared<std::string>();
  auto variant = std::make_shared<std::string>("pursuit");
  auto init = std::make_shared<std::string>("auto");
  auto device = std::make_shared<std::string>("cpu");
  auto quiet = std::make_shared<bool>(false), verbose = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("train", "fit a model: beta + U w_i + b_i with priors estimated from all tasks (AMHT-LRS inside)");
  add_data_options(cmd, *data);
  add_progress_options(cmd, quiet.get(), verbose.get());
  add_csv_feature_options(cmd, *data);
  auto rank = std::make_shared<std::string>("auto");
  auto sparsity = std::make_shared<std::string>("auto");
  auto prior = std::make_shared<std::string>("auto");
  auto sparse_scale = std::make_shared<std::string>("auto");
  auto shrinkage = std::make_shared<std::string>("auto");
  auto threshold = std::make_shared<std::string>("auto");
  cmd->add_option("--rank,-r", *rank, "rank r of the shared U (0: sparse only; auto: chosen, see --select)")->capture_default_str();
  cmd->add_option("--sparsity,-k", *sparsity, "non-zeros k of each b_i (0: low-rank only; auto: chosen, see --select)")
      ->capture_default_str();
  auto select = std::make_shared<std::string>("evidence");
  cmd->add_option("--select", *select, "how what is auto is found: validation (chosen on held-out rows of each task, then "
                  "refitted) or evidence (estimated from all rows by EM and the marginal likelihood, no rows held out)")
      ->check(CLI::IsMember({"evidence", "validation"}))->capture_default_str();
  cmd->add_option("--prior", *prior, "auto: the empirical-Bayes model (beta + U w_i + b_i, priors estimated from all tasks); "
                  "none: the paper's AMHT-LRS")->check(CLI::IsMember({"auto", "none"}))->capture_default_str();
  cmd->add_option("--sparse-prior-scale", *sparse_scale, "prior variance of b's non-zeros in units of the data's coefficient "
                  "scale (auto: chosen, see --select)")->capture_default_str();
  cmd->add_option("--support-threshold", *threshold, "c: a non-zero of b is kept only where b_q^2 > c Var(b_q | data) "
                  "(auto: chosen with the b prior's scale; 2 under --select evidence)")->capture_default_str();
  cmd->add_option("--covariance-shrinkage", *shrinkage, "f: shrink Sigma towards isotropic, (S + f (tr S / r) I) / (1 + f) "
                  "(0: the plain mixed model; auto: chosen, see --select)")->capture_default_str();
  cmd->add_option("--validation-fraction", o->validation_fraction, "share of each task's rows held out when choosing on validation rows")
      ->capture_default_str();
  cmd->add_option("--selection-tasks", o->selection_tasks, "with more tasks than this, choose on validation rows of this many "
                  "tasks drawn at random (the final fit uses all; 0: every task)")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--out,-o", *out, "model folder to write")->required();
  cmd->add_option("--variant", *variant, "task step")->check(CLI::IsMember({"pursuit", "htp", "iht"}))->capture_default_str();
  cmd->add_option("--iterations,-L", o->iterations, "most outer iterations (fewer once a tolerance stops training)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--inner-iterations", o->inner_iterations, "task-step iterations per outer iteration")->capture_default_str();
  cmd->add_option("--warm-start", o->warm_start_iterations, "first outer iterations with k = 0")->capture_default_str();
  cmd->add_option("--ridge", o->ridge, "ridge lambda on the dr x dr system for U")->capture_default_str();
  cmd->add_option("--task-ridge", o->task_ridge, "relative ridge on each task's small system")->capture_default_str();
  cmd->add_option("--step-size", o->step_size, "iht/htp: eta * m_i (0: variant default)")->capture_default_str();
  cmd->add_option("--init", *init, "initialisation of U (auto: spectral with the prior, random otherwise)")
      ->check(CLI::IsMember({"auto", "random", "spectral"}))->capture_default_str();
  cmd->add_option("--tolerance", o->tolerance, "stop when the change in U falls below this (0: never)")->capture_default_str();
  cmd->add_option("--relative-tolerance", o->relative_tolerance, "prior auto: stop once an iteration changes s2 and the "
                  "training loss by less than this, relatively (0: never)")->capture_default_str();
  cmd->add_option("--device", *device, "where to train")->check(CLI::IsMember({"cpu", "cuda", "auto"}))->capture_default_str();
  auto u_solver = std::make_shared<std::string>("auto");
  cmd->add_option("--u-solver", *u_solver, "the U step: direct (form and factor G), cg (conjugate gradients, no G: any d r), "
                  "auto (the cheaper by a cost model; direct for private training)")
      ->check(CLI::IsMember({"direct", "cg", "auto"}))->capture_default_str();
  cmd->add_option("--cg-tolerance", o->cg_tolerance, "cg: stop at this relative residual")->capture_default_str();
  cmd->add_option("--cg-forcing", o->cg_forcing, "cg: also stop once the residual is this fraction of the "
                  "warm start's (0: solve every U step to --cg-tolerance)")->capture_default_str();
  cmd->add_option("--cg-max-steps", o->cg_max_steps, "cg: most steps per U step")->capture_default_str();
  cmd->add_option("--seed", o->seed, "seed of the random initialisation and of the validation split")->capture_default_str();
  cmd->add_option("--metrics-out", *metrics, "write training metrics (history, timings) as JSON");
  auto checkpoint_dir = std::make_shared<std::string>();
  auto resume_dir = std::make_shared<std::string>();
  auto checkpoint_every = std::make_shared<int>(1);
  cmd->add_option("--checkpoint", *checkpoint_dir, "write the training state to this folder (every --checkpoint-every "
                  "iterations, and when stopped by SIGINT or SIGTERM) so that --resume can continue it")->group("Checkpoints");
  cmd->add_option("--checkpoint-every", *checkpoint_every, "outer iterations between checkpoints")
      ->capture_default_str()->check(CLI::PositiveNumber)->group("Checkpoints");
  cmd->add_option("--resume", *resume_dir, "continue the training whose checkpoint is in this folder (give the same data "
                  "and options; checkpoints go on into it)")->group("Checkpoints");
  auto epsilon = std::make_shared<double>(0.0);
  auto delta = std::make_shared<double>(0.0);
  auto noise_seed = std::make_shared<std::uint64_t>(0);
  CLI::Option* eps_opt = cmd->add_option("--epsilon", *epsilon, "differential privacy: target epsilon (needs --delta)")
                             ->group("Differential privacy");
  CLI::Option* delta_opt = cmd->add_option("--delta", *delta, "differential privacy: target delta")->group("Differential privacy");
  eps_opt->needs(delta_opt);
  delta_opt->needs(eps_opt);
  cmd->add_option("--clip-x", o->privacy.clip_x, "row-norm bound C_x")->capture_default_str()->group("Differential privacy");
  cmd->add_option("--clip-y", o->privacy.clip_y, "residual bound C_y")->capture_default_str()->group("Differential privacy");
  cmd->add_option("--clip-w", o->privacy.clip_w, "coefficient bound C_w on ||w_i||")->capture_default_str()->group("Differential privacy");
  cmd->add_option("--max-samples", o->privacy.max_samples, "rows of a task that contribute (m_max)")
      ->capture_default_str()->group("Differential privacy");
  cmd->add_option("--noise-multiplier", o->privacy.noise_multiplier, "noise multiplier z (default: calibrated to epsilon, delta)")
      ->group("Differential privacy");
  CLI::Option* seed_opt = cmd->add_option("--noise-seed", *noise_seed, "fix the noise seed: reproducible, NO privacy guarantee")
                              ->group("Differential privacy");
  cmd->callback([=] {
    check_outputs({{"--out", *out}, {"--metrics-out", *metrics}, {"--checkpoint", *checkpoint_dir}, {"--resume", *resume_dir}});
    Options opts = *o;
    if (!eps_opt->empty()) {
      opts.privacy.enabled = true;
      opts.privacy.epsilon = *epsilon;
      opts.privacy.delta = *delta;
      if (!seed_opt->empty()) {
        opts.privacy.fixed_seed = true;
        opts.privacy.noise_seed = *noise_seed;
      }
    } else if (!seed_opt->empty()) {
      throw Error("--noise-seed applies to private training only (give --epsilon and --delta)");
    }
    opts.prior = parse_prior(*prior);
    auto count_or_auto = [](const std::string& text, const char* name, int* value) {
      if (text == "auto") return true;
      try {
        std::size_t used = 0;
        const int v = std::stoi(text, &used);
        if (used != text.size() || v < 0) throw std::invalid_argument(text);
        *value = v;
      } catch (const std::exception&) {
        throw Error(std::string("--") + name + " must be a non-negative integer or auto, not '" + text + "'");
      }
      return false;
    };
    const bool rank_auto = count_or_auto(*rank, "rank", &opts.rank);
    const bool sparsity_auto = count_or_auto(*sparsity, "sparsity", &opts.sparsity);
    // A finite number (above 0, or at least 0) or "auto" (the value stays < 0: chosen by the fit).
    auto number_or_auto = [](const std::string& text, const char* name, bool positive, double* value) {
      if (text == "auto") return;
      try {
        std::size_t used = 0;
        const double v = std::stod(text, &used);
        if (used != text.size() || !std::isfinite(v) || !(positive ? v > 0 : v >= 0)) throw std::invalid_argument(text);
        *value = v;
      } catch (const std::exception&) {
        throw Error(std::string("--") + name + " must be a " + (positive ? "positive number" : "number >= 0") + " or auto, not '" +
                    text + "'");
      }
    };
    number_or_auto(*sparse_scale, "sparse-prior-scale", true, &opts.sparse_prior_scale);
    number_or_auto(*threshold, "support-threshold", false, &opts.support_threshold);
    number_or_auto(*shrinkage, "covariance-shrinkage", false, &opts.covariance_shrinkage);
    opts.variant = parse_variant(*variant);
    opts.init = parse_init(*init);
    opts.device = parse_device(*device);
    opts.u_solver = parse_u_solver(*u_solver);
    opts.selection = parse_selection(*select);
    opts.threads = data->threads;
    data->gpu = device_for(opts) == Device::cuda;
    if (fs::exists(*out) && !fs::exists(fs::path(*out) / "model.json"))
      throw Error(*out + ": exists and is not a model folder; refusing to overwrite it");
    // Under mpirun (more than one process): each trains on its shard of the tasks; rank 0 prints
    // and writes the model.
    Communicator* comm = distributed_processes();
    const bool root = !comm || comm->rank() == 0;
    if (!root) std::cout.setstate(std::ios::badbit);  // the others print nothing
    // Checkpoints: into --checkpoint, else on into the folder resumed from.
    const std::string checkpoint_to = !checkpoint_dir->empty() ? *checkpoint_dir : *resume_dir;
    std::unique_ptr<Checkpoint> resume_from;
    if (!resume_dir->empty()) {
      // Over many processes each reads its own tasks' part, once its shard of the data is known.
      if (!comm) resume_from = std::make_unique<Checkpoint>(load_checkpoint(*resume_dir));
    } else if (!checkpoint_dir->empty() && has_checkpoint(*checkpoint_dir)) {
      throw Error(*checkpoint_dir + " holds a checkpoint already (iteration " +
                  std::to_string(load_checkpoint_tasks(*checkpoint_dir, 0, 0, false).iteration) +
                  "): continue it with --resume " + *checkpoint_dir + ", or remove the folder to start again");
    } else if (!checkpoint_dir->empty() && fs::exists(*checkpoint_dir) &&
               (!fs::is_directory(*checkpoint_dir) || !fs::is_empty(*checkpoint_dir))) {
      throw Error(*checkpoint_dir + ": exists and is not an empty folder or a checkpoint folder; refusing to write checkpoints into it");
    }
    const Progress progress(*quiet || !root, *verbose && root);
    auto show = [&](const IterationInfo& info) {
      char text[200];
      // At most this much left: a tolerance may stop training sooner.
      const double left = info.elapsed_seconds / info.iteration * (opts.iterations - info.iteration);
      char cg[48] = "";
      if (info.u_solver_steps > 0) std::snprintf(cg, sizeof cg, "  cg %d steps (%.1e)", info.u_solver_steps, info.u_solver_residual);
      std::snprintf(text, sizeof text, "iteration %d/%d  loss %.4e  U change %.3e  k %d%s  %.2f s/iteration  at most %s left",
                    info.iteration, opts.iterations, info.training_loss, info.u_change, info.sparsity_in_effect, cg,
                    info.elapsed_seconds / info.iteration, eta_text(left).c_str());
      progress.show(text);
      return true;
    };
    // SIGINT or SIGTERM: training ends after the current outer iteration (of the final fit, or of
    // a fit of the choice on validation rows), a checkpoint is written where one was asked for,
    // and no model is written.
    const InterruptGuard guard;
    FitControl control;
    control.on_iteration = show;
    control.stop = [] { return interrupt_requested(); };
    control.resume = resume_from.get();
    control.communicator = comm;
    // Candidates scored in the last checkpoint written while r and k were being chosen (-1: none).
    long candidates_checkpointed = -1;
    if (!checkpoint_to.empty()) {
      control.checkpoint = [&](const Checkpoint& c) {
        const auto start = std::chrono::steady_clock::now();
        if (comm) save_checkpoint(c, checkpoint_to, *comm);
        else save_checkpoint(c, checkpoint_to);
        candidates_checkpointed = c.choosing ? static_cast<long>(c.model.selection.candidates.size()) : -1;
        if (progress.lines) {
          if (c.choosing)
            std::fprintf(stderr, "checkpoint of the choice of r and k (%zu candidates scored) written to %s in %.2f s\n",
                         c.model.selection.candidates.size(), checkpoint_to.c_str(),
                         std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
          else
            std::fprintf(stderr, "checkpoint of iteration %d written to %s in %.2f s\n", c.iteration, checkpoint_to.c_str(),
                         std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        }
      };
      control.checkpoint_every = *checkpoint_every;
    }
    const auto load_start = std::chrono::steady_clock::now();
    auto train_on = [&](const auto& ds) {
      prefetch_with_progress(ds, progress, data->path, "train");
      progress.done();
      const double load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
      if (progress.lines)
        std::fprintf(stderr, "loaded %s: %lld rows, %lld tasks, d = %lld, %s in %.2f s%s\n", data->path.c_str(),
                     static_cast<long long>(all_rows(ds)), static_cast<long long>(all_tasks(ds)), static_cast<long long>(ds.d),
                     sizeof(*ds.view().X) == sizeof(float) ? "float" : "double", load_seconds,
                     comm ? (" (rank 0's shard: " + std::to_string(ds.t()) + " tasks; " + std::to_string(comm->size()) + " processes)").c_str() : "");
      if (comm && !resume_dir->empty()) {
        std::string failure;
        try {  // rank 0 checks the files' hashes; each reads its tasks' rows
          resume_from = std::make_unique<Checkpoint>(load_checkpoint_tasks(*resume_dir, first_task_of(ds), ds.t(), comm->rank() == 0));
        } catch (const std::exception& e) {
          failure = e.what();
        }
        const std::string first = comm->first_error(failure);
        if (!first.empty()) throw CollectiveError(first);
        control.resume = resume_from.get();
      }
      if (rank_auto) opts.rank_candidates = default_rank_candidates(ds.d);
      if (sparsity_auto) opts.sparsity_candidates = default_sparsity_candidates(ds.d);
      std::vector<std::string> chosen;
      if (rank_auto) chosen.push_back("r");
      if (sparsity_auto) chosen.push_back("k");
      const bool by_evidence = opts.selection == Selection::evidence && opts.prior == Prior::automatic;
      if (opts.prior == Prior::automatic && !opts.privacy.enabled && (sparsity_auto || opts.sparsity > 0) &&
          (opts.sparse_prior_scale < 0 || (!by_evidence && opts.support_threshold < 0)))
        chosen.push_back(by_evidence ? "the b prior's variance and the supports' inclusion probability"
                                     : "the b prior's scale and support threshold");
      if (opts.prior == Prior::automatic && !opts.privacy.enabled && (rank_auto || opts.rank > 0) && opts.covariance_shrinkage < 0)
        chosen.push_back("Sigma's shrinkage");
      if (resume_from && resume_from->choosing) {
        std::cout << "resuming the choice of r and k from " << *resume_dir << " (" << resume_from->model.selection.candidates.size()
                  << " candidates scored, not fitted again)" << std::endl;
      } else if (resume_from) {
        const Options& o = resume_from->model.options;
        std::cout << "resuming from " << *resume_dir << " after iteration " << resume_from->iteration << " of " << o.iterations
                  << " (r = " << o.rank << ", k = " << o.sparsity
                  << (resume_from->model.selection.performed ? ", as chosen before" : "") << ")" << std::endl;
      } else if (!chosen.empty() && !comm && by_evidence) {
        std::string what;
        for (std::size_t c = 0; c < chosen.size(); ++c) what += (c == 0 ? "" : c + 1 == chosen.size() ? " and " : ", ") + chosen[c];
        std::cout << "estimating " << what << " from all rows (marginal likelihood)" << std::endl;
      } else if (!chosen.empty() && !comm) {
        std::string what;
        for (std::size_t c = 0; c < chosen.size(); ++c) what += (c == 0 ? "" : c + 1 == chosen.size() ? " and " : ", ") + chosen[c];
        std::cout << "choosing " << what << " on validation rows (" << opts.validation_fraction * 100 << "% of each task's rows";
        if (opts.selection_tasks > 0 && ds.t() > opts.selection_tasks)
          std::cout << ", of " << opts.selection_tasks << " of the " << ds.t() << " tasks drawn at random";
        std::cout << "), then refitting on all rows" << std::endl;
      }
      // A resumed choice's checkpoint stays where it is until the next one replaces it.
      if (resume_from && resume_from->choosing && checkpoint_to == *resume_dir)
        candidates_checkpointed = static_cast<long>(resume_from->model.selection.candidates.size());
      Model model;
      const auto fit_start = std::chrono::steady_clock::now();
      try {
        model = fit(ds.view(), opts, control);
      } catch (const Stopped& e) {
        progress.done();
        const std::string by = std::string("train: stopped by ") + signal_name(interrupt_signal());
        const std::string resume_line = "; to continue:\n  " + (comm ? "mpirun -np " + std::to_string(comm->size()) + " " : std::string()) +
                                        resume_command(command_line, checkpoint_to);
        if (e.iteration() == 0 && candidates_checkpointed >= 0)
          throw Interrupted(by + " while choosing r and k; the checkpoint (" + std::to_string(candidates_checkpointed) +
                                " candidates scored, which a resume does not fit again) is in " + checkpoint_to + resume_line,
                            interrupt_signal());
        if (e.iteration() == 0)
          throw Interrupted(by + (opts.selection == Selection::validation ? " while choosing on validation rows" : " while choosing r and k") +
                                "; no model was written and there is no checkpoint yet (" +
                                (opts.selection == Selection::validation ? "one is written once the final fit starts"
                                 : checkpoint_to.empty()                 ? "give --checkpoint DIR: one is written after each candidate"
                                                                         : "one is written after each candidate, and the first had not ended") +
                                ")",
                            interrupt_signal());
        const std::string after = "after outer iteration " + std::to_string(e.iteration());
        if (checkpoint_to.empty())
          throw Interrupted(by + " " + after + "; no model was written (give --checkpoint DIR to be able to resume)",
                            interrupt_signal());
        throw Interrupted(by + " " + after + "; the checkpoint is in " + checkpoint_to + resume_line, interrupt_signal());
      }
      progress.done();
      const double fit_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - fit_start).count();
      model.task_keys = ds.task_keys;
      model.feature_names = ds.feature_names;
      model.encoding = ds.encoding;
      Evaluation ev = evaluate(model, ds.view());
      std::int64_t tasks = model.t;
      if (comm) {  // the training MSE over every process's rows
        sum_evaluation(ev, *comm);
        comm->sum(&tasks, 1);
      }
      print_encoding(ds.encoding, std::cout);
      progress.show("writing " + *out + " (" + std::to_string(tasks) + " tasks' parameters)");
      const auto write_start = std::chrono::steady_clock::now();
      if (comm) save_model(model, *out, *comm);
      else save_model(model, *out);
      const double write_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - write_start).count();
      progress.done();
      for (const std::string& note : model.notes) {
        if (note.rfind("not converged", 0) == 0) std::cerr << "warning: " << note << "\n";
        else std::cout << "note: " << note << "\n";
      }
      if (model.selection.performed && model.selection.method == Selection::evidence) {
        const SelectionCandidate& c = model.selection.chosen;
        std::cout << "estimated from all rows";
        if (model.selection.candidates.size() > 1) {
          std::cout << " (log marginal likelihood of each (r, k) tried:";
          for (const SelectionCandidate& x : model.selection.candidates) std::cout << " " << x.rank << "," << x.sparsity << ": " << x.log_evidence;
          std::cout << ")";
        }
        std::cout << ": r = " << c.rank << ", k = " << c.sparsity;
        if (c.sparsity > 0) std::cout << ", tau2 " << model.sparse_prior_variance << ", inclusion probability " << model.support_inclusion_probability;
        if (c.rank > 0) std::cout << ", covariance shrinkage " << model.covariance_shrinkage;
        std::cout << "\n";
      } else if (model.selection.performed) {
        const SelectionCandidate& c = model.selection.chosen;
        std::cout << "chosen on " << model.selection.validation_rows << " validation rows (" << model.selection.candidates.size()
                  << " candidates): r = " << c.rank << ", k = " << c.sparsity;
        if (c.sparsity > 0 && model.has_prior())
          std::cout << ", sparse prior scale " << c.sparse_prior_scale << ", support threshold " << c.support_threshold;
        if (c.rank > 0 && model.has_prior()) std::cout << ", covariance shrinkage " << c.covariance_shrinkage;
        std::cout << " (validation MSE " << c.validation_mse << ")\n";
      }
      std::cout << "trained " << to_string(opts.variant) << " model (prior " << to_string(model.options.prior) << ", d = " << model.d
                << ", r = " << model.r << ", k = " << model.k << ", t = " << tasks << ") in " << model.history.size()
                << " iterations: training MSE " << ev.mse;
      if (model.has_prior()) std::cout << ", noise variance s2 " << model.noise_variance;
      std::cout << "; wrote " << *out << "\n";
      if (model.privacy.enabled)
        std::cout << "privacy spent: epsilon " << model.privacy.epsilon << " at delta " << model.privacy.delta << " ("
                  << model.privacy.releases << " Gaussian releases, noise multiplier " << model.privacy.noise_multiplier
                  << ")" << (model.privacy.fixed_seed ? "; the noise seed was fixed: NO privacy guarantee" : "") << "\n";
      if (!metrics->empty() && root) {
        double task_s = 0, u_s = 0;
        for (const IterationInfo& h : model.history) {
          task_s += h.task_step_seconds;
          u_s += h.u_step_seconds;
        }
        const json described = json::parse(model_json(model));  // the parts model.json has too
        write_json_file(*metrics, json{{"data", data->path},
                                       {"model", *out},
                                       {"precision", sizeof(*ds.view().X) == sizeof(float) ? "float" : "double"},
                                       {"n", all_rows(ds)},
                                       {"d", model.d},
                                       {"t", tasks},
                                       {"processes", comm ? comm->size() : 1},
                                       {"r", model.r},
                                       {"k", model.k},
                                       {"variant", to_string(opts.variant)},
                                       {"device", to_string(opts.device)},
                                       {"iterations_run", model.history.size()},
                                       {"load_seconds", load_seconds},
                                       {"write_seconds", write_seconds},
                                       {"training_mse", ev.mse},
                                       {"task_step_seconds", task_s},
                                       {"u_step_seconds", u_s},
                                       // The whole fit (with the estimation or choice of r, k and
                                       // the priors' settings), and the chosen model's own
                                       // iterations (its history's last elapsed time).
                                       {"fit_seconds", fit_seconds},
                                       {"total_seconds", model.history.empty() ? 0.0 : model.history.back().elapsed_seconds},
                                       {"privacy", described.at("privacy")},
                                       {"prior", described.at("prior")},
                                       {"selection", described.at("selection")},
                                       {"history", described.at("history")}});
      }
    };
    if (comm) with_mapped_shard(*data, *comm, train_on, *verbose);
    else with_mapped_dataset(*data, train_on);
  });
}

void add_convert(CLI::App& app) {
  auto data = std::make_shared<DataArgs>();
  auto out = std::make_shared<std::string>();
  auto dtype = std::make_shared<std::string>("float64");
  auto quiet = std::make_shared<bool>(false), verbose = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("convert", "convert a CSV table once into a data folder (X.npy, y.npy, task_offsets.npy, "
                                     "dataset.json) that train, adapt, predict and eval use without parsing it again");
  cmd->add_option("--data", data->path, "CSV file")->required();
  cmd->add_option("--target", data->target, "name of the target column")->required();
  cmd->add_option("--task", data->task, "name of the task column")->required();
  add_csv_feature_options(cmd, *data);
  cmd->add_option("--out,-o", *out, "data folder to write")->required();
  cmd->add_option("--dtype", *dtype, "element type of X.npy (float32 halves its size; y.npy is float64)")
      ->check(CLI::IsMember({"float64", "float32"}))->capture_default_str();
  add_progress_options(cmd, quiet.get(), verbose.get());
  cmd->callback([=] {
    check_outputs({{"--out", *out}});
    CsvOptions csv;
    csv.target = data->target;
    csv.task = data->task;
    csv.intercept = !data->no_intercept;
    csv.features = data->features;
    csv.ignore = data->ignore;
    csv.categorical = data->categorical;
    csv.numeric = data->numeric;
    csv.max_levels = data->max_levels;
    const InterruptGuard guard;
    const Progress progress(*quiet, *verbose);
    const auto start = std::chrono::steady_clock::now();
    std::string last_pass;
    auto report = [&](const char* pass, std::uint64_t done, std::uint64_t total) {
      if (interrupt_requested())
        throw Interrupted(std::string("convert: stopped by ") + signal_name(interrupt_signal()) + "; nothing was written",
                          interrupt_signal());
      // The two passes each read the whole file: the second half of the work is the second pass.
      const bool second = std::string(pass) == "encoding";
      const double fraction = (static_cast<double>(done) / std::max<double>(static_cast<double>(total), 1.0) + (second ? 1.0 : 0.0)) / 2.0;
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      char text[160];
      std::snprintf(text, sizeof text, "convert: %s %.0f%% of %s, %.1f MB/s, %s left", pass, 100.0 * static_cast<double>(done) /
                    std::max<double>(static_cast<double>(total), 1.0), format_bytes(static_cast<double>(total)).c_str(),
                    static_cast<double>(done + (second ? total : 0)) / 1e6 / std::max(elapsed, 1e-9),
                    eta_text(elapsed / std::max(fraction, 1e-9) * (1.0 - fraction)).c_str());
      progress.show(text);
    };
    std::int64_t rows = 0;
    try {
      rows = convert_csv(data->path, csv, *out, *dtype == "float32" ? DType::f32 : DType::f64, report);
    } catch (...) {
      progress.done();
      throw;
    }
    progress.done();
    auto summary = [&](const auto& written) {  // mapped in its own type: X is not read
      print_encoding(written.encoding, std::cout);
      std::cout << "wrote " << *out << ": " << written.t() << " tasks, " << rows << " rows, d = " << written.d << ", X " << *dtype
                << "\n";
    };
    if (*dtype == "float32") summary(map_data_folder<float>(*out));
    else summary(map_data_folder<double>(*out));
  });
}

// Whether tasks with `keys` can join the model's in one model: keys on both or neither, and none
// of the model's own (adapt fits new tasks).
void check_new_task_keys(const Model& model, const std::vector<std::string>& keys) {
  if (model.task_keys.empty() != keys.empty())
    throw Error(std::string("--into: the ") + (model.task_keys.empty() ? "model's tasks have no keys and the new data's do"
                                                                       : "new data's tasks have no keys and the model's do") +
                ": a model cannot hold both (write the new tasks alone with --out)");
  std::unordered_set<std::string> known(model.task_keys.begin(), model.task_keys.end());
  for (const std::string& key : keys)
    if (known.count(key))
      throw Error("--into: task '" + key + "' is in the model already; adapt fits new tasks (refit the model to change its tasks)");
}

// The model with the adapted tasks appended (same U and prior): one model holding both.
Model with_tasks_added(const Model& model, const Model& added) {
  check_new_task_keys(model, added.task_keys);
  Model out = model;
  out.W.insert(out.W.end(), added.W.begin(), added.W.end());
  out.B_index.insert(out.B_index.end(), added.B_index.begin(), added.B_index.end());
  out.B_value.insert(out.B_value.end(), added.B_value.begin(), added.B_value.end());
  out.task_keys.insert(out.task_keys.end(), added.task_keys.begin(), added.task_keys.end());
  out.t = model.t + added.t;
  out.notes.push_back(std::to_string(added.t) + " tasks added by adapt (U and the prior fixed)");
  return out;
}

void add_adapt(CLI::App& app) {
  auto data = std::make_shared<DataArgs>();
  auto model_path = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("adapt", "fit (w, b) of new tasks with the model's U fixed");
  cmd->add_option("--model", *model_path, "trained model folder")->required();
  add_data_options(cmd, *data);
  auto into = std::make_shared<std::string>();
  CLI::Option* out_option = cmd->add_option("--out,-o", *out, "model folder to write (the model's U, the new tasks' w and b)");
  CLI::Option* into_option = cmd->add_option("--into", *into, "model folder to write with the model's tasks and the new ones "
                                             "(it may be --model itself, which is then replaced whole)");
  out_option->excludes(into_option);
  cmd->callback([=] {
    if (out->empty() && into->empty()) throw Error("--out (the new tasks alone) or --into (the model's tasks and the new ones) is required");
    check_outputs({{"--out", *out}, {"--into", *into}});
    // Under mpirun: each process adapts its shard's tasks (the model's U and prior only are read).
    Communicator* comm = distributed_processes();
    if (comm && !into->empty()) throw CollectiveError("--into adds tasks to the whole model: run it in one process (without mpirun)");
    if (comm && comm->rank() != 0) std::cout.setstate(std::ios::badbit);
    const Model model = comm ? load_model_tasks(*model_path, 0, 0) : load_model(*model_path);
    data->encoding = model.encoding.present ? &model.encoding : nullptr;
    Options o = model.options;
    o.threads = data->threads;
    o.device = Device::cpu;
    const Progress progress(false, false);
    auto adapt_on = [&](const auto& ds) {
      prefetch_with_progress(ds, progress, data->path, "adapt");
      progress.done();
      if (!into->empty()) check_new_task_keys(model, ds.task_keys);  // before the work
      Model adapted = adapt(model, ds.view(), o);
      adapted.task_keys = ds.task_keys;
      Evaluation ev = evaluate(adapted, ds.view());
      std::int64_t tasks = adapted.t;
      if (comm) {
        sum_evaluation(ev, *comm);
        comm->sum(&tasks, 1);
        save_model(adapted, *out, *comm);
      } else if (!into->empty()) {
        save_model(with_tasks_added(model, adapted), *into);
      } else {
        save_model(adapted, *out);
      }
      std::cout << "adapted " << tasks << " tasks: training MSE " << ev.mse << "; wrote " << (into->empty() ? *out : *into)
                << (into->empty() ? "" : " (the model's " + std::to_string(model.t) + " tasks and these)") << "\n";
    };
    if (comm) with_mapped_shard(*data, *comm, adapt_on);
    else with_mapped_dataset(*data, adapt_on);
  });
}

void add_predict(CLI::App& app) {
  auto data = std::make_shared<DataArgs>();
  auto model_path = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("predict", "predict <x, theta_i> for every row (theta_i = beta + U w_i + b_i)");
  cmd->add_option("--model", *model_path, "trained model folder")->required();
  add_data_options(cmd, *data);
  cmd->add_option("--out,-o", *out, "predictions in the input's row order: .npy (n) or .csv (row,task,prediction)")->required();
  cmd->callback([=] {
    const std::string kind = fs::path(*out).extension().string();
    if (kind != ".npy" && kind != ".csv")
      throw Error("--out " + *out + ": the file's name must end in .npy or .csv, the formats predict writes");
    check_outputs({{"--out", *out}});
    if (Communicator* comm = distributed_processes()) {
      // Each process predicts its shard's rows; rank 0 writes them all, in the folder's row order.
      if (comm->rank() != 0) std::cout.setstate(std::ios::badbit);
      with_mapped_shard(*data, *comm, [&](const auto& ds) {
        const Model part = model_part_for(*model_path, ds, *comm);
        const std::vector<double> pred = predict(part, ds.view());
        std::int64_t rows = static_cast<std::int64_t>(pred.size());
        if (fs::path(*out).extension() == ".csv") {
          std::ostringstream csv;
          csv.precision(17);
          if (comm->rank() == 0) csv << "row,task,prediction\n";
          for (std::int64_t i = 0; i < ds.t(); ++i)
            for (std::int64_t j = ds.task_offsets[i]; j < ds.task_offsets[i + 1]; ++j)
              csv << ds.first_row + j << "," << (ds.task_keys.empty() ? std::to_string(ds.first_task + i) : ds.task_keys[static_cast<std::size_t>(i)])
                  << "," << pred[static_cast<std::size_t>(j)] << "\n";
          write_text_file(*out, csv.str(), *comm);
        } else {
          write_npy(*out, pred, *comm);
        }
        comm->sum(&rows, 1);
        std::cout << "wrote " << rows << " predictions to " << *out << "\n";
      });
      return;
    }
    const Model model = load_model(*model_path);
    data->encoding = model.encoding.present ? &model.encoding : nullptr;
    data->target_optional = true;  // predictions need no target
    with_dataset(*data, [&](const auto& loaded) {
      const auto ds = aligned_to_model(loaded, model);
      const std::vector<double> grouped = predict(model, ds.view());
      // Back to the input's row order (CSV and task_ids.npy inputs were regrouped by task).
      const std::size_t n = grouped.size();
      std::vector<double> pred(n);
      std::vector<std::string> task_of_row(n);
      for (std::int64_t i = 0; i < ds.t(); ++i)
        for (std::int64_t j = ds.task_offsets[i]; j < ds.task_offsets[i + 1]; ++j) {
          const std::size_t at = ds.source_rows.empty() ? static_cast<std::size_t>(j) : static_cast<std::size_t>(ds.source_rows[j]);
          if (at >= n) throw Error("predict: internal row mapping out of range");
          pred[at] = grouped[static_cast<std::size_t>(j)];
          task_of_row[at] = ds.task_keys.empty() ? std::to_string(i) : ds.task_keys[static_cast<std::size_t>(i)];
        }
      if (fs::path(*out).extension() == ".csv") {
        std::ostringstream csv;
        csv.precision(17);
        csv << "row,task,prediction\n";
        for (std::size_t j = 0; j < n; ++j) csv << j << "," << task_of_row[j] << "," << pred[j] << "\n";
        write_text_file_atomically(*out, csv.str());
      } else {
        write_npy(*out, pred.data(), {static_cast<std::int64_t>(n)});
      }
      std::cout << "wrote " << pred.size() << " predictions to " << *out << "\n";
    });
  });
}

void add_eval(CLI::App& app) {
  auto data = std::make_shared<DataArgs>();
  auto model_path = std::make_shared<std::string>();
  auto truth = std::make_shared<std::string>();
  auto json_out = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("eval", "mean squared error of a model on a data set (and its parameter error)");
  cmd->add_option("--model", *model_path, "trained model folder")->required();
  add_data_options(cmd, *data);
  cmd->add_option("--truth", *truth, "truth folder from generate (U.npy, W.npy, B.npy): report parameter error");
  cmd->add_option("--json", *json_out, "also write the results as JSON");
  cmd->callback([=] {
    check_outputs({{"--json", *json_out}});
    if (Communicator* comm = distributed_processes()) {
      // Each process evaluates its shard's rows; the sums give the whole data's MSE.
      if (comm->rank() != 0) std::cout.setstate(std::ios::badbit);
      if (!truth->empty())
        throw CollectiveError("--truth needs the whole model: compare the parameters in one process (without mpirun)");
      json result{{"model", *model_path}, {"data", data->path}, {"processes", comm->size()}};
      with_mapped_shard(*data, *comm, [&](const auto& ds) {
        const Model part = model_part_for(*model_path, ds, *comm);
        Evaluation ev = evaluate(part, ds.view());
        sum_evaluation(ev, *comm);
        result["mse"] = ev.mse;
        result["rmse"] = std::sqrt(ev.mse);
        result["rows"] = ev.rows;
        result["tasks"] = ds.folder_tasks;
        result["model_tasks"] = ds.folder_tasks;  // over many processes they must be the model's (model_part_for)
        std::cout << "rows " << ev.rows << "  tasks " << ds.folder_tasks << " (the model has " << ds.folder_tasks << ")  MSE " << ev.mse
                  << "  RMSE " << std::sqrt(ev.mse) << "\n";
      });
      if (!json_out->empty() && comm->rank() == 0) write_json_file(*json_out, result);
      return;
    }
    const Model model = load_model(*model_path);
    data->encoding = model.encoding.present ? &model.encoding : nullptr;
    json result{{"model", *model_path}, {"data", data->path}};
    with_dataset(*data, [&](const auto& loaded) {
      const auto ds = aligned_to_model(loaded, model);
      const Evaluation ev = evaluate(model, ds.view());
      result["mse"] = ev.mse;
      result["rmse"] = std::sqrt(ev.mse);
      result["rows"] = ev.rows;
      result["tasks"] = loaded.t();  // the file's tasks (the model may have more)
      result["model_tasks"] = model.t;
      // Each of the file's tasks: its key, rows and errors (in the model's order).
      json per_task = json::array();
      for (std::int64_t i = 0; i < ds.t(); ++i) {
        const std::int64_t rows = ds.task_offsets[static_cast<std::size_t>(i + 1)] - ds.task_offsets[static_cast<std::size_t>(i)];
        if (rows == 0) continue;
        const double mse = ev.task_mse[static_cast<std::size_t>(i)];
        per_task.push_back({{"task", ds.task_keys.empty() ? std::to_string(i) : ds.task_keys[static_cast<std::size_t>(i)]},
                            {"rows", rows}, {"mse", mse}, {"rmse", std::sqrt(mse)}});
      }
      result["per_task"] = per_task;
      std::cout << "rows " << ev.rows << "  tasks " << loaded.t() << " (the model has " << model.t << ")  MSE " << ev.mse << "  RMSE "
                << std::sqrt(ev.mse) << "\n";
    });
    if (!truth->empty()) {
      const SyntheticData t = load_truth(*truth);
      if (t.data.d != model.d || t.data.t() != model.t)
        throw Error(*truth + ": truth has d = " + std::to_string(t.data.d) + ", t = " + std::to_string(t.data.t()) +
                    "; the model d = " + std::to_string(model.d) + ", t = " + std::to_string(model.t));
      const double err = relative_error(model.theta_matrix(), t.theta());
      result["relative_parameter_error"] = err;
      std::cout << "relative parameter error ||Theta - Theta*||_F / ||Theta*||_F = " << err << "\n";
    }
    if (!json_out->empty()) write_json_file(*json_out, result);
  });
}

}  // namespace lrsmeta::cli
