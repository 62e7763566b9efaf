#include "io/files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <new>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <system_error>
#include <typeinfo>

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

void rethrow_naming_file(const std::string& path) {
  // The standard library's own failures (and the JSON parser's) are converted; anything else, such
  // as an exception a caller's progress callback throws to stop, passes through as it is.
  try {
    throw;
  } catch (const Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw Error(path + ": out of memory while reading it");
  } catch (const std::logic_error& e) {  // out_of_range, length_error, invalid_argument
    throw Error(path + ": " + e.what());
  } catch (const std::system_error& e) {  // ios_base::failure, filesystem_error
    throw Error(path + ": " + e.what());
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": " + e.what());
  } catch (const std::exception& e) {
    if (typeid(e) == typeid(std::runtime_error) || typeid(e) == typeid(std::exception)) throw Error(path + ": " + e.what());
    throw;
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

void check_writable(const std::string& path, const std::string& what) {
  auto refuse = [&](const std::string& why) { throw Error(what + " " + path + ": cannot be written (" + why + ")"); };
  if (path.empty()) refuse("an empty path");
  const fs::path target = fs::absolute(fs::path(path));
  // A file can be created in `folder`: tried with a temporary file, removed at once.
  auto try_create_in = [&](const fs::path& folder) {
    const std::string probe = io::temporary_sibling((folder / "write-check").string());
    const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) refuse(folder.string() + ": " + std::strerror(errno));
    ::close(fd);
    ::unlink(probe.c_str());
  };
  std::error_code ec;
  fs::path folder = target.parent_path();
  while (!folder.empty() && !fs::exists(folder, ec)) {
    if (folder == folder.parent_path()) break;
    folder = folder.parent_path();
  }
  if (!fs::is_directory(folder, ec)) refuse(folder.string() + " is not a folder");
  try_create_in(folder);
  if (fs::is_directory(target, ec)) try_create_in(target);
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
