// What the subcommands share: the data options and reading a data set (whole, mapped, or this
// process's shard under MPI), progress on stderr, and checks of the outputs before any work.
#pragma once

#include <CLI/CLI.hpp>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "cli/commands.hpp"
#include "cli/interrupt.hpp"
#include "lrsmeta/io.hpp"
#include "lrsmeta/lrsmeta.hpp"
#include "lrsmeta/mpi.hpp"

namespace lrsmeta::cli {

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
  std::string missing = "error";               // CSV: a missing value is an error, or its row is dropped
  std::string precision = "auto";  // a data folder: X.npy's type; CSV: float on the GPU, double on the CPU
  int threads = 0;
  bool gpu = false;                // set by train when it will run on the GPU
};

inline void add_missing_option(CLI::App* cmd, DataArgs& a) {
  cmd->add_option("--missing", a.missing, "CSV: a missing value (empty, NA, NaN, null, None) in the target, the task or a "
                  "feature column: error, or drop its row (a note says how many, by column)")
      ->check(CLI::IsMember({"error", "drop"}))->capture_default_str();
}

inline void add_data_options(CLI::App* cmd, DataArgs& a, bool required = true) {
  cmd->add_option("--data", a.path, "data folder (X.npy, y.npy, task_offsets.npy) or CSV file")
      ->required(required);
  cmd->add_option("--target", a.target, "CSV: name of the target column (predict, eval, adapt: the model's by default)");
  cmd->add_option("--task", a.task, "CSV: name of the task column (predict, eval, adapt: the model's by default)");
  cmd->add_option("--precision", a.precision, "precision computed in (auto: a data folder's X.npy type, used in place without a copy; CSV: float on the GPU, double on the CPU)")
      ->check(CLI::IsMember({"auto", "float", "double"}))
      ->capture_default_str();
  cmd->add_option("--threads", a.threads, "CPU threads (0: all cores)")->check(CLI::NonNegativeNumber);
  add_missing_option(cmd, a);
}

inline void add_csv_feature_options(CLI::App* cmd, DataArgs& a) {
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
inline void print_encoding(const FeatureEncoding& enc, std::ostream& out) {
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
inline bool single_precision(const DataArgs& a) {
  if (a.precision != "auto") return a.precision == "float";
  return std::filesystem::is_directory(a.path) ? data_folder_dtype(a.path) == DType::f32 : a.gpu;
}

// The CSV reading options the data options ask for (convert's and every data set's).
inline CsvOptions csv_options(const DataArgs& a) {
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
  csv.drop_missing = a.missing == "drop";
  return csv;
}

// Call f with the data set loaded in the requested precision (float or double).
template <typename F>
void with_dataset(const DataArgs& a, F&& f) {
  const CsvOptions csv = csv_options(a);
  // Rows left out are said here where the model's encoding is applied; train and convert print
  // the note with the encoding they chose.
  auto with_notes = [&](const auto& ds) {
    if (a.encoding)
      for (const std::string& note : ds.notes) std::cout << "note: " << note << "\n";
    f(ds);
  };
  if (single_precision(a)) {
    with_notes(load_dataset<float>(a.path, csv));
  } else {
    with_notes(load_dataset<double>(a.path, csv));
  }
}

// As with_dataset, but a data folder's X is used in place (memory-mapped) when it already has the
// precision computed in: training holds no second copy of the data.
template <typename F>
void with_mapped_dataset(const DataArgs& a, F&& f) {
  if (!std::filesystem::is_directory(a.path)) return with_dataset(a, std::forward<F>(f));
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
inline Communicator* distributed_processes() {
  if (!launched_by_mpi()) return nullptr;
  Communicator& world = mpi_world();
  return world.size() > 1 ? &world : nullptr;
}

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
inline void sum_evaluation(Evaluation& ev, Communicator& comm) {
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

// The rows of tasks the model has and of those it does not (by task key; a file or model without
// keys: every task is the model's), each with its rows' places in the input (source_rows).
template <typename T>
std::pair<Dataset<T>, Dataset<T>> split_unseen_tasks(const Dataset<T>& data, const Model& model) {
  std::vector<std::int64_t> seen, unseen;
  if (model.task_keys.empty() || data.task_keys.empty()) return {data, select_tasks(data, unseen)};
  const std::unordered_set<std::string> known(model.task_keys.begin(), model.task_keys.end());
  for (std::int64_t i = 0; i < data.t(); ++i) (known.count(data.task_keys[static_cast<std::size_t>(i)]) ? seen : unseen).push_back(i);
  return {select_tasks(data, seen), select_tasks(data, unseen)};
}

inline bool stderr_is_terminal() { return ::isatty(STDERR_FILENO) == 1; }

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
inline std::string eta_text(double seconds) {
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

inline void add_progress_options(CLI::App* cmd, bool* quiet, bool* verbose) {
  cmd->add_flag("--quiet,-q", *quiet, "no progress on stderr");
  cmd->add_flag("--verbose,-v", *verbose, "progress as one line per step on stderr, terminal or not");
}

// Outputs are checked before any work (rank 0 writes them): a run that cannot write its result
// fails at once, not after the fit.
inline void check_outputs(std::initializer_list<std::pair<const char*, std::string>> outputs) {
  if (process_rank() != 0) return;
  for (const auto& [option, path] : outputs)
    if (!path.empty()) check_writable(path, option);
}

inline void write_json_file(const std::string& path, const nlohmann::json& j) { write_text_file_atomically(path, j.dump(2) + "\n"); }

}  // namespace lrsmeta::cli
