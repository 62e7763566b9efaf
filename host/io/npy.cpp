// NumPy .npy reading and writing (format versions 1.0 to 3.0, C order).
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/checked_size.hpp"
#include "io/files.hpp"
#include "io/npy_stream.hpp"
#include "lrsmeta/io.hpp"

namespace lrsmeta {

std::int64_t NpyArray::size() const { return core::product_or_throw(shape, "array shape"); }

namespace {

int dtype_size(DType t) { return (t == DType::f32 || t == DType::i32) ? 4 : 8; }
const char* dtype_descr(DType t) {
  switch (t) {
    case DType::f32: return "<f4";
    case DType::f64: return "<f8";
    case DType::i32: return "<i4";
    case DType::i64: return "<i8";
  }
  return "";
}

bool host_is_little_endian() {
  const std::uint16_t probe = 1;
  unsigned char first;
  std::memcpy(&first, &probe, 1);
  return first == 1;
}

// Value of key 'name' in the header dict, as the raw text up to the next top-level comma.
std::string header_field(const std::string& header, const std::string& name, const std::string& path) {
  const std::string key = "'" + name + "'";
  std::size_t pos = header.find(key);
  if (pos == std::string::npos) throw Error(path + ": .npy header has no '" + name + "' field");
  pos = header.find(':', pos + key.size());
  if (pos == std::string::npos) throw Error(path + ": malformed .npy header");
  ++pos;
  while (pos < header.size() && header[pos] == ' ') ++pos;
  std::size_t end = pos;
  if (pos < header.size() && header[pos] == '(') {
    end = header.find(')', pos);
    if (end == std::string::npos) throw Error(path + ": malformed shape in .npy header");
    std::size_t after = end + 1;
    while (after < header.size() && header[after] == ' ') ++after;
    if (after < header.size() && header[after] != ',' && header[after] != '}')
      throw Error(path + ": malformed .npy header (text after the shape's tuple)");
    return header.substr(pos, end - pos + 1);
  }
  while (end < header.size() && header[end] != ',' && header[end] != '}') ++end;
  std::string v = header.substr(pos, end - pos);
  while (!v.empty() && v.back() == ' ') v.pop_back();
  return v;
}

template <typename T>
T convert_element(const NpyArray& a, std::int64_t i, const std::string& path) {
  const unsigned char* p = a.bytes.data() + i * dtype_size(a.dtype);
  double as_double = 0;
  std::int64_t as_int = 0;
  bool is_int = false;
  switch (a.dtype) {
    case DType::f32: { float v; std::memcpy(&v, p, 4); as_double = v; break; }
    case DType::f64: { double v; std::memcpy(&v, p, 8); as_double = v; break; }
    case DType::i32: { std::int32_t v; std::memcpy(&v, p, 4); as_int = v; is_int = true; break; }
    case DType::i64: { std::int64_t v; std::memcpy(&v, p, 8); as_int = v; is_int = true; break; }
  }
  if constexpr (std::is_integral_v<T>) {
    if (!is_int) {
      if (!std::isfinite(as_double) || as_double != std::floor(as_double))
        throw Error(path + ": element " + std::to_string(i) + " is not an integer");
      if (as_double < -9.2e18 || as_double > 9.2e18) throw Error(path + ": element " + std::to_string(i) + " out of range");
      as_int = static_cast<std::int64_t>(as_double);
    }
    if (as_int < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
        as_int > static_cast<std::int64_t>(std::numeric_limits<T>::max()))
      throw Error(path + ": element " + std::to_string(i) + " = " + std::to_string(as_int) + " out of range");
    return static_cast<T>(as_int);
  } else {
    const double v = is_int ? static_cast<double>(as_int) : as_double;
    if (std::isfinite(v) && std::fabs(v) > static_cast<double>(std::numeric_limits<T>::max()))
      throw Error(path + ": element " + std::to_string(i) + " overflows " + (sizeof(T) == 4 ? "float32" : "float64"));
    return static_cast<T>(v);
  }
}

}  // namespace

namespace io {

// The stream's size in bytes, or -1 where it cannot be known (a pipe); the position is kept.
static std::int64_t stream_size(std::istream& in) {
  const std::istream::pos_type here = in.tellg();
  if (here == std::istream::pos_type(-1)) return -1;
  in.seekg(0, std::ios::end);
  const std::istream::pos_type end = in.tellg();
  in.clear();
  in.seekg(here);
  return end == std::istream::pos_type(-1) ? -1 : static_cast<std::int64_t>(end);
}

NpyHeader read_npy_header(std::istream& in, const std::string& path) {
  // Every size the header claims is checked against the file's before anything is allocated.
  const std::int64_t file_bytes = stream_size(in);
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0)
    throw Error(path + ": not a .npy file (bad magic)");
  const int major = static_cast<unsigned char>(magic[6]);
  std::uint32_t header_len = 0;
  std::int64_t prefix = 8;
  if (major == 1) {
    unsigned char b[2];
    if (!in.read(reinterpret_cast<char*>(b), 2)) throw Error(path + ": truncated .npy header");
    header_len = b[0] | (b[1] << 8);
    prefix += 2;
  } else if (major == 2 || major == 3) {
    unsigned char b[4];
    if (!in.read(reinterpret_cast<char*>(b), 4)) throw Error(path + ": truncated .npy header");
    header_len = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<std::uint32_t>(b[3]) << 24);
    prefix += 4;
  } else {
    throw Error(path + ": unsupported .npy format version " + std::to_string(major));
  }
  if (header_len > (1u << 24)) throw Error(path + ": .npy header too large (" + std::to_string(header_len) + " bytes)");
  if (file_bytes >= 0 && prefix + header_len > file_bytes)
    throw Error(path + ": truncated .npy header (it claims " + std::to_string(header_len) + " bytes, the file has " +
                std::to_string(file_bytes - prefix) + " after the prefix)");
  std::string header(header_len, '\0');
  if (!in.read(header.data(), header_len)) throw Error(path + ": truncated .npy header");

