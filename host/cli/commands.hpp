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

// Under mpirun (or srun) with more than one process: their number and this one's rank; else 1, 0.
int process_count();
int process_rank();

}  // namespace lrsmeta::cli
