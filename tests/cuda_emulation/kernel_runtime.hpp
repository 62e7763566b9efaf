// Runs lrsmeta's CUDA kernels as plain C++ on the CPU. Each CUDA thread of a block is a fiber
// on the calling thread: a fiber runs until its next __syncthreads, then the next one;
// when every unfinished fiber waits at the barrier, the round starts again. Blocks run one after
// another. One OS thread and a fixed order make runs deterministic and cheap (a switch costs a
// fraction of a microsecond, against tens of microseconds for OS threads on a barrier).
// Not a GPU model: no warps, no memory model beyond what the barrier gives, no timing. Enough for
// lrsmeta's kernels, which use __syncthreads, shared memory and atomicAdd on shared memory.
//
// Two users: tests/test_kernel_emulation.cpp (the kernels alone, through launch()), and the
// emulated CUDA build (tests/cuda_emulation), whose LRSMETA_LAUNCH also checks each launch against
// sm_90's limits through the emulated runtime. Include before kernels/*.cu: the CUDA keywords
// become C++ here.
#pragma once

// All of CUDA's host headers first: later includes of them (cuBLAS's pulls in cuda_runtime.h)
// must not meet the keywords redefined at the end of this file.
#include <cuda_runtime.h>
#include <math.h>  // the kernels call sqrt, fabs, fmin, fmax unqualified, as CUDA code does
#include <ucontext.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <type_traits>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define LRSMETA_EMULATION_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LRSMETA_EMULATION_ASAN 1
#endif
#endif
#ifdef LRSMETA_EMULATION_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

