// Model folders: U.npy, W.npy, B_index.npy, B_value.npy and model.json.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include <cstdio>
#include <cstring>
#include <memory>

#include "io/files.hpp"
#include "io/npy_stream.hpp"
#include "io/model_files.hpp"
#include "lrsmeta/io.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace lrsmeta {

namespace {
// 2: the empirical-Bayes prior (beta.npy, Sigma.npy, "prior" and "selection" in model.json). A
// reader of version 1 would predict without beta, so it must refuse these models.
constexpr int kModelFormatVersion = 2;
}  // namespace

namespace io {
json options_json(const Options& o) {
  return json{{"rank", o.rank},
              {"sparsity", o.sparsity},
              {"variant", to_string(o.variant)},
              {"iterations", o.iterations},
              {"inner_iterations", o.inner_iterations},
              {"warm_start_iterations", o.warm_start_iterations},
              {"ridge", o.ridge},
              {"task_ridge", o.task_ridge},
              {"step_size", o.step_size},
              {"init", to_string(o.init)},
              {"seed", o.seed},
              {"threads", o.threads},
              {"tolerance", o.tolerance},
              {"relative_tolerance", o.relative_tolerance},
              {"device", to_string(o.device)},
              {"u_solver", to_string(o.u_solver)},
              {"cg_tolerance", o.cg_tolerance},
              {"cg_forcing", o.cg_forcing},
              {"cg_max_steps", o.cg_max_steps},
              {"prior", to_string(o.prior)},
              {"sparse_prior_scale", o.sparse_prior_scale},
              {"support_threshold", o.support_threshold},
              {"covariance_shrinkage", o.covariance_shrinkage},
              {"population_prior", o.population_prior},
              {"validation_fraction", o.validation_fraction},
              {"selection_tasks", o.selection_tasks},
              {"selection_tolerance", o.selection_tolerance},
              {"selection", to_string(o.selection)},
              {"privacy",
               {{"enabled", o.privacy.enabled},
                {"epsilon", o.privacy.epsilon},
                {"delta", o.privacy.delta},
                {"clip_x", o.privacy.clip_x},
                {"clip_y", o.privacy.clip_y},
                {"clip_w", o.privacy.clip_w},
                {"max_samples", o.privacy.max_samples},
                {"noise_multiplier", o.privacy.noise_multiplier},
                {"fixed_seed", o.privacy.fixed_seed}}}};
}

Options options_from_json(const json& j) {
  Options o;
  o.rank = j.value("rank", o.rank);
  o.sparsity = j.value("sparsity", o.sparsity);
  o.variant = parse_variant(j.value("variant", std::string(to_string(o.variant))));
  o.iterations = j.value("iterations", o.iterations);
  o.inner_iterations = j.value("inner_iterations", o.inner_iterations);
  o.warm_start_iterations = j.value("warm_start_iterations", o.warm_start_iterations);
  o.ridge = j.value("ridge", o.ridge);
  o.task_ridge = j.value("task_ridge", o.task_ridge);
  o.step_size = j.value("step_size", o.step_size);
  o.init = parse_init(j.value("init", std::string(to_string(o.init))));
  o.seed = j.value("seed", o.seed);
  o.threads = j.value("threads", o.threads);
  o.tolerance = j.value("tolerance", o.tolerance);
  o.relative_tolerance = j.value("relative_tolerance", o.relative_tolerance);
  o.device = parse_device(j.value("device", std::string(to_string(o.device))));
  // Models written before the choice existed were solved directly.
  o.u_solver = parse_u_solver(j.value("u_solver", std::string("direct")));
  o.cg_tolerance = j.value("cg_tolerance", o.cg_tolerance);
  o.cg_forcing = j.value("cg_forcing", 0.0);  // models written before it existed solved every U step to cg_tolerance
  o.cg_max_steps = j.value("cg_max_steps", o.cg_max_steps);
  // Models written before the prior existed were fitted without one.
  o.prior = parse_prior(j.value("prior", std::string("none")));
  o.sparse_prior_scale = j.value("sparse_prior_scale", o.sparse_prior_scale);
  o.support_threshold = j.value("support_threshold", o.support_threshold);
  o.covariance_shrinkage = j.value("covariance_shrinkage", o.covariance_shrinkage);
  o.population_prior = j.value("population_prior", o.population_prior);
  o.validation_fraction = j.value("validation_fraction", o.validation_fraction);
  o.selection_tasks = j.value("selection_tasks", o.selection_tasks);
  o.selection_tolerance = j.value("selection_tolerance", o.selection_tolerance);
  // Models written before estimation existed chose on validation rows.
  o.selection = parse_selection(j.value("selection", std::string("validation")));
  if (j.contains("privacy")) {
    const json& p = j.at("privacy");
    o.privacy.enabled = p.value("enabled", false);
    o.privacy.epsilon = p.value("epsilon", o.privacy.epsilon);
    o.privacy.delta = p.value("delta", o.privacy.delta);
    o.privacy.clip_x = p.value("clip_x", o.privacy.clip_x);
    o.privacy.clip_y = p.value("clip_y", o.privacy.clip_y);
    o.privacy.clip_w = p.value("clip_w", o.privacy.clip_w);
    o.privacy.max_samples = p.value("max_samples", o.privacy.max_samples);
    o.privacy.noise_multiplier = p.value("noise_multiplier", o.privacy.noise_multiplier);
    o.privacy.fixed_seed = p.value("fixed_seed", false);
  }
  return o;
}
}  // namespace io

