// The emulated CUDA build's own interface: what tests ask of the emulation, and the hooks its
// kernel launches use. The emulation itself (liblrsmeta_cuda_emulation.so) implements, on the CPU,
// exactly the CUDA runtime, cuBLAS, cuSOLVER and NCCL calls lrsmeta makes, with NVIDIA's documented
// argument rules, and checks what a GPU would make fatal or silent:
// - device memory comes from a tracked host allocator: every pointer handed to a call is looked up
//   in it (a host pointer where a device one belongs is an error, and the reverse), and every
//   range a call reads or writes (from its sizes, leading dimensions and strides) must lie inside
//   one allocation;
// - everything runs at once, in order; a copy into host memory on a stream is delivered only when
//   that stream (or the device) is synchronised, and until then the host buffer holds NaN bytes,
//   so a host read with no synchronisation before it sees garbage, as it may on a GPU;
// - launches past sm_90's limits are refused;
// - faults on demand: the Nth call of a name fails (fail_call, or the environment variable
//   LRSMETA_CUDA_EMULATION_FAULT=name:N).
// Every misuse is also printed to stderr as one line starting "cuda emulation:".
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>
#include <vector>

namespace lrsmeta::cuda_emulation {

// Device memory still allocated, and its bytes (leaks, when nothing should be).
std::size_t live_allocations();
std::size_t live_bytes();
// The emulated device's memory (cudaMemGetInfo's total; cudaMalloc fails past it). Default 80 GiB,
// as an H100; LRSMETA_CUDA_EMULATION_DEVICE_MIB sets it for a whole run.
void set_device_memory(std::size_t bytes);
std::size_t device_memory();

// The nth call from now (1: the next) of `call` (its C name: "cudaMalloc", "cublasDgemm_v2",
// "cusolverDnDpotrf", "ncclAllReduce", or "launch:KERNEL") fails with that library's error.
void fail_call(const std::string& call, int nth);
void clear_faults();

// The misuses seen since the last clear, one line each.
std::vector<std::string> problems();
void clear_problems();

// Whether [pointer, pointer + bytes) lies inside one live device allocation.
bool is_device_range(const void* pointer, std::size_t bytes);

// A kernel function's identity for its attributes.
template <typename Kernel>
const void* function_key(Kernel* kernel) {
  return reinterpret_cast<const void*>(kernel);
}

// Hooks of LRSMETA_LAUNCH (launch.hpp): false refuses the launch, leaving its error for
// cudaGetLastError.
bool accept_launch(const char* kernel, const void* function, unsigned long long grid, unsigned long long block,
                   std::size_t shared_bytes, cudaStream_t stream);
bool accept_kernel_pointer(const char* kernel, int index, const void* pointer);

}  // namespace lrsmeta::cuda_emulation
