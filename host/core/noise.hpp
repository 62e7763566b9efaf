// Gaussian noise for the private release of G and v. By default its uniform bits come straight
// from the kernel's CSPRNG (getrandom), so the noise cannot be predicted or replayed; with a fixed
// seed (reproducible experiments, no guarantee) from mt19937_64.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "core/module_api.hpp"
#include "lrsmeta/lrsmeta.hpp"

namespace lrsmeta::core {

class GaussianNoise {
 public:
  explicit GaussianNoise(const PrivacyOptions& options);
  double operator()();  // standard normal
  // A checkpoint of the generator: with a fixed seed, its whole state (a resume continues the same
  // sequence); from the kernel, empty (a resume draws fresh noise, as it must).
  std::string state() const;
  void restore(const std::string& state);  // throws Error on a malformed state

 private:
  std::uint64_t next_bits();
  bool from_kernel_;
  std::mt19937_64 engine_;
  std::vector<std::uint64_t> buffer_;
  std::size_t used_ = 0;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

// How the direct U step (core/u_solver.cpp) privatises G and v (and the spectral start its
// moment): the contribution bounds, the noise scales and the ridge that keeps the noisy G positive
// definite.
struct PrivateRelease {
  PrivacyOptions bounds;
  double sigma_G = 0.0, sigma_v = 0.0, sigma_spectral = 0.0;
  double ridge = 0.0;
  GaussianNoise* noise = nullptr;
};

// G (n x n, symmetric) += sigma * N with N symmetric: upper triangle i.i.d. standard normal, mirrored.
LRSMETA_MODULE_API void add_symmetric_noise(double* G, int n, double sigma, GaussianNoise& noise);
// v (n) += sigma * standard normal, i.i.d.
LRSMETA_MODULE_API void add_noise(double* v, int n, double sigma, GaussianNoise& noise);

}  // namespace lrsmeta::core
