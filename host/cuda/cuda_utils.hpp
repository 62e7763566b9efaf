// Checked CUDA, cuBLAS and cuSOLVER calls and RAII owners of device memory, streams and library
// handles. Host-compiler code: it includes the CUDA runtime headers but no kernel syntax. Internal:
// never included from include/.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cusolverDn.h>
#ifdef LRSMETA_HAVE_NCCL
#include <nccl.h>
#endif

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "lrsmeta/lrsmeta.hpp"

namespace lrsmeta::cuda {

[[noreturn]] void throw_cuda_error(const char* call, int code, const char* name, const char* file, int line);

// After a kernel launch: a refused configuration (too many threads, too much shared memory), which
// only cudaGetLastError reports, becomes an lrsmeta::Error naming the kernel.
inline void check_launch(const char* kernel, const char* file, int line) {
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess)
    throw_cuda_error((std::string("the launch of ") + kernel).c_str(), static_cast<int>(status), cudaGetErrorName(status), file, line);
}

}  // namespace lrsmeta::cuda

// One macro per library: the failing call and its code become an lrsmeta::Error.
// A failed runtime call is also the runtime's last error: it is cleared here, or the next
// launch's check (check_launch) would report it again, as that launch's failure.
#define LRSMETA_CUDA_CHECK(call)                                                                   \
  do {                                                                                             \
    const cudaError_t lrsmeta_status_ = (call);                                                    \
    if (lrsmeta_status_ != cudaSuccess) {                                                          \
      cudaGetLastError();                                                                          \
      ::lrsmeta::cuda::throw_cuda_error(#call, static_cast<int>(lrsmeta_status_),                  \
                                        cudaGetErrorName(lrsmeta_status_), __FILE__, __LINE__);   \
    }                                                                                              \
  } while (0)

#define LRSMETA_CUBLAS_CHECK(call)                                                                 \
  do {                                                                                             \
    const cublasStatus_t lrsmeta_status_ = (call);                                                 \
    if (lrsmeta_status_ != CUBLAS_STATUS_SUCCESS)                                                  \
      ::lrsmeta::cuda::throw_cuda_error(#call, static_cast<int>(lrsmeta_status_),                  \
                                        cublasGetStatusName(lrsmeta_status_), __FILE__, __LINE__); \
  } while (0)

#ifdef LRSMETA_HAVE_NCCL
#define LRSMETA_NCCL_CHECK(call)                                                                   \
  do {                                                                                             \
    const ncclResult_t lrsmeta_status_ = (call);                                                   \
    if (lrsmeta_status_ != ncclSuccess)                                                            \
      ::lrsmeta::cuda::throw_cuda_error(#call, static_cast<int>(lrsmeta_status_),                  \
                                        ncclGetErrorString(lrsmeta_status_), __FILE__, __LINE__);  \
  } while (0)
#endif

#define LRSMETA_CUSOLVER_CHECK(call)                                                               \
  do {                                                                                             \
    const cusolverStatus_t lrsmeta_status_ = (call);                                               \
    if (lrsmeta_status_ != CUSOLVER_STATUS_SUCCESS)                                                \
      ::lrsmeta::cuda::throw_cuda_error(#call, static_cast<int>(lrsmeta_status_), "cusolver",      \
                                        __FILE__, __LINE__);                                       \
  } while (0)

namespace lrsmeta::cuda {

// Device memory for `count` elements of T; freed on destruction. Move-only.
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t count) { resize(count); }
  ~DeviceBuffer() { release(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept : ptr_(std::exchange(other.ptr_, nullptr)), count_(std::exchange(other.count_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      release();
      ptr_ = std::exchange(other.ptr_, nullptr);
      count_ = std::exchange(other.count_, 0);
    }
    return *this;
  }
  // Reallocates (contents lost) when the size changes.
  void resize(std::size_t count) {
    if (count == count_) return;
    release();
    if (count > 0) {
      void* p = nullptr;
      LRSMETA_CUDA_CHECK(cudaMalloc(&p, count * sizeof(T)));
      ptr_ = static_cast<T*>(p);
    }
    count_ = count;
  }
  T* data() { return ptr_; }
  const T* data() const { return ptr_; }
  std::size_t size() const { return count_; }

 private:
  void release() noexcept {
    // An error at teardown cannot be reported from a destructor; it must not linger as the last error.
    if (ptr_ && cudaFree(ptr_) != cudaSuccess) cudaGetLastError();
    ptr_ = nullptr;
    count_ = 0;
  }
  T* ptr_ = nullptr;
  std::size_t count_ = 0;
};

class Stream {
 public:
  Stream() { LRSMETA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
  ~Stream() {
    if (stream_ && cudaStreamDestroy(stream_) != cudaSuccess) cudaGetLastError();
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return stream_; }
  void synchronize() const { LRSMETA_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

 private:
  cudaStream_t stream_ = nullptr;
};

class CublasHandle {
 public:
  explicit CublasHandle(cudaStream_t stream) {
    LRSMETA_CUBLAS_CHECK(cublasCreate(&handle_));
    LRSMETA_CUBLAS_CHECK(cublasSetStream(handle_, stream));
  }
  ~CublasHandle() { cublasDestroy(handle_); }
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  cublasHandle_t get() const { return handle_; }

 private:
  cublasHandle_t handle_ = nullptr;
};

class CusolverHandle {
 public:
  explicit CusolverHandle(cudaStream_t stream) {
    LRSMETA_CUSOLVER_CHECK(cusolverDnCreate(&handle_));
    LRSMETA_CUSOLVER_CHECK(cusolverDnSetStream(handle_, stream));
  }
  ~CusolverHandle() { cusolverDnDestroy(handle_); }
  CusolverHandle(const CusolverHandle&) = delete;
  CusolverHandle& operator=(const CusolverHandle&) = delete;
  cusolverDnHandle_t get() const { return handle_; }

 private:
  cusolverDnHandle_t handle_ = nullptr;
};

#ifdef LRSMETA_HAVE_NCCL
// One NCCL communicator (this process's GPU among the fit's processes); destroyed with its owner.
class NcclCommunicator {
 public:
  NcclCommunicator(int processes, const ncclUniqueId& id, int rank) { LRSMETA_NCCL_CHECK(ncclCommInitRank(&comm_, processes, id, rank)); }
  ~NcclCommunicator() { ncclCommDestroy(comm_); }
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;
  ncclComm_t get() const { return comm_; }

 private:
  ncclComm_t comm_ = nullptr;
};
#endif

template <typename T>
void copy_to_device(DeviceBuffer<T>& dst, const T* src, std::size_t count, cudaStream_t stream) {
  dst.resize(count);
  if (count) LRSMETA_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src, count * sizeof(T), cudaMemcpyHostToDevice, stream));
}

// A device buffer's contents into a host vector (resized to it), on `stream`.
inline void copy_to_host(std::vector<double>& host, const DeviceBuffer<double>& device, const Stream& stream) {
  host.resize(device.size());
  if (!host.empty())
    LRSMETA_CUDA_CHECK(cudaMemcpyAsync(host.data(), device.data(), host.size() * sizeof(double), cudaMemcpyDeviceToHost, stream.get()));
  stream.synchronize();
}

}  // namespace lrsmeta::cuda
