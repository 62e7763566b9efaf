// The options table walked through the library's front ends: text in and out, model.json, the C
// API and validate()'s ranges, for every option it lists (tests/python: Python and the CLI).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <string>

#include "io/json_fields.hpp"
#include "io/model_files.hpp"
#include "lrsmeta/lrsmeta.h"
#include "lrsmeta/lrsmeta.hpp"
#include "lrsmeta/option_table.hpp"

namespace lrsmeta {
namespace {

// A value of the option other than its default, within its range, as text.
std::string sample(const OptionSpec& s) {
  switch (s.type) {
    case OptionType::flag: return s.default_value == "true" ? "false" : "true";
    case OptionType::choice:
      for (const std::string& c : s.choices)
        if (c != s.default_value) return c;
      break;
    case OptionType::integer: return std::to_string(static_cast<long long>(s.low) + 1);
    case OptionType::number:
      if (std::isinf(s.high)) return "0.75";
      return s.high - s.low == 1 ? "0.25" : "0.125";  // (0, 1), [0, 1), (0, 0.5]
  }
  ADD_FAILURE() << s.name << ": no sample";
  return "";
}

Options all_samples() {
  Options o = default_options();
  for (const OptionSpec& s : option_table()) set_option(o, s.name, sample(s));
  return o;
}

TEST(OptionTable, NamesAreUniqueInEveryFrontEndAndDefaultsAreTheOptionsDefaults) {
  std::set<std::string> names, python, cli;
  for (const OptionSpec& s : option_table()) {
    EXPECT_TRUE(names.insert(s.name).second) << s.name;
    if (!s.python.empty()) EXPECT_TRUE(python.insert(s.python).second) << s.python;
    if (!s.cli.empty()) EXPECT_TRUE(cli.insert(s.cli).second) << s.cli;
    EXPECT_FALSE(s.help.empty()) << s.name;
    EXPECT_EQ(option_value(default_options(), s.name), s.default_value) << s.name;
    if (s.type == OptionType::choice) EXPECT_GE(s.choices.size(), 2u) << s.name;
    if (s.type == OptionType::integer || s.type == OptionType::number) EXPECT_LT(s.low, s.high) << s.name;
  }
  // The front ends start from Options{} but for r and k, which they leave to the fit.
  const Options plain;
  EXPECT_EQ(option_value(plain, "rank"), "3");
  EXPECT_EQ(option_value(plain, "sparsity"), "2");
  EXPECT_EQ(option_spec("rank").default_value, "auto");
  for (const OptionSpec& s : option_table())
    if (s.name != "rank" && s.name != "sparsity") EXPECT_EQ(option_value(plain, s.name), s.default_value) << s.name;
  EXPECT_THROW(option_spec("colour"), Error);
}

TEST(OptionTable, EveryOptionReadsBackTheTextItWasSetTo) {
  for (const OptionSpec& s : option_table()) {
    Options o = default_options();
    if (s.group == "privacy") set_option(o, "epsilon", 1.0);  // privacy's settings are read under private training
    const std::string text = sample(s);
    ASSERT_NE(text, s.default_value) << s.name;
    set_option(o, s.name, text);
    EXPECT_EQ(option_value(o, s.name), text) << s.name;
    if (!s.unset.empty()) {  // and back to the library's choice
      unset_option(o, s.name);
      EXPECT_EQ(option_value(o, s.name), s.unset == "auto" ? "auto" : "") << s.name;
    } else {
      EXPECT_THROW(unset_option(o, s.name), Error) << s.name;
    }
    // Text that is not of the option's type is refused, naming the option as the caller shows it.
    try {
      set_option(o, s.name, "twelve", "--shown");
      ADD_FAILURE() << s.name << " took 'twelve'";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("--shown", 0), 0u) << e.what();
    }
  }
  // Setting epsilon asks for private training; a noise seed fixes the noise.
  Options o = default_options();
  set_option(o, "epsilon", 2.0);
  EXPECT_TRUE(o.privacy.enabled);
  set_option_integer(o, "noise_seed", 7);
  EXPECT_TRUE(o.privacy.fixed_seed);
  EXPECT_EQ(o.privacy.noise_seed, 7u);
  // Integers are whole and fit their field.
  EXPECT_THROW(set_option(o, "iterations", 2.5), Error);
  EXPECT_THROW(set_option_integer(o, "iterations", std::int64_t{1} << 40), Error);
  EXPECT_THROW(set_option(o, "rank", std::string("-1")), Error);
  set_option(o, "seed", std::string("18446744073709551615"));
  EXPECT_EQ(o.seed, std::numeric_limits<std::uint64_t>::max());
}

TEST(OptionTable, ModelJsonKeepsEveryOption) {
  const Options o = all_samples();
  const nlohmann::json j = io::options_json(o);
  const Options back = io::options_from_json(io::JsonFields(j, "model.json", "options."));
  for (const OptionSpec& s : option_table())
    if (s.name != "noise_seed") EXPECT_EQ(option_value(back, s.name), sample(s)) << s.name;
  // The noise seed itself is never written: only that it was fixed.
  EXPECT_TRUE(back.privacy.fixed_seed);
  EXPECT_TRUE(j["privacy"]["fixed_seed"].get<bool>());
  EXPECT_FALSE(j["privacy"].contains("noise_seed"));
  // A model.json written before an option existed is read as what the fit did then.
  nlohmann::json old = j;
  for (const char* key : {"selection", "prior", "u_solver", "standardize", "cg_forcing", "em_acceleration"}) old.erase(key);
  const Options before = io::options_from_json(io::JsonFields(old, "model.json", "options."));
  EXPECT_EQ(before.selection, Selection::validation);
  EXPECT_EQ(before.prior, Prior::none);
  EXPECT_EQ(before.u_solver, USolver::direct);
  EXPECT_FALSE(before.standardize);
  EXPECT_EQ(before.cg_forcing, 0.0);
  EXPECT_FALSE(before.em_acceleration);
}

TEST(OptionTable, TheCApiSetsAndReadsEveryOption) {
  ASSERT_EQ(lrsmeta_option_count(), option_table().size());
  EXPECT_EQ(lrsmeta_option_name(option_table().size()), nullptr);
  lrsmeta_options* opts = nullptr;
  ASSERT_EQ(lrsmeta_options_create(&opts), LRSMETA_OK);
  for (std::size_t i = 0; i < lrsmeta_option_count(); ++i) {  // the table's defaults
    const char* start = lrsmeta_options_get(opts, lrsmeta_option_name(i));
    ASSERT_NE(start, nullptr) << lrsmeta_option_name(i);
    EXPECT_EQ(std::string(start), option_spec(lrsmeta_option_name(i)).default_value) << lrsmeta_option_name(i);
  }
  for (std::size_t i = 0; i < lrsmeta_option_count(); ++i) {
    const OptionSpec& s = option_spec(lrsmeta_option_name(i));
    const std::string text = sample(s);
    ASSERT_EQ(lrsmeta_options_set_string(opts, s.name.c_str(), text.c_str()), LRSMETA_OK) << s.name << ": " << lrsmeta_last_error();
    EXPECT_EQ(std::string(lrsmeta_options_get(opts, s.name.c_str())), text) << s.name;
    // Typed setters take the same values.
    if (s.type == OptionType::number) {
      EXPECT_EQ(lrsmeta_options_set_double(opts, s.name.c_str(), std::stod(text)), LRSMETA_OK) << s.name;
      EXPECT_EQ(std::string(lrsmeta_options_get(opts, s.name.c_str())), text) << s.name;
    } else if (s.type == OptionType::integer) {
      EXPECT_EQ(lrsmeta_options_set_int(opts, s.name.c_str(), std::stoll(text)), LRSMETA_OK) << s.name;
      EXPECT_EQ(std::string(lrsmeta_options_get(opts, s.name.c_str())), text) << s.name;
    } else if (s.type == OptionType::choice) {
      EXPECT_EQ(lrsmeta_options_set_int(opts, s.name.c_str(), 1), LRSMETA_INVALID_ARGUMENT) << s.name;
      EXPECT_NE(std::string(lrsmeta_last_error()).find(s.name), std::string::npos) << lrsmeta_last_error();
    }
  }
  EXPECT_EQ(lrsmeta_options_set_int(opts, "colour", 1), LRSMETA_INVALID_ARGUMENT);
  EXPECT_NE(std::string(lrsmeta_last_error()).find("colour"), std::string::npos);
  EXPECT_EQ(lrsmeta_options_get(opts, "colour"), nullptr);
  EXPECT_EQ(lrsmeta_options_set_string(opts, "rank", "auto"), LRSMETA_OK);
  EXPECT_EQ(std::string(lrsmeta_options_get(opts, "rank")), "auto");
  lrsmeta_options_destroy(opts);
}

TEST(OptionTable, TheFirstOptionOutOfRangeIsNamedAsTheFrontEndNamesIt) {
  Options o = default_options();
  EXPECT_EQ(option_out_of_range(o), "");
  o.cg_forcing = 1.0;
  EXPECT_EQ(option_out_of_range(o), "cg_forcing must be in [0, 1) (got 1)");
  EXPECT_EQ(option_out_of_range(o, [](const OptionSpec& s) { return "--" + s.cli; }), "--cg-forcing must be in [0, 1) (got 1)");
  o.cg_forcing = 0.1;
  o.warm_start_iterations = -2;
  EXPECT_EQ(option_out_of_range(o, [](const OptionSpec& s) { return s.python; }), "warm_start = -2 is negative");
  o.warm_start_iterations = 5;
  o.privacy.delta = 2.0;  // privacy's ranges only under private training
  EXPECT_EQ(option_out_of_range(o), "");
  o.privacy.enabled = true;
  EXPECT_EQ(option_out_of_range(o), "delta must be in (0, 1) (got 2)");
}

TEST(OptionTable, ValidateChecksEveryRangeTheTableStates) {
  for (const OptionSpec& s : option_table()) {
    if (s.type != OptionType::integer && s.type != OptionType::number) continue;
    if (s.name == "rank" || s.name == "sparsity") continue;  // checked against d, with their own message
    for (const double outside : {s.low_open ? s.low : s.low - 1, s.high_open ? s.high : s.high + 1}) {
      if (std::isinf(outside) || outside > std::numeric_limits<int>::max()) continue;
      Options o = default_options();
      o.rank = 2, o.sparsity = 1;
      if (s.group == "privacy") set_option(o, "epsilon", 1.0), o.prior = Prior::none;
      try {
        // Refused when set (a negative seed), or by validate(), which fit() calls.
        if (s.type == OptionType::integer) set_option_integer(o, s.name, static_cast<std::int64_t>(outside));
        else set_option(o, s.name, outside);
        if (option_value(o, s.name).empty() || option_value(o, s.name) == "auto") continue;  // a negative value leaves it to the library
        validate(o, 10);
        ADD_FAILURE() << s.name << " = " << outside << " was accepted";
      } catch (const Error& e) {  // named as set (seed), or in words (inner iterations)
        std::string words = s.name;
        std::replace(words.begin(), words.end(), '_', ' ');
        const std::string message = e.what();
        EXPECT_TRUE(message.find(s.name) != std::string::npos || message.find(words) != std::string::npos) << message;
      }
    }
  }
}

}  // namespace
}  // namespace lrsmeta
