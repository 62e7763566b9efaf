// Checkpoint folders: DIR/latest names the newest complete checkpoint, DIR/iteration-NNNNNN/, which
// holds a model folder's files (the state so far) and checkpoint.json (the rest of the state, the
// data's fingerprint, the options asked, and a hash of every file). A checkpoint is written to a
// temporary folder, flushed to disk, renamed into place and only then named in `latest`: a crash
// at any moment leaves the previous checkpoint whole.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/fingerprint.hpp"
#include "io/files.hpp"
#include "io/json_fields.hpp"
#include "io/model_files.hpp"
#include "lrsmeta/io.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace lrsmeta {
namespace {

constexpr int kCheckpointFormatVersion = 1;
constexpr const char* kLatest = "latest";

// Options asked of a fit, all of them (model.json's options plus the candidates and the noise seed).
json asked_options_json(const Options& o) {
  json j = io::options_json(o);
  j["rank_candidates"] = o.rank_candidates;
  j["sparsity_candidates"] = o.sparsity_candidates;
  j["sparse_prior_scale_candidates"] = o.sparse_prior_scale_candidates;
  j["support_threshold_candidates"] = o.support_threshold_candidates;
  j["covariance_shrinkage_candidates"] = o.covariance_shrinkage_candidates;
  j["privacy"]["noise_seed"] = o.privacy.noise_seed;
  return j;
}
Options asked_options_from_json(const io::JsonFields& j) {
  Options o = io::options_from_json(j);
  auto ints = [&](const char* key) {
    const std::vector<std::int64_t> v = j.integers(key, 0, std::numeric_limits<int>::max());
    return std::vector<int>(v.begin(), v.end());
  };
  o.rank_candidates = ints("rank_candidates");
  o.sparsity_candidates = ints("sparsity_candidates");
  o.sparse_prior_scale_candidates = j.numbers("sparse_prior_scale_candidates");
  o.support_threshold_candidates = j.numbers("support_threshold_candidates");
  o.covariance_shrinkage_candidates = j.numbers("covariance_shrinkage_candidates");
  o.privacy.noise_seed = j.object("privacy").unsigned_integer("noise_seed");
  return o;
}

std::string hex(std::uint64_t x) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, x);
  return buf;
}
std::uint64_t from_hex(const std::string& text, const std::string& what) {
  if (text.size() != 16 || text.find_first_not_of("0123456789abcdef") != std::string::npos)
    throw Error(what + ": not a 16-digit hexadecimal hash");
  return std::stoull(text, nullptr, 16);
}

// A whole small file (a checkpoint's files are hashed whole). Not a regular file (a folder named
// in a damaged hash list) is an Error naming it, not the stream library's failure.
std::string read_file(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw Error(path.string() + ": not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot open (" + std::strerror(errno) + ")");
  std::string bytes(std::istreambuf_iterator<char>(in), {});
  if (in.bad()) throw Error(path.string() + ": read failed");
  return bytes;
}
std::uint64_t file_hash(const fs::path& path) {
  const std::string bytes = read_file(path);
  return core::content_hash(bytes.data(), bytes.size());
}

// Flush a file's (or a folder's entries') data to the disk: a checkpoint must survive a crash of
// the machine, not only of the process.
void sync_to_disk(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw Error(path.string() + ": cannot open to flush (" + std::strerror(errno) + ")");
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw Error(path.string() + ": cannot flush to disk (" + std::strerror(err) + ")");
}

std::string iteration_folder_name(int iteration) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "iteration-%06d", iteration);
  return buf;
}

}  // namespace

std::vector<std::string> option_differences(const Options& a, const Options& b) {
  const json ja = asked_options_json(a), jb = asked_options_json(b);
  std::vector<std::string> out;
  auto compare = [&](const json& x, const json& y, const std::string& prefix) {
    for (auto it = x.begin(); it != x.end(); ++it) {
      if (prefix.empty() && it.key() == "privacy") continue;
      const json other = y.contains(it.key()) ? y.at(it.key()) : json();
      if (*it != other) out.push_back(prefix + it.key() + ": " + it->dump() + " against " + other.dump());
    }
  };
  compare(ja, jb, "");
  compare(ja.at("privacy"), jb.at("privacy"), "privacy.");
  return out;
}

bool has_checkpoint(const std::string& dir) { return fs::exists(fs::path(dir) / kLatest); }

