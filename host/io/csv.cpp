// CSV tables, read as a stream: one pass decides the encoding and counts each task's rows, a
// second writes every row straight to its place, grouped by task. Memory holds the per-column
// statistics and the task keys, never the table's text: load_csv's only large allocation is the
// data set itself, and convert_csv's is y (8 bytes a row) while X goes to its file row by row.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "io/csv_collinearity.hpp"
#include "io/csv_reader.hpp"
#include "io/dataset_description.hpp"
#include "core/utf8.hpp"
#include "io/files.hpp"
#include "io/model_files.hpp"
#include "io/npy_stream.hpp"
#include "lrsmeta/io.hpp"

namespace fs = std::filesystem;

namespace lrsmeta {
namespace {

using io::Collinearity;
using io::CsvReader;
using io::missing_marker;
using io::non_finite_number;
using io::parse_number;
using io::whole_number;


// Names that say "row number": a pandas index written out, an id.
// A name ending in "id" (movieId, child_id, childid): with integer values, identifiers' codes.
bool id_suffix_name(std::string name) {
  for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return name.size() >= 2 && name.compare(name.size() - 2, 2, "id") == 0;
}

bool id_like_name(std::string name) {
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name == "id" || name == "index" || name == "row" || name == "rowid" || name == "row_id" || name == "unnamed: 0" ||
         name.empty();
}

std::size_t column_of(const std::vector<std::string>& header, const std::string& name, const std::string& path) {
  const auto it = std::find(header.begin(), header.end(), name);
  if (it == header.end()) {
    std::string names;
    for (const auto& h : header) names += (names.empty() ? "" : ", ") + h;
    throw Error(path + ": no column '" + name + "' in the header (columns: " + names + ")");
  }
  return static_cast<std::size_t>(it - header.begin());
}

// What the first pass learns of one column, in bounded memory: the distinct values are kept (as
// text) only up to a cap, and as hashes only until a value repeats (after that the column cannot
// be "every value distinct").
struct ColumnScan {
  bool numeric = true, integers = true, numbers_or_empty = true;
  std::size_t empty = 0, non_finite = 0;
  std::string first_empty, first_non_finite;
  std::int64_t first_empty_line = 0, first_non_finite_line = 0;
  std::set<std::string> levels;  // the distinct values, while there are at most level_cap
  bool levels_overflow = false;
  std::unordered_set<std::uint64_t> hashes;
  bool repeated = false;
  bool quoted_numbers = false;  // a number in quotes: a category's code, as R writes factors

  // skip_missing: a missing value is not a value of the column (its row will be left out).
  void add(const std::string& field, bool quoted, std::int64_t line, std::size_t level_cap, bool skip_missing) {
    if (skip_missing && missing_marker(field)) return;
    double v = 0;
    const bool is_number = parse_number(field, &v);
    quoted_numbers = quoted_numbers || (quoted && is_number);
    const bool missing = missing_marker(field), infinite = !is_number && !missing && non_finite_number(field);
    if (missing && empty++ == 0) {
      first_empty = field;
      first_empty_line = line;
    }
    if (infinite && non_finite++ == 0) {
      first_non_finite = field;
      first_non_finite_line = line;
    }
    numbers_or_empty = numbers_or_empty && (is_number || missing || infinite);
    numeric = numeric && is_number;
    integers = integers && is_number && v == std::floor(v);
    if (!levels_overflow) {
      levels.insert(field);
      if (levels.size() > level_cap) {
        levels_overflow = true;
        levels.clear();
      }
    }
    if (!repeated && !hashes.insert(std::hash<std::string>{}(field)).second) {
      repeated = true;
      hashes = {};
    }
  }
};

// Pass 1: the header, the encoding (unless given), each task's key and row count.
struct CsvScan {
  std::vector<std::string> header;
  std::size_t target_col = 0, task_col = 0;
  bool has_target = true;   // false: no target column, and none needed (y reads as 0)
  bool target_needed = true;  // false (predict): a missing target value reads as 0
  std::string target, task;  // the column names in effect
  FeatureEncoding encoding;
  std::vector<std::string> task_keys;  // in order of first appearance
  std::vector<std::int64_t> task_rows;
  std::unordered_map<std::string, std::int64_t> task_of_key;
  std::int64_t n = 0;             // rows kept
  std::int64_t rows_in_file = 0;  // every data row
  std::vector<std::int64_t> dropped;  // drop_missing: the data rows (0-based) left out, ascending
  std::string dropped_note;           // and what they were missing
};

// drop_missing, during pass 1: the rows with a missing value, by column, and each such row's task
// (-1: the task's own value is missing). Missing values are rare: memory follows them, not n.
struct MissingRows {
  std::vector<std::vector<std::int64_t>> by_column;  // header column -> rows
  std::unordered_map<std::int64_t, std::int64_t> task_of_row;
  std::vector<std::int64_t> no_task;  // rows whose task value is missing

