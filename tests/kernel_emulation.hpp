// Runs lrsmeta's CUDA kernels as plain C++ on CPU threads, one std::thread per CUDA thread of a
// block and the blocks one after another, so that their logic (indexing, the __syncthreads
// structure, the per-task maths) can be checked where no GPU is available. Not a CUDA model: no
// warps, no memory model beyond what a barrier gives; enough for these kernels, which use only
// __syncthreads, shared memory and atomicAdd on shared memory.
//
// Include after kernels/device_kernels.hpp (whose CUDA runtime header defines the CUDA keywords as
// attributes) and before the .cu files compiled with LRSMETA_EMULATE_KERNELS.
#pragma once

#include <math.h>  // the kernels call sqrt, fabs, fmin, fmax unqualified, as CUDA code does

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace lrsmeta::emulation {

struct Dim3 {
  unsigned x = 0, y = 0, z = 0;
};
inline thread_local Dim3 thread_index;
inline thread_local Dim3 block_index;
inline Dim3 block_dim;
inline Dim3 grid_dim;
inline std::vector<unsigned char> shared_memory;
inline std::mutex atomic_mutex;

class Barrier {
 public:
  explicit Barrier(unsigned count) : count_(count) {}
  void wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    const unsigned generation = generation_;
    if (++waiting_ == count_) {
      waiting_ = 0;
      ++generation_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return generation_ != generation; });
    }
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  unsigned count_, waiting_ = 0, generation_ = 0;
};
inline Barrier* block_barrier = nullptr;

// kernel() is called by every thread of every block; blocks run in order, threads in parallel.
inline void launch(unsigned grid, unsigned block, std::size_t shared_bytes, const std::function<void()>& kernel) {
  block_dim.x = block;
  grid_dim.x = grid;
  Barrier barrier(block);
  block_barrier = &barrier;
  std::vector<std::thread> threads;
  for (unsigned tid = 0; tid < block; ++tid)
    threads.emplace_back([&, tid] {
      thread_index.x = tid;
      for (unsigned b = 0; b < grid; ++b) {
        if (tid == 0) shared_memory.assign(shared_bytes + 16, 0xcd);  // garbage, as on a GPU
        barrier.wait();
        block_index.x = b;
        kernel();
        barrier.wait();
      }
    });
  for (auto& t : threads) t.join();
  block_barrier = nullptr;
}

inline double atomic_add(double* address, double value) {
  std::lock_guard<std::mutex> lock(atomic_mutex);
  const double old = *address;
  *address += value;
  return old;
}

}  // namespace lrsmeta::emulation

#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __align__
#define __global__
#define __device__
#define __host__
#define __shared__ static
#define threadIdx ::lrsmeta::emulation::thread_index
#define blockIdx ::lrsmeta::emulation::block_index
#define blockDim ::lrsmeta::emulation::block_dim
#define gridDim ::lrsmeta::emulation::grid_dim
#define __syncthreads() ::lrsmeta::emulation::block_barrier->wait()
#define atomicAdd(address, value) ::lrsmeta::emulation::atomic_add(address, value)
#define LRSMETA_DYNAMIC_SHARED(name) unsigned char* name = ::lrsmeta::emulation::shared_memory.data()
#define __align__(n)