namespace {
using io::options_from_json;
using io::options_json;
// Infinite values (a private fit with no noise spends infinite epsilon) are written as null.
json finite_or_null(double x) { return std::isfinite(x) ? json(x) : json(nullptr); }

}  // namespace

static json privacy_json(const PrivacyReport& p) {
  if (!p.enabled) return json{{"enabled", false}};
  return json{{"enabled", true},
              {"epsilon_spent", finite_or_null(p.epsilon)},
              {"delta", p.delta},
              {"rho_zcdp", finite_or_null(p.rho)},
              {"noise_multiplier", p.noise_multiplier},
              {"releases", p.releases},
              {"sensitivity_G", p.sensitivity_G},
              {"sensitivity_v", p.sensitivity_v},
              {"sigma_G", p.sigma_G},
              {"sigma_v", p.sigma_v},
              {"ridge", p.ridge},
              {"fixed_seed", p.fixed_seed},
              {"guarantee", p.fixed_seed ? "none: the noise seed was fixed" : "user-level (epsilon, delta)-DP of U"}};
}

std::string model_json(const Model& m) {
  json history = json::array();
  for (const IterationInfo& h : m.history)
    history.push_back({{"iteration", h.iteration},
                       {"training_loss", h.training_loss},
                       {"u_change", h.u_change},
                       {"elapsed_seconds", h.elapsed_seconds},
                       {"task_step_seconds", h.task_step_seconds},
                       {"u_step_seconds", h.u_step_seconds},
                       {"sparsity_in_effect", h.sparsity_in_effect},
                       {"noise_variance", h.noise_variance},
                       {"u_solver_steps", h.u_solver_steps},
                       {"u_solver_residual", h.u_solver_residual},
                       {"log_evidence", h.log_evidence}});
  json j{{"format", "lrsmeta-model"},
         {"format_version", kModelFormatVersion},
         {"lrsmeta_version", version()},
         {"d", m.d},
         {"r", m.r},
         {"k", m.k},
         {"t", m.t},
         {"options", options_json(m.options)},
         {"history", history},
         {"files", {{"U", "U.npy"}, {"W", "W.npy"}, {"B_index", "B_index.npy"}, {"B_value", "B_value.npy"}}}};
  j["privacy"] = privacy_json(m.privacy);
  if (m.has_prior()) {
    j["files"]["beta"] = "beta.npy";
    j["files"]["Sigma"] = "Sigma.npy";
    j["prior"] = {{"model", "auto"},
                  {"noise_variance", m.noise_variance},
                  {"sparse_prior_variance", m.sparse_prior_variance},
                  {"support_threshold", m.support_threshold},
                  {"covariance_shrinkage", m.covariance_shrinkage},
                  {"log_evidence", m.log_evidence},
                  {"support_inclusion_probability", m.support_inclusion_probability},
                  {"Sigma", m.Sigma}};
  } else {
    j["prior"] = {{"model", "none"}};
  }
  auto candidate_json = [](const SelectionCandidate& c) {
    return json{{"rank", c.rank}, {"sparsity", c.sparsity}, {"sparse_prior_scale", c.sparse_prior_scale},
                {"support_threshold", c.support_threshold},
                {"covariance_shrinkage", c.covariance_shrinkage},
                {"refitted", c.refitted},
                {"validation_mse", finite_or_null(c.validation_mse)},
                {"log_evidence", finite_or_null(c.log_evidence)},
                {"sparse_prior_variance", c.sparse_prior_variance},
                {"iterations", c.iterations}};
  };
  json selection{{"performed", m.selection.performed}};
  if (m.selection.performed) {
    selection["method"] = to_string(m.selection.method);
    json tried = json::array();
    for (const SelectionCandidate& c : m.selection.candidates) tried.push_back(candidate_json(c));
    selection["rank_auto"] = m.selection.rank_auto;
    selection["sparsity_auto"] = m.selection.sparsity_auto;
    selection["sparse_prior_scale_auto"] = m.selection.sparse_prior_scale_auto;
    selection["support_threshold_auto"] = m.selection.support_threshold_auto;
    selection["covariance_shrinkage_auto"] = m.selection.covariance_shrinkage_auto;
    selection["tasks"] = m.selection.tasks;
    selection["fit_rows"] = m.selection.fit_rows;
    selection["validation_rows"] = m.selection.validation_rows;
    selection["chosen"] = candidate_json(m.selection.chosen);
    selection["candidates"] = tried;
  }
  j["selection"] = selection;
  if (!m.notes.empty()) j["notes"] = m.notes;
  if (m.encoding.present) j["csv_encoding"] = io::encoding_json(m.encoding);
  if (!m.task_keys.empty()) j["task_keys"] = m.task_keys;
  if (!m.feature_names.empty()) j["feature_names"] = m.feature_names;
  return j.dump(2) + "\n";
}

