// The CUDA runtime calls lrsmeta makes, on the CPU: device memory from a tracked allocator,
// streams whose copies into host memory arrive at synchronisation, launch checks for sm_90, the
// last error, faults on demand (emulation.hpp).
#include <cblas.h>
#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "cuda_emulation/emulation.hpp"
#include "cuda_emulation/state.hpp"

namespace lrsmeta::cuda_emulation {
namespace detail {
namespace {

// sm_90 (H100, H200): a block's limits.
constexpr unsigned long long kMaxThreadsPerBlock = 1024;
constexpr unsigned long long kMaxGridX = 2147483647ULL;
constexpr std::size_t kDefaultSharedBytes = 48 * 1024;    // without the kernel's opt-in attribute
constexpr std::size_t kMaxSharedBytes = 227 * 1024;       // with it (cudaDevAttrMaxSharedMemoryPerBlockOptin)

struct State {
  std::map<std::uintptr_t, std::size_t> allocations;  // start -> bytes
  std::size_t live_bytes = 0;
  std::size_t device_bytes = std::size_t{80} << 30;
  std::set<CUstream_st*> streams;
  CUstream_st legacy;  // the default stream
  std::map<std::string, int> faults;  // call -> calls left before it fails
  std::vector<std::string> problems;
  std::map<const void*, int> max_dynamic_shared;  // cudaFuncAttributeMaxDynamicSharedMemorySize

