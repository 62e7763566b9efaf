// Every training option, described once: its name in each front end, its type, default, range,
// help and what "auto" means. The CLI's train, Python's LRSRegressor, the C API and model.json are
// built from this table (docs/architecture.md: where to add an option).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lrsmeta/export.hpp"
#include "lrsmeta/lrsmeta.hpp"

namespace lrsmeta {

enum class OptionType { integer, number, flag, choice };

struct OptionSpec {
  std::string name;    // the C API's key, model.json's key (inside "privacy" for that group)
  std::string python;  // LRSRegressor's argument; "" where Python sets it otherwise (private: from epsilon)
  std::string cli;     // `lrsmeta train`'s flag without the dashes; "" where train sets it otherwise
  std::string cli_short;     // its one-letter alias ("r" for -r), if any
  bool cli_negated = false;  // a flag the CLI turns off ("no-standardize")
  OptionType type = OptionType::number;
  std::string group;   // "" or "privacy"
  std::vector<std::string> choices;  // choice: the accepted words
  // integer and number: the accepted range (checked by validate(), which fit() calls).
  double low = 0, high = 0;
  bool low_open = false, high_open = false;
  // "auto": the library estimates or chooses the value ("auto" in every front end); "unset": it may
  // be left out (Python's None, a CLI flag not given); "": it always has a value.
  std::string unset;
  std::string unset_means;  // what that does
  std::string help;
  std::string default_value;  // as text ("auto" where the default is to leave it to the library)
};

// The options every front end starts from (the CLI's train, Python's LRSRegressor, the C API's
// lrsmeta_options_create): Options{} with r and k left to the fit ("auto"), as the table's defaults
// say. (Options{} itself keeps r = 3, k = 2 for C++ programs that set what they need.)
LRSMETA_API Options default_options();
// The table, in the order the CLI's help lists it.
LRSMETA_API const std::vector<OptionSpec>& option_table();
// The option named `name` (OptionSpec::name); throws Error "unknown option 'name'".
LRSMETA_API const OptionSpec& option_spec(const std::string& name);
// The value in `options` as text: "auto" (or "" for "unset") where it is left to the library;
// numbers as the shortest text that reads back the same.
LRSMETA_API std::string option_value(const Options& options, const std::string& name);
// Sets an option from text, as a person types it ("3", "auto", "kfold", "true"). Throws Error
// "`shown` must be <what it takes>, not '<text>'" (shown: the name as the caller's user knows it,
// by default the option's name). The range is checked by validate(), except that an integer must
// fit its field.
LRSMETA_API void set_option(Options& options, const std::string& name, const std::string& text, const std::string& shown = "");
// Sets a number or an integer option (an integer option takes only whole numbers), or a flag (0 or 1).
LRSMETA_API void set_option(Options& options, const std::string& name, double value, const std::string& shown = "");
LRSMETA_API void set_option_integer(Options& options, const std::string& name, std::int64_t value, const std::string& shown = "");
// The first option outside its range (OptionSpec's low and high), as one line that names it as
// `shown` does ("--cg-forcing must be in [0, 1) (got 1)"; by default its name), or "" where every
// option is within its range. fit() refuses the same options (validate()); a front end can say so
// before any data is read, in its own names.
LRSMETA_API std::string option_out_of_range(const Options& options, const std::function<std::string(const OptionSpec&)>& shown = nullptr);
// Leaves the option to the library (OptionSpec::unset non-empty; throws Error otherwise).
LRSMETA_API void unset_option(Options& options, const std::string& name, const std::string& shown = "");

}  // namespace lrsmeta
