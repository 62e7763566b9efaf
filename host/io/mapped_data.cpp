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
}  // namespace

DType data_folder_dtype(const std::string& path) {
  if (!fs::is_directory(path)) throw Error(path + ": not a data folder (expected X.npy, y.npy and task_offsets.npy or task_ids.npy)");
  return header_of((fs::path(path) / "X.npy").string()).dtype;
}

template <typename T>
MappedDataset<T> map_data_folder(const std::string& path) {
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
  if (same_type && !hx.swap) {
    auto mapping = std::make_shared<const typename MappedDataset<T>::Mapping>(x_path);
    const std::size_t needed = static_cast<std::size_t>(hx.data_offset) + static_cast<std::size_t>(out.n_ * out.d) * sizeof(T);
    if (mapping->bytes < needed)
      throw Error(x_path + ": truncated: expected " + std::to_string(out.n_ * out.d) + " elements of shape (" + std::to_string(out.n_) +
                  ", " + std::to_string(out.d) + ")");
    // The .npy header is padded to a multiple of 64 bytes (16 in version 1 files of old NumPy):
    // the data is aligned for T either way.
    out.X_ = reinterpret_cast<const T*>(static_cast<const char*>(mapping->base) + hx.data_offset);
    ::madvise(mapping->base, mapping->bytes, MADV_SEQUENTIAL);
    out.mapping_ = std::move(mapping);
    out.X_in_place_ = true;
  } else {
    out.X_copy_ = read_npy_as<T>(x_path, nullptr);
    out.X_ = out.X_copy_.data();
  }
  io::read_dataset_description(path, out.t(), out.d, &out.task_keys, &out.feature_names, &out.encoding);
  return out;
}

template <typename T>
void MappedDataset<T>::prefetch(const std::function<bool(std::int64_t, std::int64_t)>& progress) const {
  if (!X_in_place_ || !mapping_) return;
  constexpr std::int64_t kChunk = std::int64_t{64} << 20, kPage = 4096;
  const auto* bytes = static_cast<const unsigned char*>(mapping_->base);
  const std::int64_t total = static_cast<std::int64_t>(mapping_->bytes);
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

}  // namespace lrsmeta
