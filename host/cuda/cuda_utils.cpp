// The CUDA error path and the device check (cuda_utils.hpp, cuda_backend.hpp).
#include "cuda/cuda_utils.hpp"

#include <string>

#include "cuda/cuda_backend.hpp"

namespace lrsmeta::cuda {

void throw_cuda_error(const char* call, int code, const char* name, const char* file, int line) {
  throw Error(std::string("CUDA: ") + call + " failed with " + name + " (" + std::to_string(code) + ") at " + file + ":" +
              std::to_string(line));
}

// cudaGetDeviceCount returns an error code (not only a zero count) on a machine without a driver.
bool device_usable(std::string* why) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    if (why) *why = cudaGetErrorString(status);
    cudaGetLastError();  // clear the sticky error
    return false;
  }
  if (count == 0 && why) *why = "no CUDA device";
  return count > 0;
}

}  // namespace lrsmeta::cuda
