// The readers under fuzzing: each target takes one input (bytes), writes it where its reader
// expects a file or folder, and runs every reader of that kind on it. A reader may refuse the
// input with lrsmeta::Error (that is the expected answer to a damaged file); any other exception
// leaves the target, so that libFuzzer reports it, and the regression tests fail on it.
//
// Folder inputs are packed: the input is a sequence of "@@file NAME\n" headers, each followed by
// the file's bytes up to the next "\n@@file " or the end (tests/fuzz/pack.py writes and reads them).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace lrsmeta::fuzz {

using Target = void (*)(const std::uint8_t* data, std::size_t size);

void npy(const std::uint8_t* data, std::size_t size);           // one .npy file
void csv(const std::uint8_t* data, std::size_t size);           // one CSV file
void model_folder(const std::uint8_t* data, std::size_t size);  // a packed model folder
void data_folder(const std::uint8_t* data, std::size_t size);   // a packed data folder
void checkpoint(const std::uint8_t* data, std::size_t size);    // a packed checkpoint folder

struct NamedTarget {
  const char* name;
  Target run;
};
// Every target, by the name of its seed and regression folders (tests/fuzz/seeds/NAME/).
const std::vector<NamedTarget>& targets();

}  // namespace lrsmeta::fuzz
