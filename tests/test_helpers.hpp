// Shared helpers for the tests: seeded random data and double-precision references.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "lrsmeta/io.hpp"

namespace lrsmeta::testing {

inline std::vector<double> random_normal(std::size_t count, std::uint64_t seed) {
  std::mt19937_64 engine(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> v(count);
  for (double& x : v) x = normal(engine);
  return v;
}

// Random d x r (row-major) matrix with orthonormal columns, by modified Gram-Schmidt (independent
// of the library's LAPACK QR).
inline std::vector<double> random_orthonormal(int d, int r, std::uint64_t seed) {
  std::vector<double> U = random_normal(static_cast<std::size_t>(d) * r, seed);
  for (int p = 0; p < r; ++p) {
    for (int q = 0; q < p; ++q) {
      double dot = 0;
      for (int a = 0; a < d; ++a) dot += U[a * r + p] * U[a * r + q];
      for (int a = 0; a < d; ++a) U[a * r + p] -= dot * U[a * r + q];
    }
    double norm = 0;
    for (int a = 0; a < d; ++a) norm += U[a * r + p] * U[a * r + p];
    norm = std::sqrt(norm);
    for (int a = 0; a < d; ++a) U[a * r + p] /= norm;
  }
  return U;
}

// A random symmetric positive definite r x r matrix (row-major): B B^T + lift I, B Gaussian.
inline std::vector<double> random_spd(int r, std::uint64_t seed, double lift) {
  const std::vector<double> B = random_normal(static_cast<std::size_t>(r) * r, seed);
  std::vector<double> S(static_cast<std::size_t>(r) * r, 0.0);
  for (int a = 0; a < r; ++a)
    for (int b = 0; b < r; ++b) {
      for (int c = 0; c < r; ++c) S[a * r + b] += B[a * r + c] * B[b * r + c];
      if (a == b) S[a * r + b] += lift;
    }
  return S;
}

// Solve the dense system A x = b (n x n row-major) by Gaussian elimination with partial pivoting.
inline std::vector<double> solve_dense(std::vector<double> A, std::vector<double> b) {
  const int n = static_cast<int>(b.size());
  for (int c = 0; c < n; ++c) {
    int piv = c;
    for (int i = c + 1; i < n; ++i)
      if (std::fabs(A[i * n + c]) > std::fabs(A[piv * n + c])) piv = i;
    for (int j = 0; j < n; ++j) std::swap(A[c * n + j], A[piv * n + j]);
    std::swap(b[c], b[piv]);
    for (int i = c + 1; i < n; ++i) {
      const double f = A[i * n + c] / A[c * n + c];
      for (int j = c; j < n; ++j) A[i * n + j] -= f * A[c * n + j];
      b[i] -= f * b[c];
    }
  }
  for (int i = n - 1; i >= 0; --i) {
    double s = b[i];
    for (int j = i + 1; j < n; ++j) s -= A[i * n + j] * b[j];
    b[i] = s / A[i * n + i];
  }
  return b;
}

// Distance between the subspaces spanned by two d x r orthonormal bases: ||(I - U U^T) V||_F.
inline double subspace_distance(const std::vector<double>& U, const std::vector<double>& V, int d, int r) {
  return lrsmeta::subspace_distance(U, V, d, r);
}

// y_ij = x_ij^T (beta + w_i) + e_ij, w_i ~ N(0, diag(intercept variance at the constant feature,
// slope variance elsewhere)): the slopes model's truth.
inline Dataset<double> intercept_and_slopes_data(int tasks, int min_rows, int max_rows, int d, int constant, double intercept_variance,
                                          double slope_variance, double noise, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> normal;
  std::uniform_int_distribution<int> rows(min_rows, max_rows);
  std::vector<double> beta(static_cast<std::size_t>(d)), theta(beta.size());
  for (double& b : beta) b = normal(gen);
  Dataset<double> data;
  data.d = d;
  data.task_offsets.assign(1, 0);
  for (int i = 0; i < tasks; ++i) {
    for (int a = 0; a < d; ++a) theta[a] = beta[a] + std::sqrt(a == constant ? intercept_variance : slope_variance) * normal(gen);
    const int m = rows(gen);
    for (int j = 0; j < m; ++j) {
      double y = noise * normal(gen);
      for (int a = 0; a < d; ++a) {
        const double x = a == constant ? 1.0 : normal(gen);
        data.X.push_back(x);
        y += x * theta[a];
      }
      data.y.push_back(y);
    }
    data.task_offsets.push_back(data.n());
  }
  return data;
}

// Generated tasks of d features, rank r and sparsity k, each with min_rows to max_rows rows.
inline SyntheticSpec task_shape(std::int64_t tasks, std::int64_t d, std::int64_t r, std::int64_t k, std::int64_t min_rows,
                                std::int64_t max_rows, double noise = 0.0, std::uint64_t seed = SyntheticSpec().seed) {
  SyntheticSpec s;
  s.tasks = tasks;
  s.d = d;
  s.r = r;
  s.k = k;
  s.min_samples = min_rows;
  s.max_samples = max_rows;
  s.noise = noise;
  s.seed = seed;
  return s;
}

}  // namespace lrsmeta::testing
