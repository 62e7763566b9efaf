// lrsmeta file formats: NumPy .npy arrays, data folders, CSV tables, model folders, and the
// synthetic data generator of docs/design.md section 1.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "lrsmeta/lrsmeta.hpp"

namespace lrsmeta {

// ---- .npy ----------------------------------------------------------------------------------------
enum class DType { f32, f64, i32, i64 };

// An array read from a .npy file, converted to the host byte order. C order only.
struct NpyArray {
  DType dtype = DType::f64;
  std::vector<std::int64_t> shape;
  std::vector<unsigned char> bytes;  // host byte order, C order
  LRSMETA_API std::int64_t size() const;  // product of shape
};

// Reads versions 1.0-3.0, dtypes float32/float64/int32/int64 in either byte order. Throws Error
// naming the file on anything else (Fortran order, other dtypes, truncation, bad header).
LRSMETA_API NpyArray read_npy(const std::string& path);
// Reads and converts the elements to T (float, double, int32_t or int64_t). Integer targets refuse
// non-integral values; float targets refuse values outside their range.
template <typename T>
LRSMETA_API std::vector<T> read_npy_as(const std::string& path, std::vector<std::int64_t>* shape);
// Writes little-endian, C order, version 1.0, through a temporary file renamed into place.
template <typename T>
LRSMETA_API void write_npy(const std::string& path, const T* data,
                           const std::vector<std::int64_t>& shape);

// ---- data sets -----------------------------------------------------------------------------------
// Owning ragged task data (see TaskDataView).
template <typename T>
struct Dataset {
  std::vector<T> X;  // n x d, row-major
  std::vector<T> y;  // n
  std::vector<std::int64_t> task_offsets;  // t + 1
  std::int64_t d = 0;
  std::vector<std::string> task_keys;      // CSV: value of the task column for each task
  std::vector<std::string> feature_names;  // CSV: header names of the feature columns
  FeatureEncoding encoding;                // CSV: how its columns became the features
  // Where each row came from in the input (its 0-based row there) when loading regrouped the rows
  // by task (CSV, task_ids.npy); empty when rows are in input order.
  std::vector<std::int64_t> source_rows;
  // What reading the input did that its user should hear of (CSV rows left out by drop_missing).
  std::vector<std::string> notes;

  std::int64_t n() const { return static_cast<std::int64_t>(y.size()); }
  std::int64_t t() const { return task_offsets.empty() ? 0 : std::int64_t(task_offsets.size()) - 1; }
  LRSMETA_API TaskDataView<T> view() const;
};

// A data folder holds X.npy (n x d), y.npy (n) and task_offsets.npy (t + 1, integer), or instead of
// the offsets task_ids.npy (n integers, one task id per row, rows of a task anywhere): the tasks
// are then numbered by first appearance and their ids kept as task keys.
template <typename T>
LRSMETA_API Dataset<T> load_data_folder(const std::string& path);
template <typename T>
LRSMETA_API void save_data_folder(const std::string& path, const Dataset<T>& data);

// A data folder used in place: X.npy is memory-mapped read-only and used without a copy when its
// element type is T (little-endian on a little-endian host, C order), else converted once into
// memory; y.npy is converted when its type differs (n values); task_offsets.npy is read. A folder
// with task_ids.npy instead (rows of a task anywhere) is loaded and regrouped, not mapped. The
// mapping lives as long as the object (copies share it). Members as in Dataset, for code that
// takes either.
template <typename T>
class LRSMETA_API MappedDataset {
 public:
  TaskDataView<T> view() const;
  std::int64_t t() const { return static_cast<std::int64_t>(task_offsets.size()) - 1; }
  std::int64_t n() const { return n_; }
  bool X_in_place() const { return X_in_place_; }  // false: X was converted into memory
  // Read every page of a mapped X once, so that the fit's first pass runs at memory speed and the
  // time spent reading from disk is seen (and shown) where it happens. progress, when given, is
  // called after every 64 MiB with the bytes read so far and in all; returning false stops with
  // an Error. Nothing to do where X is in memory already.
  void prefetch(const std::function<bool(std::int64_t done, std::int64_t total)>& progress = {}) const;

