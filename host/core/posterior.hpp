// The empirical-Bayes prior's algebra around the task steps, shared by every backend (the per-task
// parts compile for the device too). The task steps run in whitened coordinates w = L v, Sigma =
// L L^T, so that v's prior is s2 I and each task's small system stays well conditioned however close
// Sigma comes to singular (as Sigma^-1 would not); each task's posterior then maps back, and the
// M-step sums E[w w^T] = w w^T + V over the tasks.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#include "core/small_dense.hpp"

namespace lrsmeta::core {

// L, Sigma's lower Cholesky factor (r x r, row-major, zeros above the diagonal); all zeros where
// Sigma is 0 (no w at all).
inline std::vector<double> whitening_factor(const std::vector<double>& Sigma, int r) {
  std::vector<double> L(static_cast<std::size_t>(r) * r, 0.0);
  if (r > 0 && !detail::ridge_cholesky(Sigma.data(), r, 1e-14, L.data())) std::fill(L.begin(), L.end(), 0.0);
  for (int p = 0; p < r; ++p)
    for (int q = p + 1; q < r; ++q) L[static_cast<std::size_t>(p) * r + q] = 0.0;  // the factor is lower triangular
  return L;
}

// The task steps' basis U L (d x r, row-major) in the data's precision T.
template <typename T>
void whitened_basis(const std::vector<double>& U, const std::vector<double>& L, int d, int r, std::vector<T>& out) {
  out.assign(static_cast<std::size_t>(d) * r, T(0));
  for (int a = 0; a < d; ++a)
    for (int q = 0; q < r; ++q) {
      double s = 0.0;
      for (int p = q; p < r; ++p) s += U[static_cast<std::size_t>(a) * r + p] * L[static_cast<std::size_t>(p) * r + q];
      out[static_cast<std::size_t>(a) * r + q] = static_cast<T>(s);
    }
}

// A task's posterior back from whitened coordinates: w <- L w (in place) and V_packed <- L V L^T
// (packed upper triangle, r(r+1)/2), V the whitened posterior covariance (r x r, row-major).
// scratch: r + r r doubles.
LRSMETA_HD inline void map_back_from_whitened(const double* L, int r, double* w, const double* V, double* V_packed,
                                              double* scratch) {
  double* v = scratch;
  double* LV = scratch + r;
  for (int p = 0; p < r; ++p) v[p] = w[p];
  for (int p = 0; p < r; ++p) {
    double s = 0.0;
    for (int q = 0; q <= p; ++q) s += L[p * r + q] * v[q];
    w[p] = s;
  }
  // L V row by row, each a sum of V's rows (contiguous; the same terms in the same order as the
  // dot products down V's columns this replaced, which strode through V).
  for (int p = 0; p < r; ++p) {
    double* row = LV + p * r;
    for (int q = 0; q < r; ++q) row[q] = 0.0;
    for (int c = 0; c <= p; ++c) {
      const double l = L[p * r + c];
      const double* Vc = V + c * r;
      for (int q = 0; q < r; ++q) row[q] += l * Vc[q];
    }
  }
  for (int p = 0, pq = 0; p < r; ++p)
    for (int q = p; q < r; ++q) {
      double s = 0.0;
      for (int c = 0; c <= q; ++c) s += LV[p * r + c] * L[q * r + c];
      V_packed[pq++] = s;
    }
}

// The M-step's sums: adds a task's w to w_sum (r) and E[w w^T] = w w^T + V (V packed) to the upper
// triangle of S (r x r, row-major; symmetrise_upper completes it once every task is in).
LRSMETA_HD inline void add_second_moment(const double* w, const double* V_packed, int r, double* S, double* w_sum) {
  for (int p = 0; p < r; ++p) w_sum[p] += w[p];
  for (int p = 0, pq = 0; p < r; ++p)
    for (int q = p; q < r; ++q, ++pq) S[p * r + q] += w[p] * w[q] + V_packed[pq];
}

inline void symmetrise_upper(double* S, int r) {
  for (int p = 0; p < r; ++p)
    for (int q = 0; q < p; ++q) S[p * r + q] = S[q * r + p];
}

}  // namespace lrsmeta::core