  // After pass 1: leave out every row missing a value in `used` columns (or its task), taking them
  // from the tasks' row counts; a note names the columns.
  void drop(CsvScan& scan, const std::vector<std::size_t>& used) {
    std::vector<std::int64_t> rows = no_task;
    std::string counts = no_task.empty() ? "" : "task '" + scan.task + "' " + std::to_string(no_task.size());
    for (std::size_t c : used) {
      if (by_column[c].empty()) continue;
      rows.insert(rows.end(), by_column[c].begin(), by_column[c].end());
      counts += (counts.empty() ? "" : ", ") + ((c == scan.target_col ? "target '" : "'") + scan.header[c] + "' ") +
                std::to_string(by_column[c].size());
    }
    std::sort(rows.begin(), rows.end());
    rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
    for (std::int64_t row : rows) {
      const std::int64_t task = task_of_row.at(row);
      if (task >= 0) --scan.task_rows[static_cast<std::size_t>(task)];
    }
    scan.n = scan.rows_in_file - static_cast<std::int64_t>(rows.size());
    if (!rows.empty())
      scan.dropped_note = std::to_string(rows.size()) + " of " + std::to_string(scan.rows_in_file) +
                          " rows had a missing value and were left out (--missing drop); missing by column: " + counts;
    scan.dropped = std::move(rows);
  }
};

using CsvProgress = std::function<void(const char* pass, std::uint64_t bytes_read, std::uint64_t bytes_total)>;
constexpr std::int64_t kProgressRows = 1 << 16;

CsvScan scan_csv(const std::string& path, const CsvOptions& options, const CsvProgress& progress) {
  CsvScan scan;
  // Not given: the columns the model was trained with.
  scan.target = options.target.empty() && options.encoding ? options.encoding->target : options.target;
  scan.task = options.task.empty() && options.encoding ? options.encoding->task : options.task;
  if (scan.target.empty() && !options.target_optional) throw Error(path + ": no target column given (--target COLUMN)");
  if (scan.task.empty()) throw Error(path + ": no task column given (--task COLUMN)");
  CsvReader reader(path);
  std::int64_t line = 0;
  if (!reader.next(scan.header, &line)) throw Error(path + ": empty CSV file (no header)");
  const std::vector<std::string>& header = scan.header;
  scan.has_target = !(options.target_optional &&
                      (scan.target.empty() || std::find(header.begin(), header.end(), scan.target) == header.end()));
  scan.target_needed = !options.target_optional;
  scan.task_col = column_of(header, scan.task, path);
  scan.target_col = scan.has_target ? column_of(header, scan.target, path) : header.size();
  if (scan.target_col == scan.task_col) throw Error(path + ": the target and task columns are the same");
  const bool choose = options.encoding == nullptr;
  auto listed = [](const std::vector<std::string>& list, const std::string& name) {
    return std::find(list.begin(), list.end(), name) != list.end();
  };
  if (choose) {
    for (const std::string& name : options.features) column_of(header, name, path);  // each must exist
    for (const std::string& name : options.ignore) column_of(header, name, path);
    for (const std::string& name : options.categorical) column_of(header, name, path);
    for (const std::string& name : options.numeric) {
      column_of(header, name, path);
      if (listed(options.categorical, name)) throw Error(path + ": column '" + name + "' is both in --numeric and in --categorical");
    }
  } else {
    for (const FeatureColumn& col : options.encoding->columns) column_of(header, col.name, path);  // a model's column missing: named
  }
  // Which columns to study (choosing) and why the others are left out.
  std::vector<std::size_t> studied;
  FeatureEncoding& enc = scan.encoding;
  for (std::size_t c = 0; choose && c < header.size(); ++c) {
    const std::string& name = header[c];
    if (c == scan.target_col || c == scan.task_col) {
      if (listed(options.features, name))
        throw Error(path + ": column '" + name + "' is the " + (c == scan.target_col ? "target" : "task") + " column; it cannot be a feature");
      continue;
    }
    const bool asked = listed(options.features, name);
    if (!options.features.empty() && !asked) continue;
    if (listed(options.ignore, name) && asked) throw Error(path + ": column '" + name + "' is both in --features and in --ignore");
    studied.push_back(c);
  }
  // drop_missing: the columns whose missing values are recorded (the target, and every column
  // that may become a feature: those studied, or the model's).
  const bool drop = options.drop_missing;
  std::vector<std::size_t> watched;
  if (drop) {
    if (scan.has_target && scan.target_needed) watched.push_back(scan.target_col);
    if (choose)
      watched.insert(watched.end(), studied.begin(), studied.end());
    else
      for (const FeatureColumn& col : options.encoding->columns) watched.push_back(column_of(header, col.name, path));
  }
  MissingRows missing;
  missing.by_column.resize(header.size());
  std::vector<ColumnScan> stats(header.size());
  const std::size_t level_cap = static_cast<std::size_t>(std::max(options.max_levels, 0)) + 1000;
  std::vector<std::string> fields;
  while (reader.next(fields, &line)) {
    if (fields.size() != header.size())
      throw Error(path + ": line " + std::to_string(line) + " has " + std::to_string(fields.size()) + " fields, the header has " +
                  std::to_string(header.size()));
    const std::int64_t row = scan.rows_in_file++;
    if (row % kProgressRows == 0 && row > 0 && progress) progress("reading", reader.bytes_read(), reader.size());
    for (std::size_t c : studied) stats[c].add(fields[c], reader.quoted(c), line, level_cap, drop);
    const std::string& key = fields[scan.task_col];
    std::int64_t task = -1;
    if (drop && missing_marker(key)) {
      missing.no_task.push_back(row);
    } else {
      auto [it, inserted] = scan.task_of_key.emplace(key, static_cast<std::int64_t>(scan.task_keys.size()));
      if (inserted) {
        scan.task_keys.push_back(key);
        scan.task_rows.push_back(0);
      }
      task = it->second;
      ++scan.task_rows[static_cast<std::size_t>(task)];
    }
    bool recorded = task < 0;
    for (std::size_t c : watched)
      if (missing_marker(fields[c])) {
        missing.by_column[c].push_back(row);
        recorded = true;
      }
    if (recorded) missing.task_of_row.emplace(row, task);
  }
  if (progress) progress("reading", reader.bytes_read(), reader.size());
  scan.n = scan.rows_in_file;
  if (scan.n == 0) throw Error(path + ": the CSV has a header but no rows");
  // The columns in use once the encoding is known, for drop_missing.
  auto drop_missing_rows = [&] {
    if (!drop) return;
    std::vector<std::size_t> used;
    if (scan.has_target && scan.target_needed) used.push_back(scan.target_col);
    for (const FeatureColumn& col : enc.columns) used.push_back(column_of(header, col.name, path));
    missing.drop(scan, used);
    if (scan.n == 0) throw Error(path + ": every row has a missing value (" + scan.dropped_note + ")");
  };
  if (!choose) {
    enc = *options.encoding;
    drop_missing_rows();
    return scan;
  }
  // Decide how each column becomes features.
  const std::size_t n = static_cast<std::size_t>(scan.n);
  enc.present = true;
  enc.intercept = options.intercept;
  enc.target = scan.target;
  enc.task = scan.task;
  for (std::size_t c = 0; c < header.size(); ++c) {
    const std::string& name = header[c];
    if (c == scan.target_col || c == scan.task_col) continue;
    const bool asked = listed(options.features, name);
    if (!options.features.empty() && !asked) {
      enc.ignored.push_back(name + ": not in --features");
      continue;
    }
    if (listed(options.ignore, name)) {
      enc.ignored.push_back(name + ": --ignore");
      continue;
    }
    const ColumnScan& s = stats[c];
    // Numbers with gaps or infinities: a numeric column with bad values, not text to one-hot encode.
    if (!s.numeric && s.numbers_or_empty && s.non_finite > 0)
      throw Error(path + ": column '" + name + "' has a value that is not a finite number ('" + s.first_non_finite + "' on line " +
                  std::to_string(s.first_non_finite_line) + "); fix it, or --ignore " + name);
    if (!s.numeric && s.numbers_or_empty && s.empty < n)
      throw Error(path + ": column '" + name + "' is numeric but " + std::to_string(s.empty) + " of its values are missing ('" +
                  s.first_empty + "' on line " + std::to_string(s.first_empty_line) + "); fill them in, --missing drop to leave those rows out, or --ignore " + name);
    const bool as_numbers = listed(options.numeric, name), as_categories = listed(options.categorical, name);
    if (as_numbers && !s.numeric)
      throw Error(path + ": column '" + name + "' is in --numeric but holds values that are not numbers");
    const bool all_distinct = n >= 10 && !s.repeated;
    const std::size_t distinct = s.levels_overflow ? level_cap + 1 : s.levels.size();
    // Integer codes under an id's name (movieId, childid) with many values: identifiers, not quantities.
    const bool id_codes = s.numeric && s.integers && id_suffix_name(name) && distinct > 20;
    if (!asked && !as_numbers && !as_categories && (id_like_name(name) || id_codes || (all_distinct && (s.integers || !s.numeric)))) {
      enc.ignored.push_back(name + ": id-like (" +
                            (id_like_name(name) ? std::string("its name") : id_codes ? "integer codes under an id's name" : "every value distinct") +
                            "); --numeric " + name + " or --categorical " + name + " to use it");
      continue;
    }
    FeatureColumn col;
    col.name = name;
    // Quoted numbers are categories' codes (R's write.csv quotes factors) unless --numeric says not.
    const bool categories = as_categories || !s.numeric || (s.quoted_numbers && !as_numbers);
    if (categories) {
      if (s.levels_overflow || s.levels.size() > static_cast<std::size_t>(options.max_levels))
        throw Error(path + ": " + (s.numeric ? (as_categories ? "column '" : "column of quoted numbers '") : "text column '") + name +
                    "' has " + (s.levels_overflow ? "more than " + std::to_string(level_cap) : std::to_string(s.levels.size())) +
                    " distinct values, more than --max-levels " + std::to_string(options.max_levels) +
                    " for one-hot encoding: raise --max-levels, " + (s.numeric && !as_categories ? "--numeric " + name + ", " : "") +
                    "or --ignore " + name);
      col.levels.assign(s.levels.begin(), s.levels.end());
      if (s.numeric && !as_categories)
        enc.notes.push_back("column " + name + ": quoted numbers, one-hot encoded as categories (--numeric " + name +
                            " to read them as numbers)");
    }
    enc.columns.push_back(std::move(col));
  }
  if (enc.columns.empty() && !enc.intercept)
    throw Error(path + ": no feature columns besides the target and task columns (and no intercept)");
  drop_missing_rows();
  if (!scan.dropped_note.empty()) enc.notes.push_back(scan.dropped_note);  // the data a model was trained on
  return scan;
}

// Pass 2: each row's features and target, handed to `put` with the row's place in task order and
// its place in the file. The scan's task keys must be those of this file (the same file).
template <typename T>
void fill_csv(const std::string& path, const CsvScan& scan, std::int64_t d,
              const std::vector<std::int64_t>& task_offsets, const CsvProgress& progress,
              const std::function<void(std::int64_t row, std::int64_t source_row, const T* x, double y)>& put,
              std::vector<std::string>* collinear_notes = nullptr) {
  const FeatureEncoding& enc = scan.encoding;
  std::vector<std::size_t> source;
  std::vector<std::unordered_map<std::string, std::int64_t>> level_index(enc.columns.size());
  std::vector<std::int64_t> first_feature;
  std::int64_t at = enc.intercept ? 1 : 0;
  for (std::size_t c = 0; c < enc.columns.size(); ++c) {
    const FeatureColumn& col = enc.columns[c];
    source.push_back(column_of(scan.header, col.name, path));
    first_feature.push_back(at);
    for (std::size_t l = 0; l < col.levels.size(); ++l) level_index[c].emplace(col.levels[l], static_cast<std::int64_t>(l));
    at += col.levels.empty() ? 1 : static_cast<std::int64_t>(col.levels.size());
  }
  std::optional<Collinearity> collinearity;
  if (collinear_notes) collinearity.emplace(enc, first_feature);
  std::vector<std::int64_t> next(task_offsets.begin(), task_offsets.end() - 1);
  std::vector<T> x(static_cast<std::size_t>(d));
  CsvReader reader(path, false);  // pass 1 checked the text
  std::vector<std::string> fields;
  std::int64_t line = 0, i = 0, source_row = -1;
  auto next_dropped = scan.dropped.begin();
  reader.next(fields, &line);  // the header
  while (reader.next(fields, &line)) {
    if (fields.size() != scan.header.size()) throw Error(path + ": changed while it was read (line " + std::to_string(line) + ")");
    ++source_row;
    if (next_dropped != scan.dropped.end() && *next_dropped == source_row) {  // left out (drop_missing)
      ++next_dropped;
      continue;
    }
    const auto task = scan.task_of_key.find(fields[scan.task_col]);
    if (task == scan.task_of_key.end()) throw Error(path + ": changed while it was read (line " + std::to_string(line) + ")");
    const std::int64_t row = next[static_cast<std::size_t>(task->second)]++;
    double v = 0;
    const bool target_read = scan.has_target && parse_number(fields[scan.target_col], &v);
    if (scan.has_target && !target_read && (scan.target_needed || !missing_marker(fields[scan.target_col]))) {
      if (missing_marker(fields[scan.target_col]))
        throw Error(path + ": line " + std::to_string(line) + ": target '" + scan.target + "' is missing ('" + fields[scan.target_col] +
                    "'); fill it in, or --missing drop to leave out the rows missing a value");
      throw Error(path + ": line " + std::to_string(line) + ": target '" + scan.target + "' is not a finite number: '" +
                  fields[scan.target_col] + "'");
    }
    const double y = target_read ? v : 0.0;
    std::fill(x.begin(), x.end(), T(0));
    if (enc.intercept) x[0] = T(1);
    for (std::size_t c = 0; c < enc.columns.size(); ++c) {
      const std::string& field = fields[source[c]];
      if (enc.columns[c].levels.empty()) {
        if (!parse_number(field, &v))
          throw Error(path + ": line " + std::to_string(line) + ": column '" + enc.columns[c].name +
                      "' is numeric in the model but holds '" + field + "'");
        x[static_cast<std::size_t>(first_feature[c])] = static_cast<T>(v);
      } else {
        const auto it = level_index[c].find(field);
        if (it != level_index[c].end()) x[static_cast<std::size_t>(first_feature[c] + it->second)] = T(1);  // unseen level: zeros
      }
    }
    put(row, source_row, x.data(), y);
    if (collinearity) collinearity->add(x.data());
    if (++i % kProgressRows == 0 && progress) progress("encoding", reader.bytes_read(), reader.size());
  }
  if (i != scan.n || source_row + 1 != scan.rows_in_file)
    throw Error(path + ": changed while it was read (" + std::to_string(source_row + 1) + " rows, then " + std::to_string(scan.rows_in_file) + ")");
  if (progress) progress("encoding", reader.bytes_read(), reader.size());
  if (collinearity) *collinear_notes = collinearity->notes();
}

std::vector<std::int64_t> offsets_of(const CsvScan& scan) {
  std::vector<std::int64_t> offsets(scan.task_rows.size() + 1, 0);
  for (std::size_t i = 0; i < scan.task_rows.size(); ++i) offsets[i + 1] = offsets[i] + scan.task_rows[i];
  return offsets;
}

std::int64_t feature_count(const FeatureEncoding& enc, const std::string& path) {
  const std::int64_t d = static_cast<std::int64_t>(encoded_feature_names(enc).size());
  if (d == 0) throw Error(path + ": no features");
  return d;
}

}  // namespace

std::size_t CsvTable::column(const std::string& name) const { return column_of(header, name, path); }

CsvTable read_csv_table(const std::string& path) try {
  CsvReader reader(path);
  CsvTable table;
  table.path = path;
  std::int64_t line = 0;
  if (!reader.next(table.header, &line)) throw Error(path + ": empty CSV file (no header)");
  std::vector<std::string> fields;
  while (reader.next(fields, &line)) {
    if (fields.size() != table.header.size())
      throw Error(path + ": line " + std::to_string(line) + " has " + std::to_string(fields.size()) + " fields, the header has " +
                  std::to_string(table.header.size()));
    table.rows.push_back(fields);
    table.lines.push_back(line);
  }
  return table;
} catch (...) {
  io::rethrow_naming_file(path);
}

std::vector<std::string> encoded_feature_names(const FeatureEncoding& enc) {
  std::vector<std::string> names;
  if (enc.intercept) names.push_back("(intercept)");
  for (const FeatureColumn& c : enc.columns) {
    if (c.levels.empty()) names.push_back(c.name);
    for (const std::string& level : c.levels) names.push_back(c.name + "=" + level);
  }
  return names;
}

template <typename T>
Dataset<T> load_csv(const std::string& path, const CsvOptions& options, std::vector<std::string>* ignored) try {
  const CsvScan scan = scan_csv(path, options, {});
  const std::int64_t d = feature_count(scan.encoding, path);
  Dataset<T> ds;
  ds.d = d;
  ds.encoding = scan.encoding;
  ds.feature_names = encoded_feature_names(scan.encoding);
  ds.task_keys = scan.task_keys;
  ds.task_offsets = offsets_of(scan);
  if (ignored)
    for (const std::string& why : scan.encoding.ignored) ignored->push_back(why.substr(0, why.find(':')));
  const std::size_t n = static_cast<std::size_t>(scan.n);
  ds.X.assign(n * static_cast<std::size_t>(d), T(0));
  ds.y.resize(n);
  ds.source_rows.resize(n);
  if (!scan.dropped_note.empty()) ds.notes.push_back(scan.dropped_note);
  std::vector<std::string> collinear;  // where the encoding is chosen here: it says so
  fill_csv<T>(
      path, scan, d, ds.task_offsets, {},
      [&](std::int64_t row, std::int64_t source_row, const T* x, double y) {
        std::copy_n(x, d, ds.X.data() + row * d);
        ds.y[static_cast<std::size_t>(row)] = static_cast<T>(y);
        ds.source_rows[static_cast<std::size_t>(row)] = source_row;
      },
      options.encoding ? nullptr : &collinear);
  ds.encoding.notes.insert(ds.encoding.notes.end(), collinear.begin(), collinear.end());
  ds.notes.insert(ds.notes.end(), collinear.begin(), collinear.end());
  validate(ds.view(), true);
  return ds;
} catch (...) {
  io::rethrow_naming_file(path);
}
template Dataset<float> load_csv(const std::string&, const CsvOptions&, std::vector<std::string>*);
template Dataset<double> load_csv(const std::string&, const CsvOptions&, std::vector<std::string>*);

namespace {
template <typename T>
std::int64_t convert_csv_as(const std::string& csv_path, const CsvOptions& options, const std::string& out, const CsvProgress& progress) {
  const CsvScan scan = scan_csv(csv_path, options, progress);
  const std::int64_t d = feature_count(scan.encoding, csv_path), n = scan.n;
  const std::vector<std::int64_t> offsets = offsets_of(scan);
  const std::string staged = io::temporary_sibling(out);
  std::error_code ec;
  fs::create_directories(staged, ec);
  if (ec) throw Error(out + ": cannot create a folder beside it (" + ec.message() + ")");
  try {
    const fs::path dir(staged);
    // X in task order, row by row at its place in the file (the CSV's rows of a task may be
    // anywhere); y, 8 bytes a row, in memory until the end.
    const std::string x_path = (dir / "X.npy").string();
    const DType dtype = std::is_same_v<T, float> ? DType::f32 : DType::f64;
    const std::string header = io::npy_header(dtype, {n, d}, x_path);
    const int fd = ::open(x_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) throw Error(x_path + ": cannot create (" + std::strerror(errno) + ")");
    struct Closer {
      int fd;
      ~Closer() { ::close(fd); }
    } closer{fd};
    auto write_at = [&](const void* data, std::size_t bytes, std::uint64_t offset) {
      const char* p = static_cast<const char*>(data);
      while (bytes > 0) {
        const ssize_t wrote = ::pwrite(fd, p, bytes, static_cast<off_t>(offset));
        if (wrote < 0 && errno == EINTR) continue;
        if (wrote <= 0) throw Error(x_path + ": write failed (" + std::strerror(errno) + "; disk full?)");
        p += wrote;
        bytes -= static_cast<std::size_t>(wrote);
        offset += static_cast<std::uint64_t>(wrote);
      }
    };
    write_at(header.data(), header.size(), 0);
    if (::ftruncate(fd, static_cast<off_t>(header.size() + static_cast<std::uint64_t>(n * d) * sizeof(T))) != 0)
      throw Error(x_path + ": cannot size the file (" + std::strerror(errno) + ")");
    std::vector<double> y(static_cast<std::size_t>(n));
    std::vector<std::string> collinear;
    fill_csv<T>(
        csv_path, scan, d, offsets, progress,
        [&](std::int64_t row, std::int64_t, const T* x, double target) {
          write_at(x, static_cast<std::size_t>(d) * sizeof(T), header.size() + static_cast<std::uint64_t>(row * d) * sizeof(T));
          y[static_cast<std::size_t>(row)] = target;
        },
        &collinear);
    FeatureEncoding encoding = scan.encoding;
    encoding.notes.insert(encoding.notes.end(), collinear.begin(), collinear.end());
    write_npy((dir / "y.npy").string(), y.data(), {n});
    write_npy((dir / "task_offsets.npy").string(), offsets.data(), {static_cast<std::int64_t>(offsets.size())});
    const nlohmann::json meta{{"format", "lrsmeta-data"},
                              {"source", csv_path},
                              {"target", options.target},
                              {"task", options.task},
                              {"task_keys", scan.task_keys},
                              {"feature_names", encoded_feature_names(scan.encoding)},
                              {"csv_encoding", io::encoding_json(encoding)}};
    write_text_file_atomically((dir / "dataset.json").string(), meta.dump(1) + "\n");
  } catch (...) {
    fs::remove_all(staged, ec);
    throw;
  }
  io::install_folder(staged, out, "task_offsets.npy");
  return n;
}
}  // namespace

namespace io {
void read_dataset_description(const std::string& folder, std::int64_t t, std::int64_t d, std::vector<std::string>* task_keys,
                              std::vector<std::string>* feature_names, FeatureEncoding* encoding) {
  const fs::path file = fs::path(folder) / "dataset.json";
  if (!fs::exists(file)) return;
  std::ifstream in(file);
  try {
    const nlohmann::json j = nlohmann::json::parse(in);
    const JsonFields f(j, file.string());
    if (f.text("format", "") != "lrsmeta-data") throw Error(file.string() + ": not an lrsmeta data description");
    std::vector<std::string> keys = f.texts("task_keys");
    std::vector<std::string> names = f.texts("feature_names");
    if (static_cast<std::int64_t>(keys.size()) != t)
      throw Error(file.string() + ": has " + std::to_string(keys.size()) + " task keys, the folder " + std::to_string(t) + " tasks");
    if (static_cast<std::int64_t>(names.size()) != d)
      throw Error(file.string() + ": has " + std::to_string(names.size()) + " feature names, the folder " + std::to_string(d) + " features");
    FeatureEncoding enc = encoding_from_json(f.object("csv_encoding"));
    if (encoded_feature_names(enc) != names) throw Error(file.string() + ": its encoding does not give its feature names");
    *task_keys = std::move(keys);
    *feature_names = std::move(names);
    *encoding = std::move(enc);
  } catch (const nlohmann::json::exception& e) {
    throw Error(file.string() + ": " + e.what());
  }
}
}  // namespace io

std::int64_t convert_csv(const std::string& csv_path, const CsvOptions& options, const std::string& out_folder, DType x_dtype,
                         const std::function<void(const char*, std::uint64_t, std::uint64_t)>& progress) try {
  if (x_dtype != DType::f32 && x_dtype != DType::f64) throw Error("convert: X can be float32 or float64");
  return x_dtype == DType::f32 ? convert_csv_as<float>(csv_path, options, out_folder, progress)
                               : convert_csv_as<double>(csv_path, options, out_folder, progress);
} catch (...) {
  io::rethrow_naming_file(csv_path);
}

}  // namespace lrsmeta
