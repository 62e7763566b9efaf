// Reading CSV text: RFC 4180 records from a file, and what a cell holds (a number, a missing value).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/utf8.hpp"
#include "io/files.hpp"
#include "lrsmeta/lrsmeta.hpp"

namespace lrsmeta::io {

// RFC 4180 records from a file: quoted fields, doubled quotes, line breaks inside quotes; CR LF,
// LF or CR ends a record; blank lines are skipped. Each record's first line is kept for messages.
class CsvReader {
 public:
  // check_text: refuse fields that are not UTF-8 (off for a second pass over a file the first pass
  // checked: its values are then matched against what the first pass kept).
  explicit CsvReader(const std::string& path, bool check_text = true)
      : path_(path), file_(std::fopen(path.c_str(), "rb")), check_text_(check_text) {
    if (!file_) throw Error(path + ": cannot open for reading (" + std::strerror(errno) + ")");
    std::error_code ec;
    size_ = std::filesystem::file_size(path, ec);
    buffer_ = std::make_unique<char[]>(kBuffer);
    // A UTF-8 byte-order mark (spreadsheet programs write one) is not part of the first column's name.
    if (fill() && have_ >= 3 && std::memcmp(buffer_.get(), "\xEF\xBB\xBF", 3) == 0) at_ = 3;
  }
  ~CsvReader() { std::fclose(file_); }
  CsvReader(const CsvReader&) = delete;
  CsvReader& operator=(const CsvReader&) = delete;

  // The next record into `fields` (reusing its strings' storage); false at the end of the file.
  bool next(std::vector<std::string>& fields, std::int64_t* line) {
    std::size_t count = 0;
    auto field = [&]() -> std::string& {
      if (count == fields.size()) fields.emplace_back();
      std::string& f = fields[count];
      return f;
    };
    field().clear();
    quoted_.assign(1, false);
    bool in_quotes = false, started = false;
    std::int64_t start_line = line_;
    for (;;) {
      const int c = get();
      if (c == EOF) {
        if (in_quotes) throw Error(path_ + ": unterminated quoted field starting on line " + std::to_string(start_line));
        if (count == 0 && fields[0].empty()) {
          fields.clear();
          return false;
        }
        fields.resize(count + 1);
        *line = start_line;
        if (check_text_) check_text(fields, start_line);
        return true;
      }
      if (in_quotes) {
        if (c == '"') {
          if (peek() == '"') {
            get();
            field().push_back('"');
          } else {
            in_quotes = false;
          }
        } else {
          if (c == '\n') ++line_;
          field().push_back(static_cast<char>(c));
        }
      } else if (c == '"' && !started) {
        in_quotes = started = true;
        quoted_[count] = true;
      } else if (c == ',') {
        ++count;
        field().clear();
        quoted_.push_back(false);
        started = false;
      } else if (c == '\n' || c == '\r') {
        if (c == '\r' && peek() == '\n') get();
        ++line_;
        if (count == 0 && fields[0].empty()) {  // a blank line
          start_line = line_;
          started = false;
          continue;
        }
        fields.resize(count + 1);
        *line = start_line;
        if (check_text_) check_text(fields, start_line);
        return true;
      } else {
        field().push_back(static_cast<char>(c));
        started = true;
      }
    }
  }
  std::uint64_t bytes_read() const { return consumed_ + at_; }
  std::uint64_t size() const { return size_; }
  // Whether field c of the last record was quoted (R's write.csv quotes factors, not numbers).
  bool quoted(std::size_t c) const { return c < quoted_.size() && quoted_[c]; }

 private:
  // Every field must be UTF-8 (keys and names go into JSON): a file in another encoding is refused
  // where it is read, naming the line and column, rather than after a fit when the model is written.
  void check_text(const std::vector<std::string>& fields, std::int64_t line) {
    for (std::size_t c = 0; c < fields.size(); ++c) {
      const std::size_t at = core::utf8_error_offset(fields[c]);
      if (at == std::string::npos) continue;
      char byte[8];
      std::snprintf(byte, sizeof byte, "0x%02X", static_cast<unsigned char>(fields[c][at]));
      const std::string column = header_.empty() ? "the header's field " + std::to_string(c + 1)
                                 : c < header_.size() ? "column '" + header_[c] + "'"
                                                      : "field " + std::to_string(c + 1);
      throw Error(path_ + ": line " + std::to_string(line) + ", " + column + ": not valid UTF-8 (byte " + byte + " at offset " +
                  std::to_string(at) + "); lrsmeta reads CSV files as UTF-8: convert the file first (for example iconv -f LATIN1 "
                  "-t UTF-8)");
    }
    if (header_.empty()) header_ = fields;
  }

  static constexpr std::size_t kBuffer = 1 << 20;
  int get() {
    if (at_ == have_ && !fill()) return EOF;
    return static_cast<unsigned char>(buffer_[at_++]);
  }
  int peek() {
    if (at_ == have_ && !fill()) return EOF;
    return static_cast<unsigned char>(buffer_[at_]);
  }
  bool fill() {
    consumed_ += have_;
    at_ = 0;
    have_ = std::fread(buffer_.get(), 1, kBuffer, file_);
    if (have_ == 0 && std::ferror(file_)) throw Error(path_ + ": read failed (" + std::strerror(errno) + ")");
    return have_ > 0;
  }
  std::string path_;
  std::FILE* file_;
  std::unique_ptr<char[]> buffer_;
  std::size_t at_ = 0, have_ = 0;
  std::uint64_t consumed_ = 0, size_ = 0;
  std::int64_t line_ = 1;
  std::vector<std::string> header_;  // the first record, for messages
  std::vector<bool> quoted_;         // per field of the last record
  bool check_text_ = true;
};

// Whether the whole of s (spaces and tabs around it allowed) is a number for strtod; its value in
// *value and whether it overflowed in *out_of_range.
inline bool whole_number(const std::string& s, double* value, bool* out_of_range) {
  const char* begin = s.c_str();
  while (*begin == ' ' || *begin == '\t') ++begin;
  if (*begin == '\0') return false;
  char* end = nullptr;
  errno = 0;
  *value = std::strtod(begin, &end);
  *out_of_range = errno == ERANGE;
  if (end == begin) return false;
  while (*end == ' ' || *end == '\t') ++end;
  return *end == '\0';
}

inline bool parse_number(const std::string& s, double* out) {
  double v = 0;
  bool out_of_range = false;
  if (!whole_number(s, &v, &out_of_range) || out_of_range || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

// A number that is not finite or not representable ("inf", "-Infinity", "1e999").
inline bool non_finite_number(const std::string& s) {
  double v = 0;
  bool out_of_range = false;
  return whole_number(s, &v, &out_of_range) && (out_of_range || !std::isfinite(v));
}

// How CSV files write a missing value.
inline bool missing_marker(const std::string& s) {
  return s.empty() || s == "NA" || s == "N/A" || s == "NaN" || s == "nan" || s == "null" || s == "NULL" || s == "None";
}

}  // namespace lrsmeta::io
