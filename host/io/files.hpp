// File-system helpers shared by the writers: temporary siblings and atomic replacement.
#pragma once

#include <string>

namespace lrsmeta::io {

// A fresh name beside `path` (same folder, so a rename stays on one file system).
std::string temporary_sibling(const std::string& path);

// Move the finished folder `staged` to `target`. A target that is a model folder (holds
// model.json) is replaced; any other existing target is refused, and `staged` is removed.
void install_folder(const std::string& staged, const std::string& target, const char* marker_file);

// For a reader's catch (...): rethrows the exception being handled as an Error naming `path` where
// it is not one already (the standard library's bad_alloc, a stream or file-system failure), so
// that every error leaving a reader says which file it was reading.
[[noreturn]] void rethrow_naming_file(const std::string& path);

}  // namespace lrsmeta::io