namespace io {
json encoding_json(const FeatureEncoding& encoding) {
  json columns = json::array();
  for (const FeatureColumn& c : encoding.columns) {
    json col{{"name", c.name}, {"type", c.levels.empty() ? "numeric" : "one-hot"}};
    if (!c.levels.empty()) col["levels"] = c.levels;
    columns.push_back(col);
  }
  return {{"intercept", encoding.intercept}, {"columns", columns}, {"ignored", encoding.ignored}};
}

FeatureEncoding encoding_from_json(const json& e) {
  FeatureEncoding encoding;
  encoding.present = true;
  encoding.intercept = e.at("intercept").get<bool>();
  for (const json& c : e.at("columns")) {
    FeatureColumn col;
    col.name = c.at("name").get<std::string>();
    if (c.contains("levels")) col.levels = c.at("levels").get<std::vector<std::string>>();
    encoding.columns.push_back(std::move(col));
  }
  encoding.ignored = e.value("ignored", std::vector<std::string>{});
  return encoding;
}

namespace {
// The files of a model that are not per task: U.npy, beta.npy and Sigma.npy with a prior, and
// model.json (written last); their names are added to `names`.
void write_shared_model_files(const Model& model, const fs::path& dir, std::vector<std::string>& names) {
  write_npy((dir / "U.npy").string(), model.U.data(), {model.d, model.r});
  names.push_back("U.npy");
  if (model.has_prior()) {
    write_npy((dir / "beta.npy").string(), model.beta.data(), {model.d});
    write_npy((dir / "Sigma.npy").string(), model.Sigma.data(), {model.r, model.r});
    names.push_back("beta.npy");
    names.push_back("Sigma.npy");
  }
  write_text_file_atomically((dir / "model.json").string(), model_json(model));
  names.push_back("model.json");
}
}  // namespace

std::vector<std::string> write_model_files(const Model& model, const std::string& folder) {
  const fs::path dir(folder);
  std::vector<std::string> names{"W.npy", "B_index.npy", "B_value.npy"};
  write_npy((dir / "W.npy").string(), model.W.data(), {model.t, model.r});
  write_npy((dir / "B_index.npy").string(), model.B_index.data(), {model.t, model.k});
  write_npy((dir / "B_value.npy").string(), model.B_value.data(), {model.t, model.k});
  write_shared_model_files(model, dir, names);
  return names;
}
}  // namespace io

void save_model(const Model& model, const std::string& path) {
  model.validate();
  const std::string staged = io::temporary_sibling(path);
  std::error_code ec;
  fs::create_directories(staged, ec);
  if (ec) throw Error(path + ": cannot create a folder beside it (" + ec.message() + ")");
  try {
    io::write_model_files(model, staged);
  } catch (...) {
    fs::remove_all(staged, ec);
    throw;
  }
  io::install_folder(staged, path, "model.json");
}

