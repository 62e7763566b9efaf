// The options table's rows as the library reads and writes them: each option's description and
// the field of Options it lives in (option_table.cpp). model.json and validate() go through these.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lrsmeta/lrsmeta.hpp"
#include "lrsmeta/option_table.hpp"

namespace lrsmeta::core {

struct OptionField {
  OptionSpec spec;
  // Where the value lives: exactly one of these (by the field's type).
  int& (*int_field)(Options&) = nullptr;
  std::int64_t& (*int64_field)(Options&) = nullptr;
  std::uint64_t& (*uint64_field)(Options&) = nullptr;
  double& (*number_field)(Options&) = nullptr;
  bool& (*flag_field)(Options&) = nullptr;
  std::string (*get_choice)(const Options&) = nullptr;
  void (*set_choice)(Options&, const std::string&) = nullptr;
  // Options left to the library (spec.unset): whether it is, and how to leave it.
  bool (*is_unset)(const Options&) = nullptr;
  void (*make_unset)(Options&) = nullptr;
  // What setting it also does (epsilon: private training; noise_seed: the seed is fixed).
  void (*on_set)(Options&) = nullptr;
  // model.json: its key (in the group's object), and the value a model written before the option
  // existed is read with ("" : the default). json_presence: a flag of whether the option is set
  // (the noise seed: its value is never written).
  std::string json_name, json_before;
  bool json_presence = false;
};

const std::vector<OptionField>& option_fields();
const OptionField& option_field(const std::string& name);  // throws Error "unknown option 'name'"

// The value as text ("auto", or "" for an unset option left to the library).
std::string value_text(const Options& o, const OptionField& f);
// The shortest text that reads back as v.
std::string number_text(double v);
// What the option takes, for messages ("a non-negative integer or auto").
std::string takes(const OptionField& f);
bool in_range(const OptionSpec& s, double v);
void set_text(Options& o, const OptionField& f, const std::string& text, const std::string& shown);
void set_number(Options& o, const OptionField& f, double v, const std::string& shown);
void set_integer(Options& o, const OptionField& f, std::int64_t v, const std::string& shown);
void unset(Options& o, const OptionField& f, const std::string& shown);
// The first option outside its range, named by `shown` ("" where there is none); as check_ranges.
std::string out_of_range(const Options& o, const std::function<std::string(const OptionSpec&)>& shown);
// Every integer and number option within its range (privacy's only for private training; those left
// to the library, and r and k, which validate() checks against d, skipped). Throws Error "options: ...".
void check_ranges(const Options& o);

}  // namespace lrsmeta::core
