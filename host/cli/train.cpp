// The train subcommand: options, data, checkpoints and resuming, the fit, and its report.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <unordered_set>
#include <sstream>

#include "cli/commands.hpp"
#include "cli/interrupt.hpp"
#include "cli/subcommand_support.hpp"
#include "lrsmeta/io.hpp"
#include "lrsmeta/lrsmeta.hpp"
#include "lrsmeta/mpi.hpp"
#include "lrsmeta/option_table.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace lrsmeta::cli {

namespace {

// An argument as a POSIX shell reads it back.
std::string shell_quoted(const std::string& arg) {
  if (!arg.empty() && arg.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=.,/:@%") == std::string::npos)
    return arg;
  std::string out = "'";
  for (char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The command line that continues a stopped train from the checkpoint folder `dir`: the same
// arguments, with --checkpoint and --resume replaced by --resume dir.
std::string resume_command(const std::vector<std::string>& argv, const std::string& dir) {
  std::string out;
  for (std::size_t a = 0; a < argv.size(); ++a) {
    const std::string& arg = argv[a];
    if (arg == "--checkpoint" || arg == "--resume") {
      ++a;  // and its value
      continue;
    }
    if (arg.rfind("--checkpoint=", 0) == 0 || arg.rfind("--resume=", 0) == 0) continue;
    out += (out.empty() ? "" : " ") + shell_quoted(arg);
  }
  return out + " --resume " + shell_quoted(dir);
}

}  // namespace

void add_train(CLI::App& app, const std::vector<std::string>& command_line) {
  auto data = std::make_shared<DataArgs>();
  auto o = std::make_shared<Options>(default_options());
  auto out = std::make_shared<std::string>();
  auto metrics = std::make_shared<std::string>();
  auto quiet = std::make_shared<bool>(false), verbose = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("train", "fit a model: beta + U w_i + b_i with priors estimated from all tasks (AMHT-LRS inside)");
  add_data_options(cmd, *data);
  add_progress_options(cmd, quiet.get(), verbose.get());
  add_csv_feature_options(cmd, *data);
  // The model's options, from the options table: each given option is set from its text after
  // parsing, through the table, so that the CLI takes what Python and C take.
  struct GivenOption {
    const OptionSpec* spec;
    CLI::Option* option;
    std::shared_ptr<std::string> text;
    std::shared_ptr<bool> negated_flag;
  };
  auto given = std::make_shared<std::vector<GivenOption>>();
  for (const OptionSpec& spec : option_table()) {
    const std::string flag = "--" + spec.cli;
    if (spec.cli.empty() || cmd->get_option_no_throw(flag)) continue;  // not on the CLI, or shared with predict (--threads)
    const std::string names = flag + (spec.cli_short.empty() ? "" : ",-" + spec.cli_short);
    std::string help = spec.help;
    if (spec.unset == "auto") help += " (auto: " + spec.unset_means + ")";
    else if (spec.unset == "unset") help += " (not given: " + spec.unset_means + ")";
    GivenOption g{&spec, nullptr, nullptr, nullptr};
    if (spec.type == OptionType::flag) {
      if (!spec.cli_negated) continue;  // no flag of the table turns an option on
      g.negated_flag = std::make_shared<bool>(false);
      g.option = cmd->add_flag(names, *g.negated_flag, "turns " + spec.name + " off; " + help);
    } else {
      g.text = std::make_shared<std::string>(spec.default_value);
      g.option = cmd->add_option(names, *g.text, help);
      const std::string type = spec.type == OptionType::integer ? "INT" : spec.type == OptionType::number ? "NUMBER" : "TEXT";
      g.option->type_name(spec.unset == "auto" ? type + "|auto" : type);
      if (!spec.default_value.empty()) g.option->capture_default_str();
      if (spec.type == OptionType::choice) g.option->check(CLI::IsMember(spec.choices));
      // Checked when parsed, with the table's message ("--rank must be a non-negative integer or auto, not 'x'").
      g.option->check(CLI::Validator(
          [&spec, flag](std::string& text) {
            Options scratch;
            try {
              set_option(scratch, spec.name, text, flag);
            } catch (const Error& e) {
              return std::string(e.what());
            }
            return std::string();
          },
          "", spec.name));
      const bool closed = !spec.low_open && !spec.high_open;
      if (spec.type != OptionType::choice && spec.unset.empty() && closed) g.option->check(CLI::Range(spec.low, spec.high).description(""));
    }
    if (spec.group == "privacy") g.option->group("Differential privacy");
    given->push_back(g);
  }
  cmd->add_option("--out,-o", *out, "model folder to write")->required();
  cmd->add_option("--metrics-out", *metrics, "write training metrics (history, timings) as JSON");
  auto checkpoint_dir = std::make_shared<std::string>();
  auto resume_dir = std::make_shared<std::string>();
  auto checkpoint_every = std::make_shared<int>(1);
  cmd->add_option("--checkpoint", *checkpoint_dir, "write the training state to this folder (every --checkpoint-every "
                  "iterations, and when stopped by SIGINT or SIGTERM) so that --resume can continue it")->group("Checkpoints");
  cmd->add_option("--checkpoint-every", *checkpoint_every, "outer iterations between checkpoints")
      ->capture_default_str()->check(CLI::PositiveNumber)->group("Checkpoints");
  cmd->add_option("--resume", *resume_dir, "continue the training whose checkpoint is in this folder (give the same data "
                  "and options; checkpoints go on into it)")->group("Checkpoints");
  CLI::Option* eps_opt = cmd->get_option("--epsilon");
  CLI::Option* delta_opt = cmd->get_option("--delta");
  CLI::Option* seed_opt = cmd->get_option("--noise-seed");
  eps_opt->needs(delta_opt);
  delta_opt->needs(eps_opt);
  cmd->callback([=] {
    check_outputs({{"--out", *out}, {"--metrics-out", *metrics}, {"--checkpoint", *checkpoint_dir}, {"--resume", *resume_dir}});
    Options opts = *o;
    for (const GivenOption& g : *given) {
      if (g.option->empty()) continue;  // the table's default
      if (g.negated_flag) set_option(opts, g.spec->name, std::string("false"));
      else set_option(opts, g.spec->name, *g.text, "--" + g.spec->cli);
    }
    // Ranges, in the CLI's names, before any data is read (fit() checks them again).
    const std::string out_of_range = option_out_of_range(opts, [](const OptionSpec& s) { return s.cli.empty() ? s.name : "--" + s.cli; });
    if (!out_of_range.empty()) throw Error(out_of_range);
    if (eps_opt->empty() && !seed_opt->empty()) throw Error("--noise-seed applies to private training only (give --epsilon and --delta)");
    const bool rank_auto = opts.rank == Options::kAuto, sparsity_auto = opts.sparsity == Options::kAuto;
    opts.threads = data->threads;
    data->gpu = device_for(opts) == Device::cuda;
    if (fs::exists(*out) && !fs::exists(fs::path(*out) / "model.json"))
      throw Error(*out + ": exists and is not a model folder; refusing to overwrite it");
    // Under mpirun (more than one process): each trains on its shard of the tasks; rank 0 prints
    // and writes the model.
    Communicator* comm = distributed_processes();
    const bool root = !comm || comm->rank() == 0;
    if (!root) std::cout.setstate(std::ios::badbit);  // the others print nothing
    // Checkpoints: into --checkpoint, else on into the folder resumed from.
    const std::string checkpoint_to = !checkpoint_dir->empty() ? *checkpoint_dir : *resume_dir;
    std::unique_ptr<Checkpoint> resume_from;
    if (!resume_dir->empty()) {
      // Over many processes each reads its own tasks' part, once its shard of the data is known.
      if (!comm) resume_from = std::make_unique<Checkpoint>(load_checkpoint(*resume_dir));
    } else if (!checkpoint_dir->empty() && has_checkpoint(*checkpoint_dir)) {
      throw Error(*checkpoint_dir + " holds a checkpoint already (iteration " +
                  std::to_string(load_checkpoint_tasks(*checkpoint_dir, 0, 0, false).iteration) +
                  "): continue it with --resume " + *checkpoint_dir + ", or remove the folder to start again");
    } else if (!checkpoint_dir->empty() && fs::exists(*checkpoint_dir) &&
               (!fs::is_directory(*checkpoint_dir) || !fs::is_empty(*checkpoint_dir))) {
      throw Error(*checkpoint_dir + ": exists and is not an empty folder or a checkpoint folder; refusing to write checkpoints into it");
    }
    const Progress progress(*quiet || !root, *verbose && root);
    auto show = [&](const IterationInfo& info) {
      char text[200];
      // At most this much left of this fit (a candidate's, while choosing, or the model's): a
      // tolerance may stop it sooner.
      const int cap = info.max_iterations > 0 ? info.max_iterations : opts.iterations;
      const double left = info.elapsed_seconds / info.iteration * (cap - info.iteration);
      char cg[48] = "", fit[64] = "";
      if (info.u_solver_steps > 0) std::snprintf(cg, sizeof cg, "  cg %d steps (%.1e)", info.u_solver_steps, info.u_solver_residual);
      if (info.candidate && info.candidate_index >= 0 && info.fold >= 0)
        std::snprintf(fit, sizeof fit, "candidate %d (r = %d), fold %d of %d: ", info.candidate_index + 1, info.rank, info.fold + 1, opts.folds);
      else if (info.candidate && info.candidate_index >= 0)
        std::snprintf(fit, sizeof fit, "candidate %d (r = %d): ", info.candidate_index + 1, info.rank);
      else if (info.candidate)
        std::snprintf(fit, sizeof fit, "candidate r = %d: ", info.rank);
      std::snprintf(text, sizeof text, "%siteration %d/%d  loss %.4e  U change %.3e  k %d%s  %.2f s/iteration  at most %s left%s",
                    fit, info.iteration, cap, info.training_loss, info.u_change, info.sparsity_in_effect, cg,
                    info.elapsed_seconds / info.iteration, eta_text(left).c_str(), info.candidate ? " of it" : "");
      progress.show(text);
      return true;
    };
    // SIGINT or SIGTERM: training ends after the current outer iteration (of the final fit, or of
    // a fit of the choice on validation rows), a checkpoint is written where one was asked for,
    // and no model is written.
    const InterruptGuard guard;
    FitControl control;
    control.on_iteration = show;
    control.stop = [] { return interrupt_requested(); };
    control.resume = resume_from.get();
    control.communicator = comm;
    // What the last checkpoint written while choosing holds (-1: none): candidates scored by
    // evidence, or fits on held-out rows that had ended.
    long candidates_checkpointed = -1;
    auto choice_done = [](const Checkpoint& c) {
      return static_cast<long>(c.held_out_fits.empty() ? c.model.selection.candidates.size() : c.held_out_fits.size());
    };
    auto choice_text = [](const Checkpoint& c) {
      const std::size_t n = c.held_out_fits.empty() ? c.model.selection.candidates.size() : c.held_out_fits.size();
      return std::to_string(n) + (!c.held_out_fits.empty() ? (n == 1 ? " fit on held-out rows ended" : " fits on held-out rows ended")
                                  : n == 1                 ? " candidate scored"
                                                           : " candidates scored");
    };
    if (!checkpoint_to.empty()) {
      control.checkpoint = [&](const Checkpoint& c) {
        const auto start = std::chrono::steady_clock::now();
        if (comm) save_checkpoint(c, checkpoint_to, *comm);
        else save_checkpoint(c, checkpoint_to);
        candidates_checkpointed = c.choosing ? choice_done(c) : -1;
        if (progress.lines) {
          if (c.choosing)
            std::fprintf(stderr, "checkpoint of the choice (%s) written to %s in %.2f s\n", choice_text(c).c_str(), checkpoint_to.c_str(),
                         std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
          else
            std::fprintf(stderr, "checkpoint of iteration %d written to %s in %.2f s\n", c.iteration, checkpoint_to.c_str(),
                         std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        }
      };
      control.checkpoint_every = *checkpoint_every;
    }
    const auto load_start = std::chrono::steady_clock::now();
    auto train_on = [&](const auto& ds) {
      prefetch_with_progress(ds, progress, data->path, "train");
      progress.done();
      const double load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
      if (progress.lines)
        std::fprintf(stderr, "loaded %s: %lld rows, %lld tasks, d = %lld, %s in %.2f s%s\n", data->path.c_str(),
                     static_cast<long long>(all_rows(ds)), static_cast<long long>(all_tasks(ds)), static_cast<long long>(ds.d),
                     sizeof(*ds.view().X) == sizeof(float) ? "float" : "double", load_seconds,
                     comm ? (" (rank 0's shard: " + std::to_string(ds.t()) + " tasks; " + std::to_string(comm->size()) + " processes)").c_str() : "");
      if (comm && !resume_dir->empty()) {
        std::string failure;
        try {  // rank 0 checks the files' hashes; each reads its tasks' rows
          resume_from = std::make_unique<Checkpoint>(load_checkpoint_tasks(*resume_dir, first_task_of(ds), ds.t(), comm->rank() == 0));
        } catch (const std::exception& e) {
          failure = e.what();
        }
        const std::string first = comm->first_error(failure);
        if (!first.empty()) throw CollectiveError(first);
        control.resume = resume_from.get();
      }
      std::vector<std::string> chosen;
      if (rank_auto) chosen.push_back("r");
      if (sparsity_auto) chosen.push_back("k");
      const bool by_evidence = opts.selection == Selection::evidence && opts.prior == Prior::automatic;
      if (opts.prior == Prior::automatic && !opts.privacy.enabled && (sparsity_auto || opts.sparsity > 0) &&
          (opts.sparse_prior_scale < 0 || (!by_evidence && opts.support_threshold < 0)))
        chosen.push_back(by_evidence ? "the b prior's variance and the supports' inclusion probability"
                                     : "the b prior's scale and support threshold");
      if (opts.prior == Prior::automatic && !opts.privacy.enabled && (rank_auto || opts.rank > 0) && opts.covariance_shrinkage < 0)
        chosen.push_back("Sigma's shrinkage");
      if (resume_from && resume_from->choosing) {
        std::cout << "resuming the choice " << (resume_from->held_out_fits.empty() ? "of r and k" : "on held-out rows") << " from "
                  << *resume_dir << " (" << choice_text(*resume_from) << ", not fitted again)" << std::endl;
      } else if (resume_from) {
        const Options& o = resume_from->model.options;
        std::cout << "resuming from " << *resume_dir << " after iteration " << resume_from->iteration << " of " << o.iterations
                  << " (r = " << o.rank << ", k = " << o.sparsity
                  << (resume_from->model.selection.performed ? ", as chosen before" : "") << ")" << std::endl;
      } else if (!chosen.empty() && !comm && by_evidence) {
        std::string what;
        for (std::size_t c = 0; c < chosen.size(); ++c) what += (c == 0 ? "" : c + 1 == chosen.size() ? " and " : ", ") + chosen[c];
        std::cout << "estimating " << what << " from all rows (marginal likelihood)" << std::endl;
      } else if (!chosen.empty() && !comm) {
        std::string what;
        for (std::size_t c = 0; c < chosen.size(); ++c) what += (c == 0 ? "" : c + 1 == chosen.size() ? " and " : ", ") + chosen[c];
        if (opts.selection == Selection::kfold)
          std::cout << "choosing " << what << " on " << opts.folds << " folds of each task's rows (" << opts.folds << " fits a candidate";
        else
          std::cout << "choosing " << what << " on validation rows (" << opts.validation_fraction * 100 << "% of each task's rows";
        if (opts.selection_tasks > 0 && ds.t() > opts.selection_tasks)
          std::cout << ", of " << opts.selection_tasks << " of the " << ds.t() << " tasks drawn at random";
        std::cout << "), then refitting on all rows" << std::endl;
      }
      // A resumed choice's checkpoint stays where it is until the next one replaces it.
      if (resume_from && resume_from->choosing && checkpoint_to == *resume_dir)
        candidates_checkpointed = choice_done(*resume_from);
      Model model;
      const auto fit_start = std::chrono::steady_clock::now();
      try {
        model = fit(ds.view(), opts, control);
      } catch (const Stopped& e) {
        progress.done();
        const std::string by = std::string("train: stopped by ") + signal_name(interrupt_signal());
        const std::string resume_line = "; to continue:\n  " + (comm ? "mpirun -np " + std::to_string(comm->size()) + " " : std::string()) +
                                        resume_command(command_line, checkpoint_to);
        const std::string choosing = !by_evidence ? (opts.selection == Selection::kfold ? " while choosing on folds of each task's rows"
                                                                                          : " while choosing on validation rows")
                                                  : " while choosing r and k";
        const std::string unit = by_evidence ? "candidate" : "fit on held-out rows";
        if (e.iteration() == 0 && candidates_checkpointed >= 0)
          throw Interrupted(by + choosing + "; the checkpoint (" + std::to_string(candidates_checkpointed) +
                                (by_evidence ? " candidate" : " fit") + (candidates_checkpointed == 1 ? "" : "s") +
                                (by_evidence ? " scored" : " on held-out rows ended") +
                                ", which a resume does not fit again) is in " + checkpoint_to + resume_line,
                            interrupt_signal());
        if (e.iteration() == 0)
          throw Interrupted(by + choosing + "; no model was written and there is no checkpoint yet (" +
                                (checkpoint_to.empty() ? "give --checkpoint DIR: one is written after each " + unit
                                                       : "one is written after each " + unit + ", and the first had not ended") +
                                ")",
                            interrupt_signal());
        const std::string after = "after outer iteration " + std::to_string(e.iteration());
        if (checkpoint_to.empty())
          throw Interrupted(by + " " + after + "; no model was written (give --checkpoint DIR to be able to resume)",
                            interrupt_signal());
        throw Interrupted(by + " " + after + "; the checkpoint is in " + checkpoint_to + resume_line, interrupt_signal());
      }
      progress.done();
      const double fit_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - fit_start).count();
      model.task_keys = ds.task_keys;
      model.feature_names = ds.feature_names;
      model.encoding = ds.encoding;
      Evaluation ev = evaluate(model, ds.view());
      std::int64_t tasks = model.t;
      if (comm) {  // the training MSE over every process's rows
        sum_evaluation(ev, *comm);
        comm->sum(&tasks, 1);
      }
      print_encoding(ds.encoding, std::cout);
      progress.show("writing " + *out + " (" + std::to_string(tasks) + " tasks' parameters)");
      const auto write_start = std::chrono::steady_clock::now();
      if (comm) save_model(model, *out, *comm);
      else save_model(model, *out);
      const double write_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - write_start).count();
      progress.done();
      for (const std::string& note : model.notes) {
        if (note.rfind("not converged", 0) == 0) std::cerr << "warning: " << note << "\n";
        else std::cout << "note: " << note << "\n";
      }
      // After the fit, so that an error before it stays the one line on stderr.
      if (!data->gpu)
        if (const std::string slow_blas = blas_kernel_warning(); !slow_blas.empty()) std::cerr << "warning: " << slow_blas << "\n";
      if (model.selection.performed && model.selection.method == Selection::evidence) {
        const SelectionCandidate& c = model.selection.chosen;
        std::cout << "estimated from all rows";
        if (model.selection.candidates.size() > 1) {
          std::cout << " (log marginal likelihood of each (r, k) tried, and its score less BIC's charge:";
          for (const SelectionCandidate& x : model.selection.candidates)
            std::cout << " " << x.rank << "," << x.sparsity
                      << (x.low_rank_basis == LowRankBasis::intercept ? " (random intercept)"
                          : x.low_rank_basis == LowRankBasis::slopes  ? " (random intercept and slopes)"
                                                                      : "")
                      << ": " << x.log_evidence << ", score " << x.score
                      << (x.abandoned ? " (abandoned)" : x.ahead ? " (ahead, stopped early)" : "");
          std::cout << ")";
        }
        std::cout << ": r = " << c.rank;
        if (c.low_rank_basis == LowRankBasis::intercept) std::cout << " (a random intercept: U held at the constant feature's axis)";
        if (c.low_rank_basis == LowRankBasis::slopes)
          std::cout << " (a random intercept and random slopes: U held at the features' axes, Sigma with the intercept's variance and one "
                       "shared by the slopes)";
        std::cout << ", k = " << c.sparsity;
        if (c.sparsity > 0) std::cout << ", tau2 " << model.sparse_prior_variance << ", inclusion probability " << model.support_inclusion_probability;
        if (c.rank > 0) std::cout << ", covariance shrinkage " << model.covariance_shrinkage;
        std::cout << "\n";
      } else if (model.selection.performed) {
        const SelectionCandidate& c = model.selection.chosen;
        std::cout << "chosen on " << model.selection.validation_rows;
        if (model.selection.method == Selection::kfold) std::cout << " held-out rows in " << model.selection.folds << " folds";
        else std::cout << " validation rows";
        std::cout << " (" << model.selection.candidates.size()
                  << " candidates): r = " << c.rank << ", k = " << c.sparsity;
        if (c.sparsity > 0 && model.has_prior())
          std::cout << ", sparse prior scale " << c.sparse_prior_scale << ", support threshold " << c.support_threshold;
        if (c.rank > 0 && model.has_prior()) std::cout << ", covariance shrinkage " << c.covariance_shrinkage;
        std::cout << " (validation MSE " << c.validation_mse << ")\n";
      }
      std::cout << "trained " << to_string(opts.variant) << " model (prior " << to_string(model.options.prior) << ", d = " << model.d
                << ", r = " << model.r << ", k = " << model.k << ", t = " << tasks << ") in " << model.history.size()
                << " iterations: training MSE " << ev.mse;
      if (model.has_prior()) std::cout << ", noise variance s2 " << model.noise_variance;
      std::cout << "; wrote " << *out << "\n";
      if (model.privacy.enabled)
        std::cout << "privacy spent: epsilon " << model.privacy.epsilon << " at delta " << model.privacy.delta << " ("
                  << model.privacy.releases << " Gaussian releases, noise multiplier " << model.privacy.noise_multiplier
                  << ")" << (model.privacy.fixed_seed ? "; the noise seed was fixed: NO privacy guarantee" : "") << "\n";
      if (!metrics->empty() && root) {
        double task_s = 0, u_s = 0;
        for (const IterationInfo& h : model.history) {
          task_s += h.task_step_seconds;
          u_s += h.u_step_seconds;
        }
        const json described = json::parse(model_json(model));  // the parts model.json has too
        write_json_file(*metrics, json{{"data", data->path},
                                       {"model", *out},
                                       {"precision", sizeof(*ds.view().X) == sizeof(float) ? "float" : "double"},
                                       {"n", all_rows(ds)},
                                       {"d", model.d},
                                       {"t", tasks},
                                       {"processes", comm ? comm->size() : 1},
                                       {"r", model.r},
                                       {"k", model.k},
                                       {"variant", to_string(opts.variant)},
                                       {"device", to_string(opts.device)},
                                       {"iterations_run", model.history.size()},
                                       {"load_seconds", load_seconds},
                                       {"write_seconds", write_seconds},
                                       {"training_mse", ev.mse},
                                       {"task_step_seconds", task_s},
                                       {"u_step_seconds", u_s},
                                       // The whole fit (with the estimation or choice of r, k and
                                       // the priors' settings), and the chosen model's own
                                       // iterations (its history's last elapsed time).
                                       {"fit_seconds", fit_seconds},
                                       {"total_seconds", model.history.empty() ? 0.0 : model.history.back().elapsed_seconds},
                                       {"privacy", described.at("privacy")},
                                       {"prior", described.at("prior")},
                                       {"selection", described.at("selection")},
                                       {"history", described.at("history")}});
      }
    };
    if (comm) with_mapped_shard(*data, *comm, train_on, *verbose);
    else with_mapped_dataset(*data, train_on);
  });
}

}  // namespace lrsmeta::cli
