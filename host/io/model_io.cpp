// Model folders: U.npy, W.npy, B_index.npy, B_value.npy and model.json.
#include <algorithm>
#include <cmath>
#include <limits>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include <cstdio>
#include <cstring>
#include <memory>

#include "core/checked_size.hpp"
#include "core/option_fields.hpp"
#include "io/files.hpp"
#include "io/json_fields.hpp"
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
// The options as the table lists them (core/option_fields.hpp): raw values, those left to the
// library included (-1 for an estimated scale, as the fit's own options hold them; "auto" for r or
// k left to be chosen, Options::kAuto, which a checkpoint's asked options may hold).
json options_json(const Options& o) {
  json out = json::object();
  Options& m = const_cast<Options&>(o);  // read only
  for (const core::OptionField& f : core::option_fields()) {
    json value;
    if (f.json_presence) value = !f.is_unset(o);
    else if (f.int_field) value = f.int_field(m) == Options::kAuto ? json("auto") : json(f.int_field(m));
    else if (f.int64_field) value = f.int64_field(m);
    else if (f.uint64_field) value = f.uint64_field(m);
    else if (f.number_field) value = f.number_field(m);
    else if (f.flag_field) value = f.flag_field(m);
    else value = f.get_choice(o);
    (f.spec.group.empty() ? out : out[f.spec.group])[f.json_name] = std::move(value);
  }
  return out;
}

Options options_from_json(const JsonFields& j) {
  Options o;
  const bool has_privacy = j.has("privacy");
  const json empty = json::object();
  const JsonFields none(empty, j.file(), "options.privacy.");
  const JsonFields privacy = has_privacy ? j.object("privacy") : none;
  for (const core::OptionField& f : core::option_fields()) {
    const JsonFields& in = f.spec.group.empty() ? j : privacy;
    const char* key = f.json_name.c_str();
    if (!in.has(key)) {
      // Written before the option existed: what the fit did then (json_before), else the default.
      if (!f.json_before.empty() && !f.json_presence) core::set_text(o, f, f.json_before, "");
      continue;
    }
    if (f.json_presence) {
      if (!in.boolean(key)) f.make_unset(o);
      else o.privacy.fixed_seed = true;  // the seed itself is never recorded
    } else if (f.int_field) {
      // r or k left to be chosen (Options::kAuto, in a checkpoint's asked options): "auto", or as
      // earlier checkpoints wrote it, kAuto's own value.
      const nlohmann::json& raw = in.raw(key);
      Options unset;
      const bool takes_auto = f.make_unset && (f.make_unset(unset), f.int_field(unset) == Options::kAuto);
      if (takes_auto && ((raw.is_string() && raw.get<std::string>() == "auto") ||
                         (raw.is_number_integer() && raw.get<std::int64_t>() == Options::kAuto))) {
        f.make_unset(o);
        continue;
      }
      f.int_field(o) = static_cast<int>(in.integer(key, 0, std::numeric_limits<int>::max()));
    } else if (f.int64_field) {
      f.int64_field(o) = in.integer(key, 0, std::numeric_limits<std::int64_t>::max());
    } else if (f.uint64_field) {
      f.uint64_field(o) = in.unsigned_integer(key);
    } else if (f.number_field) {
      f.number_field(o) = in.number(key);
    } else if (f.flag_field) {
      f.flag_field(o) = in.boolean(key);
    } else {
      f.set_choice(o, in.text(key));
    }
  }
  return o;
}
}  // namespace io

