#include "io/files.hpp"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "lrsmeta/io.hpp"

namespace fs = std::filesystem;

namespace lrsmeta {
namespace io {

std::string temporary_sibling(const std::string& path) {
  static std::atomic<unsigned> counter{0};
  const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
  fs::path p(path);
  std::string name = p.filename().string();
  if (name.empty()) name = p.parent_path().filename().string();
  const std::string tmp_name = "." + name + ".tmp-" + std::to_string(::getpid()) + "-" +
                               std::to_string(stamp % 1000000007) + "-" + std::to_string(counter++);
  return (p.has_parent_path() && !p.filename().empty() ? p.parent_path() / tmp_name : fs::path(tmp_name)).string();
}

void install_folder(const std::string& staged, const std::string& target, const char* marker_file) {
  std::error_code ec;
  fs::path tgt(target);
  if (fs::exists(tgt, ec)) {
    if (!fs::is_directory(tgt) || !fs::exists(tgt / marker_file)) {
      fs::remove_all(staged, ec);
      throw Error(target + ": exists and is not a " + std::string(marker_file == std::string("model.json") ? "model" : "data") +
                  " folder; refusing to overwrite it");
    }
    const std::string old = temporary_sibling(target);
    fs::rename(tgt, old, ec);
    if (ec) {
      fs::remove_all(staged, ec);
      throw Error(target + ": cannot replace (" + ec.message() + ")");
    }
    fs::rename(staged, tgt, ec);
    if (ec) {
      std::error_code ec2;
      fs::rename(old, tgt, ec2);  // put the old one back
      fs::remove_all(staged, ec2);
      throw Error(target + ": cannot install (" + ec.message() + ")");
    }
    fs::remove_all(old, ec);
    return;
  }
  fs::rename(staged, tgt, ec);
  if (ec) {
    std::error_code ec2;
    fs::remove_all(staged, ec2);
    throw Error(target + ": cannot create (" + ec.message() + ")");
  }
}

}  // namespace io

std::string format_bytes(double bytes) {
  char buf[32];
  if (bytes >= 1e9) std::snprintf(buf, sizeof buf, "%.2f GB", bytes / 1e9);
  else if (bytes >= 1e6) std::snprintf(buf, sizeof buf, "%.1f MB", bytes / 1e6);
  else std::snprintf(buf, sizeof buf, "%.0f kB", bytes / 1e3);
  return buf;
}

void write_text_file_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = io::temporary_sibling(path);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(path + ": cannot open for writing (" + std::strerror(errno) + ")");
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      throw Error(path + ": write failed (disk full?)");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    throw Error(path + ": cannot rename into place (" + std::strerror(err) + ")");
  }
}

}  // namespace lrsmeta
