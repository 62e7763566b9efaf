// Fields of a JSON object read with their types checked. nlohmann's get<int>() converts 2.5 to 2
// and 1e300 to whatever the conversion gives (undefined behaviour): a damaged model.json could
// then claim a negative d. Here an integer must be a JSON integer within the caller's range, a
// number a number, a name a string, and every error names the file and the field.
#pragma once

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace lrsmeta::io {

class JsonFields {
 public:
  // `object` must be a JSON object (else an Error naming file and prefix); `prefix` names it in
  // messages ("options." for a nested object).
  JsonFields(const nlohmann::json& object, std::string file, std::string prefix = "");

  bool has(const char* key) const;
  // Required fields: absent or of another type is an Error "FILE: field 'PREFIX.KEY': ...".
  std::int64_t integer(const char* key, std::int64_t lo, std::int64_t hi) const;
  std::uint64_t unsigned_integer(const char* key) const;
  double number(const char* key) const;
  bool boolean(const char* key) const;
  std::string text(const char* key) const;
  std::vector<std::string> texts(const char* key) const;
  std::vector<std::int64_t> integers(const char* key, std::int64_t lo, std::int64_t hi) const;
  std::vector<double> numbers(const char* key) const;
  JsonFields object(const char* key) const;
  // Optional fields: `fallback` when absent; present and of another type is still an Error.
  std::int64_t integer(const char* key, std::int64_t lo, std::int64_t hi, std::int64_t fallback) const;
  std::uint64_t unsigned_integer(const char* key, std::uint64_t fallback) const;
  double number(const char* key, double fallback) const;
  // A number, or `if_null` where the field is null (infinite values are written as null).
  double number_or_null(const char* key, double if_null) const;
  bool boolean(const char* key, bool fallback) const;
  std::string text(const char* key, const std::string& fallback) const;
  std::vector<std::string> texts(const char* key, const std::vector<std::string>& fallback) const;

  // int-valued settings (ranks, counts, iterations): an integer that fits an int.
  int small_integer(const char* key, int fallback) const {
    return static_cast<int>(integer(key, std::numeric_limits<int>::min(), std::numeric_limits<int>::max(), fallback));
  }
  int small_integer(const char* key) const {
    return static_cast<int>(integer(key, std::numeric_limits<int>::min(), std::numeric_limits<int>::max()));
  }

  const nlohmann::json& raw(const char* key) const;  // required, any type
  const nlohmann::json& whole() const { return *object_; }
  const std::string& file() const { return file_; }
  [[noreturn]] void fail(const char* key, const std::string& what) const;

 private:
  const nlohmann::json* object_;
  std::string file_, prefix_;
};

// One JSON value checked as an integer in [lo, hi]; `where` names it in the message.
std::int64_t json_integer(const nlohmann::json& value, std::int64_t lo, std::int64_t hi, const std::string& where);

}  // namespace lrsmeta::io