  std::int64_t d = 0;
  std::vector<std::int64_t> task_offsets;
  std::vector<std::string> task_keys;      // task_ids.npy: the ids; a converted CSV: its task column
  std::vector<std::string> feature_names;  // a converted CSV's (dataset.json); else empty
  FeatureEncoding encoding;                // a converted CSV's (dataset.json); else empty
  // Which part of the folder this is (map_data_folder_shard): its first task and row, and the
  // folder's tasks and rows (the whole folder: 0, 0, t, n).
  std::int64_t first_task = 0, first_row = 0, folder_tasks = 0, folder_rows = 0;
  // Bytes loading read from the files (y, the offsets, a converted X; the mapped X's pages are read
  // when first used, and only this part's).
  std::int64_t bytes_read = 0;

 private:
  template <typename U>
  friend MappedDataset<U> map_data_folder(const std::string& path);
  template <typename U>
  friend MappedDataset<U> map_data_folder_shard(const std::string& path, int rank, int size);
  struct Mapping;
  std::shared_ptr<const Mapping> mapping_;  // the mapped X.npy, unmapped with the last copy
  const T* X_ = nullptr;
  std::vector<T> X_copy_, y_;
  std::int64_t n_ = 0;
  bool X_in_place_ = false;
};
template <typename T>
LRSMETA_API MappedDataset<T> map_data_folder(const std::string& path);
// The tasks [first, end) of process `rank` of `size` when t tasks are split into contiguous ranges
// balanced by rows (offsets: the t + 1 row offsets): rank q's first task is the first whose rows
// start at or after q n / size. Reads O(log t) offsets (a mapped offsets file stays on disk).
struct TaskRange {
  std::int64_t first = 0, end = 0;
};
LRSMETA_API TaskRange shard_tasks(const std::int64_t* offsets, std::int64_t t, int rank, int size);

// Process `rank` of `size`'s shard of a data folder (its tasks by shard_tasks, offsets rebased to
// start at 0): only those tasks' rows of y and X and their offsets are read (X mapped in place when
// its type is T). The folder must have task_offsets.npy (a folder with task_ids.npy needs all its
// rows to regroup them: make one with lrsmeta convert).
template <typename T>
LRSMETA_API MappedDataset<T> map_data_folder_shard(const std::string& path, int rank, int size);
// The element type of a data folder's X.npy (what `--precision auto` follows).
LRSMETA_API DType data_folder_dtype(const std::string& path);

// CSV with a header row. `target` names the target column and `task` the task column. The other
// columns (or only `features`, less `ignore`) become features: a numeric column as it is, a text
// column one-hot encoded (at most max_levels distinct values, else an error naming the column),
// and so is a column of quoted numbers (R's write.csv quotes factors) unless in `numeric`; an
// id-like column (all values distinct integers or all distinct texts; named id, index, row or
// "Unnamed: 0"; or integers with more than 20 distinct values under a name ending in "id", such as
// movieId) is left out unless named in `features`, `numeric` or `categorical`. With `intercept`, a constant feature
// "(intercept)" comes first. Given `encoding` (a model's), exactly that encoding is applied instead
// (a level unseen in training encodes as all zeros), and an empty target or task names the
// encoding's (the columns used in training). Rows of one task need not be contiguous: tasks are
// numbered in order of first appearance. A missing value (empty, NA, N/A, NaN, null, None) in a
// numeric feature column is an error naming the column; with `drop_missing`, every row with a
// missing value in the target, the task or a feature column used is left out instead (a note says
// how many, by column; a task whose rows are all left out keeps its place with no rows).
struct CsvOptions {
  std::string target;
  std::string task;
  bool intercept = true;
  std::vector<std::string> features;  // empty: every column but the target, task and `ignore`
  std::vector<std::string> ignore;
  std::vector<std::string> categorical;  // one-hot encoded even where every value is a number
  std::vector<std::string> numeric;      // read as numbers even where quoted or named like an id
  int max_levels = 50;
  const FeatureEncoding* encoding = nullptr;
  bool target_optional = false;  // a file without the target column is read with y = 0 (predict)
  bool drop_missing = false;
};
// The feature names an encoding produces: "(intercept)", numeric columns by name, one-hot ones as
// "column=level".
LRSMETA_API std::vector<std::string> encoded_feature_names(const FeatureEncoding& encoding);
template <typename T>
LRSMETA_API Dataset<T> load_csv(const std::string& path, const CsvOptions& options,
                                std::vector<std::string>* ignored = nullptr);

// A CSV file as text: the header and the rows (RFC 4180 quoting), every row checked to have as
// many fields as the header.
struct CsvTable {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::vector<std::int64_t> lines;  // line where each row starts, for messages
  // Index of a column; throws Error naming the file and the columns it has.
  LRSMETA_API std::size_t column(const std::string& name) const;
  std::string path;
};
LRSMETA_API CsvTable read_csv_table(const std::string& path);

// A CSV table converted once into a data folder (CSV of millions of rows should not be parsed on
// every run): X.npy (float32 or float64, rows grouped by task), y.npy (float64), task_offsets.npy,
// and dataset.json (the task keys, the feature names and the encoding, which a model trained on the
// folder records, so that predict, eval and adapt can take CSV again). Two streaming passes over
// the file; memory holds the task keys and y, X goes to its file row by row. Atomic like
// save_data_folder. progress, when given, is called now and then with the pass ("reading",
// "encoding"), the bytes read and the file's size. Returns the number of rows.
LRSMETA_API std::int64_t convert_csv(const std::string& csv_path, const CsvOptions& options, const std::string& out_folder,
                                     DType x_dtype = DType::f64,
                                     const std::function<void(const char* pass, std::uint64_t bytes_read, std::uint64_t bytes_total)>&
                                         progress = {});

// A folder (data folder) or a .csv file.
template <typename T>
LRSMETA_API Dataset<T> load_dataset(const std::string& path, const CsvOptions& csv = {});

// The rows of the data set's tasks `tasks` (indices; -1: a task with no rows), in that order, with
// each row's place in the input in source_rows, and the tasks' keys where the data has them.
template <typename T>
LRSMETA_API Dataset<T> select_tasks(const Dataset<T>& data, const std::vector<std::int64_t>& tasks);

// Reorder a data set's tasks to follow `keys` (a model's task keys). Tasks of the data set that
// are not among keys are an error; keys absent from the data get zero rows.
template <typename T>
LRSMETA_API Dataset<T> align_tasks(const Dataset<T>& data, const std::vector<std::string>& keys);

// ---- models --------------------------------------------------------------------------------------
// A model folder: U.npy (d x r), W.npy (t x r), B_index.npy and B_value.npy (t x k), model.json.
// Written to a temporary folder and renamed; an existing model folder at `path` is replaced, any
// other existing path is refused.
LRSMETA_API void save_model(const Model& model, const std::string& path);
// A model trained over many processes (FitControl::communicator): every process passes its model
// (its tasks' (w, b), in rank order) and rank 0 writes the one complete folder, the others' parts
// streamed to it in pieces (no process holds all tasks' parameters). Collective: every process
// throws the first failing one's error.
LRSMETA_API void save_model(const Model& model, const std::string& path, Communicator& communicator);
// Over many processes: every process's `local` values (or text), in rank order, written by rank 0 as
// one 1-D float64 .npy (one file) through a temporary name. Collective, as save_model.
LRSMETA_API void write_npy(const std::string& path, const std::vector<double>& local, Communicator& communicator);
LRSMETA_API void write_text_file(const std::string& path, const std::string& local, Communicator& communicator);
LRSMETA_API Model load_model(const std::string& path);
// The model with the (w, b) of tasks first .. first + count - 1 only (t = count; task keys those
// tasks'), reading only their rows of W.npy, B_index.npy and B_value.npy: a process's part of a
// model over many processes. *all_tasks (when given) gets the model's number of tasks.
LRSMETA_API Model load_model_tasks(const std::string& path, std::int64_t first, std::int64_t count,
                                   std::int64_t* all_tasks = nullptr);
// The settings of a model as JSON text (also what model.json holds).
LRSMETA_API std::string model_json(const Model& model);

// ---- checkpoints ---------------------------------------------------------------------------------
// A checkpoint folder (see FitControl in lrsmeta.hpp): DIR/latest names the newest complete
// checkpoint DIR/iteration-NNNNNN/, a model folder's files plus checkpoint.json. save_checkpoint
// writes a new one beside the old, flushes it to disk, then switches `latest` to it and removes the
// old: a crash at any moment leaves one whole checkpoint. load_checkpoint refuses a damaged one
// (every file's hash is checked) and one from another checkpoint format version.
LRSMETA_API void save_checkpoint(const Checkpoint& checkpoint, const std::string& dir);
LRSMETA_API Checkpoint load_checkpoint(const std::string& dir);
// Over many processes: every process passes its checkpoint (its tasks' (w, b)) and rank 0 writes
// the one complete checkpoint, as save_model does; and each process reads back the state with only
// its tasks' (w, b) (first .. first + count - 1; the files' hashes are checked when verify_files).
LRSMETA_API void save_checkpoint(const Checkpoint& checkpoint, const std::string& dir, Communicator& communicator);
LRSMETA_API Checkpoint load_checkpoint_tasks(const std::string& dir, std::int64_t first, std::int64_t count,
                                             bool verify_files = true);
LRSMETA_API bool has_checkpoint(const std::string& dir);
// The options in which a and b differ, as "name: a's value against b's" (empty: the same).
LRSMETA_API std::vector<std::string> option_differences(const Options& a, const Options& b);

// A size for messages: "1.62 GB", "35.0 MB", "12 kB".
LRSMETA_API std::string format_bytes(double bytes);

// Checks, before long work starts, that an output can be written at `path`: the nearest existing
// folder above it (and `path` itself when it is an existing folder, such as a checkpoint folder)
// must let a file be created, which is tried with a temporary file removed at once; an existing
// `path` above which lies a file, not a folder, is refused. Throws Error naming `path` and `what`
// ("--out") and why. Nothing is left behind.
LRSMETA_API void check_writable(const std::string& path, const std::string& what);

// Write `text` to `path` through a temporary file in the same folder, renamed into place.
LRSMETA_API void write_text_file_atomically(const std::string& path, const std::string& text);

// ---- synthetic data ------------------------------------------------------------------------------
struct SyntheticSpec {
  std::int64_t tasks = 1000;
  std::int64_t min_samples = 60;  // per task; tasks draw m_i uniformly in [min, max]
  std::int64_t max_samples = 60;
  std::int64_t d = 40;
  std::int64_t r = 3;
  std::int64_t k = 2;
  double noise = 0.0;             // standard deviation of the Gaussian noise on y
  std::uint64_t seed = 1;
  std::uint64_t basis_seed = 0;   // seed of U alone; 0: derived from seed. Equal basis seeds give
                                  // data sets sharing one U (e.g. a training and a new-task set)
};
struct SyntheticData {
  Dataset<double> data;
  std::vector<double> U;  // d x r, orthonormal columns
  std::vector<double> W;  // t x r
  std::vector<double> B;  // t x d, k non-zeros per row
  // t x d row-major true parameters U w_i + b_i.
  LRSMETA_API std::vector<double> theta() const;
};
// X and w_i standard Gaussian, U a random orthonormal basis, b_i with k random positions and
// standard Gaussian values, y = X theta + noise.
LRSMETA_API SyntheticData generate_synthetic(const SyntheticSpec& spec);

// Draws the data of generate_synthetic(spec) (the same values, bit for bit) and writes it as
// save_synthetic would, task by task: memory stays O(t (r + k)) whatever the size of X, which may be
// written as float32 (x_dtype f32; y stays float64). keep_going, when given, is called every 1024
// tasks with the number of tasks written (for progress); false stops the write with an error.
// Atomic: on any error or stop nothing is left behind. Returns the number of rows written.
LRSMETA_API std::int64_t write_synthetic(const std::string& path, const SyntheticSpec& spec, DType x_dtype = DType::f64,
                                 const std::function<bool(std::int64_t tasks_written)>& keep_going = {});

// Writes the data folder at `path` with the truth in `path`/truth: U.npy (d x r), W.npy (t x r),
// B.npy (t x d, dense). Atomic like save_data_folder.
LRSMETA_API void save_synthetic(const std::string& path, const SyntheticData& synthetic);
// Reads a truth folder written by save_synthetic; the result's data is empty.
LRSMETA_API SyntheticData load_truth(const std::string& path);


}  // namespace lrsmeta