  State() {
    // The emulated calls are small and come one after another: OpenBLAS's threads would only spin
    // between them, on the cores the kernels' fibers and the CPU path need.
    openblas_set_num_threads(1);
    if (const char* mib = std::getenv("LRSMETA_CUDA_EMULATION_DEVICE_MIB")) device_bytes = std::strtoull(mib, nullptr, 10) << 20;
    // name:N[,name:N...]
    if (const char* spec = std::getenv("LRSMETA_CUDA_EMULATION_FAULT")) {
      std::string all(spec);
      std::size_t start = 0;
      while (start < all.size()) {
        std::size_t end = all.find(',', start);
        if (end == std::string::npos) end = all.size();
        const std::string item = all.substr(start, end - start);
        const std::size_t colon = item.rfind(':');
        if (colon != std::string::npos) faults[item.substr(0, colon)] = std::atoi(item.c_str() + colon + 1);
        start = end + 1;
      }
    }
  }
};

// Never destroyed: a program's static objects (a benchmark's cached backends) may free device
// memory after every other static is gone. What is still allocated at exit is said then.
State& state() {
  static State* s = [] {
    auto* created = new State;
    std::atexit([] {
      const State& st = state();
      if (!st.allocations.empty())
        std::fprintf(stderr, "cuda emulation: %zu device allocations (%zu bytes) still live at exit\n", st.allocations.size(),
                     st.live_bytes);
    });
    return created;
  }();
  return *s;
}

thread_local cudaError_t last_error = cudaSuccess;

// The allocation holding p, or end().
std::map<std::uintptr_t, std::size_t>::const_iterator allocation_of(const void* p) {
  const auto& all = state().allocations;
  const auto address = reinterpret_cast<std::uintptr_t>(p);
  auto it = all.upper_bound(address);
  if (it == all.begin()) return all.end();
  --it;
  return address < it->first + it->second ? it : all.end();
}

std::string address(const void* p) {
  char text[32];
  std::snprintf(text, sizeof text, "%p", p);
  return text;
}

void deliver(CUstream_st* stream) {
  for (auto& copy : stream->pending) std::memcpy(copy.host, copy.bytes.data(), copy.bytes.size());
  stream->pending.clear();
}

}  // namespace

std::recursive_mutex& lock() {
  static std::recursive_mutex m;
  return m;
}

bool fault(const char* call) {
  auto& faults = state().faults;
  const auto it = faults.find(call);
  if (it == faults.end()) return false;
  if (--it->second > 0) return false;
  faults.erase(it);
  return true;
}

bool report(const std::string& line) {
  state().problems.push_back(line);
  std::fprintf(stderr, "cuda emulation: %s\n", line.c_str());
  return false;
}

bool device_range(const char* call, const char* what, const void* p, std::size_t bytes) {
  if (bytes == 0) return true;
  if (!p) return report(std::string(call) + ": " + what + " is null");
  const auto it = allocation_of(p);
  if (it == state().allocations.end())
    return report(std::string(call) + ": " + what + " (" + address(p) + ") is not device memory");
  const std::size_t offset = reinterpret_cast<std::uintptr_t>(p) - it->first;
  if (bytes > it->second - offset)
    return report(std::string(call) + ": " + what + " spans " + std::to_string(bytes) + " bytes from offset " +
                  std::to_string(offset) + " of a " + std::to_string(it->second) + "-byte device allocation");
  return true;
}

bool host_pointer(const char* call, const char* what, const void* p) {
  if (!p) return report(std::string(call) + ": " + what + " is null");
  if (allocation_of(p) != state().allocations.end())
    return report(std::string(call) + ": " + what + " (" + address(p) + ") is device memory where host memory belongs");
  return true;
}

std::size_t matrix_span(long long rows, long long cols, long long ld) {
  if (rows <= 0 || cols <= 0) return 0;
  return static_cast<std::size_t>(ld * (cols - 1) + rows);
}

std::size_t vector_span(long long n, long long increment) {
  if (n <= 0) return 0;
  return static_cast<std::size_t>((n - 1) * (increment < 0 ? -increment : increment) + 1);
}

CUstream_st* stream_of(cudaStream_t stream) {
  State& s = state();
  if (stream == nullptr || stream == cudaStreamLegacy || stream == cudaStreamPerThread) return &s.legacy;
  return s.streams.count(stream) ? stream : nullptr;
}

void defer_copy_to_host(CUstream_st* stream, void* host, const void* device, std::size_t bytes) {
  CUstream_st::PendingCopy copy{host, std::vector<unsigned char>(static_cast<const unsigned char*>(device),
                                                                 static_cast<const unsigned char*>(device) + bytes)};
  std::memset(host, 0xff, bytes);  // NaN until the stream is synchronised
  stream->pending.push_back(std::move(copy));
}

void synchronise(CUstream_st* stream) { deliver(stream); }

void synchronise_all() {
  State& s = state();
  deliver(&s.legacy);
  for (CUstream_st* stream : s.streams) deliver(stream);
}

cudaError_t set_error(cudaError_t error) {
  if (error != cudaSuccess) last_error = error;
  return error;
}

}  // namespace detail

using detail::lock;

std::size_t live_allocations() {
  std::lock_guard<std::recursive_mutex> guard(lock());
  return detail::state().allocations.size();
}
std::size_t live_bytes() {
  std::lock_guard<std::recursive_mutex> guard(lock());
  return detail::state().live_bytes;
}
void set_device_memory(std::size_t bytes) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  detail::state().device_bytes = bytes;
}
std::size_t device_memory() {
  std::lock_guard<std::recursive_mutex> guard(lock());
  return detail::state().device_bytes;
}
void fail_call(const std::string& call, int nth) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  detail::state().faults[call] = nth;
}
void clear_faults() {
  std::lock_guard<std::recursive_mutex> guard(lock());
  detail::state().faults.clear();
}
std::vector<std::string> problems() {
  std::lock_guard<std::recursive_mutex> guard(lock());
  return detail::state().problems;
}
void clear_problems() {
  std::lock_guard<std::recursive_mutex> guard(lock());
  detail::state().problems.clear();
}
bool is_device_range(const void* pointer, std::size_t bytes) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  const auto it = detail::allocation_of(pointer);
  if (it == detail::state().allocations.end()) return false;
  return bytes <= it->second - (reinterpret_cast<std::uintptr_t>(pointer) - it->first);
}