namespace {
using io::JsonFields;
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
                       {"log_evidence", h.log_evidence},
                       {"covariance_shrinkage", h.covariance_shrinkage}});
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
                {"score", finite_or_null(c.score)},
                {"sparse_prior_variance", c.sparse_prior_variance},
                {"iterations", c.iterations},
                {"abandoned", c.abandoned},
                {"ahead", c.ahead},
                {"reach_log_evidence", finite_or_null(c.reach_log_evidence)},
                {"low_rank_basis", to_string(c.low_rank_basis)}};
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
    selection["folds"] = m.selection.folds;
    selection["chosen"] = candidate_json(m.selection.chosen);
    selection["candidates"] = tried;
  }
  j["selection"] = selection;
  if (!m.notes.empty()) j["notes"] = m.notes;
  j["converged"] = m.converged;
  if (m.encoding.present) j["csv_encoding"] = io::encoding_json(m.encoding);
  if (!m.task_keys.empty()) j["task_keys"] = m.task_keys;
  if (!m.feature_names.empty()) j["feature_names"] = m.feature_names;
  if (!m.feature_scales.empty()) j["feature_scales"] = m.feature_scales;
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
  json out{{"intercept", encoding.intercept}, {"columns", columns}, {"ignored", encoding.ignored}};
  if (!encoding.notes.empty()) out["notes"] = encoding.notes;
  if (!encoding.target.empty()) out["target"] = encoding.target;
  if (!encoding.task.empty()) out["task"] = encoding.task;
  return out;
}

