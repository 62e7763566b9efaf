// Data folders used in place: X.npy memory-mapped (POSIX mmap) when its type is the one computed in.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "io/dataset_description.hpp"
#include "io/npy_stream.hpp"
#include "io/files.hpp"
#include "lrsmeta/io.hpp"

namespace fs = std::filesystem;

namespace lrsmeta {

// Owns one read-only mapping of a whole file.
template <typename T>
struct MappedDataset<T>::Mapping {
  void* base = MAP_FAILED;
  std::size_t bytes = 0;
  Mapping(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error(path + ": cannot open for reading (" + std::strerror(errno) + ")");
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      throw Error(path + ": cannot stat (" + std::strerror(err) + ")");
    }
    bytes = static_cast<std::size_t>(st.st_size);
    if (bytes > 0) base = ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
    const int err = errno;
    ::close(fd);  // the mapping keeps the file
    if (bytes > 0 && base == MAP_FAILED) throw Error(path + ": cannot map (" + std::strerror(err) + ")");
  }
  ~Mapping() {
    if (base != MAP_FAILED) ::munmap(base, bytes);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
};

template <typename T>
TaskDataView<T> MappedDataset<T>::view() const {
  TaskDataView<T> v;
  v.X = X_;
  v.y = y_.data();
  v.task_offsets = task_offsets.data();
  v.n = n_;
  v.d = d;
  v.t = t();
  return v;
}

namespace {
io::NpyHeader header_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open for reading (" + std::strerror(errno) + ")");
  return io::read_npy_header(in, path);
}
// Whether the data of a file mapped at a page boundary is aligned for T (a hand-made header of odd
// length is not): only then is it used in place.
template <typename T>
bool aligned_for(const io::NpyHeader& h) {
  return h.data_offset % static_cast<std::int64_t>(alignof(T)) == 0;
}
}  // namespace

DType data_folder_dtype(const std::string& path) try {
  if (!fs::is_directory(path)) throw Error(path + ": not a data folder (expected X.npy, y.npy and task_offsets.npy or task_ids.npy)");
  return header_of((fs::path(path) / "X.npy").string()).dtype;
} catch (...) {
  io::rethrow_naming_file(path);
}

template <typename T>
MappedDataset<T> map_data_folder(const std::string& path) try {
  MappedDataset<T> out;
  const fs::path dir(path);
  if (!fs::is_directory(dir) || (fs::exists(dir / "task_ids.npy") && !fs::exists(dir / "task_offsets.npy"))) {
    // Not a folder (load_data_folder says so), or rows to regroup: loaded into memory.
    Dataset<T> ds = load_data_folder<T>(path);
    out.d = ds.d;
    out.n_ = ds.n();
    out.task_offsets = std::move(ds.task_offsets);
    out.task_keys = std::move(ds.task_keys);
    out.feature_names = std::move(ds.feature_names);
    out.encoding = std::move(ds.encoding);
    out.X_copy_ = std::move(ds.X);
    out.y_ = std::move(ds.y);
    out.X_ = out.X_copy_.data();
    out.folder_tasks = out.t();
    out.folder_rows = out.n_;
    return out;
  }
  const std::string x_path = (dir / "X.npy").string(), y_path = (dir / "y.npy").string();
  const io::NpyHeader hx = header_of(x_path);
  if (hx.shape.size() != 2) throw Error(x_path + ": must be 2-D (n x d), has " + std::to_string(hx.shape.size()) + " dimensions");
  std::vector<std::int64_t> ys, os;
  out.y_ = read_npy_as<T>(y_path, &ys);
  if (ys.size() != 1) throw Error(y_path + ": must be 1-D (n), has " + std::to_string(ys.size()) + " dimensions");
  if (hx.shape[0] != ys[0])
    throw Error(path + ": X.npy has " + std::to_string(hx.shape[0]) + " rows but y.npy has " + std::to_string(ys[0]));
  const std::string o_path = (dir / "task_offsets.npy").string();
  out.task_offsets = read_npy_as<std::int64_t>(o_path, &os);
  if (os.size() != 1) throw Error(o_path + ": must be 1-D (t + 1)");
  if (os[0] < 2) throw Error(o_path + ": needs at least 2 entries (one task)");
  out.n_ = hx.shape[0];
  out.d = hx.shape[1];
  const bool same_type = (hx.dtype == DType::f32 && std::is_same_v<T, float>) || (hx.dtype == DType::f64 && std::is_same_v<T, double>);
  if (same_type && !hx.swap && aligned_for<T>(hx)) {
    auto mapping = std::make_shared<const typename MappedDataset<T>::Mapping>(x_path);
    const std::size_t needed = static_cast<std::size_t>(hx.data_offset) + static_cast<std::size_t>(out.n_ * out.d) * sizeof(T);
    if (mapping->bytes < needed)
      throw Error(x_path + ": truncated: expected " + std::to_string(out.n_ * out.d) + " elements of shape (" + std::to_string(out.n_) +
                  ", " + std::to_string(out.d) + ")");
    // The .npy header is padded to a multiple of 64 bytes (16 in version 1 files of old NumPy):
    // the data is aligned for T either way (a file whose is not is read into memory instead).
    out.X_ = reinterpret_cast<const T*>(static_cast<const char*>(mapping->base) + hx.data_offset);
    ::madvise(mapping->base, mapping->bytes, MADV_SEQUENTIAL);
    out.mapping_ = std::move(mapping);
    out.X_in_place_ = true;
  } else {
    out.X_copy_ = read_npy_as<T>(x_path, nullptr);
    out.X_ = out.X_copy_.data();
  }
  io::read_dataset_description(path, out.t(), out.d, &out.task_keys, &out.feature_names, &out.encoding);
  out.folder_tasks = out.t();
  out.folder_rows = out.n_;
  out.bytes_read = static_cast<std::int64_t>(out.task_offsets.size()) * 8 + out.n_ * static_cast<std::int64_t>(sizeof(T)) +
                   (out.X_in_place_ ? 0 : out.n_ * out.d * static_cast<std::int64_t>(sizeof(T)));
  return out;
} catch (...) {
  io::rethrow_naming_file(path);
}

