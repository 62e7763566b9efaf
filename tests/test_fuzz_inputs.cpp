// Every seed of the fuzz targets (tests/fuzz/seeds/) and every input that once crashed a reader
// (tests/fuzz/regressions/, minimised) runs through its target: readers may refuse an input only
// with lrsmeta::Error, and nothing may crash (this also runs under AddressSanitizer).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "fuzz/fuzz_targets.hpp"

namespace fs = std::filesystem;

namespace lrsmeta::fuzz {
namespace {

std::vector<fs::path> inputs_of(const std::string& target) {
  std::vector<fs::path> out;
  for (const char* kind : {"seeds", "regressions"}) {
    const fs::path folder = fs::path(LRSMETA_FUZZ_DIR) / kind / target;
    if (!fs::is_directory(folder)) continue;
    for (const auto& entry : fs::directory_iterator(folder))
      if (entry.is_regular_file()) out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

class FuzzInputs : public ::testing::TestWithParam<NamedTarget> {};

TEST_P(FuzzInputs, EveryKeptInputIsReadOrRefusedWithAnError) {
  const std::vector<fs::path> inputs = inputs_of(GetParam().name);
  ASSERT_FALSE(inputs.empty()) << "no seeds for " << GetParam().name;
  for (const fs::path& input : inputs) {
    std::ifstream in(input, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    try {
      GetParam().run(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    } catch (const std::exception& e) {
      ADD_FAILURE() << input << ": an exception other than lrsmeta::Error left the reader: " << e.what();
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Readers, FuzzInputs, ::testing::ValuesIn(targets()),
                         [](const ::testing::TestParamInfo<NamedTarget>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace lrsmeta::fuzz
