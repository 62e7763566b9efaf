#include "fuzz/fuzz_targets.hpp"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string_view>

#include "io/npy_stream.hpp"
#include "lrsmeta/io.hpp"

namespace fs = std::filesystem;

namespace lrsmeta::fuzz {
namespace {

// A scratch folder for this process (in memory where /dev/shm exists), emptied for every input.
fs::path fresh_scratch() {
  static const fs::path root = [] {
    std::error_code ec;
    const fs::path base = fs::is_directory("/dev/shm", ec) ? fs::path("/dev/shm") : fs::temp_directory_path();
    return base / ("lrsmeta-fuzz-" + std::to_string(::getpid()));
  }();
  std::error_code ec;
  fs::remove_all(root, ec);
  fs::create_directories(root / "in");
  return root;
}

void write_file(const fs::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Unpacks "@@file NAME\n<bytes>" entries into `folder`. Names are kept to at most two plain
// components (a checkpoint's "iteration-000003/U.npy"); others are skipped.
void unpack(const std::uint8_t* data, std::size_t size, const fs::path& folder) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::string_view header = "@@file ", separator = "\n@@file ";
  std::size_t at = input.find(separator);
  if (input.rfind(header, 0) == 0) at = 0;
  else if (at != std::string_view::npos) at += 1;  // at the header, past its line break
  int files = 0;
  while (at != std::string_view::npos && files < 16) {
    const std::size_t name_start = at + header.size();
    const std::size_t name_end = input.find('\n', name_start);
    if (name_end == std::string_view::npos) return;
    const std::string name(input.substr(name_start, name_end - name_start));
    std::size_t next = input.find(separator, name_end);
    const std::string_view bytes = input.substr(name_end + 1, next == std::string_view::npos ? std::string_view::npos : next - name_end - 1);
    if (next != std::string_view::npos) next += 1;
    at = next;
    const bool plain = !name.empty() && name.size() < 64 && name.find("..") == std::string::npos && name.front() != '/' &&
                       name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-/") == std::string::npos &&
                       std::count(name.begin(), name.end(), '/') <= 1 && name.back() != '/';
    if (!plain) continue;
    const fs::path file = folder / name;
    std::error_code ec;
    fs::create_directories(file.parent_path(), ec);
    if (ec || fs::is_directory(file, ec)) continue;
    write_file(file, bytes);
    ++files;
  }
}

// Runs a reader; its Error is the expected answer to a damaged input.
template <typename F>
bool refused_or_read(F&& read) {
  try {
    read();
    return true;
  } catch (const Error&) {
    return false;
  }
}

}  // namespace

void npy(const std::uint8_t* data, std::size_t size) {
  const fs::path root = fresh_scratch();
  const std::string file = (root / "in" / "a.npy").string();
  write_file(file, std::string_view(reinterpret_cast<const char*>(data), size));
  std::vector<std::int64_t> shape;
  if (!refused_or_read([&] { read_npy(file); })) return;
  refused_or_read([&] { read_npy_as<double>(file, &shape); });
  refused_or_read([&] { read_npy_as<float>(file, &shape); });
  refused_or_read([&] { read_npy_as<std::int32_t>(file, &shape); });
  refused_or_read([&] { read_npy_as<std::int64_t>(file, &shape); });
  refused_or_read([&] { io::read_npy_range<double>(file, 1, 2, &shape); });
  refused_or_read([&] { io::read_npy_range<std::int64_t>(file, 0, 1, &shape); });
}

void csv(const std::uint8_t* data, std::size_t size) {
  const fs::path root = fresh_scratch();
  const std::string file = (root / "in" / "data.csv").string();
  write_file(file, std::string_view(reinterpret_cast<const char*>(data), size));
  CsvTable table;
  if (!refused_or_read([&] { table = read_csv_table(file); })) return;
  // Target y and task column task where the header has them, else its last and first columns.
  auto has = [&](const char* name) { return std::find(table.header.begin(), table.header.end(), name) != table.header.end(); };
  CsvOptions options;
  options.target = has("y") || table.header.empty() ? "y" : table.header.back();
  options.task = has("task") || table.header.empty() ? "task" : table.header.front();
  Dataset<double> loaded;
  if (refused_or_read([&] { loaded = load_csv<double>(file, options); })) {
    // The encoding it found, applied again (as predict applies a model's).
    CsvOptions again = options;
    again.encoding = &loaded.encoding;
    refused_or_read([&] { load_csv<float>(file, again); });
  }
  options.intercept = false;
  options.max_levels = 2;
  refused_or_read([&] { convert_csv(file, options, (root / "converted").string(), DType::f32); });
  refused_or_read([&] { load_data_folder<double>((root / "converted").string()); });
}

void model_folder(const std::uint8_t* data, std::size_t size) {
  const fs::path root = fresh_scratch();
  unpack(data, size, root / "in");
  const std::string folder = (root / "in").string();
  Model model;
  if (refused_or_read([&] { model = load_model(folder); }))
    refused_or_read([&] { save_model(model, (root / "saved").string()); });
  std::int64_t all = 0;
  refused_or_read([&] { load_model_tasks(folder, 0, 1, &all); });
  refused_or_read([&] { load_model_tasks(folder, 1, 2, &all); });
}

void data_folder(const std::uint8_t* data, std::size_t size) {
  const fs::path root = fresh_scratch();
  unpack(data, size, root / "in");
  const std::string folder = (root / "in").string();
  refused_or_read([&] { data_folder_dtype(folder); });
  refused_or_read([&] { load_data_folder<double>(folder); });
  refused_or_read([&] { load_data_folder<float>(folder); });
  refused_or_read([&] {
    const MappedDataset<double> mapped = map_data_folder<double>(folder);
    mapped.prefetch();
  });
  refused_or_read([&] { map_data_folder<float>(folder); });
  refused_or_read([&] { map_data_folder_shard<double>(folder, 1, 2); });
}

void checkpoint(const std::uint8_t* data, std::size_t size) {
  const fs::path root = fresh_scratch();
  unpack(data, size, root / "in");
  const std::string folder = (root / "in").string();
  has_checkpoint(folder);
  refused_or_read([&] { load_checkpoint(folder); });
  // Without the hash check, so that damage reaches the parsers behind it.
  refused_or_read([&] { load_checkpoint_tasks(folder, 0, 1, false); });
  refused_or_read([&] { load_checkpoint_tasks(folder, 1, 1, false); });
}

const std::vector<NamedTarget>& targets() {
  static const std::vector<NamedTarget> all{
      {"npy", npy}, {"csv", csv}, {"model", model_folder}, {"data", data_folder}, {"checkpoint", checkpoint}};
  return all;
}

}  // namespace lrsmeta::fuzz
