#include "cuda/device_memory_plan.hpp"

#include <algorithm>

#include "core/task_posterior.hpp"

namespace lrsmeta::cuda {

DeviceMemoryPlan plan_device_memory(std::int64_t n, std::int64_t t, int d, int r, int k, int value_bytes, const Options& options) {
  DeviceMemoryPlan plan;
  const std::int64_t P = static_cast<std::int64_t>(r) * (r + 1) / 2, Q = static_cast<std::int64_t>(d) * (d + 1) / 2;
  const bool cg = options.u_solver == USolver::cg;
  // The direct solve's packed Grams (Q values a task) in 256 MiB, cg's per-task vectors (2 d + 2 r
  // doubles) in 64 MiB.
  plan.chunk = std::max<std::int64_t>(1, std::min<std::int64_t>(t, (std::int64_t{256} << 20) / std::max<std::int64_t>(1, Q * value_bytes)));
  plan.cg_chunk = std::max<std::int64_t>(1, std::min<std::int64_t>(t, (std::int64_t{64} << 20) / ((2 * d + 2 * r + 1) * 8)));
  const double r1 = r + 1.0;
  plan.prior_cg_chunk =
      std::max<std::int64_t>(1, std::min<std::int64_t>(t, (std::int64_t{64} << 20) / (static_cast<std::int64_t>(d) * (r + 1) * 8)));
  const double dr = static_cast<double>(d) * r, chunk = static_cast<double>(plan.chunk), value = value_bytes;
  const double u_step = cg ? plan.cg_chunk * (2.0 * d + 2.0 * r) * 8 + 8 * dr * 8 + 4096.0 * (d + 1) * 8  // chunk, vectors, moment rows
                           : chunk * (P + Q) * value + chunk * (d + r) * 8.0                          // one chunk
                                 + P * Q * 8.0 + (value_bytes == 4 ? P * Q * 4.0 : 0.0)              // M
                                 + 3 * dr * dr * 8 + 8 * dr * 8;                                     // G, factor, noise
  // The prior's: V_i and the statistics per task, y - X beta per row, and the joint [beta, U]
  // system's larger U step (r + 1 columns).
  // Under cg: the operator's per-task products, the tasks' row counts and sum_i m_i V_i.
  const bool prior = options.prior == Prior::automatic;
  const double prior_state = prior ? t * (r * r + core::kPosteriorStats + 1.0) * 8 + n * 8.0 +
                                         (cg ? plan.prior_cg_chunk * d * r1 * 8 + t * 8.0 + r * r * 8.0 + 8 * d * 8.0
                                             : chunk * (r1 * (r1 + 1) / 2 - P) * value +
                                                         (r1 * (r1 + 1) / 2 - P) * Q * 8.0 + 3 * (d * r1 * d * r1 - dr * dr) * 8)
                                   : 0.0;
  plan.bytes = static_cast<double>(n) * d * value + n * value + (t + 1) * 8.0  // data
               + n * (r + 2.0) * 8                                             // Z, target, resid
               + t * (r + 2.0 * k + 1) * 8                                     // W, B, per-task loss
               + u_step + prior_state;
  return plan;
}

}  // namespace lrsmeta::cuda
