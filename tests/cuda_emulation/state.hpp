// The emulation's shared state (internal to liblrsmeta_cuda_emulation.so): device allocations,
// streams and their deferred copies, faults, problems, the last error.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

// cudaStream_t is a pointer to this (an opaque type in CUDA's headers).
struct CUstream_st {
  struct PendingCopy {
    void* host;
    std::vector<unsigned char> bytes;  // the device's contents when the copy was issued
  };
  bool non_blocking = false;
  std::vector<PendingCopy> pending;  // copies into host memory, delivered at synchronisation
};

namespace lrsmeta::cuda_emulation::detail {

// One lock for the whole emulation: lrsmeta's backend calls from one thread, tests may not.
std::recursive_mutex& lock();

// Consumes a due fault of `call` (fail_call): true when this call must fail.
bool fault(const char* call);
// Records and prints one misuse; returns false (for `return report(...)` in checks).
bool report(const std::string& line);

// Checks of pointers handed to a call, each reporting a misuse naming `call` and `what`:
// [p, p + bytes) inside one live device allocation (bytes == 0: nothing is read, any p passes);
bool device_range(const char* call, const char* what, const void* p, std::size_t bytes);
// p non-null and not device memory (a host pointer where the API takes one).
bool host_pointer(const char* call, const char* what, const void* p);

// Elements a column-major rows x cols matrix with leading dimension ld spans (0 if empty), and a
// strided vector of n entries.
std::size_t matrix_span(long long rows, long long cols, long long ld);
std::size_t vector_span(long long n, long long increment);

// Streams: the legacy default stream stands for nullptr and cudaStreamLegacy.
CUstream_st* stream_of(cudaStream_t stream);  // nullptr: not a live stream
// Host memory gets the device's bytes now, written at the next synchronisation of `stream`; the
// host range holds NaN bytes meanwhile.
void defer_copy_to_host(CUstream_st* stream, void* host, const void* device, std::size_t bytes);
void synchronise(CUstream_st* stream);
void synchronise_all();

// The runtime's last error (cudaGetLastError); returns `error`.
cudaError_t set_error(cudaError_t error);

}  // namespace lrsmeta::cuda_emulation::detail
