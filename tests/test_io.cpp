// File formats: .npy, data folders, CSV, model folders; errors on bad files; nothing half-written.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <algorithm>
#include <iterator>

#include "core/backend.hpp"
#include "cpu/cpu_backend.hpp"
#include "lrsmeta/io.hpp"
#include "lrsmeta/lrsmeta.hpp"
#include "scratch_folder.hpp"
#include "test_helpers.hpp"

namespace fs = std::filesystem;

namespace lrsmeta {
namespace {

class IoTest : public testing::ScratchFolderTest {};

using testing::task_shape;
using testing::npy_bytes;

TEST_F(IoTest, NpyRoundTripsEveryDtype) {
  const std::vector<double> d = {1.5, -2.25, 3e300, 0.0, -0.0, 7};
  write_npy(path("d.npy"), d.data(), {2, 3});
  std::vector<std::int64_t> shape;
  EXPECT_EQ(read_npy_as<double>(path("d.npy"), &shape), d);
  EXPECT_EQ(shape, (std::vector<std::int64_t>{2, 3}));
  const std::vector<float> f = {1.5f, -2.0f, 3.25f};
  write_npy(path("f.npy"), f.data(), {3});
  EXPECT_EQ(read_npy_as<float>(path("f.npy"), &shape), f);
  EXPECT_EQ(shape, (std::vector<std::int64_t>{3}));
  EXPECT_EQ(read_npy_as<double>(path("f.npy"), nullptr), (std::vector<double>{1.5, -2.0, 3.25}));
  const std::vector<std::int32_t> i32 = {-1, 0, 2147483647};
  write_npy(path("i.npy"), i32.data(), {3});
  EXPECT_EQ(read_npy_as<std::int32_t>(path("i.npy"), nullptr), i32);
  EXPECT_EQ(read_npy_as<std::int64_t>(path("i.npy"), nullptr), (std::vector<std::int64_t>{-1, 0, 2147483647}));
  const std::vector<std::int64_t> i64 = {0, 5, 1LL << 40};
  write_npy(path("l.npy"), i64.data(), {3});
  EXPECT_EQ(read_npy_as<std::int64_t>(path("l.npy"), nullptr), i64);
  EXPECT_THROW(read_npy_as<std::int32_t>(path("l.npy"), nullptr), Error);  // 2^40 does not fit
  const std::vector<double> empty;
  write_npy(path("e.npy"), empty.data(), {0, 4});
  EXPECT_TRUE(read_npy_as<double>(path("e.npy"), &shape).empty());
  EXPECT_EQ(shape, (std::vector<std::int64_t>{0, 4}));
  // The header is padded so the data starts on a 64-byte boundary (NumPy's own layout).
  std::ifstream in(path("d.npy"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  const std::size_t header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
  EXPECT_EQ((10 + header_len) % 64, 0u);
  EXPECT_EQ(bytes.size(), 10 + header_len + 6 * 8);
}

TEST_F(IoTest, NpyReadsBigEndianAndVersion2) {
  std::string payload;
  for (double v : {1.0, -2.5}) {
    char b[8];
    std::memcpy(b, &v, 8);
    std::reverse(b, b + 8);
    payload.append(b, 8);
  }
  write_bytes("be.npy", npy_bytes("{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }", payload));
  EXPECT_EQ(read_npy_as<double>(path("be.npy"), nullptr), (std::vector<double>{1.0, -2.5}));
  std::string ipayload;
  for (std::int32_t v : {7, -9}) {
    char b[4];
    std::memcpy(b, &v, 4);
    std::reverse(b, b + 4);
    ipayload.append(b, 4);
  }
  write_bytes("bei.npy", npy_bytes("{'descr': '>i4', 'fortran_order': False, 'shape': (1, 2), }", ipayload, 2));
  EXPECT_EQ(read_npy_as<std::int64_t>(path("bei.npy"), nullptr), (std::vector<std::int64_t>{7, -9}));
}

TEST_F(IoTest, NpyRejectsWhatItCannotRead) {
  auto expect_error = [&](const std::string& name, const std::string& needle) {
    try {
      read_npy(path(name));
      FAIL() << name << ": no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << "the message names the file: " << e.what();
    }
  };
  const std::string eight(8, '\0');
  write_bytes("fortran.npy", npy_bytes("{'descr': '<f8', 'fortran_order': True, 'shape': (1,), }", eight));
  expect_error("fortran.npy", "Fortran-order");
  write_bytes("i2.npy", npy_bytes("{'descr': '<i2', 'fortran_order': False, 'shape': (4,), }", eight));
  expect_error("i2.npy", "unsupported dtype");
  write_bytes("short.npy", npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", eight));
  expect_error("short.npy", "truncated");
  write_bytes("magic.npy", "PK\x03\x04 this is a zip");
  expect_error("magic.npy", "not a .npy file");
  write_bytes("hdr.npy", std::string("\x93NUMPY\x01\x00\xff\x00{'descr'", 17));
  expect_error("hdr.npy", "truncated");
  expect_error("missing.npy", "cannot open");
}

TEST_F(IoTest, DataFolderRoundTripAndMismatches) {
  SyntheticSpec s;
  s.tasks = 5;
  s.min_samples = 0;
  s.max_samples = 4;
  s.d = 3;
  const SyntheticData syn = generate_synthetic(s);
  save_data_folder(path("data"), syn.data);
  const Dataset<double> back = load_data_folder<double>(path("data"));
  EXPECT_EQ(back.X, syn.data.X);
  EXPECT_EQ(back.y, syn.data.y);
  EXPECT_EQ(back.task_offsets, syn.data.task_offsets);
  const Dataset<float> as_float = load_dataset<float>(path("data"));
  EXPECT_EQ(as_float.n(), syn.data.n());
  // y with a different row count.
  const std::vector<double> y_short(1, 0.0);
  write_npy(path("data/y.npy"), y_short.data(), {1});
  EXPECT_THROW(load_data_folder<double>(path("data")), Error);
  EXPECT_THROW(load_data_folder<double>(path("nothing")), Error);
}

TEST_F(IoTest, DataFolderWithTaskIdsGroupsRows) {
  fs::create_directories(path("ids"));
  const std::vector<double> X = {1, 10, 2, 20, 3, 30, 4, 40, 5, 50};  // 5 rows, d = 2
  const std::vector<float> y = {1, 2, 3, 4, 5};
  const std::vector<std::int32_t> ids = {7, 3, 7, -1, 3};
  write_npy(path("ids/X.npy"), X.data(), {5, 2});
  write_npy(path("ids/y.npy"), y.data(), {5});
  write_npy(path("ids/task_ids.npy"), ids.data(), {5});
  const Dataset<double> ds = load_data_folder<double>(path("ids"));
  EXPECT_EQ(ds.task_keys, (std::vector<std::string>{"7", "3", "-1"}));
  EXPECT_EQ(ds.task_offsets, (std::vector<std::int64_t>{0, 2, 4, 5}));
  EXPECT_EQ(ds.y, (std::vector<double>{1, 3, 2, 5, 4}));
  EXPECT_EQ(ds.X, (std::vector<double>{1, 10, 3, 30, 2, 20, 5, 50, 4, 40}));
  EXPECT_EQ(ds.source_rows, (std::vector<std::int64_t>{0, 2, 1, 4, 3}));
  const std::vector<std::int32_t> short_ids = {1, 2};
  write_npy(path("ids/task_ids.npy"), short_ids.data(), {2});
  EXPECT_THROW(load_data_folder<double>(path("ids")), Error);
}

TEST_F(IoTest, CsvGroupsTasksAndPicksNumericFeatures) {
  write_bytes("r.csv",
              "user,\"title, with comma\",genre,x1,rating\n"
              "a,\"Up, \"\"the\"\" film\",Drama,1.5,4\n"
              "b,Heat,Crime,2,3.5\r\n"
              "a,Alien,Horror,-1,2\n"
              "\n"
              "c,Big,Comedy,0.25,5\n");
  std::vector<std::string> ignored;
  CsvOptions o{"rating", "user"};
  o.intercept = false;
  o.ignore = {"title, with comma", "genre"};
  const Dataset<double> ds = load_csv<double>(path("r.csv"), o, &ignored);
  EXPECT_EQ(ds.task_keys, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(ds.feature_names, (std::vector<std::string>{"x1"}));
  EXPECT_EQ(ignored, (std::vector<std::string>{"title, with comma", "genre"}));
  EXPECT_EQ(ds.task_offsets, (std::vector<std::int64_t>{0, 2, 3, 4}));
  EXPECT_EQ(ds.X, (std::vector<double>{1.5, -1, 2, 0.25}));  // rows of task a together, in file order
  EXPECT_EQ(ds.y, (std::vector<double>{4, 2, 3.5, 5}));
  EXPECT_EQ(ds.source_rows, (std::vector<std::int64_t>{0, 2, 1, 3}));
  // Aligning to a model's task order; unknown tasks are an error.
  const Dataset<double> al = align_tasks(ds, {"c", "z", "a", "b"});
  EXPECT_EQ(al.task_offsets, (std::vector<std::int64_t>{0, 1, 1, 3, 4}));
  EXPECT_EQ(al.y, (std::vector<double>{5, 4, 2, 3.5}));
  EXPECT_EQ(al.source_rows, (std::vector<std::int64_t>{3, 0, 2, 1}));
  EXPECT_THROW(align_tasks(ds, {"a", "b"}), Error);
}

// A table of more than one read buffer (1 MiB), with quoted fields (commas, doubled quotes, line
// breaks) anywhere, CR LF and blank lines, and tasks' rows interleaved: every value read back is
// the one written, computed here from the row number.
TEST_F(IoTest, CsvStreamsTablesLargerThanItsBufferAndConvertsToTheSameData) {
  const char* texts[] = {"plain", "with, comma", "say \"hi\"", "two\nlines"};
  const int rows = 40000;
  std::string csv = "task,note,x,y\n";
  for (int i = 0; i < rows; ++i) {
    const std::string note = texts[i % 4];
    std::string quoted = "\"";
    for (char c : note) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
    quoted += "\"";
    csv += "t" + std::to_string((i * 7) % 53) + "," + (i % 4 == 0 ? note : quoted) + "," + std::to_string(0.25 * i) + "," +
           std::to_string(i % 11) + (i % 5 == 0 ? "\r\n" : "\n");
    if (i % 997 == 0) csv += "\n";
  }
  ASSERT_GT(csv.size(), std::size_t{1} << 20);
  write_bytes("big.csv", csv);
  CsvOptions o{"y", "task"};
  const Dataset<double> ds = load_csv<double>(path("big.csv"), o);
  ASSERT_EQ(ds.n(), rows);
  EXPECT_EQ(ds.t(), 53);
  EXPECT_EQ(ds.feature_names, (std::vector<std::string>{"(intercept)", "note=plain", "note=say \"hi\"", "note=two\nlines",
                                                        "note=with, comma", "x"}));
  const int level_of[] = {0, 3, 1, 2};  // texts[] in sorted level order
  for (std::int64_t row = 0; row < ds.n(); ++row) {
    const std::int64_t i = ds.source_rows[static_cast<std::size_t>(row)];
    const double* x = ds.X.data() + row * ds.d;
    ASSERT_EQ(ds.task_keys[static_cast<std::size_t>(std::upper_bound(ds.task_offsets.begin(), ds.task_offsets.end(), row) -
                                                    ds.task_offsets.begin() - 1)],
              "t" + std::to_string((i * 7) % 53));
    EXPECT_EQ(x[0], 1.0);
    for (int l = 0; l < 4; ++l) EXPECT_EQ(x[1 + l], l == level_of[i % 4] ? 1.0 : 0.0) << "row " << i;
    EXPECT_EQ(x[5], 0.25 * static_cast<double>(i));
    EXPECT_EQ(ds.y[static_cast<std::size_t>(row)], static_cast<double>(i % 11));
  }
  // Converted once: the folder holds the same data, and its keys, names and encoding come back
  // with it, mapped or loaded; float32 on request.
  EXPECT_EQ(convert_csv(path("big.csv"), o, path("big_data")), rows);
  const Dataset<double> back = load_data_folder<double>(path("big_data"));
  EXPECT_EQ(back.X, ds.X);
  EXPECT_EQ(back.y, ds.y);
  EXPECT_EQ(back.task_offsets, ds.task_offsets);
  EXPECT_EQ(back.task_keys, ds.task_keys);
  EXPECT_EQ(back.feature_names, ds.feature_names);
  EXPECT_EQ(back.encoding.columns.size(), ds.encoding.columns.size());
  const MappedDataset<double> mapped = map_data_folder<double>(path("big_data"));
  EXPECT_TRUE(mapped.X_in_place());
  EXPECT_EQ(mapped.task_keys, ds.task_keys);
  EXPECT_EQ(mapped.encoding.intercept, true);
  EXPECT_EQ(std::vector<double>(mapped.view().X, mapped.view().X + ds.X.size()), ds.X);
  std::uint64_t last_read = 0;
  int calls = 0;
  convert_csv(path("big.csv"), o, path("big32"), DType::f32, [&](const char*, std::uint64_t done, std::uint64_t total) {
    EXPECT_LE(done, total);
    last_read = done;
    ++calls;
  });
  EXPECT_GT(calls, 0);
  EXPECT_GT(last_read, 0u);
  EXPECT_EQ(data_folder_dtype(path("big32")), DType::f32);
  const Dataset<float> f = load_data_folder<float>(path("big32"));
  EXPECT_EQ(std::vector<double>(f.X.begin(), f.X.end()), ds.X);  // these values are exact in float
  // A bad table converts to nothing; a description that does not match its folder is refused.
  write_bytes("bad.csv", "task,x,y\na,1,2\nb,2,oops\n");
  EXPECT_THROW(convert_csv(path("bad.csv"), o, path("bad_data")), Error);
  EXPECT_FALSE(fs::exists(path("bad_data")));
  for (const auto& e : fs::directory_iterator(dir_)) EXPECT_EQ(e.path().filename().string().find(".bad_data"), std::string::npos);
  std::string description;
  {
    std::ifstream in(path("big_data/dataset.json"));
    description.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const std::size_t at = description.find("\"t0\"");
  ASSERT_NE(at, std::string::npos);
  description.replace(at, 4, "\"t0\",\"extra\"");
  write_bytes("big_data/dataset.json", description);
  try {
    load_data_folder<double>(path("big_data"));
    FAIL() << "a dataset.json with an extra task key was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("has 54 task keys, the folder 53 tasks"), std::string::npos) << e.what();
  }
  EXPECT_THROW(map_data_folder<double>(path("big_data")), Error);
}

TEST_F(IoTest, CsvErrorsNameTheProblem) {
  auto expect_error = [&](const std::string& text, const CsvOptions& o, const std::string& needle) {
    write_bytes("bad.csv", text);
    try {
      load_csv<double>(path("bad.csv"), o);
      FAIL() << "no error for: " << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error("u,x,y\n1,2,3\n", {"rating", "u"}, "no column 'rating'");
  expect_error("u,x,y\n1,2,3\n2,4\n", {"y", "u"}, "line 3 has 2 fields");
  expect_error("u,x,y\n1,2,abc\n", {"y", "u"}, "line 2: target 'y' is not a finite number");
  expect_error("u,x,y\n1,2,nan\n", {"y", "u"}, "target 'y' is missing ('nan'); fill it in, or --missing drop");
  expect_error("u,x,y\n", {"y", "u"}, "no rows");
  expect_error("", {"y", "u"}, "empty");
  CsvOptions nothing{"y", "u"};
  nothing.intercept = false;
  nothing.ignore = {"name"};
  expect_error("u,name,y\n1,bob,2\n", nothing, "no feature columns");
  CsvOptions few{"y", "u"};
  few.max_levels = 2;
  expect_error("u,city,y\n1,a,2\n1,b,2\n2,c,3\n", few, "text column 'city' has 3 distinct values, more than --max-levels 2");
  CsvOptions unknown{"y", "u"};
  unknown.features = {"x", "z"};
  expect_error("u,x,y\n1,2,3\n", unknown, "no column 'z'");
  expect_error("u,x,y\n1,2,3\n1,NA,3\n2,4,1\n", {"y", "u"}, "column 'x' is numeric but 1 of its values are missing ('NA' on line 3)");
  expect_error("u,x,y\n1,2,3\n1,inf,3\n2,4,1\n", {"y", "u"}, "column 'x' has a value that is not a finite number ('inf' on line 3)");
  expect_error("u,x,y\n1,2,3\n1,1e999,3\n2,4,1\n", {"y", "u"}, "not a finite number ('1e999'");
  CsvOptions target_as_feature{"y", "u"};
  target_as_feature.features = {"y"};
  expect_error("u,x,y\n1,2,3\n", target_as_feature, "is the target column");
  expect_error("u,x,y\n1,\"2,3\n", {"y", "u"}, "unterminated");
  expect_error("u,x,y\n1,2,3\n", {"y", ""}, "no task column");
}

// --missing drop: rows missing the target, the task or a used feature are left out, counted by
// column; the rest keep their values and their rows' places in the file; a task whose rows all
// go keeps its place with none; a missing value in a column not used costs no row.
TEST_F(IoTest, CsvMissingValuesDropTheirRowsWhenAsked) {
  write_bytes("gaps.csv",
              "u,x,city,note,y\n"
              "a,1.5,Oslo,,2.0\n"     // row 0: kept (note is ignored)
              "a,NA,Oslo,hi,3.0\n"    // row 1: x missing
              "b,2.5,,hi,4.0\n"       // row 2: city missing
              "b,3.5,Rome,hi,\n"      // row 3: target missing
              ",4.5,Rome,hi,5.0\n"    // row 4: task missing
              "c,NaN,Rome,hi,6.0\n"   // row 5: x missing: task c has no row left
              "a,5.5,Rome,hi,7.0\n"); // row 6: kept
  CsvOptions o{"y", "u"};
  o.ignore = {"note"};
  o.drop_missing = true;
  const Dataset<double> ds = load_csv<double>(path("gaps.csv"), o);
  ASSERT_EQ(ds.task_keys, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(ds.task_offsets, (std::vector<std::int64_t>{0, 2, 2, 2}));
  EXPECT_EQ(ds.source_rows, (std::vector<std::int64_t>{0, 6}));
  EXPECT_EQ(ds.y, (std::vector<double>{2.0, 7.0}));
  const std::vector<std::string> names = ds.feature_names;
  const auto x = std::find(names.begin(), names.end(), "x") - names.begin();
  EXPECT_EQ(ds.X[static_cast<std::size_t>(x)], 1.5);
  EXPECT_EQ(ds.X[static_cast<std::size_t>(ds.d + x)], 5.5);
  ASSERT_EQ(ds.notes.size(), 1u);
  EXPECT_NE(ds.notes[0].find("5 of 7 rows had a missing value"), std::string::npos) << ds.notes[0];
  EXPECT_NE(ds.notes[0].find("task 'u' 1, target 'y' 1, 'x' 2, 'city' 1"), std::string::npos) << ds.notes[0];
  // The missing city is not a level of its own.
  EXPECT_EQ(std::count_if(names.begin(), names.end(), [](const std::string& n) { return n.rfind("city=", 0) == 0; }), 2);
  // The model's encoding, applied to the same file: the same rows go.
  CsvOptions again{"", ""};
  again.encoding = &ds.encoding;
  again.drop_missing = true;
  const Dataset<double> applied = load_csv<double>(path("gaps.csv"), again);
  EXPECT_EQ(applied.source_rows, ds.source_rows);
  EXPECT_EQ(applied.X, ds.X);
  // Without drop_missing: the first missing number is an error that names the way out.
  o.drop_missing = false;
  try {
    load_csv<double>(path("gaps.csv"), o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--missing drop"), std::string::npos) << e.what();
  }
  // Every row missing something: an error, not an empty data set.
  write_bytes("all_gaps.csv", "u,x,y\na,NA,1\nb,2,\n");
  CsvOptions all{"y", "u"};
  all.drop_missing = true;
  try {
    load_csv<double>(path("all_gaps.csv"), all);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("every row has a missing value"), std::string::npos) << e.what();
  }
}

// Exactly collinear numeric columns are named, with what they are a combination of; one-hot
// blocks (which sum to the intercept by construction) and merely correlated columns are not.
TEST_F(IoTest, CsvNotesExactlyCollinearColumns) {
  std::string text = "u,a,b,c,d,city,noisy,y\n";
  for (int i = 0; i < 30; ++i) {
    const double a = 0.5 * i - 3, b = 0.25 * (i % 7), noisy = a + 1e-3 * ((i * 37) % 11);
    text += "t" + std::to_string(i % 4) + "," + std::to_string(a) + "," + std::to_string(b) + "," + std::to_string(2 * a - b + 1) +
            ",7," + (i % 2 ? "Oslo" : "Rome") + "," + std::to_string(noisy) + "," + std::to_string(i) + "\n";
  }
  write_bytes("collinear.csv", text);
  const Dataset<double> ds = load_csv<double>(path("collinear.csv"), CsvOptions{"y", "u"});
  std::vector<std::string> collinear;
  for (const std::string& note : ds.encoding.notes)
    if (note.find("exact linear combination") != std::string::npos) collinear.push_back(note);
  ASSERT_EQ(collinear.size(), 2u) << ::testing::PrintToString(ds.encoding.notes);
  EXPECT_NE(collinear[0].find("column c is an exact linear combination of (intercept), a, b"), std::string::npos) << collinear[0];
  EXPECT_NE(collinear[1].find("column d is an exact linear combination of (intercept):"), std::string::npos) << collinear[1];
  EXPECT_NE(collinear[1].find("--ignore d"), std::string::npos);
  // Without the intercept, d (= 7 (c - 2a + b)) is still a combination of the others, and only d.
  CsvOptions plain{"y", "u"};
  plain.intercept = false;
  const Dataset<double> without = load_csv<double>(path("collinear.csv"), plain);
  std::vector<std::string> found;
  for (const std::string& note : without.encoding.notes)
    if (note.find("exact linear combination") != std::string::npos) found.push_back(note);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].rfind("column d is an exact linear combination of a, b, c", 0), 0u) << found[0];
}

TEST_F(IoTest, CsvEncodingInterceptOneHotIdColumnsAndReapplication) {
  // A row id (all distinct integers), a text column, a numeric one; 12 rows of 3 tasks.
  std::string text = "row,city,x,user,y\n";
  const char* cities[] = {"Oslo", "Rome", "Lima"};
  for (int i = 0; i < 12; ++i)
    text += std::to_string(100 + i) + "," + cities[i % 3] + "," + std::to_string(0.5 * i) + ",u" + std::to_string(i % 3) + "," +
            std::to_string(1.0 + (i % 3) + 0.25 * i) + "\n";
  write_bytes("enc.csv", text);
  const Dataset<double> ds = load_csv<double>(path("enc.csv"), {"y", "user"});
  EXPECT_EQ(ds.feature_names, (std::vector<std::string>{"(intercept)", "city=Lima", "city=Oslo", "city=Rome", "x"}));
  ASSERT_TRUE(ds.encoding.present);
  ASSERT_EQ(ds.encoding.ignored.size(), 1u);
  EXPECT_NE(ds.encoding.ignored[0].find("row: id-like"), std::string::npos) << ds.encoding.ignored[0];
  // Row 0 (task u0, Oslo, x = 0): 1, 0, 1, 0, 0.
  EXPECT_EQ(std::vector<double>(ds.X.begin(), ds.X.begin() + 5), (std::vector<double>{1, 0, 1, 0, 0}));
  // Naming the id column in --features uses it.
  CsvOptions with_id{"y", "user"};
  with_id.features = {"row", "x"};
  with_id.intercept = false;
  EXPECT_EQ(load_csv<double>(path("enc.csv"), with_id).feature_names, (std::vector<std::string>{"row", "x"}));

  // Train, save, and apply the model's encoding to another CSV whose columns are in another order,
  // with a city never seen in training.
  Options o;
  o.rank = 1;
  o.sparsity = 0;
  o.iterations = 5;
  Model m = fit(ds.view(), o);
  m.task_keys = ds.task_keys;
  m.feature_names = ds.feature_names;
  m.encoding = ds.encoding;
  save_model(m, path("enc_model"));
  const Model back = load_model(path("enc_model"));
  ASSERT_TRUE(back.encoding.present);
  EXPECT_EQ(back.encoding.intercept, true);
  ASSERT_EQ(back.encoding.columns.size(), 2u);
  EXPECT_EQ(back.encoding.columns[0].levels, (std::vector<std::string>{"Lima", "Oslo", "Rome"}));
  write_bytes("new.csv", "y,user,x,city\n2,u1,3,Rome\n2,u2,1,Paris\n");
  CsvOptions apply{"y", "user"};
  apply.encoding = &back.encoding;
  const Dataset<double> fresh = load_csv<double>(path("new.csv"), apply);
  EXPECT_EQ(fresh.feature_names, ds.feature_names);
  EXPECT_EQ(fresh.X, (std::vector<double>{1, 0, 0, 1, 3, 1, 0, 0, 0, 1}));  // Paris: no city feature set
  // A CSV lacking a column the model uses is refused, naming it.
  write_bytes("short.csv", "y,user,x\n2,u1,3\n");
  try {
    load_csv<double>(path("short.csv"), apply);
    FAIL() << "no error for a missing column";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no column 'city'"), std::string::npos) << e.what();
  }
}

TEST_F(IoTest, ModelRoundTripIsExact) {
  SyntheticSpec s;
  s.tasks = 30;
  s.min_samples = s.max_samples = 20;
  s.d = 10;
  const SyntheticData syn = generate_synthetic(s);
  Options o;
  o.rank = 2;
  o.sparsity = 2;
  o.iterations = 4;
  o.variant = Variant::htp;
  o.seed = 99;
  Model m = fit(syn.data.view(), o);
  m.task_keys.clear();
  for (int i = 0; i < 30; ++i) m.task_keys.push_back("user " + std::to_string(i));
  m.feature_names = {"f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9"};
  save_model(m, path("model"));
  const Model back = load_model(path("model"));
  EXPECT_EQ(back.U, m.U);
  EXPECT_EQ(back.W, m.W);
  EXPECT_EQ(back.B_index, m.B_index);
  EXPECT_EQ(back.B_value, m.B_value);
  EXPECT_EQ(back.task_keys, m.task_keys);
  EXPECT_EQ(back.feature_names, m.feature_names);
  EXPECT_EQ(back.options.variant, Variant::htp);
  EXPECT_EQ(back.options.seed, 99u);
  ASSERT_EQ(back.history.size(), 4u);
  EXPECT_EQ(back.history[3].training_loss, m.history[3].training_loss);
  EXPECT_EQ(predict(back, syn.data.view()), predict(m, syn.data.view()));
  // Saving again replaces the model folder; nothing else is left beside it.
  save_model(m, path("model"));
  EXPECT_EQ(listing(), (std::vector<std::string>{"model"}));
}

TEST_F(IoTest, FailedWritesLeaveNothingBehind) {
  const SyntheticSpec s = task_shape(4, 5, 1, 1, 6, 6);
  const SyntheticData syn = generate_synthetic(s);
  Options o;
  o.rank = 1;
  o.sparsity = 1;
  o.iterations = 2;
  Model m = fit(syn.data.view(), o);
  // An existing folder that is not a model is never overwritten.
  fs::create_directories(path("precious"));
  write_bytes("precious/notes.txt", "keep me");
  EXPECT_THROW(save_model(m, path("precious")), Error);
  EXPECT_TRUE(fs::exists(path("precious/notes.txt")));
  // An invalid model is refused before anything is written.
  Model bad = m;
  bad.W[0] = std::nan("");
  EXPECT_THROW(save_model(bad, path("bad")), Error);
  // A folder that cannot be created (parent is a file).
  write_bytes("file", "x");
  EXPECT_THROW(save_model(m, path("file/model")), Error);
  EXPECT_EQ(listing(), (std::vector<std::string>{"file", "precious"}));
}

TEST_F(IoTest, LoadModelRejectsDamagedFolders) {
  const SyntheticSpec s = task_shape(4, 5, 1, 1, 6, 6);
  Options o;
  o.rank = 1;
  o.sparsity = 1;
  o.iterations = 1;
  save_model(fit(generate_synthetic(s).data.view(), o), path("m"));
  const std::vector<double> wrong(3, 0.0);
  write_npy(path("m/W.npy"), wrong.data(), {3, 1});
  EXPECT_THROW(load_model(path("m")), Error);
  write_bytes("m/model.json", "{ not json");
  EXPECT_THROW(load_model(path("m")), Error);
  EXPECT_THROW(load_model(path("nowhere")), Error);
}

TEST_F(IoTest, SyntheticTruthRoundTrip) {
  const SyntheticSpec s = task_shape(7, 6, 2, 1, 3, 5);
  const SyntheticData syn = generate_synthetic(s);
  save_synthetic(path("gen"), syn);
  const SyntheticData truth = load_truth(path("gen/truth"));
  EXPECT_EQ(truth.theta(), syn.theta());
  for (std::int64_t i = 0; i < 7; ++i) {  // exactly k non-zeros per b_i
    int nz = 0;
    for (int a = 0; a < 6; ++a) nz += syn.B[i * 6 + a] != 0.0;
    EXPECT_EQ(nz, 1);
  }
  EXPECT_LT(testing::subspace_distance(syn.U, syn.U, 6, 2), 1e-15);
}

// The streaming writer draws exactly generate_synthetic's data and writes exactly save_synthetic's
// files; float32 X holds the rounded values; a stop mid-way leaves nothing behind.
TEST_F(IoTest, StreamingGenerationWritesTheSameFilesAndStopsCleanly) {
  SyntheticSpec s = task_shape(2500, 9, 2, 2, 0, 6, 0.1);  // more than one poll interval (1024 tasks)
  s.seed = 12;
  save_synthetic(path("in_memory"), generate_synthetic(s));
  write_synthetic(path("streamed"), s);
  auto bytes = [](const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  for (const char* f : {"X.npy", "y.npy", "task_offsets.npy", "truth/U.npy", "truth/W.npy", "truth/B.npy"}) {
    const std::string a = bytes(dir_ / "in_memory" / f), b = bytes(dir_ / "streamed" / f);
    EXPECT_FALSE(a.empty()) << f;
    EXPECT_EQ(a, b) << f;
  }
  write_synthetic(path("streamed32"), s, DType::f32);
  std::vector<std::int64_t> shape;
  const std::vector<double> X64 = read_npy_as<double>(path("streamed/X.npy"), &shape);
  EXPECT_EQ(read_npy(path("streamed32/X.npy")).dtype, DType::f32);
  const std::vector<float> X32 = read_npy_as<float>(path("streamed32/X.npy"), nullptr);
  ASSERT_EQ(X32.size(), X64.size());
  for (std::size_t e = 0; e < X64.size(); ++e) ASSERT_EQ(X32[e], static_cast<float>(X64[e])) << e;
  EXPECT_EQ(bytes(dir_ / "streamed32" / "y.npy"), bytes(dir_ / "streamed" / "y.npy"));

  const std::vector<std::string> before = listing();
  int polls = 0;
  EXPECT_THROW(write_synthetic(path("stopped"), s, DType::f64, [&](std::int64_t) { return ++polls < 2; }), Error);
  EXPECT_EQ(polls, 2);
  EXPECT_EQ(listing(), before);  // no folder, no staged sibling
}

// A data folder mapped in place trains exactly the model of the folder loaded into memory; X is
// used in place only when its type is the one computed in; damaged files are refused.
TEST_F(IoTest, MappedDataFolderIsUsedInPlaceAndTrainsTheSameModel) {
  const SyntheticSpec s = task_shape(60, 7, 2, 1, 0, 12, 0.05);
  write_synthetic(path("f64"), s);
  write_synthetic(path("f32"), s, DType::f32);
  EXPECT_EQ(data_folder_dtype(path("f64")), DType::f64);
  EXPECT_EQ(data_folder_dtype(path("f32")), DType::f32);
  const MappedDataset<double> m64 = map_data_folder<double>(path("f64"));
  const MappedDataset<float> m32 = map_data_folder<float>(path("f32"));
  const MappedDataset<float> converted = map_data_folder<float>(path("f64"));
  EXPECT_TRUE(m64.X_in_place());
  EXPECT_TRUE(m32.X_in_place());
  EXPECT_FALSE(converted.X_in_place());
  const Dataset<double> loaded = load_data_folder<double>(path("f64"));
  ASSERT_EQ(m64.n(), loaded.n());
  ASSERT_EQ(m64.task_offsets, loaded.task_offsets);
  for (std::size_t e = 0; e < loaded.X.size(); ++e) ASSERT_EQ(m64.view().X[e], loaded.X[e]);
  Options o;
  o.rank = 2;
  o.sparsity = 1;
  o.iterations = 8;
  o.threads = 1;
  const Model a = fit(m64.view(), o), b = fit(loaded.view(), o);
  EXPECT_EQ(a.U, b.U);
  EXPECT_EQ(a.W, b.W);
  EXPECT_EQ(a.B_value, b.B_value);
  // Copies share the mapping: the view stays valid after the original goes.
  TaskDataView<float> v;
  {
    const MappedDataset<float> copy = m32;
    v = copy.view();
  }
  EXPECT_EQ(v.X, m32.view().X);
  EXPECT_EQ(map_data_folder<float>(path("f32")).view().X[3], m32.view().X[3]);
  // A truncated X.npy is refused with its name.
  {
    std::ifstream in(path("f32/X.npy"), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    bytes.resize(bytes.size() - 8);
    write_bytes("f32/X.npy", bytes);
  }
  try {
    map_data_folder<float>(path("f32"));
    ADD_FAILURE() << "a truncated X.npy was mapped";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("X.npy: truncated"), std::string::npos) << e.what();
  }
}

// The CPU fit plans its memory before any work and refuses, with the numbers, what cannot fit
// (the limit simulated with LRSMETA_MEMORY_LIMIT).
TEST_F(IoTest, AFitThatCannotFitInMemoryIsRefusedBeforeItStarts) {
  const SyntheticSpec s = task_shape(300, 20, 2, 1, 10, 10, 0.1);
  const SyntheticData syn = generate_synthetic(s);
  Options o;
  o.rank = 2;
  o.sparsity = 1;
  o.iterations = 3;
  o.threads = 1;
  o.prior = Prior::none;
  const double data_bytes = 3000.0 * 21 * 8 + 301 * 8;  // X, y and the offsets in double
  ::setenv("LRSMETA_MEMORY_LIMIT", std::to_string(data_bytes * 0.9).c_str(), 1);
  try {
    fit(syn.data.view(), o);
    ADD_FAILURE() << "a fit larger than the limit started";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("memory: this fit needs about"), std::string::npos) << what;
    EXPECT_NE(what.find("LRSMETA_MEMORY_LIMIT"), std::string::npos) << what;
    EXPECT_NE(what.find("--precision float"), std::string::npos) << what;
  }
  // With r and k chosen on validation rows the rows are copied: the plan counts them twice.
  Options choose = o;
  choose.prior = Prior::automatic;
  choose.rank_candidates = {1, 2};
  choose.selection = Selection::validation;
  ::setenv("LRSMETA_MEMORY_LIMIT", std::to_string(data_bytes * 1.5).c_str(), 1);
  try {
    fit(syn.data.view(), choose);
    ADD_FAILURE() << "the validation copy was not counted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("validation split"), std::string::npos) << e.what();
  }
  // A rank candidate whose fit would not fit is left out, with a note; the others are tried.
  Options ranks = choose;
  ranks.rank_candidates = {1, 2, 20};
  Options at2 = choose, at20 = choose;
  at2.rank_candidates.clear();
  at20.rank_candidates.clear();
  at2.rank = 2;
  at20.rank = 20;
  const double fits2 = core::plan_cpu_memory(syn.data.view(), at2, true).total();
  const double needs20 = core::plan_cpu_memory(syn.data.view(), at20, true).total();
  ASSERT_LT(fits2, needs20);
  ::setenv("LRSMETA_MEMORY_LIMIT", std::to_string((fits2 + needs20) / 2).c_str(), 1);
  const Model capped = fit(syn.data.view(), ranks);
  bool noted = false;
  for (const std::string& note : capped.notes) noted = noted || note.find("rank candidates from r = 20 up were not tried") != std::string::npos;
  EXPECT_TRUE(noted);
  for (const SelectionCandidate& c : capped.selection.candidates) EXPECT_LE(c.rank, 2);
  ::setenv("LRSMETA_MEMORY_LIMIT", "12GB", 1);
  try {
    fit(syn.data.view(), o);
    ADD_FAILURE() << "a malformed LRSMETA_MEMORY_LIMIT was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("LRSMETA_MEMORY_LIMIT must be a positive number of bytes, not '12GB'"), std::string::npos)
        << e.what();
  }
  ::setenv("LRSMETA_MEMORY_LIMIT", "1e12", 1);
  EXPECT_NO_THROW(fit(syn.data.view(), o));
  ::unsetenv("LRSMETA_MEMORY_LIMIT");
}

// A fit that holds U solves for beta and one or two directions from passes over the tasks: its
// plan has no G (16 (d r')^2 bytes, 21 GB for the slopes model at d = 200), and such a fit runs
// under a limit that G would not fit in.
TEST_F(IoTest, AFitThatHoldsUPlansNoG) {
  const SyntheticSpec s = task_shape(200, 40, 2, 1, 8, 8, 0.1);
  SyntheticData syn = generate_synthetic(s);
  for (std::size_t j = 0; j < syn.data.X.size(); j += static_cast<std::size_t>(s.d)) syn.data.X[j] = 1.0;  // a constant feature
  Options slopes;
  slopes.rank = s.d;
  slopes.sparsity = 0;
  slopes.low_rank_basis = LowRankBasis::slopes;
  slopes.covariance_shrinkage = 0.0;
  slopes.sparse_prior_scale = 0.1;
  slopes.iterations = 3;
  slopes.threads = 1;
  Options learned = slopes;
  learned.low_rank_basis = LowRankBasis::learned;
  learned.u_solver = USolver::direct;
  const core::MemoryPlan held = core::plan_cpu_memory(syn.data.view(), slopes, false);
  const core::MemoryPlan full = core::plan_cpu_memory(syn.data.view(), learned, false);
  const double dr = 40.0 * 41.0, G_bytes = 16 * dr * dr;
  for (const auto& part : held.parts) EXPECT_EQ(part.first.find("G and its factor"), std::string::npos) << part.first;
  EXPECT_LT(held.total() + G_bytes / 2, full.total());
  ::setenv("LRSMETA_MEMORY_LIMIT", std::to_string(held.total() + G_bytes / 4).c_str(), 1);
  EXPECT_NO_THROW(fit(syn.data.view(), slopes));
  ::unsetenv("LRSMETA_MEMORY_LIMIT");
}

}  // namespace
}  // namespace lrsmeta
