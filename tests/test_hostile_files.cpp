// Damaged and hostile files: every reader checks a header's claims against the file before
// allocating, computes sizes with overflow checks, reads JSON fields with their types checked,
// and reports an lrsmeta::Error naming the file (and field).
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/checked_size.hpp"
#include "lrsmeta/io.hpp"
#include "lrsmeta/lrsmeta.hpp"
#include "scratch_folder.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define LRSMETA_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LRSMETA_TEST_ASAN 1
#endif
#endif

namespace fs = std::filesystem;
using nlohmann::json;

namespace lrsmeta {
namespace {

// Small synthetic data (d = 4 or given, r = k = 1), and options that fit it in two iterations.
SyntheticData tiny_data(std::int64_t tasks, std::int64_t rows, std::int64_t d = 4) {
  SyntheticSpec s;
  s.tasks = tasks;
  s.min_samples = s.max_samples = rows;
  s.d = d;
  s.r = 1;
  s.k = 1;
  return generate_synthetic(s);
}
Options two_iterations() {
  Options o;
  o.rank = 1;
  o.sparsity = 1;
  o.iterations = 2;
  return o;
}

class HostileFiles : public testing::ScratchFolderTest {
 protected:
  // A small trained model folder (6 tasks, keys "task 0" ... unless not asked).
  std::string small_model(const std::string& name, bool keys = true) const {
    Model m = fit(tiny_data(6, 8).data.view(), two_iterations());
    if (keys)
      for (int i = 0; i < 6; ++i) m.task_keys.push_back("task " + std::to_string(i));
    save_model(m, path(name));
    return path(name);
  }
  json read_json(const std::string& file) const {
    std::ifstream in(file);
    return json::parse(in);
  }
  void write_json(const std::string& file, const json& j) const { std::ofstream(file) << j.dump(1); }
};

// The Error's message holds every one of `parts`.
void expect_error(const std::function<void()>& run, const std::vector<std::string>& parts) {
  try {
    run();
    ADD_FAILURE() << "no error; expected one saying " << parts.front();
  } catch (const Error& e) {
    for (const std::string& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << "missing '" << p << "' in: " << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not an lrsmeta::Error: " << e.what();
  }
}

std::string claim_header(const std::string& dtype, const std::string& shape) {
  return "{'descr': '" + dtype + "', 'fortran_order': False, 'shape': " + shape + ", }";
}

// ---- 1. A header's claim is checked against the file before anything is allocated --------------

TEST_F(HostileFiles, AClaimLargerThanTheFileIsRefusedNamingIt) {
  write_bytes("y.npy", testing::npy_bytes(claim_header("<f8", "(50000000,)"), std::string(64, '\0')));
  expect_error([&] { read_npy(path("y.npy")); }, {path("y.npy"), "truncated", "400000000 bytes", "holds 64"});
  expect_error([&] { read_npy_as<float>(path("y.npy"), nullptr); }, {path("y.npy"), "truncated"});
}

TEST_F(HostileFiles, EveryFolderReaderRefusesAHugeClaimWithoutAllocating) {
  // A data folder whose task_offsets.npy claims far more than it holds.
  save_synthetic(path("data"), tiny_data(3, 4, 3));
  const std::string hostile = testing::npy_bytes(claim_header("<i8", "(100000000000,)"), std::string(64, '\0'));
  std::ofstream(path("data/task_offsets.npy"), std::ios::binary) << hostile;
  expect_error([&] { load_data_folder<double>(path("data")); }, {"task_offsets.npy", "truncated"});
  expect_error([&] { map_data_folder<double>(path("data")); }, {"task_offsets.npy", "truncated"});
  expect_error([&] { map_data_folder_shard<double>(path("data"), 0, 2); }, {"task_offsets.npy", "truncated"});
  // A model whose U.npy claims 1e11 values.
  const std::string model = small_model("model");
  std::ofstream(model + "/U.npy", std::ios::binary) << testing::npy_bytes(claim_header("<f8", "(4, 25000000000)"), "");
  expect_error([&] { load_model(model); }, {"U.npy", "truncated"});
}

// Under a 2 GB address-space limit, claims of 1e11 elements are refused, and the process's peak
// memory grows by less than the files hold plus a margin (in a child process, whose limits and peak
// are its own).
TEST_F(HostileFiles, ClaimsAreRefusedUnderATwoGigabyteLimitWithinBaselineMemory) {
  write_bytes("huge.npy", testing::npy_bytes(claim_header("<f8", "(100000000000,)"), std::string(4096, '\0')));
  write_bytes("large.npy", testing::npy_bytes(claim_header("<f4", "(50000000,)"), std::string(192, '\0')));
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
#ifndef LRSMETA_TEST_ASAN  // AddressSanitizer reserves terabytes of address space for its shadow
    const rlimit limit{rlim_t{2} << 30, rlim_t{2} << 30};
    if (::setrlimit(RLIMIT_AS, &limit) != 0) ::_exit(10);
#endif
    rusage before{};
    ::getrusage(RUSAGE_SELF, &before);
    int refused = 0;
    for (const char* name : {"huge.npy", "large.npy"}) {
      try {
        read_npy_as<double>(path(name), nullptr);
      } catch (const Error& e) {
        refused += std::string(e.what()).find("truncated") != std::string::npos;
      } catch (...) {
        ::_exit(11);  // bad_alloc or anything else: the claim was trusted
      }
    }
    rusage after{};
    ::getrusage(RUSAGE_SELF, &after);
    const long grown_kb = after.ru_maxrss - before.ru_maxrss;
    ::_exit(refused != 2 ? 12 : grown_kb > 16 * 1024 ? 13 : 0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "10: no limit set; 11: not refused with an Error; 12: not refused as truncated; "
                                       "13: peak memory grew by more than 16 MB";
}

// ---- 2. Shape products are computed with overflow checks ------------------------------------------

TEST_F(HostileFiles, ShapeProductsThatOverflowAreRefused) {
  write_bytes("wrap.npy", testing::npy_bytes(claim_header("<f8", "(4294967296, 4294967296)"), ""));
  expect_error([&] { read_npy(path("wrap.npy")); }, {path("wrap.npy"), "too large"});
  write_bytes("bytes.npy", testing::npy_bytes(claim_header("<f8", "(1152921504606846976,)"), ""));  // 2^60 x 8 bytes
  expect_error([&] { read_npy(path("bytes.npy")); }, {path("bytes.npy"), "too large"});
  NpyArray a;
  a.shape = {std::int64_t{1} << 32, std::int64_t{1} << 32};
  expect_error([&] { a.size(); }, {"overflows"});
  EXPECT_FALSE(core::checked_product({std::int64_t{1} << 62, 4}).has_value());
  EXPECT_EQ(core::checked_product({3, 5, 7}).value(), 105);
  EXPECT_EQ(core::checked_product({}).value(), 1);
  Model m;
  m.d = 4;
  m.r = 2;
  m.k = 1;
  m.U.assign(8, 0.5);
  m.t = std::int64_t{1} << 62;
  expect_error([&] { m.validate(); }, {"t x r", "overflows"});
  // A model.json claiming t so large that t x max(r, k) overflows is refused before any file is read.
  const std::string model = small_model("model");
  json j = read_json(model + "/model.json");
  j["t"] = std::int64_t{1} << 62;
  j["k"] = 4;
  write_json(model + "/model.json", j);
  expect_error([&] { load_model(model); }, {"model.json", "overflows"});
}

// ---- 3. A model's task keys must be whole before a part of them is taken --------------------------

TEST_F(HostileFiles, AShortKeyListIsRefusedNamingModelJson) {
  const std::string model = small_model("model");
  json j = read_json(model + "/model.json");
  j["task_keys"] = {"only", "three", "keys"};
  write_json(model + "/model.json", j);
  expect_error([&] { load_model_tasks(model, 2, 4); }, {"model.json", "3 task keys for t = 6"});
  expect_error([&] { load_model(model); }, {"model.json", "3 task keys"});
}

// ---- 4. JSON numbers of the wrong kind --------------------------------------------------------------

TEST_F(HostileFiles, JsonFieldsAreReadWithTheirTypesChecked) {
  const std::string model = small_model("model");
  const json good = read_json(model + "/model.json");
  auto refused_with = [&](const std::function<void(json&)>& damage, const std::vector<std::string>& parts) {
    json j = good;
    damage(j);
    write_json(model + "/model.json", j);
    expect_error([&] { load_model(model); }, parts);
  };
  refused_with([](json& j) { j["format_version"] = 1e30; }, {"model.json", "field 'format_version'", "expected an integer"});
  refused_with([](json& j) { j["d"] = 1e300; }, {"model.json", "field 'd'", "expected an integer"});
  refused_with([](json& j) { j["d"] = -4; }, {"field 'd'", "[1, 1073741824]"});
  refused_with([](json& j) { j["r"] = 9; }, {"field 'r'", "[0, 4]"});
  refused_with([](json& j) { j["options"]["rank"] = 2.5; }, {"field 'options.rank'", "the number 2.5"});
  refused_with([](json& j) { j["options"]["iterations"] = "many"; }, {"field 'options.iterations'", "a string"});
  refused_with([](json& j) { j["options"]["seed"] = -1; }, {"field 'options.seed'"});
  refused_with([](json& j) { j["history"][0]["training_loss"] = "low"; }, {"field 'history[0].training_loss'", "expected a number"});
  refused_with([](json& j) { j["task_keys"][1] = 7; }, {"field 'task_keys'", "element 1"});
  refused_with([](json& j) { j["prior"] = 3; }, {"field 'prior'", "expected an object"});
  refused_with([](json& j) { j = json::array(); }, {"model.json", "expected a JSON object"});
}

TEST_F(HostileFiles, CheckpointCountsAreCheckedAgainstItsModel) {
  FitControl control;
  control.checkpoint = [&](const Checkpoint& c) { save_checkpoint(c, path("ck")); };
  fit(tiny_data(5, 6).data.view(), two_iterations(), control);
  std::ifstream latest(path("ck/latest"));
  std::string name;
  std::getline(latest, name);
  const std::string file = path("ck/" + name + "/checkpoint.json");
  json j = read_json(file);
  j["data"]["d"] = 5;
  j["file_hashes"].erase("checkpoint.json");
  write_json(file, j);
  expect_error([&] { load_checkpoint_tasks(path("ck"), 0, 5, false); }, {"checkpoint.json", "d = 5", "its model has d = 4"});
  j["data"]["d"] = 4;
  j["data"]["t"] = 2.5;
  write_json(file, j);
  expect_error([&] { load_checkpoint_tasks(path("ck"), 0, 5, false); }, {"checkpoint.json", "field 'data.t'"});
  // A hash list naming a folder: an Error naming it, not the stream library's text.
  j["data"]["t"] = 5;
  j["file_hashes"]["."] = "0000000000000000";
  write_json(file, j);
  expect_error([&] { load_checkpoint(path("ck")); }, {"missing from the checkpoint"});
  j["file_hashes"].erase(".");
  fs::create_directory(path("ck/" + name + "/sub"));
  j["file_hashes"]["sub"] = "0000000000000000";
  write_json(file, j);
  expect_error([&] { load_checkpoint(path("ck")); }, {"sub", "missing from the checkpoint"});
}

// ---- 5. No library-internal exception escapes -------------------------------------------------------

TEST_F(HostileFiles, MalformedNpyHeadersNameTheFile) {
  for (const std::string& shape : {std::string("''"), std::string("()x"), std::string("(3"), std::string("(,)"), std::string("(-1,)")}) {
    write_bytes("bad.npy", testing::npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': " + shape + ", }", std::string(64, '\0')));
    expect_error([&] { read_npy(path("bad.npy")); }, {path("bad.npy")});
  }
  write_bytes("empty_field.npy", testing::npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': }", ""));
  expect_error([&] { read_npy(path("empty_field.npy")); }, {path("empty_field.npy"), "shape"});
  write_bytes("descr.npy", testing::npy_bytes("{'descr': xx, 'fortran_order': False, 'shape': (1,), }", std::string(8, '\0')));
  expect_error([&] { read_npy(path("descr.npy")); }, {path("descr.npy"), "dtype"});
  // A header length past the end of the file.
  std::string cut = testing::npy_bytes(claim_header("<f8", "(1,)"), std::string(8, '\0')).substr(0, 12);
  write_bytes("cut.npy", cut);
  expect_error([&] { read_npy(path("cut.npy")); }, {path("cut.npy"), "truncated"});
  // A folder where a file is expected.
  fs::create_directory(path("folder.npy"));
  expect_error([&] { read_npy(path("folder.npy")); }, {path("folder.npy")});
}

// ---- 6. Text that is not UTF-8 is refused where it is read ----------------------------------------

TEST_F(HostileFiles, ACsvThatIsNotUtf8IsRefusedNamingLineAndColumn) {
  write_bytes("latin1.csv", "task,x,y\nZ\xfcrich,1,2\nBern,2,3\n");
  CsvOptions o;
  o.target = "y";
  o.task = "task";
  expect_error([&] { load_csv<double>(path("latin1.csv"), o); }, {path("latin1.csv"), "line 2", "column 'task'", "not valid UTF-8", "0xFC"});
  expect_error([&] { convert_csv(path("latin1.csv"), o, path("out")); }, {"line 2", "column 'task'"});
  EXPECT_FALSE(fs::exists(path("out")));
  // Overlong forms and surrogates are not UTF-8 either; valid multi-byte text is kept as it is.
  write_bytes("overlong.csv", "task,x,y\na,1,2\nb\xc0\xaf,2,3\n");
  expect_error([&] { load_csv<double>(path("overlong.csv"), o); }, {"line 3", "column 'task'"});
  write_bytes("surrogate.csv", "task,x,y\n\xed\xa0\x80,1,2\n");
  expect_error([&] { load_csv<double>(path("surrogate.csv"), o); }, {"line 2"});
  write_bytes("utf8.csv", "\xef\xbb\xbftask,x,y\nZ\xc3\xbcrich,1,2\n\xe6\x9d\xb1\xe4\xba\xac,2,3\n\xf0\x9f\x8c\x8d,3,1\n");
  const Dataset<double> ds = load_csv<double>(path("utf8.csv"), o);  // the byte-order mark is not in the first name
  EXPECT_EQ(ds.task_keys, (std::vector<std::string>{"Z\xc3\xbcrich", "\xe6\x9d\xb1\xe4\xba\xac", "\xf0\x9f\x8c\x8d"}));
  // A model with a key that is not UTF-8 is refused before anything is written.
  Model m = load_model(small_model("model"));
  m.task_keys[2] = "bad \xff";
  expect_error([&] { save_model(m, path("copy")); }, {"task 2", "not valid UTF-8"});
  EXPECT_FALSE(fs::exists(path("copy")));
}

// ---- 7. An output that cannot be written is found before the work -------------------------------------

TEST_F(HostileFiles, UnwritableOutputsAreFoundBeforeTheWork) {
  write_bytes("a_file", "x");
  expect_error([&] { check_writable(path("a_file/model"), "--out"); }, {"--out", "a_file", "is not a folder"});
  expect_error([&] { check_writable("/proc/lrsmeta-model", "--out"); }, {"--out", "/proc"});
  check_writable(path("new/deeper/model"), "--out");  // folders that do not exist yet are created later
  check_writable(path("metrics.json"), "--metrics-out");
  EXPECT_FALSE(fs::exists(path("new")));
  EXPECT_EQ(listing(), (std::vector<std::string>{"a_file"}));  // the probe leaves nothing behind
  if (::geteuid() != 0) {  // permissions do not stop root
    fs::create_directory(path("read_only"));
    fs::permissions(path("read_only"), fs::perms::owner_read | fs::perms::owner_exec);
    expect_error([&] { check_writable(path("read_only/model"), "--out"); }, {"read_only", "Permission denied"});
    fs::permissions(path("read_only"), fs::perms::owner_all);
  }
}

}  // namespace
}  // namespace lrsmeta