namespace {

// A new checkpoint's folder, staged beside its final name in `dir` (created).
fs::path stage_checkpoint(const std::string& dir, int iteration) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(dir + ": cannot create the checkpoint folder (" + ec.message() + ")");
  const fs::path staged = io::temporary_sibling((fs::path(dir) / iteration_folder_name(iteration)).string());
  fs::create_directory(staged, ec);
  if (ec) throw Error(dir + ": cannot create a folder in it (" + ec.message() + ")");
  return staged;
}

// With the model's files in `staged`: checkpoint.json, everything flushed, the folder renamed into
// place, `latest` naming it, older checkpoints removed. Removes `staged` on failure.
void finish_checkpoint(const Checkpoint& c, const std::string& dir, const fs::path& staged, const std::vector<std::string>& files) {
  std::error_code ec;
  const fs::path root(dir);
  const std::string name = iteration_folder_name(c.iteration);
  try {
    json hashes = json::object();
    for (const std::string& f : files) {
      sync_to_disk(staged / f);
      hashes[f] = hex(file_hash(staged / f));
    }
    json held_out = json::array();
    for (const HeldOutFit& h : c.held_out_fits) {
      json mse = json::array();
      for (double x : h.mse) mse.push_back(std::isfinite(x) ? json(x) : json(nullptr));  // a fit gone non-finite: null
      held_out.push_back({{"rank", h.rank},
                          {"sparsity", h.sparsity},
                          {"sparse_prior_scale", h.sparse_prior_scale},
                          {"support_threshold", h.support_threshold},
                          {"covariance_shrinkage", h.covariance_shrinkage},
                          {"fold", h.fold},
                          {"mse", mse}});
    }
    const json state{{"format", "lrsmeta-checkpoint"},
                     {"format_version", kCheckpointFormatVersion},
                     {"lrsmeta_version", version()},
                     {"iteration", c.iteration},
                     {"choosing", c.choosing},
                     {"held_out_fits", held_out},
                     {"elapsed_seconds", c.elapsed_seconds},
                     {"data",
                      {{"n", c.n},
                       {"d", c.d},
                       {"t", c.t},
                       {"value_type", c.value_bytes == 4 ? "float32" : "float64"},
                       {"fingerprint", hex(c.data_fingerprint)},
                       {"processes", c.processes}}},
                     {"asked_options", asked_options_json(c.asked)},
                     {"prior_state",
                      {{"noise_variance", c.noise_variance},
                       {"b_precision", c.b_precision},
                       {"beta_variance", c.beta_variance},
                       {"beta_precision", c.beta_precision},
                       {"support_threshold", c.support_threshold},
                       {"covariance_shrinkage", c.covariance_shrinkage},
                       {"coefficient_scale", c.coefficient_scale},
                       {"sparse_prior_variance", c.sparse_prior_variance},
                       {"inclusion_probability", c.inclusion_probability}}},
                     {"noise_state", c.noise_state},
                     {"file_hashes", hashes}};
    write_text_file_atomically((staged / "checkpoint.json").string(), state.dump(2) + "\n");
    sync_to_disk(staged / "checkpoint.json");
    sync_to_disk(staged);
    const fs::path target = root / name;
    if (fs::exists(target)) fs::remove_all(target);  // the same iteration written again
    fs::rename(staged, target);
  } catch (const fs::filesystem_error& e) {
    fs::remove_all(staged, ec);
    throw Error(dir + ": cannot write the checkpoint (" + e.what() + ")");
  } catch (...) {
    fs::remove_all(staged, ec);
    throw;
  }
  sync_to_disk(root);
  write_text_file_atomically((root / kLatest).string(), name + "\n");
  sync_to_disk(root / kLatest);
  sync_to_disk(root);
  // Only the newest checkpoint is kept (each holds every task's parameters); leftovers of a write
  // that was killed go too.
  for (const fs::directory_entry& entry : fs::directory_iterator(root, ec)) {
    const std::string other = entry.path().filename().string();
    const bool old_checkpoint = other.rfind("iteration-", 0) == 0 && other != name;
    const bool leftover = other.rfind(".iteration-", 0) == 0;
    if (old_checkpoint || leftover) fs::remove_all(entry.path(), ec);
  }
}

}  // namespace

