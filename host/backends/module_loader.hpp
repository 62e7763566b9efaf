// Loading a backend module (a shared library beside liblrsmeta.so) by its file name.
#pragma once

#include <string>

#include "backends/module_interface.hpp"

namespace lrsmeta::backends {

// Loads `file` and calls its entry point `entry`, returning the module's table; null where that
// fails, with *why saying what failed (where a library the module needs is missing, the dynamic
// linker's message names it). Where it looks: the folder $LRSMETA_MODULE_DIR alone where that is set;
// else the folder of the library (or program) that holds this code, then the dynamic linker's
// search path. A module from another build of lrsmeta (its stamp differs) is refused. Loaded modules
// stay loaded until the process exits (the CUDA runtime does not support being unloaded).
const ModuleStamp* load_module(const std::string& file, const char* entry, std::string* why);

}  // namespace lrsmeta::backends
