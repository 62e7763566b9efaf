// .npy internals shared by the readers and writers: the header, and writing a file element by
// element for arrays too large to hold in memory (lrsmeta generate).
#pragma once

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "lrsmeta/io.hpp"

namespace lrsmeta::io {

// What a .npy header says: the element type, shape, whether the bytes need swapping to the host's
// order, and where the data starts.
struct NpyHeader {
  DType dtype = DType::f64;
  std::vector<std::int64_t> shape;
  bool swap = false;
  int element_bytes = 8;
  std::int64_t count = 0;        // elements: the shape's product, checked against the file's size
  std::int64_t data_offset = 0;
};
// Reads the header from the start of `in` (C order only, else an error naming `path`). Where the
// stream's size can be known, a header claiming more data than the file holds is refused here,
// before any reader allocates for it.
NpyHeader read_npy_header(std::istream& in, const std::string& path);

// Elements first .. first + count - 1 (in C order) of a .npy file converted to T, reading only
// those (and the header); *shape gets the file's shape.
template <typename T>
std::vector<T> read_npy_range(const std::string& path, std::int64_t first, std::int64_t count, std::vector<std::int64_t>* shape);

// The .npy header (magic, version 1.0, padded dict) of a C-order array.
std::string npy_header(DType dtype, const std::vector<std::int64_t>& shape, const std::string& path);

// Writes the header, then whatever append() is given, in order; finish() checks that the shape is
// filled. The caller writes into a staged folder and owns the atomic install (a half-written file
// is removed with its folder).
class NpyStreamWriter {
 public:
  NpyStreamWriter(const std::string& path, DType dtype, const std::vector<std::int64_t>& shape);
  template <typename T>
  void append(const T* data, std::int64_t count);
  void finish();

 private:
  static constexpr std::size_t kBufferBytes = 1 << 20;
  std::string path_;
  DType dtype_;
  std::int64_t expected_ = 0, written_ = 0;
  std::unique_ptr<char[]> buffer_;  // the stream's buffer: large writes without a syscall per row
  std::ofstream out_;
};

}  // namespace lrsmeta::io