FeatureEncoding encoding_from_json(const JsonFields& e) {
  FeatureEncoding encoding;
  encoding.present = true;
  encoding.intercept = e.boolean("intercept");
  const json& columns = e.raw("columns");
  if (!columns.is_array()) e.fail("columns", "expected an array");
  for (std::size_t i = 0; i < columns.size(); ++i) {
    const JsonFields c(columns[i], e.file(), "csv_encoding.columns[" + std::to_string(i) + "].");
    FeatureColumn col;
    col.name = c.text("name");
    col.levels = c.texts("levels", {});
    encoding.columns.push_back(std::move(col));
  }
  encoding.ignored = e.texts("ignored", {});
  encoding.notes = e.texts("notes", {});
  encoding.target = e.text("target", "");  // (recorded since the columns are remembered)
  encoding.task = e.text("task", "");
  return encoding;
}

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
// The model folder, with the (w, b) of tasks first .. first + count - 1 only (count < 0: all).
Model load_model_part(const std::string& path, std::int64_t first, std::int64_t count, std::int64_t* all_tasks) try {
  const fs::path dir(path);
  if (!fs::is_directory(dir)) throw Error(path + ": not a model folder");
  std::ifstream in(dir / "model.json");
  if (!in || !fs::is_regular_file(dir / "model.json")) throw Error(path + ": no model.json (not a model folder?)");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    throw Error((dir / "model.json").string() + ": not valid JSON (" + e.what() + ")");
  }
  Model m;
  const std::string json_file = (dir / "model.json").string();
  try {
    const JsonFields f(j, json_file);
    if (f.text("format", "") != "lrsmeta-model") throw Error(json_file + ": not an lrsmeta model");
    const std::int64_t version_found = f.integer("format_version", 1, std::numeric_limits<std::int64_t>::max());
    if (version_found > kModelFormatVersion)
      throw Error(json_file + ": model format version " + std::to_string(version_found) + " is newer than this lrsmeta supports (" +
                  std::to_string(kModelFormatVersion) + ")");
    // Counts are checked here, before any file is read for them: d within what a fit accepts, r and
    // k within d, and the arrays' sizes (t x r and so on) within a 64-bit count.
    m.d = f.integer("d", 1, std::int64_t{1} << 30);
    m.r = f.integer("r", 0, m.d);
    m.k = f.integer("k", 0, m.d);
    m.t = f.integer("t", 0, std::numeric_limits<std::int64_t>::max());
    core::product_or_throw({m.t, std::max(m.r, m.k)}, json_file + ": t x max(r, k)");
    // An unknown name (a variant, a prior, a selection) is refused naming the file.
    auto named = [&](const char* what, auto&& parse) {
      try {
        parse();
      } catch (const Error& e) {
        const std::string text = e.what();
        if (text.rfind(json_file, 0) == 0) throw;
        throw Error(json_file + ": " + what + ": " + text);
      }
    };
    if (f.has("options")) named("options", [&] { m.options = options_from_json(f.object("options")); });
    const json& history = f.has("history") ? f.raw("history") : json::array();
    if (!history.is_array()) f.fail("history", "expected an array");
    for (std::size_t i = 0; i < history.size(); ++i) {
      const JsonFields h(history[i], json_file, "history[" + std::to_string(i) + "].");
      IterationInfo info;
      info.iteration = h.small_integer("iteration", 0);
      info.training_loss = h.number("training_loss", 0.0);
      info.u_change = h.number("u_change", 0.0);
      info.elapsed_seconds = h.number("elapsed_seconds", 0.0);
      info.task_step_seconds = h.number("task_step_seconds", 0.0);
      info.u_step_seconds = h.number("u_step_seconds", 0.0);
      info.sparsity_in_effect = h.small_integer("sparsity_in_effect", 0);
      info.noise_variance = h.number("noise_variance", 0.0);
      info.u_solver_steps = h.small_integer("u_solver_steps", 0);
      info.u_solver_residual = h.number("u_solver_residual", 0.0);
      info.log_evidence = h.number("log_evidence", 0.0);
      info.covariance_shrinkage = h.number("covariance_shrinkage", 0.0);
      m.history.push_back(info);
    }
    if (f.has("privacy") && f.object("privacy").boolean("enabled", false)) {
      const JsonFields p = f.object("privacy");
      m.privacy.enabled = true;
      m.privacy.epsilon = p.number_or_null("epsilon_spent", INFINITY);
      m.privacy.delta = p.number("delta", 0.0);
      m.privacy.rho = p.number_or_null("rho_zcdp", INFINITY);
      m.privacy.noise_multiplier = p.number("noise_multiplier", 0.0);
      m.privacy.releases = p.small_integer("releases", 0);
      m.privacy.sensitivity_G = p.number("sensitivity_G", 0.0);
      m.privacy.sensitivity_v = p.number("sensitivity_v", 0.0);
      m.privacy.sigma_G = p.number("sigma_G", 0.0);
      m.privacy.sigma_v = p.number("sigma_v", 0.0);
      m.privacy.ridge = p.number("ridge", 0.0);
      m.privacy.fixed_seed = p.boolean("fixed_seed", false);
    }
    const bool has_prior = f.has("prior") && f.object("prior").text("model", "none") == "auto";
    if (has_prior) {
      const JsonFields p = f.object("prior");
      m.noise_variance = p.number("noise_variance");
      m.sparse_prior_variance = p.number("sparse_prior_variance");
      m.support_threshold = p.number("support_threshold", 0.0);
      m.covariance_shrinkage = p.number("covariance_shrinkage", 0.0);
      m.log_evidence = p.number("log_evidence", 0.0);
      m.support_inclusion_probability = p.number("support_inclusion_probability", 0.0);
    }
    if (f.has("selection") && f.object("selection").boolean("performed", false)) {
      const JsonFields sj = f.object("selection");
      auto candidate = [&](const JsonFields& c) {
        SelectionCandidate out;
        out.rank = c.small_integer("rank");
        out.sparsity = c.small_integer("sparsity");
        out.sparse_prior_scale = c.number("sparse_prior_scale");
        out.support_threshold = c.number("support_threshold", 0.0);
        out.covariance_shrinkage = c.number("covariance_shrinkage", 0.0);
        out.refitted = c.boolean("refitted", false);
        out.validation_mse = c.number_or_null("validation_mse", INFINITY);
        out.log_evidence = c.number_or_null("log_evidence", std::nan(""));
        out.score = c.number_or_null("score", std::nan(""));  // absent from models of earlier versions
        out.sparse_prior_variance = c.number("sparse_prior_variance", 0.0);
        out.iterations = c.small_integer("iterations", 0);
        out.abandoned = c.boolean("abandoned", false);
        out.ahead = c.boolean("ahead", false);
        out.reach_log_evidence = c.number_or_null("reach_log_evidence", std::nan(""));
        named("low_rank_basis", [&] { out.low_rank_basis = parse_low_rank_basis(c.text("low_rank_basis", "learned")); });
        return out;
      };
      m.selection.performed = true;
      named("selection", [&] { m.selection.method = parse_selection(sj.text("method", "validation")); });
      m.selection.rank_auto = sj.boolean("rank_auto", false);
      m.selection.sparsity_auto = sj.boolean("sparsity_auto", false);
      m.selection.sparse_prior_scale_auto = sj.boolean("sparse_prior_scale_auto", false);
      m.selection.support_threshold_auto = sj.boolean("support_threshold_auto", false);
      m.selection.covariance_shrinkage_auto = sj.boolean("covariance_shrinkage_auto", false);
      m.selection.tasks = sj.integer("tasks", 0, std::numeric_limits<std::int64_t>::max(), 0);
      m.selection.fit_rows = sj.integer("fit_rows", 0, std::numeric_limits<std::int64_t>::max(), 0);
      m.selection.validation_rows = sj.integer("validation_rows", 0, std::numeric_limits<std::int64_t>::max(), 0);
      m.selection.folds = sj.small_integer("folds", m.selection.method == Selection::validation ? 1 : 0);
      m.selection.chosen = candidate(sj.object("chosen"));
      const json& candidates = sj.raw("candidates");
      if (!candidates.is_array()) sj.fail("candidates", "expected an array");
      for (std::size_t i = 0; i < candidates.size(); ++i)
        m.selection.candidates.push_back(candidate(JsonFields(candidates[i], json_file, "selection.candidates[" + std::to_string(i) + "].")));
    }
    m.notes = f.texts("notes", {});
    m.converged = f.boolean("converged", true);
    if (f.has("csv_encoding")) {
      m.encoding = io::encoding_from_json(f.object("csv_encoding"));
      if (static_cast<std::int64_t>(encoded_feature_names(m.encoding).size()) != m.d)
        throw Error(json_file + ": csv_encoding gives " + std::to_string(encoded_feature_names(m.encoding).size()) +
                    " features, the model has d = " + std::to_string(m.d));
    }
    m.task_keys = f.texts("task_keys", {});
    // The key list must be whole before a part of it is taken.
    if (!m.task_keys.empty() && static_cast<std::int64_t>(m.task_keys.size()) != m.t)
      throw Error(json_file + ": has " + std::to_string(m.task_keys.size()) + " task keys for t = " + std::to_string(m.t) + " tasks");
    if (all_tasks) *all_tasks = m.t;
    if (count >= 0) {
      if (first < 0 || first > m.t || count > m.t - first)
        throw Error(path + ": tasks " + std::to_string(first) + " .. " + std::to_string(first + count) + " are outside its " +
                    std::to_string(m.t));
      if (!m.task_keys.empty()) m.task_keys = std::vector<std::string>(m.task_keys.begin() + first, m.task_keys.begin() + first + count);
    }
    m.feature_names = f.texts("feature_names", {});
    if (!m.feature_names.empty() && static_cast<std::int64_t>(m.feature_names.size()) != m.d)
      throw Error(json_file + ": has " + std::to_string(m.feature_names.size()) + " feature names for d = " + std::to_string(m.d));
    if (f.has("feature_scales")) {
      m.feature_scales = f.numbers("feature_scales");
      if (static_cast<std::int64_t>(m.feature_scales.size()) != m.d)
        throw Error(json_file + ": has " + std::to_string(m.feature_scales.size()) + " feature scales for d = " + std::to_string(m.d));
      for (double s : m.feature_scales)
        if (!(s > 0) || !std::isfinite(s)) throw Error(json_file + ": feature_scales: " + std::to_string(s) + " is not a positive finite number");
    }
  } catch (const json::exception& e) {
    throw Error(json_file + ": " + e.what());
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
} catch (...) {
  io::rethrow_naming_file(path);
}
}  // namespace

Model load_model(const std::string& path) { return load_model_part(path, 0, -1, nullptr); }

Model load_model_tasks(const std::string& path, std::int64_t first, std::int64_t count, std::int64_t* all_tasks) {
  if (count < 0) throw Error(path + ": a negative number of tasks to load");
  return load_model_part(path, first, count, all_tasks);
}

}  // namespace lrsmeta