namespace lrsmeta::emulation {

struct Dim3 {
  unsigned x = 0, y = 0, z = 0;
};
inline Dim3 thread_index;
inline Dim3 block_index;
inline Dim3 block_dim;
inline Dim3 grid_dim;
inline std::vector<unsigned char> shared_memory;

namespace detail {

// Stack of one fiber: kernels keep little on the stack, but sanitizers enlarge frames.
#ifdef LRSMETA_EMULATION_ASAN
constexpr std::size_t kFiberStack = std::size_t{1} << 20;
#else
constexpr std::size_t kFiberStack = std::size_t{256} << 10;
#endif

// Switching between fibers. On x86-64 a few instructions: save the callee-saved registers and the
// stack pointer, load the other fiber's (glibc's swapcontext also saves the signal mask, a system
// call each switch, which made switching cost more than the kernels' work). Elsewhere, ucontext.
#if defined(__x86_64__)
struct Context {
  void* stack_pointer = nullptr;
};
}  // namespace detail
}  // namespace lrsmeta::emulation
extern "C" void lrsmeta_emulation_switch(void** save, void* next);
// In a COMDAT group, so that every translation unit including this header may define it.
asm(R"(
  .pushsection .text.lrsmeta_emulation_switch,"axG",@progbits,lrsmeta_emulation_switch,comdat
  .weak lrsmeta_emulation_switch
  .hidden lrsmeta_emulation_switch
  .type lrsmeta_emulation_switch, @function
lrsmeta_emulation_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size lrsmeta_emulation_switch, .-lrsmeta_emulation_switch
  .popsection
)");
namespace lrsmeta::emulation {
namespace detail {
inline void switch_context(Context& from, Context& to) { lrsmeta_emulation_switch(&from.stack_pointer, to.stack_pointer); }
// A fresh context that starts `entry` (which never returns) on the stack [stack, stack + size):
// six zeroed registers, then entry as the return address, above it a slot where a call would
// have left its return address, so that entry sees the stack aligned as the ABI requires.
inline void make_context(Context& context, char* stack, std::size_t size, void (*entry)()) {
  auto top = reinterpret_cast<std::uintptr_t>(stack + size) & ~std::uintptr_t{15};
  auto* slots = reinterpret_cast<void**>(top - 64);
  for (int i = 0; i < 6; ++i) slots[i] = nullptr;
  slots[6] = reinterpret_cast<void*>(entry);
  slots[7] = nullptr;
  context.stack_pointer = slots;
}
#else
struct Context {
  ucontext_t context{};
};
inline void switch_context(Context& from, Context& to) { swapcontext(&from.context, &to.context); }
inline void make_context(Context& context, char* stack, std::size_t size, void (*entry)()) {
  getcontext(&context.context);
  context.context.uc_stack.ss_sp = stack;
  context.context.uc_stack.ss_size = size;
  context.context.uc_link = nullptr;
  makecontext(&context.context, entry, 0);
}
#endif

struct Fiber {
  Context context;
  std::unique_ptr<char[]> stack;
  bool finished = false;
  const char* waiting_file = nullptr;  // the __syncthreads it waits at
  int waiting_line = 0;
  void* fake_stack = nullptr;  // AddressSanitizer's bookkeeping of a switch
};

struct Scheduler {
  Context context;
  std::vector<Fiber> fibers;
  Fiber* current = nullptr;
  const std::function<void()>* body = nullptr;
  const void* stack_bottom = nullptr;  // the scheduler's stack, for AddressSanitizer
  std::size_t stack_size = 0;
  void* fake_stack = nullptr;
};
inline Scheduler scheduler;

// Switch from the current fiber back to the scheduler (finished: it will not be resumed).
inline void to_scheduler(bool finished) {
  Fiber& f = *scheduler.current;
#ifdef LRSMETA_EMULATION_ASAN
  __sanitizer_start_switch_fiber(finished ? nullptr : &f.fake_stack, scheduler.stack_bottom, scheduler.stack_size);
#else
  (void)finished;
#endif
  switch_context(f.context, scheduler.context);
#ifdef LRSMETA_EMULATION_ASAN
  __sanitizer_finish_switch_fiber(f.fake_stack, nullptr, nullptr);
#endif
}

inline void fiber_entry() {
#ifdef LRSMETA_EMULATION_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &scheduler.stack_bottom, &scheduler.stack_size);
#endif
  (*scheduler.body)();
  scheduler.current->finished = true;
  to_scheduler(true);
}

}  // namespace detail

// __syncthreads: every thread of the block that has not returned reaches the same barrier before
// any goes on. Threads waiting at different barriers (a __syncthreads under a condition that
// differs between threads) is a kernel bug: reported, and the program stops.
inline void syncthreads(const char* file, int line) {
  detail::Fiber& f = *detail::scheduler.current;
  f.waiting_file = file;
  f.waiting_line = line;
  detail::to_scheduler(false);
}

// kernel() is run by every thread of every block: blocks in order, a block's threads as fibers.
inline void launch(unsigned grid, unsigned block, std::size_t shared_bytes, const std::function<void()>& kernel) {
  using namespace detail;
  block_dim = Dim3{block, 1, 1};
  grid_dim = Dim3{grid, 1, 1};
  if (scheduler.fibers.size() < block) scheduler.fibers.resize(block);
  scheduler.body = &kernel;
  for (unsigned b = 0; b < grid; ++b) {
    block_index = Dim3{b, 0, 0};
    shared_memory.assign(shared_bytes + 16, 0xcd);  // garbage, as on a GPU
    for (unsigned t = 0; t < block; ++t) {
      Fiber& f = scheduler.fibers[t];
      if (!f.stack) f.stack.reset(new char[kFiberStack]);
      make_context(f.context, f.stack.get(), kFiberStack, fiber_entry);
      f.finished = false;
    }
    for (bool running = true; running;) {
      running = false;
      const char* file = nullptr;
      int line = 0;
      for (unsigned t = 0; t < block; ++t) {
        Fiber& f = scheduler.fibers[t];
        if (f.finished) continue;
        scheduler.current = &f;
        thread_index = Dim3{t, 0, 0};
#ifdef LRSMETA_EMULATION_ASAN
        __sanitizer_start_switch_fiber(&scheduler.fake_stack, f.stack.get(), kFiberStack);
#endif
        switch_context(scheduler.context, f.context);
#ifdef LRSMETA_EMULATION_ASAN
        __sanitizer_finish_switch_fiber(scheduler.fake_stack, nullptr, nullptr);
#endif
        if (f.finished) continue;
        running = true;
        if (file && (line != f.waiting_line || (file != f.waiting_file && std::strcmp(file, f.waiting_file) != 0))) {
          std::fprintf(stderr, "cuda emulation: block %u: threads wait at different __syncthreads (%s:%d and %s:%d)\n", b,
                       file, line, f.waiting_file, f.waiting_line);
          std::abort();
        }
        file = f.waiting_file;
        line = f.waiting_line;
      }
    }
  }
  scheduler.current = nullptr;
}

// One fiber runs at a time: a plain add is atomic here.
template <typename T>
inline T atomic_add(T* address, T value) {
  const T old = *address;
  *address += value;
  return old;
}

}  // namespace lrsmeta::emulation

// kernels/*.cu test this: their kernels run here, not on a GPU.
#define LRSMETA_KERNELS_ON_CPU 1

#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __align__
#undef __forceinline__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define threadIdx ::lrsmeta::emulation::thread_index
#define blockIdx ::lrsmeta::emulation::block_index
#define blockDim ::lrsmeta::emulation::block_dim
#define gridDim ::lrsmeta::emulation::grid_dim
#define __syncthreads() ::lrsmeta::emulation::syncthreads(__FILE__, __LINE__)
#define atomicAdd(address, value) ::lrsmeta::emulation::atomic_add(address, value)
#define LRSMETA_DYNAMIC_SHARED(name) unsigned char* name = ::lrsmeta::emulation::shared_memory.data()
#define __align__(n)

#ifdef LRSMETA_CUDA_EMULATION
#include "cuda_emulation/launch.hpp"
#endif
