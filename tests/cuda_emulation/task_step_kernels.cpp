// The task-step kernels compiled as C++ for the emulated CUDA build (CMakeLists.txt here).
#include "cuda_emulation/kernel_runtime.hpp"
#include "kernels/task_step.cu"