  NpyHeader h;
  h.data_offset = prefix + header_len;
  std::string descr = header_field(header, "descr", path);
  if (descr.size() < 2 || (descr.front() != '\'' && descr.front() != '"') || descr.back() != descr.front())
    throw Error(path + ": bad dtype " + descr + " in the .npy header");
  descr = descr.substr(1, descr.size() - 2);  // strip quotes
  const std::string fortran = header_field(header, "fortran_order", path);
  if (fortran == "True") throw Error(path + ": Fortran-order arrays are not supported (save with C order)");
  if (fortran != "False") throw Error(path + ": bad fortran_order '" + fortran + "'");
  if (descr.size() == 3 && (descr[0] == '<' || descr[0] == '>' || descr[0] == '=' || descr[0] == '|')) {
    const bool file_little = descr[0] == '<' || ((descr[0] == '=' || descr[0] == '|') && host_is_little_endian());
    h.swap = file_little != host_is_little_endian();
    const std::string kind = descr.substr(1);
    if (kind == "f4") h.dtype = DType::f32;
    else if (kind == "f8") h.dtype = DType::f64;
    else if (kind == "i4") h.dtype = DType::i32;
    else if (kind == "i8") h.dtype = DType::i64;
    else throw Error(path + ": unsupported dtype '" + descr + "' (expected float32, float64, int32 or int64)");
  } else {
    throw Error(path + ": unsupported dtype '" + descr + "' (expected float32, float64, int32 or int64)");
  }
  const std::string shape = header_field(header, "shape", path);
  if (shape.size() < 2 || shape.front() != '(' || shape.back() != ')')
    throw Error(path + ": bad shape '" + shape + "' in the .npy header (expected a tuple)");
  {
    std::string inner = shape.substr(1, shape.size() - 2);
    std::stringstream ss(inner);
    std::string item;
    while (std::getline(ss, item, ',')) {
      item.erase(std::remove(item.begin(), item.end(), ' '), item.end());
      // Only a trailing comma after a dimension may leave an empty item: "(3,)".
      if (item.empty() && (h.shape.empty() || !ss.eof())) throw Error(path + ": bad shape " + shape);
      if (item.empty()) continue;
      if (item.back() == 'L') item.pop_back();
      std::size_t used = 0;
      long long v = -1;
      try {
        v = std::stoll(item, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != item.size() || v < 0) throw Error(path + ": bad shape " + shape);
      h.shape.push_back(v);
    }
  }
  h.element_bytes = dtype_size(h.dtype);
  const std::optional<std::int64_t> count = core::checked_product(h.shape);
  const std::optional<std::int64_t> bytes = count ? core::checked_multiply(*count, h.element_bytes) : std::nullopt;
  if (!bytes || *bytes > std::numeric_limits<std::int64_t>::max() - h.data_offset)
    throw Error(path + ": shape " + shape + " is too large (its size overflows a 64-bit count)");
  h.count = *count;
  if (file_bytes >= 0 && h.data_offset + *bytes > file_bytes)
    throw Error(path + ": truncated: its header claims shape " + shape + ", " + std::to_string(*bytes) + " bytes of data, and the file holds " +
                std::to_string(file_bytes - h.data_offset) + " after its header");
  return h;
}

}  // namespace io

