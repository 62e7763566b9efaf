// Checkpoint folders: DIR/latest names the newest complete checkpoint, DIR/iteration-NNNNNN/, which
// holds a model folder's files (the state so far) and checkpoint.json (the rest of the state, the
// data's fingerprint, the options asked, and a hash of every file). A checkpoint is written to a
// temporary folder, flushed to disk, renamed into place and only then named in `latest`: a crash
// at any moment leaves the previous checkpoint whole.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "core/fingerprint.hpp"
#include "io/files.hpp"
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
Options asked_options_from_json(const json& j) {
  Options o = io::options_from_json(j);
  o.rank_candidates = j.at("rank_candidates").get<std::vector<int>>();
  o.sparsity_candidates = j.at("sparsity_candidates").get<std::vector<int>>();
  o.sparse_prior_scale_candidates = j.at("sparse_prior_scale_candidates").get<std::vector<double>>();
  o.support_threshold_candidates = j.at("support_threshold_candidates").get<std::vector<double>>();
  o.covariance_shrinkage_candidates = j.at("covariance_shrinkage_candidates").get<std::vector<double>>();
  o.privacy.noise_seed = j.at("privacy").at("noise_seed").get<std::uint64_t>();
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

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot open (" + std::strerror(errno) + ")");
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
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
    const json state{{"format", "lrsmeta-checkpoint"},
                     {"format_version", kCheckpointFormatVersion},
                     {"lrsmeta_version", version()},
                     {"iteration", c.iteration},
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
Checkpoint load_checkpoint_part(const std::string& dir, std::int64_t first, std::int64_t count, bool verify_files) {
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
  Checkpoint c;
  try {
    if (j.value("format", std::string()) != "lrsmeta-checkpoint")
      throw Error((folder / "checkpoint.json").string() + ": not an lrsmeta checkpoint");
    const int version_found = j.at("format_version").get<int>();
    if (version_found != kCheckpointFormatVersion)
      throw Error((folder / "checkpoint.json").string() + ": checkpoint format version " + std::to_string(version_found) +
                  "; this lrsmeta reads version " + std::to_string(kCheckpointFormatVersion));
    for (auto it = j.at("file_hashes").begin(); it != j.at("file_hashes").end(); ++it) {
      const fs::path file = folder / it.key();
      if (it.key().find('/') != std::string::npos || !fs::exists(file))
        throw Error(file.string() + ": missing from the checkpoint");
      if (verify_files && file_hash(file) != from_hex(it->get<std::string>(), file.string()))
        throw Error(file.string() + ": damaged (its contents do not match the hash recorded when the checkpoint was written)");
    }
    c.iteration = j.at("iteration").get<int>();
    c.elapsed_seconds = j.at("elapsed_seconds").get<double>();
    const json& data = j.at("data");
    c.n = data.at("n").get<std::int64_t>();
    c.d = data.at("d").get<std::int64_t>();
    c.t = data.at("t").get<std::int64_t>();
    c.value_bytes = data.at("value_type").get<std::string>() == "float32" ? 4 : 8;
    c.data_fingerprint = from_hex(data.at("fingerprint").get<std::string>(), "data fingerprint");
    c.processes = data.value("processes", 1);
    c.asked = asked_options_from_json(j.at("asked_options"));
    const json& p = j.at("prior_state");
    c.noise_variance = p.at("noise_variance").get<double>();
    c.b_precision = p.at("b_precision").get<double>();
    c.beta_variance = p.at("beta_variance").get<double>();
    c.beta_precision = p.at("beta_precision").get<double>();
    c.support_threshold = p.at("support_threshold").get<double>();
    c.covariance_shrinkage = p.at("covariance_shrinkage").get<double>();
    c.coefficient_scale = p.at("coefficient_scale").get<double>();
    c.sparse_prior_variance = p.at("sparse_prior_variance").get<double>();
    c.inclusion_probability = p.value("inclusion_probability", 0.0);
    c.noise_state = j.at("noise_state").get<std::string>();
  } catch (const json::exception& e) {
    throw Error((folder / "checkpoint.json").string() + ": " + e.what());
  }
  c.model = count < 0 ? load_model(folder.string()) : load_model_tasks(folder.string(), first, count);
  if (c.iteration < 0 || c.model.history.size() != static_cast<std::size_t>(c.iteration))
    throw Error((folder / "checkpoint.json").string() + ": iteration " + std::to_string(c.iteration) + " but a history of " +
                std::to_string(c.model.history.size()) + " iterations");
  return c;
}
}  // namespace

Checkpoint load_checkpoint(const std::string& dir) { return load_checkpoint_part(dir, 0, -1, true); }

Checkpoint load_checkpoint_tasks(const std::string& dir, std::int64_t first, std::int64_t count, bool verify_files) {
  if (count < 0) throw Error(dir + ": a negative number of tasks to load");
  return load_checkpoint_part(dir, first, count, verify_files);
}

}  // namespace lrsmeta
