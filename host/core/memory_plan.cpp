// The memory a fit plans to hold and the memory this process may use (core/backend.hpp).
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/backend.hpp"
#include "lrsmeta/io.hpp"

namespace lrsmeta::core {

double MemoryPlan::total() const {
  double sum = 0.0;
  for (const auto& part : parts) sum += part.second;
  return sum;
}

std::string MemoryPlan::describe() const {
  std::string out;
  const double all = total();
  for (const auto& part : parts) {
    if (part.second < 0.01 * all) continue;  // under 1% of the total: not worth a mention
    out += (out.empty() ? "" : ", ") + part.first + " " + format_bytes(part.second);
  }
  return out;
}

double available_memory_bytes(std::string* source) {
  if (const char* e = std::getenv("LRSMETA_MEMORY_LIMIT")) {
    char* end = nullptr;
    const double v = std::strtod(e, &end);
    if (end == e || *end != '\0' || !(v > 0) || !std::isfinite(v))
      throw Error(std::string("LRSMETA_MEMORY_LIMIT must be a positive number of bytes, not '") + e + "'");
    if (source) *source = "LRSMETA_MEMORY_LIMIT";
    return v;
  }
  auto read_number = [](const char* path, double* out) {
    std::FILE* f = std::fopen(path, "r");
    if (!f) return false;
    char buf[64] = {0};
    const bool ok = std::fgets(buf, sizeof buf, f) != nullptr;
    std::fclose(f);
    if (!ok) return false;
    char* end = nullptr;
    const double v = std::strtod(buf, &end);
    if (end == buf) return false;  // "max": no limit
    *out = v;
    return true;
  };
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  const double physical = pages > 0 && page > 0 ? static_cast<double>(pages) * static_cast<double>(page) : INFINITY;
  double limit = 0;
  // cgroup v2, then v1 (whose "no limit" is a huge number: keep the smaller of it and physical).
  if ((read_number("/sys/fs/cgroup/memory.max", &limit) || read_number("/sys/fs/cgroup/memory/memory.limit_in_bytes", &limit)) &&
      limit > 0 && limit < physical) {
    if (source) *source = "the cgroup's memory limit";
    return limit;
  }
  if (source) *source = "physical memory";
  return physical;
}
}  // namespace lrsmeta::core