namespace {
// Rank 0 appends every process's `local` elements, in rank order, to `writer` (null elsewhere);
// pieces arrive cut anywhere, so bytes wait in `pending` until an element is whole. After a
// failure rank 0 keeps receiving (the others must finish sending) and writes nothing more.
template <typename T>
void stream_array(Communicator& comm, const std::vector<T>& local, io::NpyStreamWriter* writer, std::string& failure) {
  std::string pending;
  comm.stream_to_root(reinterpret_cast<const char*>(local.data()), local.size() * sizeof(T),
                      [&](int, const char* piece, std::size_t size) {
                        if (!failure.empty()) return;
                        try {
                          pending.append(piece, size);
                          const std::size_t whole = pending.size() / sizeof(T);
                          if (whole == 0) return;
                          std::vector<T> values(whole);
                          std::memcpy(values.data(), pending.data(), whole * sizeof(T));
                          writer->append(values.data(), static_cast<std::int64_t>(whole));
                          pending.erase(0, whole * sizeof(T));
                        } catch (const std::exception& e) {
                          failure = e.what();
                        }
                      });
}
}  // namespace

void write_npy(const std::string& path, const std::vector<double>& local, Communicator& comm) {
  std::int64_t total = static_cast<std::int64_t>(local.size());
  comm.sum(&total, 1);
  std::string failure;
  const std::string tmp = comm.rank() == 0 ? io::temporary_sibling(path) : std::string();
  std::unique_ptr<io::NpyStreamWriter> writer;
  if (comm.rank() == 0) {
    try {
      writer = std::make_unique<io::NpyStreamWriter>(tmp, DType::f64, std::vector<std::int64_t>{total});
    } catch (const std::exception& e) {
      failure = e.what();
    }
  }
  stream_array(comm, local, writer.get(), failure);
  if (comm.rank() == 0) {
    try {
      if (failure.empty()) {
        writer->finish();
        writer.reset();
        if (std::rename(tmp.c_str(), path.c_str()) != 0) throw Error(path + ": cannot rename into place (" + std::strerror(errno) + ")");
      }
    } catch (const std::exception& e) {
      failure = e.what();
    }
    writer.reset();
    if (!failure.empty()) std::remove(tmp.c_str());
  }
  const std::string first = comm.first_error(failure);
  if (!first.empty()) throw CollectiveError(first);
}

void write_text_file(const std::string& path, const std::string& local, Communicator& comm) {
  std::string failure;
  const std::string tmp = comm.rank() == 0 ? io::temporary_sibling(path) : std::string();
  std::ofstream out;
  if (comm.rank() == 0) {
    out.open(tmp, std::ios::binary | std::ios::trunc);
    if (!out) failure = path + ": cannot open for writing (" + std::strerror(errno) + ")";
  }
  comm.stream_to_root(local.data(), local.size(), [&](int, const char* piece, std::size_t size) {
    if (failure.empty() && !out.write(piece, static_cast<std::streamsize>(size))) failure = path + ": write failed (disk full?)";
  });
  if (comm.rank() == 0) {
    out.close();
    if (failure.empty() && !out) failure = path + ": write failed (disk full?)";
    if (failure.empty() && std::rename(tmp.c_str(), path.c_str()) != 0)
      failure = path + ": cannot rename into place (" + std::strerror(errno) + ")";
    if (!failure.empty()) std::remove(tmp.c_str());
  }
  const std::string first = comm.first_error(failure);
  if (!first.empty()) throw CollectiveError(first);
}

