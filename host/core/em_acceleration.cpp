#include "core/em_acceleration.hpp"

#include <algorithm>
#include <cmath>

#include "linalg/blas_lapack.hpp"

namespace lrsmeta::core {

double overrelaxation_factor(const std::vector<IterationInfo>& history, int sparsity_in_effect, double log_evidence,
                             double s2_before, double s2_proposed) {
  // The run's s2 after each M-step and the evidence each iteration saw, this one's proposal last.
  std::vector<double> evidence, s2;
  for (const IterationInfo& h : history) {
    if (h.sparsity_in_effect != sparsity_in_effect) {
      evidence.clear();
      s2.clear();
    }
    evidence.push_back(h.log_evidence);
    s2.push_back(h.noise_variance);
  }
  if (s2.empty() || s2.back() != s2_before) {  // the state before this M-step is not the history's last
    evidence.clear();
    s2.clear();
  }
  evidence.push_back(log_evidence);
  s2.push_back(s2_proposed);
  int run = 0;
  for (std::size_t j = 2; j < s2.size(); ++j) {
    const bool same_way = (s2[j] - s2[j - 1]) * (s2[j - 1] - s2[j - 2]) > 0;
    run = same_way && evidence[j] > evidence[j - 1] ? run + 1 : 0;
  }
  return run > kOverrelaxationDelay ? std::min(kOverrelaxationLimit, std::pow(kOverrelaxationGrowth, run - kOverrelaxationDelay)) : 1.0;
}

namespace {
using Matrix = std::vector<double>;  // r x r, row-major

Matrix product(const Matrix& X, const Matrix& Y, int r) {
  Matrix Z(static_cast<std::size_t>(r) * r, 0.0);
  for (int a = 0; a < r; ++a)
    for (int c = 0; c < r; ++c) {
      const double x = X[static_cast<std::size_t>(a) * r + c];
      for (int b = 0; b < r; ++b) Z[static_cast<std::size_t>(a) * r + b] += x * Y[static_cast<std::size_t>(c) * r + b];
    }
  return Z;
}

void symmetrise(Matrix& X, int r) {
  for (int a = 0; a < r; ++a)
    for (int b = 0; b < a; ++b) {
      const double s = 0.5 * (X[static_cast<std::size_t>(a) * r + b] + X[static_cast<std::size_t>(b) * r + a]);
      X[static_cast<std::size_t>(a) * r + b] = X[static_cast<std::size_t>(b) * r + a] = s;
    }
}

// Q f(Lambda) Q^T for the eigendecomposition (values ascending, vectors as columns) of a symmetric
// r x r matrix; f also sees the largest |eigenvalue|.
template <typename F>
Matrix spectral_function(const std::vector<double>& values, const std::vector<double>& Q, int r, F f) {
  const double top = values.empty() ? 0.0 : std::max(std::fabs(values.front()), std::fabs(values.back()));
  Matrix out(static_cast<std::size_t>(r) * r, 0.0);
  for (int q = 0; q < r; ++q) {
    const double fq = f(values[static_cast<std::size_t>(q)], top);
    for (int a = 0; a < r; ++a)
      for (int b = 0; b < r; ++b)
        out[static_cast<std::size_t>(a) * r + b] += Q[static_cast<std::size_t>(q) * r + a] * fq * Q[static_cast<std::size_t>(q) * r + b];
  }
  symmetrise(out, r);
  return out;
}
}  // namespace

std::vector<double> covariance_geodesic(const std::vector<double>& A, const std::vector<double>& B, int r, double eta) {
  auto floored = [](double value, double top) { return std::max(value, 1e-12 * top + 1e-300); };
  std::vector<double> a_values;
  const std::vector<double> a_vectors = linalg::symmetric_eigen(r, A, &a_values);  // one decomposition for both roots
  const Matrix half = spectral_function(a_values, a_vectors, r, [&](double v, double top) { return std::sqrt(floored(v, top)); });
  const Matrix inverse_half =
      spectral_function(a_values, a_vectors, r, [&](double v, double top) { return 1.0 / std::sqrt(floored(v, top)); });
  Matrix C = product(product(inverse_half, B, r), inverse_half, r);
  symmetrise(C, r);
  std::vector<double> c_values;
  const std::vector<double> c_vectors = linalg::symmetric_eigen(r, C, &c_values);
  const Matrix power = spectral_function(c_values, c_vectors, r, [&](double v, double top) { return std::pow(floored(v, top), eta); });
  Matrix out = product(product(half, power, r), half, r);
  symmetrise(out, r);
  return out;
}

std::vector<double> covariance_in_basis(const std::vector<double>& Sigma_before, const std::vector<double>& U_before,
                                        const std::vector<double>& U, int d, int r) {
  Matrix T(static_cast<std::size_t>(r) * r, 0.0);
  for (int a = 0; a < r; ++a)
    for (int b = 0; b < r; ++b)
      for (int c = 0; c < d; ++c) T[static_cast<std::size_t>(a) * r + b] += U[static_cast<std::size_t>(c) * r + a] * U_before[static_cast<std::size_t>(c) * r + b];
  Matrix Tt(T.size());
  for (int a = 0; a < r; ++a)
    for (int b = 0; b < r; ++b) Tt[static_cast<std::size_t>(b) * r + a] = T[static_cast<std::size_t>(a) * r + b];
  Matrix out = product(product(T, Sigma_before, r), Tt, r);
  symmetrise(out, r);
  return out;
}

}  // namespace lrsmeta::core
