#include "backends/module_loader.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <vector>

namespace lrsmeta::backends {
namespace {

// The folder of the file this function's code was loaded from ("" where unknown).
std::string own_folder() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<const void*>(&own_folder), &info) == 0 || !info.dli_fname) return std::string();
  std::string path = info.dli_fname;
  const std::size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

std::string describe(const ModuleStamp& s) {
  return "lrsmeta " + std::string(s.library_version ? s.library_version : "?") + ", interface " + std::to_string(s.interface_version);
}

}  // namespace

const ModuleStamp* load_module(const std::string& file, const char* entry, std::string* why) {
  std::vector<std::string> candidates;
  const char* dir = std::getenv("LRSMETA_MODULE_DIR");
  if (dir && *dir) {
    candidates.push_back(std::string(dir) + "/" + file);
  } else {
    const std::string folder = own_folder();
    if (!folder.empty()) candidates.push_back(folder + "/" + file);
    candidates.push_back(file);  // the dynamic linker's search path
  }
  std::string failures;
  for (const std::string& path : candidates) {
    dlerror();
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      const char* message = dlerror();
      failures += (failures.empty() ? "" : "; ") + std::string(message ? message : path + ": not loaded");
      continue;
    }
    using Entry = const ModuleStamp* (*)();
    auto function = reinterpret_cast<Entry>(dlsym(handle, entry));
    if (!function) {
      failures += (failures.empty() ? "" : "; ") + path + " has no " + entry + " (not an lrsmeta module)";
      continue;
    }
    const ModuleStamp* stamp = function();
    const ModuleStamp mine = this_build_stamp();
    if (!stamp || stamp->interface_version != mine.interface_version || !stamp->library_version ||
        std::strcmp(stamp->library_version, mine.library_version) != 0 || stamp->options_bytes != mine.options_bytes ||
        stamp->view_bytes != mine.view_bytes || stamp->backend_bytes != mine.backend_bytes) {
      failures += (failures.empty() ? "" : "; ") + path + " is from another build (" + (stamp ? describe(*stamp) : "no stamp") +
                  "; this library: " + describe(mine) + ")";
      continue;
    }
    return stamp;
  }
  if (why) *why = failures;
  return nullptr;
}

}  // namespace lrsmeta::backends