NpyArray read_npy(const std::string& path) try {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open for reading (" + std::strerror(errno) + ")");
  const io::NpyHeader h = io::read_npy_header(in, path);
  NpyArray a;
  a.dtype = h.dtype;
  a.shape = h.shape;
  const bool swap = h.swap;
  std::string shape = "(";
  for (std::size_t i = 0; i < h.shape.size(); ++i) shape += (i ? ", " : "") + std::to_string(h.shape[i]);
  shape += ")";
  const int es = dtype_size(a.dtype);
  const std::int64_t count = h.count;
  a.bytes.resize(static_cast<std::size_t>(count * es));
  if (!in.read(reinterpret_cast<char*>(a.bytes.data()), static_cast<std::streamsize>(a.bytes.size())))
    throw Error(path + ": truncated: expected " + std::to_string(count) + " elements of shape " + shape);
  if (swap)
    for (std::int64_t i = 0; i < count; ++i) std::reverse(a.bytes.begin() + i * es, a.bytes.begin() + (i + 1) * es);
  return a;
} catch (...) {
  io::rethrow_naming_file(path);
}

template <typename T>
std::vector<T> read_npy_as(const std::string& path, std::vector<std::int64_t>* shape) try {
  const NpyArray a = read_npy(path);
  if (shape) *shape = a.shape;
  std::vector<T> out(static_cast<std::size_t>(a.size()));
  const DType native = std::is_same_v<T, float> ? DType::f32
                       : std::is_same_v<T, double> ? DType::f64
                       : sizeof(T) == 4 ? DType::i32 : DType::i64;
  if (a.dtype == native) {
    if (!out.empty()) std::memcpy(out.data(), a.bytes.data(), a.bytes.size());
    return out;
  }
  for (std::int64_t i = 0; i < a.size(); ++i) out[static_cast<std::size_t>(i)] = convert_element<T>(a, i, path);
  return out;
} catch (...) {
  io::rethrow_naming_file(path);
}
namespace io {
template <typename T>
std::vector<T> read_npy_range(const std::string& path, std::int64_t first, std::int64_t count, std::vector<std::int64_t>* shape) try {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open for reading (" + std::strerror(errno) + ")");
  const NpyHeader h = read_npy_header(in, path);
  if (shape) *shape = h.shape;
  const std::int64_t total = h.count;
  if (first < 0 || count < 0 || first > total || count > total - first)
    throw Error(path + ": elements " + std::to_string(first) + " .. " + std::to_string(first + count) + " are outside its " +
                std::to_string(total));
  NpyArray a;
  a.dtype = h.dtype;
  a.shape = {count};
  const int es = dtype_size(a.dtype);
  a.bytes.resize(static_cast<std::size_t>(count * es));
  in.seekg(h.data_offset + first * es);
  if (count > 0 && !in.read(reinterpret_cast<char*>(a.bytes.data()), static_cast<std::streamsize>(a.bytes.size())))
    throw Error(path + ": truncated: cannot read elements " + std::to_string(first) + " .. " + std::to_string(first + count));
  if (h.swap)
    for (std::int64_t i = 0; i < count; ++i) std::reverse(a.bytes.begin() + i * es, a.bytes.begin() + (i + 1) * es);
  std::vector<T> out(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i) out[static_cast<std::size_t>(i)] = convert_element<T>(a, i, path);
  return out;
} catch (...) {
  io::rethrow_naming_file(path);
}
template std::vector<float> read_npy_range(const std::string&, std::int64_t, std::int64_t, std::vector<std::int64_t>*);
template std::vector<double> read_npy_range(const std::string&, std::int64_t, std::int64_t, std::vector<std::int64_t>*);
template std::vector<std::int64_t> read_npy_range(const std::string&, std::int64_t, std::int64_t, std::vector<std::int64_t>*);
template std::vector<std::int32_t> read_npy_range(const std::string&, std::int64_t, std::int64_t, std::vector<std::int64_t>*);
}  // namespace io

template std::vector<float> read_npy_as(const std::string&, std::vector<std::int64_t>*);
template std::vector<double> read_npy_as(const std::string&, std::vector<std::int64_t>*);
template std::vector<std::int32_t> read_npy_as(const std::string&, std::vector<std::int64_t>*);
template std::vector<std::int64_t> read_npy_as(const std::string&, std::vector<std::int64_t>*);


