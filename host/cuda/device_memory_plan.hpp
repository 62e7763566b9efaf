// The CUDA backend's memory plan: what a fit allocates on the device, computed from the sizes alone
// so that the backend can refuse a fit that would not fit before it allocates anything.
#pragma once

#include <cstdint>

#include "lrsmeta/lrsmeta.hpp"

namespace lrsmeta::cuda {

struct DeviceMemoryPlan {
  // Tasks per chunk of the U step's passes: the direct solve's packed Grams, cg's per-task vectors.
  // cg under the prior: tasks per chunk of its operator's per-task products (d (r + 1) doubles each).
  std::int64_t chunk = 1, cg_chunk = 1, prior_cg_chunk = 1;
  double bytes = 0.0;  // everything the fit allocates
};

// For n rows, t tasks, d features of value_bytes bytes (4 or 8), rank r and sparsity k.
DeviceMemoryPlan plan_device_memory(std::int64_t n, std::int64_t t, int d, int r, int k, int value_bytes, const Options& options);

}  // namespace lrsmeta::cuda
