// libFuzzer's entry for one target, chosen at build time (LRSMETA_FUZZ_TARGET: npy, csv, model,
// data or checkpoint).
#include <cstdlib>
#include <cstring>

#include "fuzz/fuzz_targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const lrsmeta::fuzz::Target run = [] {
    for (const lrsmeta::fuzz::NamedTarget& t : lrsmeta::fuzz::targets())
      if (std::strcmp(t.name, LRSMETA_FUZZ_TARGET) == 0) return t.run;
    std::abort();
  }();
  run(data, size);
  return 0;
}
