// Kernel launches in the emulated CUDA build: LRSMETA_LAUNCH(kernel, grid, block, shared, stream)(args)
// stands for CUDA's kernel<<<grid, block, shared, stream>>>(args). The launch is first checked as
// the runtime would (sm_90's limits, the kernel's shared-memory attribute, the stream, every
// pointer argument in device memory); a refused launch runs nothing and leaves its error for
// cudaGetLastError. An accepted one runs at once on CPU fibers (kernel_runtime.hpp).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <type_traits>
#include <utility>

#include "cuda_emulation/emulation.hpp"

namespace lrsmeta::cuda_emulation {

template <typename... Params>
class Launch {
 public:
  Launch(const char* name, void (*kernel)(Params...), unsigned long long grid, unsigned long long block,
         std::size_t shared_bytes, cudaStream_t stream)
      : name_(name), kernel_(kernel), grid_(grid), block_(block), shared_bytes_(shared_bytes), stream_(stream) {}

  template <typename... Args>
  void operator()(Args&&... args) const {
    static_assert(sizeof...(Args) == sizeof...(Params), "a kernel launch with the wrong number of arguments");
    if (!accept_launch(name_, function_key(kernel_), grid_, block_, shared_bytes_, stream_)) return;
    int index = 0;
    bool accepted = true;
    ((accepted = accept_argument(index++, args) && accepted), ...);
    if (!accepted) return;
    // Arguments are copied into the launch, as CUDA copies them into the kernel's parameters.
    emulation::launch(static_cast<unsigned>(grid_), static_cast<unsigned>(block_), shared_bytes_,
                      [&, kernel = kernel_] { kernel(static_cast<Params>(args)...); });
  }

 private:
  template <typename A>
  bool accept_argument(int index, const A& value) const {
    if constexpr (std::is_pointer_v<A>)
      return accept_kernel_pointer(name_, index, static_cast<const void*>(value));
    else
      return true;
  }

  const char* name_;
  void (*kernel_)(Params...);
  unsigned long long grid_, block_;
  std::size_t shared_bytes_;
  cudaStream_t stream_;
};

template <typename... Params>
Launch<Params...> make_launch(const char* name, void (*kernel)(Params...), unsigned long long grid, unsigned long long block,
                              std::size_t shared_bytes, cudaStream_t stream) {
  return Launch<Params...>(name, kernel, grid, block, shared_bytes, stream);
}

}  // namespace lrsmeta::cuda_emulation

// cuda_runtime.h's typed overload, which it declares only for nvcc.
template <typename Kernel>
cudaError_t cudaFuncSetAttribute(Kernel* kernel, cudaFuncAttribute attribute, int value) {
  return cudaFuncSetAttribute(::lrsmeta::cuda_emulation::function_key(kernel), attribute, value);
}

#define LRSMETA_LAUNCH(kernel, grid, block, shared_bytes, stream) \
  ::lrsmeta::cuda_emulation::make_launch(#kernel, &kernel, grid, block, shared_bytes, stream)
