// The seam between the algorithm (host/core/amht.cpp, which knows nothing of hardware) and the
// backends that run its heavy steps: the reference CPU path (host/cpu) and the CUDA path (kernels/
// with its host side). A backend owns the data as it needs it, the current U and every task's
// (w, b); U stays inside the backend between iterations so that a device backend never copies it
// back to the host inside the loop.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/noise.hpp"
#include "lrsmeta/lrsmeta.hpp"

namespace lrsmeta::core {

struct TaskStepTotals {
  double sse = 0.0;         // sum of squared residuals over all rows
  std::int64_t rows = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;

  // U: d x r row-major with orthonormal columns.
  virtual void set_U(const std::vector<double>& U) = 0;
  virtual std::vector<double> get_U() const = 0;

  // Every task's (w, b) <- task_step(U, X_i, y_i, b_i) with sparsity k_in_effect (0: b = 0).
  virtual TaskStepTotals task_step_all(int k_in_effect) = 0;

  // Accumulate G and v from every task's current (w, b), solve (G + lambda I) vec(U~) = v, set U to
  // the Q factor of U~. Returns ||(I - U_old U_old^T) U_new||_F. With `release`, each task's
  // contribution is bounded before it is summed, and G and v get the release's noise and ridge.
  virtual double update_U(const PrivateRelease* release = nullptr) = 0;

  // (1/n) sum_j y_j^2 x_j x_j^T, d x d (for the spectral initialisation). With `release`: the sum
  // over each task's first m_max rows, clipped (rows to C_x, y to C_y), unnormalised (n is private),
  // noise not yet added.
  virtual std::vector<double> spectral_moment(const PrivateRelease* release = nullptr) = 0;

  // Copy every task's (w, b) into model.W, model.B_index, model.B_value (sized by the caller).
  virtual void export_task_parameters(Model& model) const = 0;
};

template <typename T>
std::unique_ptr<Backend> make_cpu_backend(const TaskDataView<T>& data, const Options& options);

// Defined by the CUDA backend when the library is built with it; otherwise by a stub that throws.
template <typename T>
std::unique_ptr<Backend> make_cuda_backend(const TaskDataView<T>& data, const Options& options);

}  // namespace lrsmeta::core
