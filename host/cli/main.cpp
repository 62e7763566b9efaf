// lrsmeta: train and use low-rank plus sparse personalised linear models from the command line.
#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>
#include <new>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/interrupt.hpp"
#include "cli/parse_errors.hpp"
#include "lrsmeta/lrsmeta.hpp"
#include "lrsmeta/mpi.hpp"

int main(int argc, char** argv) {
  CLI::App app{"lrsmeta " LRSMETA_VERSION_STRING
               ": personalised linear models theta_i = U w_i + b_i for many data-starved tasks (AMHT-LRS)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", LRSMETA_VERSION_STRING);
  lrsmeta::cli::add_generate(app);
  lrsmeta::cli::add_train(app, std::vector<std::string>(argv, argv + argc));
  lrsmeta::cli::add_convert(app);
  lrsmeta::cli::add_adapt(app);
  lrsmeta::cli::add_predict(app);
  lrsmeta::cli::add_eval(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return lrsmeta::cli::report_parse_error(app, e, argc, argv);
  } catch (const lrsmeta::cli::Interrupted& e) {
    // Over many processes every one stops together: rank 0 says so.
    if (lrsmeta::cli::process_rank() == 0) std::cerr << "lrsmeta: " << e.what() << "\n";
    return 128 + e.signal();
  } catch (const std::exception& e) {
    // Name the subcommand that failed ("lrsmeta eval: error: ...").
    std::string where = "lrsmeta";
    for (CLI::App* sub = &app; sub != nullptr;) {
      const std::vector<CLI::App*> parsed = sub->get_subcommands();
      sub = parsed.empty() ? nullptr : parsed.front();
      if (sub) where += " " + sub->get_name();
    }
    const int processes = lrsmeta::cli::process_count(), rank = lrsmeta::cli::process_rank();
    if (processes > 1) {
      // Every process has this error (and rank 0 says it), or this one alone failed and the others
      // may wait for it: then all are ended, after its message.
      if (dynamic_cast<const lrsmeta::CollectiveError*>(&e)) {
        if (rank == 0) std::cerr << where << ": error: " << e.what() << "\n";
        return 1;
      }
      lrsmeta::mpi_abort(where + ": error: rank " + std::to_string(rank) + ": " + e.what(), 1);
    }
    // (The readers check every size a file claims before allocating: running out of memory here
    // is the machine's limit, not a damaged file's.)
    const bool memory = dynamic_cast<const std::bad_alloc*>(&e) != nullptr;
    std::cerr << where << ": error: " << (memory ? "out of memory (std::bad_alloc)" : e.what()) << "\n";
    return 1;
  }
  return 0;
}