namespace io {
std::vector<std::string> write_model_files(const Model& model, const std::string& folder, Communicator& comm) {
  std::string failure;
  try {
    model.validate();
  } catch (const std::exception& e) {
    failure = e.what();
  }
  std::string first = comm.first_error(failure);
  if (!first.empty()) throw CollectiveError(first);
  std::int64_t t_all = model.t;
  comm.sum(&t_all, 1);
  // The task keys, length-prefixed (a key may hold any byte), where the data had them.
  std::string keys;
  for (const std::string& key : model.task_keys) {
    const std::uint64_t length = key.size();
    keys.append(reinterpret_cast<const char*>(&length), sizeof length);
    keys += key;
  }
  const bool root = comm.rank() == 0;
  const fs::path dir(folder);
  std::vector<std::string> names;
  std::vector<std::string> all_keys;
  std::unique_ptr<NpyStreamWriter> writer;
  auto open = [&](const char* name, DType dtype, std::int64_t columns) {
    writer.reset();
    if (!root || !failure.empty()) return;
    try {
      writer = std::make_unique<NpyStreamWriter>((dir / name).string(), dtype, std::vector<std::int64_t>{t_all, columns});
      names.push_back(name);
    } catch (const std::exception& e) {
      failure = e.what();
    }
  };
  auto close = [&] {
    if (!writer || !failure.empty()) return;
    try {
      writer->finish();
    } catch (const std::exception& e) {
      failure = e.what();
    }
  };
  open("W.npy", DType::f64, model.r);
  stream_array(comm, model.W, writer.get(), failure);
  close();
  open("B_index.npy", DType::i32, model.k);
  stream_array(comm, model.B_index, writer.get(), failure);
  close();
  open("B_value.npy", DType::f64, model.k);
  stream_array(comm, model.B_value, writer.get(), failure);
  close();
  writer.reset();
  std::string pending;
  comm.stream_to_root(keys.data(), keys.size(), [&](int, const char* piece, std::size_t size) {
    pending.append(piece, size);
    while (pending.size() >= sizeof(std::uint64_t)) {
      std::uint64_t length = 0;
      std::memcpy(&length, pending.data(), sizeof length);
      if (pending.size() < sizeof length + length) break;
      all_keys.push_back(pending.substr(sizeof length, length));
      pending.erase(0, sizeof length + length);
    }
  });
  if (root && failure.empty()) {
    try {
      if (!all_keys.empty() && static_cast<std::int64_t>(all_keys.size()) != t_all)
        throw Error("save_model: some processes' tasks have keys and some do not");
      Model header = model;  // U, the prior, the history: the same on every process
      header.t = t_all;
      header.task_keys = std::move(all_keys);
      write_shared_model_files(header, dir, names);
    } catch (const std::exception& e) {
      failure = e.what();
    }
  }
  first = comm.first_error(failure);
  if (!first.empty()) throw CollectiveError(first);
  return names;
}
}  // namespace io

void save_model(const Model& model, const std::string& path, Communicator& comm) {
  const bool root = comm.rank() == 0;
  std::string failure;
  const std::string staged = root ? io::temporary_sibling(path) : std::string();
  if (root) {
    std::error_code ec;
    fs::create_directories(staged, ec);
    if (ec) failure = path + ": cannot create a folder beside it (" + ec.message() + ")";
  }
  const std::string first = comm.first_error(failure);
  if (!first.empty()) throw CollectiveError(first);
  auto remove_staged = [&] {
    std::error_code ec;
    if (root) fs::remove_all(staged, ec);
  };
  try {
    io::write_model_files(model, staged, comm);
  } catch (...) {
    remove_staged();
    throw;
  }
  if (root) {
    try {
      io::install_folder(staged, path, "model.json");
    } catch (const std::exception& e) {
      failure = e.what();
      remove_staged();
    }
  }
  const std::string installed = comm.first_error(failure);
  if (!installed.empty()) throw CollectiveError(installed);
}

