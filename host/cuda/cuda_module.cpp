// The entry point of liblrsmeta_cuda.so (host/backends/module_interface.hpp).
#include "backends/module_interface.hpp"
#include "cuda/cuda_backend.hpp"

namespace {
bool usable(std::string* why) { return lrsmeta::cuda::device_usable(why); }
}  // namespace

extern "C" const lrsmeta::backends::CudaModule* lrsmeta_cuda_module() {
  static const lrsmeta::backends::CudaModule table{lrsmeta::backends::this_build_stamp(), &usable,
                                                   &lrsmeta::core::make_cuda_backend<float>,
                                                   &lrsmeta::core::make_cuda_backend<double>};
  return &table;
}