namespace io {

std::string npy_header(DType dtype, const std::vector<std::int64_t>& shape, const std::string& path) {
  std::string shape_text = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0) throw Error(path + ": negative dimension in shape");
    shape_text += std::to_string(shape[i]);
    if (shape.size() == 1 || i + 1 < shape.size()) shape_text += ",";
    if (i + 1 < shape.size()) shape_text += " ";
  }
  shape_text += ")";
  std::string header = std::string("{'descr': '") + dtype_descr(dtype) + "', 'fortran_order': False, 'shape': " + shape_text + ", }";
  // Pad so that magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
  const std::size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  if (header.size() > 65535) throw Error(path + ": shape too long for a .npy header");
  std::string bytes = "\x93NUMPY";
  bytes.push_back('\x01');
  bytes.push_back('\x00');
  bytes.push_back(static_cast<char>(header.size() & 0xff));
  bytes.push_back(static_cast<char>((header.size() >> 8) & 0xff));
  return bytes + header;
}

NpyStreamWriter::NpyStreamWriter(const std::string& path, DType dtype, const std::vector<std::int64_t>& shape)
    : path_(path), dtype_(dtype), expected_(core::product_or_throw(shape, path + ": shape")),
      buffer_(std::make_unique<char[]>(kBufferBytes)) {
  out_.rdbuf()->pubsetbuf(buffer_.get(), kBufferBytes);
  out_.open(path, std::ios::binary | std::ios::trunc);
  if (!out_) throw Error(path + ": cannot open for writing (" + std::strerror(errno) + ")");
  const std::string header = npy_header(dtype, shape, path);
  out_.write(header.data(), static_cast<std::streamsize>(header.size()));
}

template <typename T>
void NpyStreamWriter::append(const T* data, std::int64_t count) {
  if (sizeof(T) != static_cast<std::size_t>(dtype_size(dtype_))) throw Error(path_ + ": element size does not match the dtype");
  if (written_ + count > expected_) throw Error(path_ + ": more elements than its shape holds");
  if (host_is_little_endian()) {
    out_.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(count * static_cast<std::int64_t>(sizeof(T))));
  } else {
    for (std::int64_t i = 0; i < count; ++i) {
      char bytes[sizeof(T)];
      std::memcpy(bytes, data + i, sizeof(T));
      std::reverse(bytes, bytes + sizeof(T));
      out_.write(bytes, sizeof(T));
    }
  }
  if (!out_) throw Error(path_ + ": write failed (disk full?)");
  written_ += count;
}
template void NpyStreamWriter::append(const float*, std::int64_t);
template void NpyStreamWriter::append(const double*, std::int64_t);
template void NpyStreamWriter::append(const std::int32_t*, std::int64_t);
template void NpyStreamWriter::append(const std::int64_t*, std::int64_t);

void NpyStreamWriter::finish() {
  if (written_ != expected_)
    throw Error(path_ + ": " + std::to_string(written_) + " elements written, its shape holds " + std::to_string(expected_));
  out_.flush();
  if (!out_) throw Error(path_ + ": write failed (disk full?)");
  out_.close();
}

}  // namespace io

namespace {
DType dtype_of_element(std::size_t size, bool floating) {
  return floating ? (size == 4 ? DType::f32 : DType::f64) : (size == 4 ? DType::i32 : DType::i64);
}
}  // namespace

template <typename T>
void write_npy(const std::string& path, const T* data, const std::vector<std::int64_t>& shape) {
  const DType dtype = dtype_of_element(sizeof(T), std::is_floating_point_v<T>);
  const std::int64_t count = core::product_or_throw(shape, path + ": shape");
  std::string bytes = io::npy_header(dtype, shape, path);
  const std::size_t payload = static_cast<std::size_t>(count) * sizeof(T);
  const std::size_t offset = bytes.size();
  bytes.resize(offset + payload);
  if (payload) std::memcpy(bytes.data() + offset, data, payload);
  if (!host_is_little_endian())
    for (std::int64_t i = 0; i < count; ++i)
      std::reverse(bytes.begin() + static_cast<std::ptrdiff_t>(offset + i * sizeof(T)),
                   bytes.begin() + static_cast<std::ptrdiff_t>(offset + (i + 1) * sizeof(T)));
  write_text_file_atomically(path, bytes);
}
template void write_npy(const std::string&, const float*, const std::vector<std::int64_t>&);
template void write_npy(const std::string&, const double*, const std::vector<std::int64_t>&);
template void write_npy(const std::string&, const std::int32_t*, const std::vector<std::int64_t>&);
template void write_npy(const std::string&, const std::int64_t*, const std::vector<std::int64_t>&);

}  // namespace lrsmeta