void save_checkpoint(const Checkpoint& c, const std::string& dir) {
  c.model.validate();
  const fs::path staged = stage_checkpoint(dir, c.iteration);
  std::vector<std::string> files;
  try {
    files = io::write_model_files(c.model, staged.string());
  } catch (...) {
    std::error_code ec;
    fs::remove_all(staged, ec);
    throw;
  }
  finish_checkpoint(c, dir, staged, files);
}

void save_checkpoint(const Checkpoint& c, const std::string& dir, Communicator& comm) {
  const bool root = comm.rank() == 0;
  std::string failure;
  fs::path staged;
  if (root) {
    try {
      staged = stage_checkpoint(dir, c.iteration);
    } catch (const std::exception& e) {
      failure = e.what();
    }
  }
  std::string first = comm.first_error(failure);
  if (!first.empty()) throw CollectiveError(first);
  std::vector<std::string> files;
  try {
    files = io::write_model_files(c.model, staged.string(), comm);  // every process's tasks, on rank 0
  } catch (...) {
    std::error_code ec;
    if (root) fs::remove_all(staged, ec);
    throw;
  }
  if (root) {
    try {
      finish_checkpoint(c, dir, staged, files);  // c's state is rank 0's: the same on every process but the tasks
    } catch (const std::exception& e) {
      failure = e.what();
    }
  }
  first = comm.first_error(failure);
  if (!first.empty()) throw CollectiveError(first);
}

