// Command-line parse errors in the house format: one line "lrsmeta CMD: error: ...", with the
// nearest subcommand or option suggested for a mistyped one, and ranges said plainly.
#pragma once

#include <CLI/CLI.hpp>

namespace lrsmeta::cli {

// Prints the error (help and version requests as CLI11 prints them) and returns the exit status.
int report_parse_error(CLI::App& app, const CLI::ParseError& error, int argc, char** argv);

}  // namespace lrsmeta::cli