TaskRange shard_tasks(const std::int64_t* offsets, std::int64_t t, int rank, int size) {
  if (size < 1 || rank < 0 || rank >= size)
    throw Error("shard: rank " + std::to_string(rank) + " of " + std::to_string(size) + " processes");
  const std::int64_t n = offsets[t];
  // The first task whose rows start at or after the q-th n / size boundary (binary search).
  auto boundary = [&](int q) -> std::int64_t {
    if (q == 0) return 0;
    if (q == size) return t;
    // n q / size without overflow: n / size whole parts plus the remainder's share.
    const std::int64_t target = (n / size) * q + (n % size) * q / size;
    return std::lower_bound(offsets, offsets + t, target) - offsets;
  };
  return {boundary(rank), boundary(rank + 1)};
}

template <typename T>
MappedDataset<T> map_data_folder_shard(const std::string& path, int rank, int size) try {
  const fs::path dir(path);
  if (!fs::is_directory(dir))
    throw Error(path + ": not a data folder: over many processes the data must be a data folder with task_offsets.npy "
                       "(make one from a CSV table with lrsmeta convert)");
  if (!fs::exists(dir / "task_offsets.npy"))
    throw Error(path + ": has no task_offsets.npy (its rows are grouped by task_ids.npy, which needs every row read to "
                       "regroup them): over many processes, make a folder with offsets first (lrsmeta convert)");
  MappedDataset<T> out;
  const std::string x_path = (dir / "X.npy").string(), y_path = (dir / "y.npy").string(), o_path = (dir / "task_offsets.npy").string();
  const io::NpyHeader hx = header_of(x_path), hy = header_of(y_path), ho = header_of(o_path);
  if (hx.shape.size() != 2) throw Error(x_path + ": must be 2-D (n x d), has " + std::to_string(hx.shape.size()) + " dimensions");
  if (hy.shape.size() != 1) throw Error(y_path + ": must be 1-D (n), has " + std::to_string(hy.shape.size()) + " dimensions");
  if (ho.shape.size() != 1) throw Error(o_path + ": must be 1-D (t + 1)");
  if (ho.shape[0] < 2) throw Error(o_path + ": needs at least 2 entries (one task)");
  if (hx.shape[0] != hy.shape[0])
    throw Error(path + ": X.npy has " + std::to_string(hx.shape[0]) + " rows but y.npy has " + std::to_string(hy.shape[0]));
  const std::int64_t folder_t = ho.shape[0] - 1, folder_n = hx.shape[0], d = hx.shape[1];
  // The offsets: mapped where they are int64 in the host's order (the search reads a few pages),
  // else read whole.
  TaskRange range;
  std::vector<std::int64_t> all_offsets;
  if (ho.dtype == DType::i64 && !ho.swap && aligned_for<std::int64_t>(ho)) {
    const typename MappedDataset<T>::Mapping offsets_map(o_path);
    if (offsets_map.bytes < static_cast<std::size_t>(ho.data_offset + (folder_t + 1) * 8)) throw Error(o_path + ": truncated");
    const auto* offsets = reinterpret_cast<const std::int64_t*>(static_cast<const char*>(offsets_map.base) + ho.data_offset);
    if (offsets[0] != 0 || offsets[folder_t] != folder_n)
      throw Error(o_path + ": must start at 0 and end at n = " + std::to_string(folder_n) + " (it ends at " + std::to_string(offsets[folder_t]) + ")");
    range = shard_tasks(offsets, folder_t, rank, size);
  } else {
    all_offsets = read_npy_as<std::int64_t>(o_path, nullptr);
    out.bytes_read += static_cast<std::int64_t>(all_offsets.size()) * ho.element_bytes;
    if (all_offsets.front() != 0 || all_offsets.back() != folder_n)
      throw Error(o_path + ": must start at 0 and end at n = " + std::to_string(folder_n));
    range = shard_tasks(all_offsets.data(), folder_t, rank, size);
  }
  out.task_offsets = io::read_npy_range<std::int64_t>(o_path, range.first, range.end - range.first + 1, nullptr);
  out.bytes_read += static_cast<std::int64_t>(out.task_offsets.size()) * ho.element_bytes;
  // Every offset of this process's tasks within [its first, its last] within [0, n] before any
  // difference is taken (a wild value would overflow it); one that decreases within that range is
  // validate()'s to report.
  const std::int64_t row0 = out.task_offsets.front(), last = out.task_offsets.back();
  if (row0 < 0 || last < row0 || last > folder_n) throw Error(o_path + ": offsets outside [0, n] in this process's tasks");
  for (const std::int64_t o : out.task_offsets)
    if (o < row0 || o > last)
      throw Error(o_path + ": offset " + std::to_string(o) + " outside [" + std::to_string(row0) + ", " + std::to_string(last) +
                  "], the first and last of this process's tasks: offsets must not decrease");
  const std::int64_t rows = last - row0;
  for (std::int64_t& o : out.task_offsets) o -= row0;
  out.first_task = range.first;
  out.first_row = row0;
  out.folder_tasks = folder_t;
  out.folder_rows = folder_n;
  out.n_ = rows;
  out.d = d;
  out.y_ = io::read_npy_range<T>(y_path, row0, rows, nullptr);
  out.bytes_read += rows * hy.element_bytes;
  const bool same_type = (hx.dtype == DType::f32 && std::is_same_v<T, float>) || (hx.dtype == DType::f64 && std::is_same_v<T, double>);
  if (same_type && !hx.swap && aligned_for<T>(hx)) {
    auto mapping = std::make_shared<const typename MappedDataset<T>::Mapping>(x_path);
    const std::size_t needed = static_cast<std::size_t>(hx.data_offset) + static_cast<std::size_t>(folder_n * d) * sizeof(T);
    if (mapping->bytes < needed) throw Error(x_path + ": truncated: expected " + std::to_string(folder_n * d) + " elements");
    out.X_ = reinterpret_cast<const T*>(static_cast<const char*>(mapping->base) + hx.data_offset) + row0 * d;
    out.mapping_ = std::move(mapping);
    out.X_in_place_ = true;
  } else {
    out.X_copy_ = io::read_npy_range<T>(x_path, row0 * d, rows * d, nullptr);
    out.bytes_read += rows * d * hx.element_bytes;
    out.X_ = out.X_copy_.data();
  }
  std::vector<std::string> keys;
  io::read_dataset_description(path, folder_t, d, &keys, &out.feature_names, &out.encoding);
  if (!keys.empty()) out.task_keys.assign(keys.begin() + range.first, keys.begin() + range.end);
  return out;
} catch (...) {
  io::rethrow_naming_file(path);
}