namespace {
// The state checkpoint.json records (every field's type checked), and the files' hashes checked
// where asked; the model is read separately.
// (GCC 12 reports the backing arrays of Options' default candidate lists as maybe uninitialized
// here, a known false positive of its initializer-list handling at -O2 and above.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
Checkpoint checkpoint_state(const json& j, const std::string& json_file, const fs::path& folder, bool verify_files) {
  Checkpoint c;
  try {
    const io::JsonFields f(j, json_file);
    if (f.text("format", "") != "lrsmeta-checkpoint") throw Error(json_file + ": not an lrsmeta checkpoint");
    const std::int64_t version_found = f.integer("format_version", 0, std::numeric_limits<std::int64_t>::max());
    if (version_found != kCheckpointFormatVersion)
      throw Error(json_file + ": checkpoint format version " + std::to_string(version_found) + "; this lrsmeta reads version " +
                  std::to_string(kCheckpointFormatVersion));
    const io::JsonFields hashes = f.object("file_hashes");
    for (auto it = hashes.whole().begin(); it != hashes.whole().end(); ++it) {
      const fs::path file = folder / it.key();
      std::error_code ec;
      if (it.key().empty() || it.key().find('/') != std::string::npos || it.key() == "." || it.key() == ".." ||
          !fs::is_regular_file(file, ec))
        throw Error(file.string() + ": missing from the checkpoint");
      const std::string recorded = hashes.text(it.key().c_str());
      if (verify_files && file_hash(file) != from_hex(recorded, file.string()))
        throw Error(file.string() + ": damaged (its contents do not match the hash recorded when the checkpoint was written)");
    }
    c.iteration = static_cast<int>(f.integer("iteration", 0, std::numeric_limits<int>::max()));
    c.choosing = f.boolean("choosing", false);
    if (f.has("held_out_fits")) {
      const json& fits = f.raw("held_out_fits");
      if (!fits.is_array()) f.fail("held_out_fits", "expected an array");
      for (std::size_t i = 0; i < fits.size(); ++i) {
        const io::JsonFields h(fits[i], json_file, "held_out_fits[" + std::to_string(i) + "].");
        HeldOutFit fit;
        fit.rank = static_cast<int>(h.integer("rank", 0, std::numeric_limits<int>::max()));
        fit.sparsity = static_cast<int>(h.integer("sparsity", 0, std::numeric_limits<int>::max()));
        fit.sparse_prior_scale = h.number("sparse_prior_scale");
        fit.support_threshold = h.number("support_threshold");
        fit.covariance_shrinkage = h.number("covariance_shrinkage");
        fit.fold = static_cast<int>(h.integer("fold", -1, std::numeric_limits<int>::max()));
        const json& mse = h.raw("mse");
        if (!mse.is_array() || mse.empty()) h.fail("mse", "expected a non-empty array of numbers");
        for (const json& x : mse) {
          if (x.is_null()) fit.mse.push_back(std::nan(""));
          else if (x.is_number()) fit.mse.push_back(x.get<double>());
          else h.fail("mse", "expected numbers (or null), got " + std::string(x.type_name()));
        }
        c.held_out_fits.push_back(std::move(fit));
      }
      if (!c.held_out_fits.empty() && !c.choosing) f.fail("held_out_fits", "present in a checkpoint not made while choosing");
    }
    c.elapsed_seconds = f.number("elapsed_seconds");
    const io::JsonFields data = f.object("data");
    c.n = data.integer("n", 0, std::numeric_limits<std::int64_t>::max());
    c.d = data.integer("d", 1, std::int64_t{1} << 30);
    c.t = data.integer("t", 0, std::numeric_limits<std::int64_t>::max());
    const std::string value_type = data.text("value_type");
    if (value_type != "float32" && value_type != "float64") data.fail("value_type", "expected float32 or float64, got '" + value_type + "'");
    c.value_bytes = value_type == "float32" ? 4 : 8;
    c.data_fingerprint = from_hex(data.text("fingerprint"), json_file + ": data fingerprint");
    c.processes = static_cast<int>(data.integer("processes", 1, std::numeric_limits<int>::max(), 1));
    c.asked = asked_options_from_json(f.object("asked_options"));
    const io::JsonFields p = f.object("prior_state");
    c.noise_variance = p.number("noise_variance");
    c.b_precision = p.number("b_precision");
    c.beta_variance = p.number("beta_variance");
    c.beta_precision = p.number("beta_precision");
    c.support_threshold = p.number("support_threshold");
    c.covariance_shrinkage = p.number("covariance_shrinkage");
    c.coefficient_scale = p.number("coefficient_scale");
    c.sparse_prior_variance = p.number("sparse_prior_variance");
    c.inclusion_probability = p.number("inclusion_probability", 0.0);
    c.noise_state = f.text("noise_state");
  } catch (const json::exception& e) {
    throw Error(json_file + ": " + e.what());
  }
  return c;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

Checkpoint load_checkpoint_part(const std::string& dir, std::int64_t first, std::int64_t count, bool verify_files) try {
  const fs::path root(dir);
  if (!fs::is_directory(root)) throw Error(dir + ": not a checkpoint folder (no such folder)");
  if (!fs::exists(root / kLatest)) throw Error(dir + ": not a checkpoint folder (no file 'latest')");
  std::string name = read_file(root / kLatest);
  while (!name.empty() && (name.back() == '\n' || name.back() == '\r')) name.pop_back();
  if (name.rfind("iteration-", 0) != 0 || name.find('/') != std::string::npos)
    throw Error((root / kLatest).string() + ": does not name a checkpoint ('" + name + "')");
  const fs::path folder = root / name;
  if (!fs::is_directory(folder)) throw Error((root / kLatest).string() + ": names " + name + ", which is missing");
  json j;
  try {
    j = json::parse(read_file(folder / "checkpoint.json"));
  } catch (const json::exception& e) {
    throw Error((folder / "checkpoint.json").string() + ": not valid JSON (" + e.what() + ")");
  }
  const std::string json_file = (folder / "checkpoint.json").string();
  Checkpoint c = checkpoint_state(j, json_file, folder, verify_files);
  std::int64_t model_tasks = 0;
  c.model = count < 0 ? load_model(folder.string()) : load_model_tasks(folder.string(), first, count, &model_tasks);
  if (count < 0) model_tasks = c.model.t;
  if (c.model.d != c.d || model_tasks != c.t)
    throw Error(json_file + ": says d = " + std::to_string(c.d) + " and t = " + std::to_string(c.t) + ", its model has d = " +
                std::to_string(c.model.d) + " and t = " + std::to_string(model_tasks));
  if (c.iteration < 0 || c.model.history.size() != static_cast<std::size_t>(c.iteration))
    throw Error((folder / "checkpoint.json").string() + ": iteration " + std::to_string(c.iteration) + " but a history of " +
                std::to_string(c.model.history.size()) + " iterations");
  return c;
} catch (...) {
  io::rethrow_naming_file(dir);
}
}  // namespace

Checkpoint load_checkpoint(const std::string& dir) { return load_checkpoint_part(dir, 0, -1, true); }

Checkpoint load_checkpoint_tasks(const std::string& dir, std::int64_t first, std::int64_t count, bool verify_files) {
  if (count < 0) throw Error(dir + ": a negative number of tasks to load");
  return load_checkpoint_part(dir, first, count, verify_files);
}

}  // namespace lrsmeta
