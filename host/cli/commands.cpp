// The subcommands generate, convert, adapt, predict and eval (train: train.cpp).
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

namespace fs = std::filesystem;
using nlohmann::json;

namespace lrsmeta::cli {

int process_count() {
  Communicator* comm = launched_by_mpi() && mpi_built() ? &mpi_world() : nullptr;
  return comm ? comm->size() : 1;
}
int process_rank() {
  Communicator* comm = launched_by_mpi() && mpi_built() ? &mpi_world() : nullptr;
  return comm ? comm->rank() : 0;
}

void add_generate(CLI::App& app) {
  auto spec = std::make_shared<SyntheticSpec>();
  auto out = std::make_shared<std::string>();
  auto samples = std::make_shared<std::int64_t>(-1);
  CLI::App* cmd = app.add_subcommand("generate", "write synthetic data from the model theta_i = U w_i + b_i, with its truth");
  cmd->add_option("--out", *out, "data folder to write (truth in OUT/truth)")->required();
  cmd->add_option("--tasks,-t", spec->tasks, "number of tasks")->capture_default_str();
  cmd->add_option("--samples,-m", *samples, "rows per task (sets both --min-samples and --max-samples)");
  cmd->add_option("--min-samples", spec->min_samples, "fewest rows of a task")->capture_default_str();
  cmd->add_option("--max-samples", spec->max_samples, "most rows of a task")->capture_default_str();
  cmd->add_option("--dim,-d", spec->d, "features d")->capture_default_str();
  cmd->add_option("--rank,-r", spec->r, "rank r of U")->capture_default_str();
  cmd->add_option("--sparsity,-k", spec->k, "non-zeros k of each b_i")->capture_default_str();
  cmd->add_option("--noise", spec->noise, "standard deviation of the noise on y")->capture_default_str();
  cmd->add_option("--seed", spec->seed, "random seed")->capture_default_str();
  cmd->add_option("--basis-seed", spec->basis_seed, "seed of U alone (0: from --seed); equal values share U");
  auto dtype = std::make_shared<std::string>("float64");
  auto quiet = std::make_shared<bool>(false), verbose = std::make_shared<bool>(false);
  add_progress_options(cmd, quiet.get(), verbose.get());
  cmd->add_option("--dtype", *dtype, "element type of X.npy (y.npy is float64)")
      ->check(CLI::IsMember({"float64", "float32"}))
      ->capture_default_str();
  cmd->callback([=] {
    check_outputs({{"--out", *out}});
    SyntheticSpec s = *spec;
    if (*samples >= 0) s.min_samples = s.max_samples = *samples;
    // Written task by task (memory O(t (r + k)), not O(size of X)); SIGINT or SIGTERM stops it
    // with nothing left behind.
    const InterruptGuard guard;
    const Progress progress(*quiet, *verbose);
    std::int64_t rows = 0;
    const auto start = std::chrono::steady_clock::now();
    auto keep_going = [&](std::int64_t written) {
      if (written > 0) {
        const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const double rate = static_cast<double>(written) / std::max(elapsed, 1e-9);
        char text[160];
        std::snprintf(text, sizeof text, "generate: %lld/%lld tasks, %.0f tasks/s, %s left", static_cast<long long>(written),
                      static_cast<long long>(s.tasks), rate, eta_text(static_cast<double>(s.tasks - written) / rate).c_str());
        progress.show(text);
      }
      return !interrupt_requested();
    };
    try {
      rows = write_synthetic(*out, s, *dtype == "float32" ? DType::f32 : DType::f64, keep_going);
      progress.done();
    } catch (const Error&) {
      progress.done();
      if (interrupt_requested())
        throw Interrupted(std::string("generate: stopped by ") + signal_name(interrupt_signal()) + "; nothing was written", interrupt_signal());
      throw;
    }
    std::cout << "wrote " << *out << ": " << s.tasks << " tasks, " << rows << " rows, d = " << s.d << ", X " << *dtype
              << " (truth: r = " << s.r << ", k = " << s.k << ")\n";
  });
}
void add_convert(CLI::App& app) {
  auto data = std::make_shared<DataArgs>();
  auto out = std::make_shared<std::string>();
  auto dtype = std::make_shared<std::string>("float64");
  auto quiet = std::make_shared<bool>(false), verbose = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("convert", "convert a CSV table once into a data folder (X.npy, y.npy, task_offsets.npy, "
                                     "dataset.json) that train, adapt, predict and eval use without parsing it again");
  cmd->add_option("--data", data->path, "CSV file")->required();
  cmd->add_option("--target", data->target, "name of the target column")->required();
  cmd->add_option("--task", data->task, "name of the task column")->required();
  add_csv_feature_options(cmd, *data);
  add_missing_option(cmd, *data);
  cmd->add_option("--out,-o", *out, "data folder to write")->required();
  cmd->add_option("--dtype", *dtype, "element type of X.npy (float32 halves its size; y.npy is float64)")
      ->check(CLI::IsMember({"float64", "float32"}))->capture_default_str();
  add_progress_options(cmd, quiet.get(), verbose.get());
  cmd->callback([=] {
    check_outputs({{"--out", *out}});
    const CsvOptions csv = csv_options(*data);
    const InterruptGuard guard;
    const Progress progress(*quiet, *verbose);
    const auto start = std::chrono::steady_clock::now();
    std::string last_pass;
    auto report = [&](const char* pass, std::uint64_t done, std::uint64_t total) {
      if (interrupt_requested())
        throw Interrupted(std::string("convert: stopped by ") + signal_name(interrupt_signal()) + "; nothing was written",
                          interrupt_signal());
      // The two passes each read the whole file: the second half of the work is the second pass.
      const bool second = std::string(pass) == "encoding";
      const double fraction = (static_cast<double>(done) / std::max<double>(static_cast<double>(total), 1.0) + (second ? 1.0 : 0.0)) / 2.0;
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      char text[160];
      std::snprintf(text, sizeof text, "convert: %s %.0f%% of %s, %.1f MB/s, %s left", pass, 100.0 * static_cast<double>(done) /
                    std::max<double>(static_cast<double>(total), 1.0), format_bytes(static_cast<double>(total)).c_str(),
                    static_cast<double>(done + (second ? total : 0)) / 1e6 / std::max(elapsed, 1e-9),
                    eta_text(elapsed / std::max(fraction, 1e-9) * (1.0 - fraction)).c_str());
      progress.show(text);
    };
    std::int64_t rows = 0;
    try {
      rows = convert_csv(data->path, csv, *out, *dtype == "float32" ? DType::f32 : DType::f64, report);
    } catch (...) {
      progress.done();
      throw;
    }
    progress.done();
    auto summary = [&](const auto& written) {  // mapped in its own type: X is not read
      print_encoding(written.encoding, std::cout);
      std::cout << "wrote " << *out << ": " << written.t() << " tasks, " << rows << " rows, d = " << written.d << ", X " << *dtype
                << "\n";
    };
    if (*dtype == "float32") summary(map_data_folder<float>(*out));
    else summary(map_data_folder<double>(*out));
  });
}

// Whether tasks with `keys` can join the model's in one model: keys on both or neither, and none
// of the model's own (adapt fits new tasks).
void check_new_task_keys(const Model& model, const std::vector<std::string>& keys) {
  if (model.task_keys.empty() != keys.empty())
    throw Error(std::string("--into: the ") + (model.task_keys.empty() ? "model's tasks have no keys and the new data's do"
                                                                       : "new data's tasks have no keys and the model's do") +
                ": a model cannot hold both (write the new tasks alone with --out)");
  std::unordered_set<std::string> known(model.task_keys.begin(), model.task_keys.end());
  for (const std::string& key : keys)
    if (known.count(key))
      throw Error("--into: task '" + key + "' is in the model already; adapt fits new tasks (refit the model to change its tasks)");
}

// The model with the adapted tasks appended (same U and prior): one model holding both.
Model with_tasks_added(const Model& model, const Model& added) {
  check_new_task_keys(model, added.task_keys);
  Model out = model;
  out.W.insert(out.W.end(), added.W.begin(), added.W.end());
  out.B_index.insert(out.B_index.end(), added.B_index.begin(), added.B_index.end());
  out.B_value.insert(out.B_value.end(), added.B_value.begin(), added.B_value.end());
  out.task_keys.insert(out.task_keys.end(), added.task_keys.begin(), added.task_keys.end());
  out.t = model.t + added.t;
  out.notes.push_back(std::to_string(added.t) + " tasks added by adapt (U and the prior fixed)");
  return out;
}

void add_adapt(CLI::App& app) {
  auto data = std::make_shared<DataArgs>();
  auto model_path = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("adapt", "fit (w, b) of new tasks with the model's U fixed");
  cmd->add_option("--model", *model_path, "trained model folder")->required();
  add_data_options(cmd, *data);
  auto into = std::make_shared<std::string>();
  CLI::Option* out_option = cmd->add_option("--out,-o", *out, "model folder to write (the model's U, the new tasks' w and b)");
  CLI::Option* into_option = cmd->add_option("--into", *into, "model folder to write with the model's tasks and the new ones "
                                             "(it may be --model itself, which is then replaced whole)");
  out_option->excludes(into_option);
  cmd->callback([=] {
    if (out->empty() && into->empty()) throw Error("--out (the new tasks alone) or --into (the model's tasks and the new ones) is required");
    check_outputs({{"--out", *out}, {"--into", *into}});
    // Under mpirun: each process adapts its shard's tasks (the model's U and prior only are read).
    Communicator* comm = distributed_processes();
    if (comm && !into->empty()) throw CollectiveError("--into adds tasks to the whole model: run it in one process (without mpirun)");
    if (comm && comm->rank() != 0) std::cout.setstate(std::ios::badbit);
    const Model model = comm ? load_model_tasks(*model_path, 0, 0) : load_model(*model_path);
    data->encoding = model.encoding.present ? &model.encoding : nullptr;
    Options o = model.options;
    o.threads = data->threads;
    o.device = Device::cpu;
    const Progress progress(false, false);
    auto adapt_on = [&](const auto& ds) {
      prefetch_with_progress(ds, progress, data->path, "adapt");
      progress.done();
      if (!into->empty()) check_new_task_keys(model, ds.task_keys);  // before the work
      Model adapted = adapt(model, ds.view(), o);
      adapted.task_keys = ds.task_keys;
      Evaluation ev = evaluate(adapted, ds.view());
      std::int64_t tasks = adapted.t;
      if (comm) {
        sum_evaluation(ev, *comm);
        comm->sum(&tasks, 1);
        save_model(adapted, *out, *comm);
      } else if (!into->empty()) {
        save_model(with_tasks_added(model, adapted), *into);
      } else {
        save_model(adapted, *out);
      }
      std::cout << "adapted " << tasks << " tasks: training MSE " << ev.mse << "; wrote " << (into->empty() ? *out : *into)
                << (into->empty() ? "" : " (the model's " + std::to_string(model.t) + " tasks and these)") << "\n";
    };
    if (comm) with_mapped_shard(*data, *comm, adapt_on);
    else with_mapped_dataset(*data, adapt_on);
  });
}

void add_predict(CLI::App& app) {
  auto data = std::make_shared<DataArgs>();
  auto model_path = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto unseen = std::make_shared<std::string>("population");
  CLI::App* cmd = app.add_subcommand("predict", "predict <x, theta_i> for every row (theta_i = beta + U w_i + b_i)");
  cmd->add_option("--model", *model_path, "trained model folder")->required();
  add_data_options(cmd, *data);
  cmd->add_option("--out,-o", *out, "predictions in the input's row order: .npy (n) or .csv (row,task,prediction)")->required();
  cmd->add_option("--unseen", *unseen,
                  "rows of tasks the model does not have: population (predicted with the population model, beta; adapt "
                  "fits such tasks) or error")
      ->check(CLI::IsMember({"population", "error"}))
      ->capture_default_str();
  cmd->callback([=] {
    const std::string kind = fs::path(*out).extension().string();
    if (kind != ".npy" && kind != ".csv")
      throw Error("--out " + *out + ": the file's name must end in .npy or .csv, the formats predict writes");
    check_outputs({{"--out", *out}});
    if (Communicator* comm = distributed_processes()) {
      // Each process predicts its shard's rows; rank 0 writes them all, in the folder's row order.
      if (comm->rank() != 0) std::cout.setstate(std::ios::badbit);
      with_mapped_shard(*data, *comm, [&](const auto& ds) {
        const Model part = model_part_for(*model_path, ds, *comm);
        const std::vector<double> pred = predict(part, ds.view());
        std::int64_t rows = static_cast<std::int64_t>(pred.size());
        if (fs::path(*out).extension() == ".csv") {
          std::ostringstream csv;
          csv.precision(17);
          if (comm->rank() == 0) csv << "row,task,prediction\n";
          for (std::int64_t i = 0; i < ds.t(); ++i)
            for (std::int64_t j = ds.task_offsets[i]; j < ds.task_offsets[i + 1]; ++j)
              csv << ds.first_row + j << "," << (ds.task_keys.empty() ? std::to_string(ds.first_task + i) : ds.task_keys[static_cast<std::size_t>(i)])
                  << "," << pred[static_cast<std::size_t>(j)] << "\n";
          write_text_file(*out, csv.str(), *comm);
        } else {
          write_npy(*out, pred, *comm);
        }
        comm->sum(&rows, 1);
        std::cout << "wrote " << rows << " predictions to " << *out << "\n";
      });
      return;
    }
    const Model model = load_model(*model_path);
    data->encoding = model.encoding.present ? &model.encoding : nullptr;
    data->target_optional = true;  // predictions need no target
    with_dataset(*data, [&](const auto& loaded) {
      // Tasks the model does not have: predicted with the population model, or refused.
      const auto [known, unseen_tasks] = split_unseen_tasks(loaded, model);
      if (unseen_tasks.t() > 0 && *unseen == "error")
        throw Error("task '" + unseen_tasks.task_keys.front() + "' is not in the model (" + std::to_string(unseen_tasks.t()) +
                    " such tasks; --unseen population predicts them with the population model, adapt fits them)");
      const auto ds = aligned_to_model(known, model);
      const std::vector<double> grouped = predict(model, ds.view());
      // Back to the input's row order (CSV and task_ids.npy inputs were regrouped by task); each
      // row keeps its number in the input (rows left out by --missing drop leave gaps).
      struct Predicted {
        std::int64_t row;
        std::string task;
        double value;
      };
      std::vector<Predicted> rows;
      rows.reserve(grouped.size() + static_cast<std::size_t>(unseen_tasks.n()));
      auto source_row = [](const auto& set, std::int64_t j) { return set.source_rows.empty() ? j : set.source_rows[static_cast<std::size_t>(j)]; };
      if (unseen_tasks.t() > 0) {
        const std::vector<double> population = model.population_theta();
        for (std::int64_t i = 0; i < unseen_tasks.t(); ++i)
          for (std::int64_t j = unseen_tasks.task_offsets[i]; j < unseen_tasks.task_offsets[i + 1]; ++j) {
            double value = 0.0;
            for (std::int64_t a = 0; a < unseen_tasks.d; ++a)
              value += static_cast<double>(unseen_tasks.X[static_cast<std::size_t>(j * unseen_tasks.d + a)]) * population[static_cast<std::size_t>(a)];
            rows.push_back({source_row(unseen_tasks, j), unseen_tasks.task_keys[static_cast<std::size_t>(i)], value});
          }
        std::cout << "note: " << unseen_tasks.n() << " rows of " << unseen_tasks.t()
                  << " tasks the model does not have were predicted with the population model (--unseen error refuses them)\n";
      }
      for (std::int64_t i = 0; i < ds.t(); ++i)
        for (std::int64_t j = ds.task_offsets[i]; j < ds.task_offsets[i + 1]; ++j)
          rows.push_back({source_row(ds, j), ds.task_keys.empty() ? std::to_string(i) : ds.task_keys[static_cast<std::size_t>(i)],
                          grouped[static_cast<std::size_t>(j)]});
      std::sort(rows.begin(), rows.end(), [](const Predicted& a, const Predicted& b) { return a.row < b.row; });
      for (std::size_t j = 1; j < rows.size(); ++j)
        if (rows[j].row == rows[j - 1].row) throw Error("predict: input row " + std::to_string(rows[j].row) + " was read twice");
      const std::size_t n = rows.size();
      std::vector<double> pred(n);
      for (std::size_t j = 0; j < n; ++j) pred[j] = rows[j].value;
      if (fs::path(*out).extension() == ".csv") {
        std::ostringstream csv;
        csv.precision(17);
        csv << "row,task,prediction\n";
        for (const Predicted& p : rows) csv << p.row << "," << p.task << "," << p.value << "\n";
        write_text_file_atomically(*out, csv.str());
      } else {
        write_npy(*out, pred.data(), {static_cast<std::int64_t>(n)});
      }
      std::cout << "wrote " << pred.size() << " predictions to " << *out << "\n";
    });
  });
}

void add_eval(CLI::App& app) {
  auto data = std::make_shared<DataArgs>();
  auto model_path = std::make_shared<std::string>();
  auto truth = std::make_shared<std::string>();
  auto json_out = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("eval", "mean squared error of a model on a data set (and its parameter error)");
  cmd->add_option("--model", *model_path, "trained model folder")->required();
  add_data_options(cmd, *data);
  cmd->add_option("--truth", *truth, "truth folder from generate (U.npy, W.npy, B.npy): report parameter error");
  cmd->add_option("--json", *json_out, "also write the results as JSON");
  cmd->callback([=] {
    check_outputs({{"--json", *json_out}});
    if (Communicator* comm = distributed_processes()) {
      // Each process evaluates its shard's rows; the sums give the whole data's MSE.
      if (comm->rank() != 0) std::cout.setstate(std::ios::badbit);
      if (!truth->empty())
        throw CollectiveError("--truth needs the whole model: compare the parameters in one process (without mpirun)");
      json result{{"model", *model_path}, {"data", data->path}, {"processes", comm->size()}};
      with_mapped_shard(*data, *comm, [&](const auto& ds) {
        const Model part = model_part_for(*model_path, ds, *comm);
        Evaluation ev = evaluate(part, ds.view());
        sum_evaluation(ev, *comm);
        result["mse"] = ev.mse;
        result["rmse"] = std::sqrt(ev.mse);
        result["rows"] = ev.rows;
        result["tasks"] = ds.folder_tasks;
        result["model_tasks"] = ds.folder_tasks;  // over many processes they must be the model's (model_part_for)
        std::cout << "rows " << ev.rows << "  tasks " << ds.folder_tasks << " (the model has " << ds.folder_tasks << ")  MSE " << ev.mse
                  << "  RMSE " << std::sqrt(ev.mse) << "\n";
      });
      if (!json_out->empty() && comm->rank() == 0) write_json_file(*json_out, result);
      return;
    }
    const Model model = load_model(*model_path);
    data->encoding = model.encoding.present ? &model.encoding : nullptr;
    json result{{"model", *model_path}, {"data", data->path}};
    with_dataset(*data, [&](const auto& loaded) {
      const auto ds = aligned_to_model(loaded, model);
      const Evaluation ev = evaluate(model, ds.view());
      result["mse"] = ev.mse;
      result["rmse"] = std::sqrt(ev.mse);
      result["rows"] = ev.rows;
      result["tasks"] = loaded.t();  // the file's tasks (the model may have more)
      result["model_tasks"] = model.t;
      // Each of the file's tasks: its key, rows and errors (in the model's order).
      json per_task = json::array();
      for (std::int64_t i = 0; i < ds.t(); ++i) {
        const std::int64_t rows = ds.task_offsets[static_cast<std::size_t>(i + 1)] - ds.task_offsets[static_cast<std::size_t>(i)];
        if (rows == 0) continue;
        const double mse = ev.task_mse[static_cast<std::size_t>(i)];
        per_task.push_back({{"task", ds.task_keys.empty() ? std::to_string(i) : ds.task_keys[static_cast<std::size_t>(i)]},
                            {"rows", rows}, {"mse", mse}, {"rmse", std::sqrt(mse)}});
      }
      result["per_task"] = per_task;
      std::cout << "rows " << ev.rows << "  tasks " << loaded.t() << " (the model has " << model.t << ")  MSE " << ev.mse << "  RMSE "
                << std::sqrt(ev.mse) << "\n";
    });
    if (!truth->empty()) {
      const SyntheticData t = load_truth(*truth);
      if (t.data.d != model.d || t.data.t() != model.t)
        throw Error(*truth + ": truth has d = " + std::to_string(t.data.d) + ", t = " + std::to_string(t.data.t()) +
                    "; the model d = " + std::to_string(model.d) + ", t = " + std::to_string(model.t));
      const double err = relative_error(model.theta_matrix(), t.theta());
      result["relative_parameter_error"] = err;
      std::cout << "relative parameter error ||Theta - Theta*||_F / ||Theta*||_F = " << err << "\n";
    }
    if (!json_out->empty()) write_json_file(*json_out, result);
  });
}

}  // namespace lrsmeta::cli