namespace {
// The model folder, with the (w, b) of tasks first .. first + count - 1 only (count < 0: all).
Model load_model_part(const std::string& path, std::int64_t first, std::int64_t count, std::int64_t* all_tasks) {
  const fs::path dir(path);
  if (!fs::is_directory(dir)) throw Error(path + ": not a model folder");
  std::ifstream in(dir / "model.json");
  if (!in) throw Error(path + ": no model.json (not a model folder?)");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    throw Error((dir / "model.json").string() + ": not valid JSON (" + e.what() + ")");
  }
  Model m;
  try {
    if (j.value("format", std::string()) != "lrsmeta-model") throw Error((dir / "model.json").string() + ": not an lrsmeta model");
    if (j.at("format_version").get<int>() > kModelFormatVersion)
      throw Error((dir / "model.json").string() + ": model format version " + std::to_string(j.at("format_version").get<int>()) +
                  " is newer than this lrsmeta supports (" + std::to_string(kModelFormatVersion) + ")");
    m.d = j.at("d").get<std::int64_t>();
    m.r = j.at("r").get<std::int64_t>();
    m.k = j.at("k").get<std::int64_t>();
    m.t = j.at("t").get<std::int64_t>();
    // An unknown name (a variant, a prior, a selection) is refused naming the file.
    auto named = [&](const char* what, auto&& parse) {
      try {
        parse();
      } catch (const json::exception&) {
        throw;
      } catch (const Error& e) {
        throw Error((dir / "model.json").string() + ": " + what + ": " + e.what());
      }
    };
    if (j.contains("options")) named("options", [&] { m.options = options_from_json(j.at("options")); });
    for (const json& h : j.value("history", json::array())) {
      IterationInfo info;
      info.iteration = h.value("iteration", 0);
      info.training_loss = h.value("training_loss", 0.0);
      info.u_change = h.value("u_change", 0.0);
      info.elapsed_seconds = h.value("elapsed_seconds", 0.0);
      info.task_step_seconds = h.value("task_step_seconds", 0.0);
      info.u_step_seconds = h.value("u_step_seconds", 0.0);
      info.sparsity_in_effect = h.value("sparsity_in_effect", 0);
      info.noise_variance = h.value("noise_variance", 0.0);
      info.u_solver_steps = h.value("u_solver_steps", 0);
      info.u_solver_residual = h.value("u_solver_residual", 0.0);
      info.log_evidence = h.value("log_evidence", 0.0);
      m.history.push_back(info);
    }
    if (j.contains("privacy") && j.at("privacy").value("enabled", false)) {
      const json& p = j.at("privacy");
      auto number = [&](const char* key) {
        return p.contains(key) && p.at(key).is_number() ? p.at(key).get<double>() : INFINITY;
      };
      m.privacy.enabled = true;
      m.privacy.epsilon = number("epsilon_spent");
      m.privacy.delta = p.value("delta", 0.0);
      m.privacy.rho = number("rho_zcdp");
      m.privacy.noise_multiplier = p.value("noise_multiplier", 0.0);
      m.privacy.releases = p.value("releases", 0);
      m.privacy.sensitivity_G = p.value("sensitivity_G", 0.0);
      m.privacy.sensitivity_v = p.value("sensitivity_v", 0.0);
      m.privacy.sigma_G = p.value("sigma_G", 0.0);
      m.privacy.sigma_v = p.value("sigma_v", 0.0);
      m.privacy.ridge = p.value("ridge", 0.0);
      m.privacy.fixed_seed = p.value("fixed_seed", false);
    }
    const bool has_prior = j.contains("prior") && j.at("prior").value("model", std::string("none")) == "auto";
    if (has_prior) {
      m.noise_variance = j.at("prior").at("noise_variance").get<double>();
      m.sparse_prior_variance = j.at("prior").at("sparse_prior_variance").get<double>();
      m.support_threshold = j.at("prior").value("support_threshold", 0.0);
      m.covariance_shrinkage = j.at("prior").value("covariance_shrinkage", 0.0);
      m.log_evidence = j.at("prior").value("log_evidence", 0.0);
      m.support_inclusion_probability = j.at("prior").value("support_inclusion_probability", 0.0);
    }
    if (j.contains("selection") && j.at("selection").value("performed", false)) {
      const json& sj = j.at("selection");
      auto candidate = [](const json& c) {
        SelectionCandidate out;
        out.rank = c.at("rank").get<int>();
        out.sparsity = c.at("sparsity").get<int>();
        out.sparse_prior_scale = c.at("sparse_prior_scale").get<double>();
        out.support_threshold = c.value("support_threshold", 0.0);
        out.covariance_shrinkage = c.value("covariance_shrinkage", 0.0);
        out.refitted = c.value("refitted", false);
        out.validation_mse = c.at("validation_mse").is_number() ? c.at("validation_mse").get<double>() : INFINITY;
        out.log_evidence = c.contains("log_evidence") && c.at("log_evidence").is_number() ? c.at("log_evidence").get<double>() : std::nan("");
        out.sparse_prior_variance = c.value("sparse_prior_variance", 0.0);
        out.iterations = c.value("iterations", 0);
        return out;
      };
      m.selection.performed = true;
      named("selection", [&] { m.selection.method = parse_selection(sj.value("method", std::string("validation"))); });
      m.selection.rank_auto = sj.value("rank_auto", false);
      m.selection.sparsity_auto = sj.value("sparsity_auto", false);
      m.selection.sparse_prior_scale_auto = sj.value("sparse_prior_scale_auto", false);
      m.selection.support_threshold_auto = sj.value("support_threshold_auto", false);
      m.selection.covariance_shrinkage_auto = sj.value("covariance_shrinkage_auto", false);
      m.selection.tasks = sj.value("tasks", std::int64_t{0});
      m.selection.fit_rows = sj.value("fit_rows", std::int64_t{0});
      m.selection.validation_rows = sj.value("validation_rows", std::int64_t{0});
      m.selection.chosen = candidate(sj.at("chosen"));
      for (const json& c : sj.at("candidates")) m.selection.candidates.push_back(candidate(c));
    }
    if (j.contains("notes")) m.notes = j.at("notes").get<std::vector<std::string>>();
    if (j.contains("csv_encoding")) {
      m.encoding = io::encoding_from_json(j.at("csv_encoding"));
      if (static_cast<std::int64_t>(encoded_feature_names(m.encoding).size()) != m.d)
        throw Error((dir / "model.json").string() + ": csv_encoding gives " + std::to_string(encoded_feature_names(m.encoding).size()) +
                    " features, the model has d = " + std::to_string(m.d));
    }
    if (j.contains("task_keys")) m.task_keys = j.at("task_keys").get<std::vector<std::string>>();
    if (all_tasks) *all_tasks = m.t;
    if (count >= 0) {
      if (first < 0 || first + count > m.t)
        throw Error(path + ": tasks " + std::to_string(first) + " .. " + std::to_string(first + count) + " are outside its " +
                    std::to_string(m.t));
      if (!m.task_keys.empty()) m.task_keys = std::vector<std::string>(m.task_keys.begin() + first, m.task_keys.begin() + first + count);
    }
    if (j.contains("feature_names")) m.feature_names = j.at("feature_names").get<std::vector<std::string>>();
  } catch (const json::exception& e) {
    throw Error((dir / "model.json").string() + ": " + e.what());
  }
  auto load = [&](const char* name, auto& into, std::int64_t rows, std::int64_t cols) {
    using V = typename std::decay_t<decltype(into)>::value_type;
    std::vector<std::int64_t> shape;
    into = read_npy_as<V>((dir / name).string(), &shape);
    const bool ok = shape.size() == 2 && shape[0] == rows && shape[1] == cols;
    if (!ok) {
      std::string got;
      for (auto s : shape) got += (got.empty() ? "" : " x ") + std::to_string(s);
      throw Error((dir / name).string() + ": shape " + got + ", model.json says " + std::to_string(rows) + " x " + std::to_string(cols));
    }
  };
  // Rows first .. first + count - 1 of a t x cols per-task array, read alone.
  auto load_rows = [&](const char* name, auto& into, std::int64_t cols) {
    using V = typename std::decay_t<decltype(into)>::value_type;
    std::vector<std::int64_t> shape;
    into = io::read_npy_range<V>((dir / name).string(), first * cols, count * cols, &shape);
    if (shape.size() != 2 || shape[0] != m.t || shape[1] != cols)
      throw Error((dir / name).string() + ": its shape does not match model.json's " + std::to_string(m.t) + " x " + std::to_string(cols));
  };
  load("U.npy", m.U, m.d, m.r);
  if (count < 0) {
    load("W.npy", m.W, m.t, m.r);
    load("B_index.npy", m.B_index, m.t, m.k);
    load("B_value.npy", m.B_value, m.t, m.k);
  } else {
    load_rows("W.npy", m.W, m.r);
    load_rows("B_index.npy", m.B_index, m.k);
    load_rows("B_value.npy", m.B_value, m.k);
    m.t = count;
  }
  if (j.contains("prior") && j.at("prior").value("model", std::string("none")) == "auto") {
    std::vector<std::int64_t> shape;
    m.beta = read_npy_as<double>((dir / "beta.npy").string(), &shape);
    if (shape.size() != 1 || shape[0] != m.d)
      throw Error((dir / "beta.npy").string() + ": expected " + std::to_string(m.d) + " entries (d)");
    load("Sigma.npy", m.Sigma, m.r, m.r);
  }
  m.validate();
  return m;
}
}  // namespace

Model load_model(const std::string& path) { return load_model_part(path, 0, -1, nullptr); }

Model load_model_tasks(const std::string& path, std::int64_t first, std::int64_t count, std::int64_t* all_tasks) {
  if (count < 0) throw Error(path + ": a negative number of tasks to load");
  return load_model_part(path, first, count, all_tasks);
}

}  // namespace lrsmeta
