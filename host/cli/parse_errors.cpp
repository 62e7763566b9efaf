#include "cli/parse_errors.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <regex>
#include <string>
#include <vector>

namespace lrsmeta::cli {
namespace {

// Edit distance (insertions, deletions, substitutions, and swaps of neighbours, which typing makes).
std::size_t distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i)
    for (std::size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

// The candidate nearest to `typed`, where it is near enough to be what was meant; else empty.
std::string nearest(const std::string& typed, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_distance = std::max<std::size_t>(2, typed.size() / 3) + 1;
  for (const std::string& c : candidates) {
    const std::size_t dist = distance(typed, c);
    if (dist < best_distance) best_distance = dist, best = c;
  }
  return best;
}

// A bound as a person writes it: "0", "1", "0.5" (CLI11 prints "0.000000").
std::string plain_number(const std::string& text) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str()) return text;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.15g", v);
  return buf;
}

std::string with_dashes(const std::string& name) { return (name.size() == 1 ? "-" : "--") + name; }

}  // namespace

int report_parse_error(CLI::App& app, const CLI::ParseError& error, int argc, char** argv) {
  if (error.get_exit_code() == 0) return app.exit(error);  // --help, --version
  CLI::App* command = nullptr;
  for (CLI::App* sub = &app;;) {
    const std::vector<CLI::App*> parsed = sub->get_subcommands();
    if (parsed.empty()) break;
    command = sub = parsed.front();
  }
  const std::string where = command ? "lrsmeta " + command->get_name() : "lrsmeta";
  std::string message = error.what();
  std::vector<std::string> subcommands;
  for (const CLI::App* sub : app.get_subcommands({})) subcommands.push_back(sub->get_name());

  if (!command) {
    // The first word that is no option was no subcommand.
    for (int i = 1; i < argc; ++i) {
      const std::string word = argv[i];
      if (word.empty() || word[0] == '-') continue;
      const std::string guess = nearest(word, subcommands);
      std::string list;
      for (const std::string& s : subcommands) list += (list.empty() ? "" : ", ") + s;
      message = "unknown subcommand '" + word + "'" + (guess.empty() ? "" : " (did you mean " + guess + "?)") + "; the subcommands are " + list;
      break;
    }
    if (argc < 2) message = "a subcommand is needed: lrsmeta --help lists them";
  } else if (dynamic_cast<const CLI::ExtrasError*>(&error)) {
    // Name the first unknown option and the nearest known one.
    std::vector<std::string> names;
    for (const CLI::Option* opt : command->get_options())
      for (const std::string& n : opt->get_lnames()) names.push_back("--" + n);
    const std::vector<std::string> extras = command->remaining();
    for (const std::string& extra : extras) {
      if (extra.rfind("-", 0) != 0) continue;
      const std::string typed = extra.substr(0, extra.find('='));
      const std::string guess = nearest(typed, names);
      message = "unknown option " + typed + (guess.empty() ? "" : " (did you mean " + guess + "?)") + "; " + where + " --help lists them";
      break;
    }
    if (message == error.what() && !extras.empty()) message = "unexpected argument '" + extras.front() + "' (options take the form --name value)";
  } else {
    // "--threads: Value -1 not in range 0.000000 to 1.797e308" -> "--threads must be >= 0 (got -1)".
    static const std::regex range(R"((\S+): Value (\S+) not in range (\S+) to (\S+))");
    // The options table's own messages name the option already: "--rank: --rank must be ...".
    static const std::regex named(R"(^(\S+): (\S+) (must be .*)$)");
    std::smatch m;
    if (std::regex_search(message, m, named) && m[1].str() == m[2].str()) {
      message = m[2].str() + " " + m[3].str();
    } else if (std::regex_search(message, m, range)) {
      const double high = std::strtod(m[4].str().c_str(), nullptr);
      message = m[1].str() + (high > 1e15 ? " must be >= " + plain_number(m[3].str())
                                           : " must be between " + plain_number(m[3].str()) + " and " + plain_number(m[4].str())) +
                " (got " + m[2].str() + ")";
    } else if (static const std::regex convert(R"(Could not convert: (\S+) = (.*))"); std::regex_search(message, m, convert)) {
      message = m[1].str() + " takes a number, not '" + m[2].str() + "'";
    } else if (static const std::regex member(R"((\S+): (.*) not in \{(.*)\})"); std::regex_search(message, m, member)) {
      std::string choices = m[3].str();
      std::replace(choices.begin(), choices.end(), ',', '|');
      message = m[1].str() + " must be one of " + choices + " (got " + m[2].str() + ")";
    } else if (dynamic_cast<const CLI::RequiredError*>(&error)) {
      message += "; " + where + " --help lists the options";
    }
  }
  // One line: CLI11's messages may hold line breaks.
  std::replace(message.begin(), message.end(), '\n', ' ');
  std::cerr << where << ": error: " << message << "\n";
  return error.get_exit_code();
}

}  // namespace lrsmeta::cli
