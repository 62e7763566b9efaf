#include "io/json_fields.hpp"

#include "lrsmeta/lrsmeta.hpp"

using nlohmann::json;

namespace lrsmeta::io {

namespace {
std::string kind_of(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer()) return "the integer " + v.dump();
  if (v.is_number()) return "the number " + v.dump();
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  return "an object";
}
}  // namespace

std::int64_t json_integer(const json& v, std::int64_t lo, std::int64_t hi, const std::string& where) {
  auto range = [&] { return "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]"; };
  if (v.is_number_unsigned()) {
    const std::uint64_t u = v.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(hi)) throw Error(where + ": expected " + range() + ", got " + v.dump());
    return static_cast<std::int64_t>(u);
  }
  if (!v.is_number_integer()) throw Error(where + ": expected " + range() + ", got " + kind_of(v));
  const std::int64_t i = v.get<std::int64_t>();
  if (i < lo || i > hi) throw Error(where + ": expected " + range() + ", got " + v.dump());
  return i;
}

JsonFields::JsonFields(const json& object, std::string file, std::string prefix)
    : object_(&object), file_(std::move(file)), prefix_(std::move(prefix)) {
  if (!object.is_object())
    throw Error(file_ + ": " + (prefix_.empty() ? std::string("expected a JSON object") : "field '" + prefix_.substr(0, prefix_.size() - 1) + "': expected an object") +
                ", got " + kind_of(object));
}

void JsonFields::fail(const char* key, const std::string& what) const {
  throw Error(file_ + ": field '" + prefix_ + key + "': " + what);
}

bool JsonFields::has(const char* key) const { return object_->contains(key); }

const json& JsonFields::raw(const char* key) const {
  const auto it = object_->find(key);
  if (it == object_->end()) fail(key, "missing");
  return *it;
}

std::int64_t JsonFields::integer(const char* key, std::int64_t lo, std::int64_t hi) const {
  return json_integer(raw(key), lo, hi, file_ + ": field '" + prefix_ + key + "'");
}
std::int64_t JsonFields::integer(const char* key, std::int64_t lo, std::int64_t hi, std::int64_t fallback) const {
  return has(key) ? integer(key, lo, hi) : fallback;
}

std::uint64_t JsonFields::unsigned_integer(const char* key) const {
  const json& v = raw(key);
  if (v.is_number_unsigned()) return v.get<std::uint64_t>();
  if (v.is_number_integer() && v.get<std::int64_t>() >= 0) return static_cast<std::uint64_t>(v.get<std::int64_t>());
  fail(key, "expected an integer in [0, 2^64), got " + kind_of(v));
}
std::uint64_t JsonFields::unsigned_integer(const char* key, std::uint64_t fallback) const {
  return has(key) ? unsigned_integer(key) : fallback;
}

double JsonFields::number(const char* key) const {
  const json& v = raw(key);
  if (!v.is_number()) fail(key, "expected a number, got " + kind_of(v));
  return v.get<double>();
}
double JsonFields::number(const char* key, double fallback) const { return has(key) ? number(key) : fallback; }
double JsonFields::number_or_null(const char* key, double if_null) const {
  if (!has(key) || raw(key).is_null()) return if_null;
  return number(key);
}

bool JsonFields::boolean(const char* key) const {
  const json& v = raw(key);
  if (!v.is_boolean()) fail(key, "expected true or false, got " + kind_of(v));
  return v.get<bool>();
}
bool JsonFields::boolean(const char* key, bool fallback) const { return has(key) ? boolean(key) : fallback; }

std::string JsonFields::text(const char* key) const {
  const json& v = raw(key);
  if (!v.is_string()) fail(key, "expected a string, got " + kind_of(v));
  return v.get<std::string>();
}
std::string JsonFields::text(const char* key, const std::string& fallback) const { return has(key) ? text(key) : fallback; }

std::vector<std::string> JsonFields::texts(const char* key) const {
  const json& v = raw(key);
  if (!v.is_array()) fail(key, "expected an array of strings, got " + kind_of(v));
  std::vector<std::string> out;
  out.reserve(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string()) fail(key, "element " + std::to_string(i) + ": expected a string, got " + kind_of(v[i]));
    out.push_back(v[i].get<std::string>());
  }
  return out;
}
std::vector<std::string> JsonFields::texts(const char* key, const std::vector<std::string>& fallback) const {
  return has(key) ? texts(key) : fallback;
}

std::vector<std::int64_t> JsonFields::integers(const char* key, std::int64_t lo, std::int64_t hi) const {
  const json& v = raw(key);
  if (!v.is_array()) fail(key, "expected an array of integers, got " + kind_of(v));
  std::vector<std::int64_t> out;
  out.reserve(v.size());
  for (std::size_t i = 0; i < v.size(); ++i)
    out.push_back(json_integer(v[i], lo, hi, file_ + ": field '" + prefix_ + key + "' element " + std::to_string(i)));
  return out;
}

std::vector<double> JsonFields::numbers(const char* key) const {
  const json& v = raw(key);
  if (!v.is_array()) fail(key, "expected an array of numbers, got " + kind_of(v));
  std::vector<double> out;
  out.reserve(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_number()) fail(key, "element " + std::to_string(i) + ": expected a number, got " + kind_of(v[i]));
    out.push_back(v[i].get<double>());
  }
  return out;
}

JsonFields JsonFields::object(const char* key) const { return JsonFields(raw(key), file_, prefix_ + key + "."); }

}  // namespace lrsmeta::io