template <typename T>
void MappedDataset<T>::prefetch(const std::function<bool(std::int64_t, std::int64_t)>& progress) const {
  if (!X_in_place_ || !mapping_) return;
  constexpr std::int64_t kChunk = std::int64_t{64} << 20, kPage = 4096;
  // This dataset's rows of X only (a shard's are a part of the file).
  const auto* bytes = reinterpret_cast<const unsigned char*>(X_);
  const std::int64_t total = n_ * d * static_cast<std::int64_t>(sizeof(T));
  volatile unsigned kept = 0;  // the reads' sum, stored so that they are not optimised away
  for (std::int64_t start = 0; start < total; start += kChunk) {
    const std::int64_t end = std::min(total, start + kChunk);
    unsigned sum = 0;
    // One byte a page is enough to fault the page in; the sum keeps the reads from being dropped.
#pragma omp parallel for schedule(static) reduction(+ : sum)
    for (std::int64_t at = start; at < end; at += kPage) sum += bytes[at];
    kept = kept + sum;
    if (progress && !progress(end, total)) throw Error("loading X.npy: stopped");
  }
}

template class MappedDataset<float>;
template class MappedDataset<double>;
template MappedDataset<float> map_data_folder(const std::string&);
template MappedDataset<double> map_data_folder(const std::string&);
template MappedDataset<float> map_data_folder_shard(const std::string&, int, int);
template MappedDataset<double> map_data_folder_shard(const std::string&, int, int);

}  // namespace lrsmeta
