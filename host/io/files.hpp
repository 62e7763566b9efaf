// File-system helpers shared by the writers: temporary siblings and atomic replacement.
#pragma once

#include <string>

namespace lrsmeta::io {

// A fresh name beside `path` (same folder, so a rename stays on one file system).
std::string temporary_sibling(const std::string& path);

// Move the finished folder `staged` to `target`. A target that is a model folder (holds
// model.json) is replaced; any other existing target is refused, and `staged` is removed.
void install_folder(const std::string& staged, const std::string& target, const char* marker_file);

}  // namespace lrsmeta::io