bool accept_launch(const char* kernel, const void* function, unsigned long long grid, unsigned long long block,
                   std::size_t shared_bytes, cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  using detail::report;
  using detail::set_error;
  std::string name(kernel);
  name = name.substr(0, name.find('<'));
  if (detail::fault(("launch:" + name).c_str())) return set_error(cudaErrorLaunchFailure), false;
  if (!detail::stream_of(stream)) return report("launch of " + name + ": not a live stream"), set_error(cudaErrorInvalidResourceHandle), false;
  if (block == 0 || block > detail::kMaxThreadsPerBlock)
    return report("launch of " + name + ": " + std::to_string(block) + " threads a block (sm_90 allows 1 to 1024)"),
           set_error(cudaErrorInvalidConfiguration), false;
  if (grid == 0 || grid > detail::kMaxGridX)
    return report("launch of " + name + ": a grid of " + std::to_string(grid) + " blocks"), set_error(cudaErrorInvalidConfiguration),
           false;
  const auto attribute = detail::state().max_dynamic_shared.find(function);
  const std::size_t allowed =
      attribute == detail::state().max_dynamic_shared.end() ? detail::kDefaultSharedBytes : static_cast<std::size_t>(attribute->second);
  if (shared_bytes > allowed)
    return report("launch of " + name + ": " + std::to_string(shared_bytes) + " bytes of dynamic shared memory, " +
                  std::to_string(allowed) + " allowed (above 48 KiB a kernel needs cudaFuncAttributeMaxDynamicSharedMemorySize)"),
           set_error(cudaErrorInvalidValue), false;
  return true;
}

bool accept_kernel_pointer(const char* kernel, int index, const void* pointer) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (!pointer) return true;
  std::string name(kernel);
  name = name.substr(0, name.find('<'));
  const std::string what = "argument " + std::to_string(index + 1);
  if (!detail::device_range(("launch of " + name).c_str(), what.c_str(), pointer, 1))
    return detail::set_error(cudaErrorIllegalAddress), false;
  return true;
}

}  // namespace lrsmeta::cuda_emulation

using lrsmeta::cuda_emulation::detail::lock;
using lrsmeta::cuda_emulation::detail::report;
using lrsmeta::cuda_emulation::detail::set_error;
using lrsmeta::cuda_emulation::detail::state;
using lrsmeta::cuda_emulation::detail::stream_of;
namespace emu = lrsmeta::cuda_emulation::detail;

extern "C" {

cudaError_t cudaGetLastError(void) {
  const cudaError_t error = emu::last_error;
  emu::last_error = cudaSuccess;
  return error;
}

cudaError_t cudaPeekAtLastError(void) { return emu::last_error; }

const char* cudaGetErrorName(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    default: return "cudaErrorUnknown";
  }
}

const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
    default: return "unknown error";
  }
}

cudaError_t cudaGetDeviceCount(int* count) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (!count) return set_error(cudaErrorInvalidValue);
  if (emu::fault("cudaGetDeviceCount")) return *count = 0, set_error(cudaErrorInsufficientDriver);
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : set_error(cudaErrorInvalidDevice); }

cudaError_t cudaMalloc(void** pointer, size_t bytes) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (!pointer) return set_error(cudaErrorInvalidValue);
  *pointer = nullptr;
  if (emu::fault("cudaMalloc")) return set_error(cudaErrorMemoryAllocation);
  if (bytes == 0) return cudaSuccess;
  auto& s = state();
  if (bytes > s.device_bytes - s.live_bytes) return set_error(cudaErrorMemoryAllocation);
  void* p = std::malloc(bytes);
  if (!p) return set_error(cudaErrorMemoryAllocation);
  // Not cleared, as on a GPU: a pattern that reads as huge numbers and out-of-range indices.
  std::memset(p, 0x7f, bytes);
  s.allocations[reinterpret_cast<std::uintptr_t>(p)] = bytes;
  s.live_bytes += bytes;
  *pointer = p;
  return cudaSuccess;
}

