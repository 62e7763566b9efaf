// The U step's kernels compiled as C++ for the emulated CUDA build (CMakeLists.txt here).
#include "cuda_emulation/kernel_runtime.hpp"
#include "kernels/normal_equations.cu"
