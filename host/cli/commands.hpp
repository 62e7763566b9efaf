// The lrsmeta command line: one function per subcommand, registered on a CLI11 app.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace lrsmeta::cli {

void add_generate(CLI::App& app);
// command_line: the program's arguments as given (a stopped train prints the command that resumes it).
void add_train(CLI::App& app, const std::vector<std::string>& command_line);
void add_convert(CLI::App& app);
void add_adapt(CLI::App& app);
void add_predict(CLI::App& app);
void add_eval(CLI::App& app);
void add_benchmark(CLI::App& app);  // movielens.cpp

}  // namespace lrsmeta::cli
