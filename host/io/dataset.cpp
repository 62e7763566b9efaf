// Data sets: data folders of .npy files, task alignment, synthetic data (CSV tables: csv.cpp).
#include <algorithm>
#include <functional>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <set>
#include <unordered_map>

#include "core/random.hpp"
#include "io/dataset_description.hpp"
#include "io/files.hpp"
#include "io/npy_stream.hpp"
#include "lrsmeta/io.hpp"

namespace fs = std::filesystem;

namespace lrsmeta {

template <typename T>
TaskDataView<T> Dataset<T>::view() const {
  TaskDataView<T> v;
  v.X = X.data();
  v.y = y.empty() ? nullptr : y.data();
  v.task_offsets = task_offsets.data();
  v.n = n();
  v.d = d;
  v.t = t();
  return v;
}
template struct Dataset<float>;
template struct Dataset<double>;

template <typename T>
Dataset<T> load_data_folder(const std::string& path) try {
  if (!fs::is_directory(path))
    throw Error(path + ": not a data folder (expected X.npy, y.npy and task_offsets.npy or task_ids.npy)");
  Dataset<T> ds;
  std::vector<std::int64_t> xs, ys, os;
  const fs::path dir(path);
  ds.X = read_npy_as<T>((dir / "X.npy").string(), &xs);
  ds.y = read_npy_as<T>((dir / "y.npy").string(), &ys);
  if (xs.size() != 2) throw Error((dir / "X.npy").string() + ": must be 2-D (n x d), has " + std::to_string(xs.size()) + " dimensions");
  if (ys.size() != 1) throw Error((dir / "y.npy").string() + ": must be 1-D (n), has " + std::to_string(ys.size()) + " dimensions");
  if (xs[0] != ys[0])
    throw Error(path + ": X.npy has " + std::to_string(xs[0]) + " rows but y.npy has " + std::to_string(ys[0]));
  ds.d = xs[1];
  const fs::path offsets_file = dir / "task_offsets.npy", ids_file = dir / "task_ids.npy";
  if (fs::exists(offsets_file) || !fs::exists(ids_file)) {
    ds.task_offsets = read_npy_as<std::int64_t>(offsets_file.string(), &os);
    if (os.size() != 1) throw Error(offsets_file.string() + ": must be 1-D (t + 1)");
    if (os[0] < 2) throw Error(offsets_file.string() + ": needs at least 2 entries (one task)");
  } else {
    // One integer task id per row; rows of a task need not be contiguous. Tasks are numbered in
    // order of first appearance (their ids become the task keys) and rows regrouped stably.
    const std::vector<std::int64_t> ids = read_npy_as<std::int64_t>(ids_file.string(), &os);
    if (os.size() != 1 || os[0] != xs[0])
      throw Error(ids_file.string() + ": must be 1-D with one id per row of X.npy (" + std::to_string(xs[0]) + ")");
    std::unordered_map<std::int64_t, std::int64_t> task_of_id;
    std::vector<std::int64_t> row_task(ids.size());
    for (std::size_t j = 0; j < ids.size(); ++j) {
      auto [it, inserted] = task_of_id.emplace(ids[j], static_cast<std::int64_t>(ds.task_keys.size()));
      if (inserted) ds.task_keys.push_back(std::to_string(ids[j]));
      row_task[j] = it->second;
    }
    const std::int64_t t = static_cast<std::int64_t>(ds.task_keys.size());
    if (t == 0) throw Error(ids_file.string() + ": no rows, so no tasks");
    ds.task_offsets.assign(static_cast<std::size_t>(t + 1), 0);
    for (std::int64_t task : row_task) ++ds.task_offsets[static_cast<std::size_t>(task + 1)];
    for (std::int64_t i = 0; i < t; ++i) ds.task_offsets[static_cast<std::size_t>(i + 1)] += ds.task_offsets[static_cast<std::size_t>(i)];
    std::vector<std::int64_t> next(ds.task_offsets.begin(), ds.task_offsets.end() - 1);
    std::vector<T> X(ds.X.size()), y(ds.y.size());
    ds.source_rows.resize(ids.size());
    for (std::size_t j = 0; j < ids.size(); ++j) {
      const std::int64_t row = next[static_cast<std::size_t>(row_task[j])]++;
      ds.source_rows[static_cast<std::size_t>(row)] = static_cast<std::int64_t>(j);
      std::copy_n(ds.X.begin() + static_cast<std::ptrdiff_t>(j) * ds.d, ds.d, X.begin() + row * ds.d);
      y[static_cast<std::size_t>(row)] = ds.y[j];
    }
    ds.X = std::move(X);
    ds.y = std::move(y);
  }
  if (ds.task_keys.empty()) io::read_dataset_description(path, ds.t(), ds.d, &ds.task_keys, &ds.feature_names, &ds.encoding);
  validate(ds.view(), true);
  return ds;
} catch (...) {
  io::rethrow_naming_file(path);
}
template Dataset<float> load_data_folder(const std::string&);
template Dataset<double> load_data_folder(const std::string&);

template <typename T>
void save_data_folder(const std::string& path, const Dataset<T>& data) {
  validate(data.view(), true);
  const std::string staged = io::temporary_sibling(path);
  fs::create_directories(staged);
  try {
    const fs::path dir(staged);
    write_npy((dir / "X.npy").string(), data.X.data(), {data.n(), data.d});
    write_npy((dir / "y.npy").string(), data.y.data(), {data.n()});
    write_npy((dir / "task_offsets.npy").string(), data.task_offsets.data(), {data.t() + 1});
  } catch (...) {
    std::error_code ec;
    fs::remove_all(staged, ec);
    throw;
  }
  io::install_folder(staged, path, "task_offsets.npy");
}
template void save_data_folder(const std::string&, const Dataset<float>&);
template void save_data_folder(const std::string&, const Dataset<double>&);


template <typename T>
Dataset<T> load_dataset(const std::string& path, const CsvOptions& csv) {
  if (fs::is_directory(path)) return load_data_folder<T>(path);
  if (!fs::exists(path)) throw Error(path + ": no such file or folder");
  return load_csv<T>(path, csv);
}
template Dataset<float> load_dataset(const std::string&, const CsvOptions&);
template Dataset<double> load_dataset(const std::string&, const CsvOptions&);

template <typename T>
Dataset<T> select_tasks(const Dataset<T>& data, const std::vector<std::int64_t>& tasks) {
  Dataset<T> out;
  out.d = data.d;
  out.feature_names = data.feature_names;
  out.encoding = data.encoding;
  out.task_offsets.assign(1, 0);
  for (const std::int64_t s : tasks) {
    if (s >= data.t()) throw Error("select_tasks: task " + std::to_string(s) + " of " + std::to_string(data.t()));
    if (s >= 0) {
      const std::int64_t a = data.task_offsets[static_cast<std::size_t>(s)], b = data.task_offsets[static_cast<std::size_t>(s + 1)];
      out.X.insert(out.X.end(), data.X.begin() + a * data.d, data.X.begin() + b * data.d);
      out.y.insert(out.y.end(), data.y.begin() + a, data.y.begin() + b);
      for (std::int64_t j = a; j < b; ++j)
        out.source_rows.push_back(data.source_rows.empty() ? j : data.source_rows[static_cast<std::size_t>(j)]);
    }
    out.task_offsets.push_back(out.n());
    if (!data.task_keys.empty()) out.task_keys.push_back(s >= 0 ? data.task_keys[static_cast<std::size_t>(s)] : std::string());
  }
  return out;
}
template Dataset<float> select_tasks(const Dataset<float>&, const std::vector<std::int64_t>&);
template Dataset<double> select_tasks(const Dataset<double>&, const std::vector<std::int64_t>&);

template <typename T>
Dataset<T> align_tasks(const Dataset<T>& data, const std::vector<std::string>& keys) {
  std::unordered_map<std::string, std::int64_t> position;
  for (std::size_t i = 0; i < keys.size(); ++i) position.emplace(keys[i], static_cast<std::int64_t>(i));
  std::vector<std::int64_t> source_of(keys.size(), -1);
  for (std::int64_t i = 0; i < data.t(); ++i) {
    const auto it = position.find(data.task_keys.at(static_cast<std::size_t>(i)));
    if (it == position.end())
      throw Error("task '" + data.task_keys[static_cast<std::size_t>(i)] + "' is not in the model (use adapt for new tasks)");
    source_of[static_cast<std::size_t>(it->second)] = i;
  }
  Dataset<T> out = select_tasks(data, source_of);
  out.task_keys = keys;
  return out;
}
template Dataset<float> align_tasks(const Dataset<float>&, const std::vector<std::string>&);
template Dataset<double> align_tasks(const Dataset<double>&, const std::vector<std::string>&);

std::vector<double> SyntheticData::theta() const {
  const std::int64_t d = data.d, t = data.t(), r = static_cast<std::int64_t>(U.size()) / std::max<std::int64_t>(d, 1);
  std::vector<double> th(B);
  for (std::int64_t i = 0; i < t; ++i)
    for (std::int64_t a = 0; a < d; ++a)
      for (std::int64_t p = 0; p < r; ++p) th[static_cast<std::size_t>(i * d + a)] += U[static_cast<std::size_t>(a * r + p)] * W[static_cast<std::size_t>(i * r + p)];
  return th;
}

namespace {

// The truth of a synthetic data set and its rows, drawn in one fixed order (U; every w_i; every
// b_i's positions and values; every m_i; then row by row x_ij and the noise) so that the in-memory
// generator and the streaming writer give the same data bit for bit.
struct SyntheticTruth {
  std::vector<double> U, W;             // d x r, t x r
  std::vector<std::int32_t> B_index;    // t x k
  std::vector<double> B_value;          // t x k
  std::vector<std::int64_t> offsets;    // t + 1
};

void check_spec(const SyntheticSpec& s) {
  if (s.tasks <= 0) throw Error("generate: tasks must be positive");
  if (s.d <= 0) throw Error("generate: d must be positive");
  if (s.r < 0 || s.r > s.d) throw Error("generate: rank r = " + std::to_string(s.r) + " must be in [0, d = " + std::to_string(s.d) + "]");
  if (s.k < 0 || s.k > s.d) throw Error("generate: sparsity k = " + std::to_string(s.k) + " must be in [0, d = " + std::to_string(s.d) + "]");
  if (s.min_samples < 0 || s.max_samples < s.min_samples)
    throw Error("generate: need 0 <= min samples <= max samples (got " + std::to_string(s.min_samples) + ", " + std::to_string(s.max_samples) + ")");
  if (!(s.noise >= 0) || !std::isfinite(s.noise)) throw Error("generate: noise must be finite and >= 0");
}

SyntheticTruth draw_truth(const SyntheticSpec& s, core::NormalGenerator& gen) {
  const std::int64_t t = s.tasks, d = s.d, r = s.r, k = s.k;
  SyntheticTruth truth;
  truth.U = core::random_orthonormal_basis(d, r, s.basis_seed != 0 ? s.basis_seed : s.seed ^ 0x9e3779b97f4a7c15ULL);
  truth.W.resize(static_cast<std::size_t>(t * r));
  for (double& w : truth.W) w = gen();
  truth.B_index.resize(static_cast<std::size_t>(t * k));
  truth.B_value.resize(static_cast<std::size_t>(t * k));
  std::vector<std::int64_t> perm(static_cast<std::size_t>(d));
  for (std::int64_t i = 0; i < t; ++i) {
    for (std::int64_t a = 0; a < d; ++a) perm[static_cast<std::size_t>(a)] = a;
    for (std::int64_t s2 = 0; s2 < k; ++s2) {  // partial Fisher-Yates: k distinct positions
      const std::int64_t j = s2 + static_cast<std::int64_t>(gen.below(static_cast<std::uint64_t>(d - s2)));
      std::swap(perm[static_cast<std::size_t>(s2)], perm[static_cast<std::size_t>(j)]);
      truth.B_index[static_cast<std::size_t>(i * k + s2)] = static_cast<std::int32_t>(perm[static_cast<std::size_t>(s2)]);
      truth.B_value[static_cast<std::size_t>(i * k + s2)] = gen();
    }
  }
  truth.offsets.assign(1, 0);
  for (std::int64_t i = 0; i < t; ++i) {
    const std::int64_t m = s.min_samples + static_cast<std::int64_t>(gen.below(static_cast<std::uint64_t>(s.max_samples - s.min_samples + 1)));
    truth.offsets.push_back(truth.offsets.back() + m);
  }
  return truth;
}

// theta_i = b_i + U w_i (d), summed in that order (as SyntheticData::theta does).
void task_theta(const SyntheticTruth& truth, std::int64_t i, std::int64_t d, std::int64_t r, std::int64_t k, double* theta) {
  std::fill(theta, theta + d, 0.0);
  for (std::int64_t s = 0; s < k; ++s)
    theta[truth.B_index[static_cast<std::size_t>(i * k + s)]] = truth.B_value[static_cast<std::size_t>(i * k + s)];
  for (std::int64_t a = 0; a < d; ++a)
    for (std::int64_t p = 0; p < r; ++p) theta[a] += truth.U[static_cast<std::size_t>(a * r + p)] * truth.W[static_cast<std::size_t>(i * r + p)];
}

// Task i's rows into X (m x d) and y (m), continuing the generator after draw_truth.
void draw_task_rows(const SyntheticSpec& s, const double* theta, std::int64_t m, core::NormalGenerator& gen, double* X, double* y) {
  const std::int64_t d = s.d;
  for (std::int64_t j = 0; j < m; ++j) {
    double yv = 0;
    for (std::int64_t a = 0; a < d; ++a) {
      const double x = gen();
      X[j * d + a] = x;
      yv += x * theta[a];
    }
    y[j] = yv + (s.noise > 0 ? s.noise * gen() : 0.0);
  }
}

}  // namespace

SyntheticData generate_synthetic(const SyntheticSpec& s) {
  check_spec(s);
  const std::int64_t t = s.tasks, d = s.d, r = s.r, k = s.k;
  core::NormalGenerator gen(s.seed);
  SyntheticTruth truth = draw_truth(s, gen);
  SyntheticData out;
  out.U = truth.U;
  out.W = truth.W;
  out.B.assign(static_cast<std::size_t>(t * d), 0.0);
  for (std::int64_t i = 0; i < t; ++i)
    for (std::int64_t q = 0; q < k; ++q)
      out.B[static_cast<std::size_t>(i * d + truth.B_index[static_cast<std::size_t>(i * k + q)])] = truth.B_value[static_cast<std::size_t>(i * k + q)];
  Dataset<double>& ds = out.data;
  ds.d = d;
  ds.task_offsets = truth.offsets;
  const std::int64_t n = ds.task_offsets.back();
  ds.X.resize(static_cast<std::size_t>(n * d));
  ds.y.resize(static_cast<std::size_t>(n));
  std::vector<double> theta(static_cast<std::size_t>(d));
  for (std::int64_t i = 0; i < t; ++i) {
    const std::int64_t row0 = ds.task_offsets[static_cast<std::size_t>(i)];
    task_theta(truth, i, d, r, k, theta.data());
    draw_task_rows(s, theta.data(), ds.task_offsets[static_cast<std::size_t>(i + 1)] - row0, gen, ds.X.data() + row0 * d,
                   ds.y.data() + row0);
  }
  return out;
}

std::int64_t write_synthetic(const std::string& path, const SyntheticSpec& s, DType x_dtype,
                             const std::function<bool(std::int64_t)>& keep_going) {
  check_spec(s);
  if (x_dtype != DType::f32 && x_dtype != DType::f64) throw Error("generate: X must be float32 or float64");
  const std::int64_t t = s.tasks, d = s.d, r = s.r, k = s.k;
  core::NormalGenerator gen(s.seed);
  const SyntheticTruth truth = draw_truth(s, gen);
  const std::int64_t n = truth.offsets.back();
  const std::string staged = io::temporary_sibling(path);
  try {
    fs::create_directories(fs::path(staged) / "truth");
    const fs::path dir(staged);
    write_npy((dir / "task_offsets.npy").string(), truth.offsets.data(), {t + 1});
    write_npy((dir / "truth" / "U.npy").string(), truth.U.data(), {d, r});
    write_npy((dir / "truth" / "W.npy").string(), truth.W.data(), {t, r});
    {
      io::NpyStreamWriter B((dir / "truth" / "B.npy").string(), DType::f64, {t, d});
      std::vector<double> row(static_cast<std::size_t>(d));
      for (std::int64_t i = 0; i < t; ++i) {
        std::fill(row.begin(), row.end(), 0.0);
        for (std::int64_t q = 0; q < k; ++q)
          row[static_cast<std::size_t>(truth.B_index[static_cast<std::size_t>(i * k + q)])] = truth.B_value[static_cast<std::size_t>(i * k + q)];
        B.append(row.data(), d);
      }
      B.finish();
    }
    io::NpyStreamWriter X((dir / "X.npy").string(), x_dtype, {n, d});
    io::NpyStreamWriter Y((dir / "y.npy").string(), DType::f64, {n});
    std::vector<double> theta(static_cast<std::size_t>(d)), Xi, yi;
    std::vector<float> Xf;
    for (std::int64_t i = 0; i < t; ++i) {
      if (keep_going && i % 1024 == 0 && !keep_going(i)) throw Error("generate: interrupted; nothing was written");
      const std::int64_t m = truth.offsets[static_cast<std::size_t>(i + 1)] - truth.offsets[static_cast<std::size_t>(i)];
      Xi.resize(static_cast<std::size_t>(m * d));
      yi.resize(static_cast<std::size_t>(m));
      task_theta(truth, i, d, r, k, theta.data());
      draw_task_rows(s, theta.data(), m, gen, Xi.data(), yi.data());
      if (x_dtype == DType::f32) {
        Xf.assign(Xi.begin(), Xi.end());
        X.append(Xf.data(), m * d);
      } else {
        X.append(Xi.data(), m * d);
      }
      Y.append(yi.data(), m);
    }
    X.finish();
    Y.finish();
  } catch (...) {
    std::error_code ec;
    fs::remove_all(staged, ec);
    throw;
  }
  io::install_folder(staged, path, "task_offsets.npy");
  return n;
}

void save_synthetic(const std::string& path, const SyntheticData& syn) {
  validate(syn.data.view(), true);
  const std::int64_t d = syn.data.d, t = syn.data.t(), r = static_cast<std::int64_t>(syn.U.size()) / d;
  const std::string staged = io::temporary_sibling(path);
  try {
    fs::create_directories(fs::path(staged) / "truth");
    const fs::path dir(staged);
    write_npy((dir / "X.npy").string(), syn.data.X.data(), {syn.data.n(), d});
    write_npy((dir / "y.npy").string(), syn.data.y.data(), {syn.data.n()});
    write_npy((dir / "task_offsets.npy").string(), syn.data.task_offsets.data(), {t + 1});
    write_npy((dir / "truth" / "U.npy").string(), syn.U.data(), {d, r});
    write_npy((dir / "truth" / "W.npy").string(), syn.W.data(), {t, r});
    write_npy((dir / "truth" / "B.npy").string(), syn.B.data(), {t, d});
  } catch (...) {
    std::error_code ec;
    fs::remove_all(staged, ec);
    throw;
  }
  io::install_folder(staged, path, "task_offsets.npy");
}

SyntheticData load_truth(const std::string& path) {
  const fs::path dir(path);
  SyntheticData syn;
  std::vector<std::int64_t> us, ws, bs;
  syn.U = read_npy_as<double>((dir / "U.npy").string(), &us);
  syn.W = read_npy_as<double>((dir / "W.npy").string(), &ws);
  syn.B = read_npy_as<double>((dir / "B.npy").string(), &bs);
  if (us.size() != 2 || ws.size() != 2 || bs.size() != 2 || ws[1] != us[1] || bs[0] != ws[0] || bs[1] != us[0])
    throw Error(path + ": truth arrays U (d x r), W (t x r), B (t x d) have inconsistent shapes");
  syn.data.d = us[0];
  syn.data.task_offsets.assign(static_cast<std::size_t>(ws[0] + 1), 0);
  return syn;
}


}  // namespace lrsmeta
