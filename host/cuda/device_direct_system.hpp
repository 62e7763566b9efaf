// The direct U step's normal equations on the device, as core::DirectSystem (core/backend.hpp): the
// backend forms G (n x n, column-major) and v in place; the noise of a private release, the terms on
// the diagonal, the Cholesky factor (cuSOLVER, on a copy of G) and the solve happen here, so that only
// scalars and the solution come back to the host. The solve's policy is the core's (solve_direct).
#pragma once

#include <vector>

#include "core/backend.hpp"
#include "cuda/cuda_utils.hpp"

namespace lrsmeta::cuda {

class DeviceDirectSystem final : public core::DirectSystem {
 public:
  // The backend's stream and handles, which outlive the system.
  DeviceDirectSystem(const Stream& stream, const CublasHandle& cublas, const CusolverHandle& cusolver);
  // n unknowns: G becomes n x n (its contents are the backend's to write), v is the backend's too.
  void set_unknowns(int n);
  DeviceBuffer<double>& G() { return G_; }
  DeviceBuffer<double>& v() { return v_; }

  int unknowns() const override { return unknowns_; }
  double largest_abs_diagonal() override;
  void add_noise(double sigma_G, double sigma_v, core::GaussianNoise& noise) override;
  void add_to_diagonal(int first, int count, double value) override;
  bool factor(double shift) override;
  std::vector<double> solve(const std::vector<double>* anchor, double weight) override;

 private:
  const Stream& stream_;
  const CublasHandle& cublas_;
  const CusolverHandle& cusolver_;
  int unknowns_ = 0;
  DeviceBuffer<double> G_, v_, factor_, work_, noise_G_, solution_;
  DeviceBuffer<double> host_terms_;  // a vector from the host added on the device: v's noise, a diagonal block, the anchor
  DeviceBuffer<int> info_;
};

}  // namespace lrsmeta::cuda
