// What the backend modules and the library that loads them agree on. A module is a shared library
// with one extern "C" entry point returning a table of functions; its stamp lets the loader refuse a
// module from another build (the table passes C++ types, whose layout only the same build shares).
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "core/backend.hpp"
#include "core/module_api.hpp"
#include "lrsmeta/lrsmeta.hpp"
#include "lrsmeta/version.hpp"

namespace lrsmeta::backends {

// Raised whenever a table below changes.
inline constexpr int kModuleInterface = 1;

struct ModuleStamp {
  int interface_version = 0;
  const char* library_version = nullptr;  // LRSMETA_VERSION_STRING
  std::size_t options_bytes = 0, view_bytes = 0, backend_bytes = 0;
};
inline ModuleStamp this_build_stamp() {
  return {kModuleInterface, LRSMETA_VERSION_STRING, sizeof(Options), sizeof(TaskDataView<float>), sizeof(core::Backend)};
}

// liblrsmeta_cuda.so: lrsmeta_cuda_module().
struct CudaModule {
  ModuleStamp stamp;
  bool (*device_usable)(std::string* why);
  std::unique_ptr<core::Backend> (*make_float)(const TaskDataView<float>& data, const Options& options);
  std::unique_ptr<core::Backend> (*make_double)(const TaskDataView<double>& data, const Options& options);
};

// liblrsmeta_mpi.so: lrsmeta_mpi_module().
struct MpiModule {
  ModuleStamp stamp;
  Communicator& (*world)();  // MPI_COMM_WORLD's processes, MPI initialised on first use
  void (*abort)(const std::string& message, int exit_code);  // prints, then MPI_Abort; never returns
};

}  // namespace lrsmeta::backends

extern "C" {
LRSMETA_MODULE_API const lrsmeta::backends::CudaModule* lrsmeta_cuda_module();
LRSMETA_MODULE_API const lrsmeta::backends::MpiModule* lrsmeta_mpi_module();
}
