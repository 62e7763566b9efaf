// Small dense algebra for one task: Cholesky with a ridge, and top-k selection by magnitude.
// Header-only, allocation-free, and marked __host__ __device__ under nvcc so that the CPU path and
// the CUDA kernels run the same per-task maths (and the CPU tests cover the device maths too).
#pragma once

#include <cmath>

#if defined(__CUDACC__)
#define LRSMETA_HD __host__ __device__
#else
#define LRSMETA_HD
#endif

namespace lrsmeta::detail {

using std::fabs;
using std::sqrt;

// In-place Cholesky A = L L^T of an n x n symmetric matrix (row-major; the lower triangle is read
// and overwritten with L). Returns false at the first pivot that is not positive and finite.
template <typename S>
LRSMETA_HD inline bool cholesky_factor(S* A, int n) {
  for (int j = 0; j < n; ++j) {
    S diag = A[j * n + j];
    for (int p = 0; p < j; ++p) diag -= A[j * n + p] * A[j * n + p];
    if (!(diag > S(0)) || !(diag < S(INFINITY))) return false;
    const S ljj = sqrt(diag);
    A[j * n + j] = ljj;
    for (int i = j + 1; i < n; ++i) {
      S s = A[i * n + j];
      for (int p = 0; p < j; ++p) s -= A[i * n + p] * A[j * n + p];
      A[i * n + j] = s / ljj;
    }
  }
  return true;
}

// Solve L L^T x = b in place (b becomes x), L from cholesky_factor.
template <typename S>
LRSMETA_HD inline void cholesky_solve(const S* L, int n, S* b) {
  for (int i = 0; i < n; ++i) {
    S s = b[i];
    for (int p = 0; p < i; ++p) s -= L[i * n + p] * b[p];
    b[i] = s / L[i * n + i];
  }
  for (int i = n - 1; i >= 0; --i) {
    S s = b[i];
    for (int p = i + 1; p < n; ++p) s -= L[p * n + i] * b[p];
    b[i] = s / L[i * n + i];
  }
}

// Factor (A + shift I) where shift = relative_ridge * mean(diag(A)), raising the shift a
// hundredfold until the factorisation succeeds, so that rank-deficient or badly conditioned task
// systems (m_i < r + k, repeated rows) still give a finite answer. A (n x n, row-major) is kept;
// the factor goes to L (n x n). Returns false only when A has no positive diagonal at all (all-zero
// columns): the caller then uses the zero solution.
template <typename S>
LRSMETA_HD inline bool ridge_cholesky(const S* A, int n, S relative_ridge, S* L) {
  S mean_diag = 0;
  for (int i = 0; i < n; ++i) mean_diag += A[i * n + i];
  mean_diag /= S(n > 0 ? n : 1);
  if (!(mean_diag > S(0)) || !(mean_diag < S(INFINITY))) return false;
  // A floor on the ridge: the factorisation of an exactly singular matrix can pass in rounding.
  S shift = relative_ridge > S(0) ? relative_ridge * mean_diag : S(0);
  for (int attempt = 0; attempt < 12; ++attempt) {
    for (int i = 0; i < n * n; ++i) L[i] = A[i];
    for (int i = 0; i < n; ++i) L[i * n + i] += shift;
    if (cholesky_factor(L, n)) return true;
    shift = shift > S(0) ? shift * S(100) : mean_diag * S(1e-12);
  }
  return false;
}

// Indices of the k entries of largest |v[j]| among j in [0, n), in decreasing magnitude; ties go to
// the smaller index. Indices listed in `excluded` (n_excluded of them) are skipped. Writes
// min(k, eligible) indices to out and returns how many. O(n k): k is small next to n.
template <typename S>
LRSMETA_HD inline int top_k_abs(const S* v, int n, int k, const int* excluded, int n_excluded,
                                int* out) {
  int count = 0;
  if (k <= 0) return 0;
  for (int j = 0; j < n; ++j) {
    bool skip = false;
    for (int e = 0; e < n_excluded; ++e) skip = skip || (excluded[e] == j);
    if (skip) continue;
    const S mag = fabs(v[j]);
    if (count == k && !(mag > fabs(v[out[k - 1]]))) continue;
    int pos = count < k ? count++ : k - 1;
    // Shift smaller entries down; strict comparison keeps earlier (smaller) indices ahead on ties.
    while (pos > 0 && mag > fabs(v[out[pos - 1]])) {
      out[pos] = out[pos - 1];
      --pos;
    }
    out[pos] = j;
  }
  return count;
}

// Sort a short index list ascending together with its values (insertion sort: k is small).
template <typename S>
LRSMETA_HD inline void sort_by_index(int* idx, S* val, int n) {
  for (int i = 1; i < n; ++i) {
    const int key = idx[i];
    const S kv = val[i];
    int j = i - 1;
    while (j >= 0 && idx[j] > key) {
      idx[j + 1] = idx[j];
      val[j + 1] = val[j];
      --j;
    }
    idx[j + 1] = key;
    val[j + 1] = kv;
  }
}

}  // namespace lrsmeta::detail
