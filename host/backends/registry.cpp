// The one file that knows which backends exist and decides which one runs a fit: the CPU backend,
// linked into the library, and the modules, loaded on first use so that liblrsmeta.so itself needs
// neither CUDA's nor MPI's libraries: liblrsmeta_cuda.so (the CUDA backend, with NCCL) and
// liblrsmeta_mpi.so (the communicator of MPI_COMM_WORLD).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "backends/module_loader.hpp"
#include "core/backend.hpp"
#include "cpu/cpu_backend.hpp"
#include "lrsmeta/mpi.hpp"

namespace lrsmeta {
namespace {

template <typename Table>
struct Loaded {
  const Table* table = nullptr;
  std::string why;  // where it did not load
};

template <typename Table>
Loaded<Table> load(const char* file, const char* entry) {
  Loaded<Table> loaded;
  // Every table starts with its stamp (module_interface.hpp).
  loaded.table = reinterpret_cast<const Table*>(backends::load_module(file, entry, &loaded.why));
  return loaded;
}

constexpr const char* kCudaModule = "liblrsmeta_cuda.so";
constexpr const char* kMpiModule = "liblrsmeta_mpi.so";

const Loaded<backends::CudaModule>& cuda_module() {
  static const Loaded<backends::CudaModule> loaded = load<backends::CudaModule>(kCudaModule, "lrsmeta_cuda_module");
  return loaded;
}

const Loaded<backends::MpiModule>& mpi_module() {
  static const Loaded<backends::MpiModule> loaded = load<backends::MpiModule>(kMpiModule, "lrsmeta_mpi_module");
  return loaded;
}

// Why a module is missing and what to do, in one line.
std::string module_missing(const char* what, const char* file, const std::string& why, bool built, const char* needs,
                           const char* build_with) {
  return std::string("lrsmeta's ") + what + " module " + file +
         (built ? " did not load (" + why + "): install it beside liblrsmeta.so, with " + needs
                : std::string(" was not built with this library (build lrsmeta where ") + build_with + " is installed; " + why + ")");
}

#ifdef LRSMETA_BUILT_CUDA_MODULE
constexpr bool kBuiltCudaModule = true;
#else
constexpr bool kBuiltCudaModule = false;
#endif
#ifdef LRSMETA_BUILT_MPI_MODULE
constexpr bool kBuiltMpiModule = true;
#else
constexpr bool kBuiltMpiModule = false;
#endif

}  // namespace

bool cuda_available() {
  const auto& cuda = cuda_module();
  return cuda.table && cuda.table->device_usable(nullptr);
}

Device device_for(const Options& options) {
  if (options.device != Device::automatic) return options.device;
  return options.prior == Prior::none && cuda_available() ? Device::cuda : Device::cpu;
}

bool mpi_built() { return mpi_module().table != nullptr; }

Communicator& mpi_world() {
  const auto& mpi = mpi_module();
  if (!mpi.table)
    throw Error("MPI: " + module_missing("MPI", kMpiModule, mpi.why, kBuiltMpiModule, "the MPI library it links (Debian: libopenmpi3)",
                                        "an MPI (Debian: libopenmpi-dev)"));
  return mpi.table->world();
}

void mpi_abort(const std::string& message, int exit_code) {
  const auto& mpi = mpi_module();
  if (mpi.table) mpi.table->abort(message, exit_code);
  std::fprintf(stderr, "%s\n", message.c_str());
  std::fflush(stderr);
  std::_Exit(exit_code);
}

namespace core {

template <typename T>
std::unique_ptr<Backend> make_backend(const TaskDataView<T>& data, const Options& options) {
  if (device_for(options) == Device::cpu) return make_cpu_backend(data, options);
  const auto& cuda = cuda_module();
  if (!cuda.table)
    throw Error("device 'cuda' requested, but " +
                module_missing("CUDA", kCudaModule, cuda.why, kBuiltCudaModule,
                               "the CUDA runtime, cuBLAS, cuSOLVER and NCCL it links", "the CUDA toolkit") +
                "; or use --device cpu or auto");
  if constexpr (std::is_same_v<T, float>)
    return cuda.table->make_float(data, options);
  else
    return cuda.table->make_double(data, options);
}
template std::unique_ptr<Backend> make_backend(const TaskDataView<float>&, const Options&);
template std::unique_ptr<Backend> make_backend(const TaskDataView<double>&, const Options&);

template <typename T>
MemoryPlan plan_host_memory(const TaskDataView<T>& data, const Options& options, bool validation_copy) {
  return device_for(options) == Device::cpu ? plan_cpu_memory(data, options, validation_copy) : MemoryPlan{};
}
template MemoryPlan plan_host_memory(const TaskDataView<float>&, const Options&, bool);
template MemoryPlan plan_host_memory(const TaskDataView<double>&, const Options&, bool);

}  // namespace core
}  // namespace lrsmeta
