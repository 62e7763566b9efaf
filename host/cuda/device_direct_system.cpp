// The direct U step's system on the device (device_direct_system.hpp).
#include "cuda/device_direct_system.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/noise.hpp"
#include "kernels/device_kernels.hpp"

namespace lrsmeta::cuda {

DeviceDirectSystem::DeviceDirectSystem(const Stream& stream, const CublasHandle& cublas, const CusolverHandle& cusolver)
    : stream_(stream), cublas_(cublas), cusolver_(cusolver) {}  // nothing allocated before the backend's memory plan

void DeviceDirectSystem::set_unknowns(int n) {
  unknowns_ = n;
  G_.resize(static_cast<std::size_t>(n) * n);
  info_.resize(1);  // cuSOLVER's status
}

double DeviceDirectSystem::largest_abs_diagonal() {
  const int n = unknowns();
  int index = 0;  // 1-based, of the largest |diagonal| entry
  LRSMETA_CUBLAS_CHECK(cublasIdamax(cublas_.get(), n, G_.data(), n + 1, &index));
  double value = 0.0;
  LRSMETA_CUDA_CHECK(cudaMemcpyAsync(&value, G_.data() + static_cast<std::size_t>(index - 1) * (n + 1), sizeof(double),
                                     cudaMemcpyDeviceToHost, stream_.get()));
  stream_.synchronize();
  return std::fabs(value);
}

void DeviceDirectSystem::add_noise(double sigma_G, double sigma_v, core::GaussianNoise& noise) {
  // Drawn on the host (the same generator and order as the CPU path), added on the device.
  const cudaStream_t s = stream_.get();
  const int n = unknowns();
  const double one = 1.0;
  std::vector<double> noise_G(static_cast<std::size_t>(n) * n, 0.0), noise_v(static_cast<std::size_t>(n), 0.0);
  core::add_symmetric_noise(noise_G.data(), n, sigma_G, noise);
  core::add_noise(noise_v.data(), n, sigma_v, noise);
  copy_to_device(noise_G_, noise_G.data(), noise_G.size(), s);
  LRSMETA_CUBLAS_CHECK(cublasDaxpy(cublas_.get(), static_cast<int>(noise_G.size()), &one, noise_G_.data(), 1, G_.data(), 1));
  copy_to_device(host_terms_, noise_v.data(), noise_v.size(), s);
  LRSMETA_CUBLAS_CHECK(cublasDaxpy(cublas_.get(), n, &one, host_terms_.data(), 1, v_.data(), 1));
  stream_.synchronize();  // the host vectors go out of scope here
}

void DeviceDirectSystem::add_to_diagonal(int first, int count, double value) {
  if (count <= 0) return;
  const int n = unknowns();
  const double one = 1.0;
  const std::vector<double> values(static_cast<std::size_t>(count), value);
  copy_to_device(host_terms_, values.data(), values.size(), stream_.get());
  LRSMETA_CUBLAS_CHECK(cublasDaxpy(cublas_.get(), count, &one, host_terms_.data(), 1,
                                   G_.data() + static_cast<std::size_t>(first) * (n + 1), n + 1));
  stream_.synchronize();
}

bool DeviceDirectSystem::factor(double shift) {
  const cudaStream_t s = stream_.get();
  const int n = unknowns();
  factor_.resize(static_cast<std::size_t>(n) * n);
  int lwork = 0;
  LRSMETA_CUSOLVER_CHECK(cusolverDnDpotrf_bufferSize(cusolver_.get(), CUBLAS_FILL_MODE_LOWER, n, factor_.data(), n, &lwork));
  work_.resize(static_cast<std::size_t>(std::max(lwork, 1)));
  LRSMETA_CUDA_CHECK(cudaMemcpyAsync(factor_.data(), G_.data(), G_.size() * sizeof(double), cudaMemcpyDeviceToDevice, s));
  kernels::launch_add_diagonal(factor_.data(), n, shift, s);
  LRSMETA_CUSOLVER_CHECK(cusolverDnDpotrf(cusolver_.get(), CUBLAS_FILL_MODE_LOWER, n, factor_.data(), n, work_.data(), lwork,
                                          info_.data()));
  int info = 0;
  LRSMETA_CUDA_CHECK(cudaMemcpyAsync(&info, info_.data(), sizeof(int), cudaMemcpyDeviceToHost, s));
  stream_.synchronize();
  if (info < 0) throw Error("cusolverDnDpotrf: argument " + std::to_string(-info) + " is invalid");
  return info == 0;
}

std::vector<double> DeviceDirectSystem::solve(const std::vector<double>* anchor, double weight) {
  const cudaStream_t s = stream_.get();
  const int n = unknowns();
  solution_.resize(static_cast<std::size_t>(n));
  LRSMETA_CUDA_CHECK(cudaMemcpyAsync(solution_.data(), v_.data(), static_cast<std::size_t>(n) * sizeof(double), cudaMemcpyDeviceToDevice, s));
  if (anchor) {
    copy_to_device(host_terms_, anchor->data(), anchor->size(), s);
    LRSMETA_CUBLAS_CHECK(cublasDaxpy(cublas_.get(), n, &weight, host_terms_.data(), 1, solution_.data(), 1));
  }
  LRSMETA_CUSOLVER_CHECK(cusolverDnDpotrs(cusolver_.get(), CUBLAS_FILL_MODE_LOWER, n, 1, factor_.data(), n, solution_.data(), n,
                                          info_.data()));
  std::vector<double> x;
  copy_to_host(x, solution_, stream_);
  return x;
}

}  // namespace lrsmeta::cuda