cudaError_t cudaFree(void* pointer) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (!pointer) return cudaSuccess;
  auto& s = state();
  const auto it = s.allocations.find(reinterpret_cast<std::uintptr_t>(pointer));
  if (it == s.allocations.end()) {
    report("cudaFree: " + std::string(emu::device_range("cudaFree", "the pointer", pointer, 1) ? "not the start of an allocation"
                                                                                                 : "not device memory"));
    return set_error(cudaErrorInvalidValue);
  }
  emu::synchronise_all();  // cudaFree waits for the device
  s.live_bytes -= it->second;
  s.allocations.erase(it);
  std::free(pointer);
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (emu::fault("cudaMemGetInfo")) return set_error(cudaErrorInvalidValue);
  if (!free_bytes || !total_bytes) return set_error(cudaErrorInvalidValue);
  *total_bytes = state().device_bytes;
  *free_bytes = state().device_bytes - state().live_bytes;
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (emu::fault("cudaStreamCreateWithFlags")) return set_error(cudaErrorMemoryAllocation);
  if (!stream || (flags & ~cudaStreamNonBlocking) != 0) return set_error(cudaErrorInvalidValue);
  auto* created = new CUstream_st;
  created->non_blocking = (flags & cudaStreamNonBlocking) != 0;
  state().streams.insert(created);
  *stream = created;
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (!state().streams.count(stream)) return report("cudaStreamDestroy: not a live stream"), set_error(cudaErrorInvalidResourceHandle);
  emu::synchronise(stream);  // its work completes
  state().streams.erase(stream);
  delete stream;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (emu::fault("cudaStreamSynchronize")) return set_error(cudaErrorLaunchFailure);  // a kernel's fault surfaces here
  CUstream_st* s = stream_of(stream);
  if (!s) return report("cudaStreamSynchronize: not a live stream"), set_error(cudaErrorInvalidResourceHandle);
  emu::synchronise(s);
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  emu::synchronise_all();
  return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void* function, enum cudaFuncAttribute attribute, int value) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (emu::fault("cudaFuncSetAttribute")) return set_error(cudaErrorInvalidValue);
  if (!function) return set_error(cudaErrorInvalidValue);
  if (attribute == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || static_cast<std::size_t>(value) > emu::kMaxSharedBytes)
      return report("cudaFuncSetAttribute: " + std::to_string(value) + " bytes of dynamic shared memory (sm_90 allows up to 227 KiB)"),
             set_error(cudaErrorInvalidValue);
    state().max_dynamic_shared[function] = value;
  }
  return cudaSuccess;
}

}  // extern "C"

namespace {

// The checks of one copy of `bytes` bytes of kind `kind`; false: refused (reported).
bool check_copy(const char* call, void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  using emu::device_range;
  using emu::host_pointer;
  switch (kind) {
    case cudaMemcpyHostToDevice: return device_range(call, "the destination", dst, bytes) && host_pointer(call, "the source", src);
    case cudaMemcpyDeviceToHost: return host_pointer(call, "the destination", dst) && device_range(call, "the source", src, bytes);
    case cudaMemcpyDeviceToDevice:
      return device_range(call, "the destination", dst, bytes) && device_range(call, "the source", src, bytes);
    case cudaMemcpyHostToHost: return host_pointer(call, "the destination", dst) && host_pointer(call, "the source", src);
    default: return report(std::string(call) + ": copy kind " + std::to_string(static_cast<int>(kind)) + " is not one lrsmeta uses");
  }
}

}  // namespace

extern "C" {

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, enum cudaMemcpyKind kind) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (emu::fault("cudaMemcpy")) return set_error(cudaErrorInvalidValue);
  if (bytes == 0) return cudaSuccess;
  if (!check_copy("cudaMemcpy", dst, src, bytes, kind)) return set_error(cudaErrorInvalidValue);
  // On the legacy stream: it waits for the legacy stream and the blocking streams, not for
  // streams created non-blocking.
  emu::synchronise(&state().legacy);
  for (CUstream_st* s : state().streams)
    if (!s->non_blocking) emu::synchronise(s);
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, enum cudaMemcpyKind kind, cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (emu::fault("cudaMemcpyAsync")) return set_error(cudaErrorInvalidValue);
  CUstream_st* s = stream_of(stream);
  if (!s) return report("cudaMemcpyAsync: not a live stream"), set_error(cudaErrorInvalidResourceHandle);
  if (bytes == 0) return cudaSuccess;
  if (!check_copy("cudaMemcpyAsync", dst, src, bytes, kind)) return set_error(cudaErrorInvalidValue);
  if (kind == cudaMemcpyDeviceToHost)
    emu::defer_copy_to_host(s, dst, src, bytes);
  else
    std::memmove(dst, src, bytes);  // from pageable host memory the source is staged before the call returns
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* pointer, int value, size_t bytes, cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> guard(lock());
  if (emu::fault("cudaMemsetAsync")) return set_error(cudaErrorInvalidValue);
  if (!stream_of(stream)) return report("cudaMemsetAsync: not a live stream"), set_error(cudaErrorInvalidResourceHandle);
  if (!emu::device_range("cudaMemsetAsync", "the destination", pointer, bytes)) return set_error(cudaErrorInvalidValue);
  if (bytes) std::memset(pointer, value, bytes);
  return cudaSuccess;
}

}  // extern "C"
