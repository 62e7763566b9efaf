// Small dense algebra for one task: Cholesky with a ridge, and top-k selection by magnitude
// (the search for b's support by marginal likelihood built on them: core/evidence_search.hpp).
// Header-only, allocation-free, and marked __host__ __device__ under nvcc so that the CPU path and
// the CUDA kernels run the same per-task maths (and the CPU tests cover the device maths too).
#pragma once

#include <algorithm>
#include <cmath>

#if defined(__CUDACC__)
#define LRSMETA_HD __host__ __device__
#else
#define LRSMETA_HD
#endif

namespace lrsmeta::detail {

using std::fabs;
using std::log;
using std::sqrt;

// Packed lower-triangle index e -> (row, col), col <= row (e = row (row + 1) / 2 + col).
LRSMETA_HD inline void unrank_lower_triangle(int e, int* row, int* col) {
  int rr = static_cast<int>((sqrt(8.0 * e + 1.0) - 1.0) / 2.0);
  while ((rr + 1) * (rr + 2) / 2 <= e) ++rr;
  while (rr * (rr + 1) / 2 > e) --rr;
  *row = rr;
  *col = e - rr * (rr + 1) / 2;
}

// y[0..len) -= a x[0..len): the update the factorisation and the substitutions are made of.
template <typename S>
LRSMETA_HD inline void subtract_scaled(S* __restrict__ y, const S* __restrict__ x, S a, int len) {
  for (int l = 0; l < len; ++l) y[l] -= a * x[l];
}

// In-place Cholesky A = L L^T of an n x n symmetric matrix (row-major; the lower triangle is read
// and overwritten with L, the strict upper triangle is scratch and left holding L^T). Returns false
// at the first pivot that is not positive and finite.
// Right-looking: once column j of L is known its outer product leaves the rows below at once, each
// row's update independent of the others and contiguous, with column j mirrored into row j's upper
// part. The left-looking dot products this replaced were chains of dependent additions, about
// slower at the task step's n = 15 to 25; each entry still receives its terms in the same order
// (p = 0, 1, ...).
template <typename S>
LRSMETA_HD inline bool cholesky_factor(S* A, int n) {
  for (int j = 0; j < n; ++j) {
    S* rj = A + j * n;
    const S diag = rj[j];
    if (!(diag > S(0)) || !(diag < S(INFINITY))) return false;
    const S ljj = sqrt(diag), inverse = S(1) / ljj;  // one division: each costs a dozen multiplies
    rj[j] = ljj;
    for (int i = j + 1; i < n; ++i) {
      const S lij = A[i * n + j] * inverse;
      A[i * n + j] = lij;
      rj[i] = lij;
    }
    for (int i = j + 1; i < n; ++i) subtract_scaled(A + i * n + j + 1, rj + j + 1, rj[i], i - j);
  }
  return true;
}

// Column c of L^-1, L from cholesky_factor (n x n; L's column p read as row p of its mirror), into
// e (n): zero above row c, the rest by forward substitution from row c, about (n - c)^2 / 2 flop.
// [(L L^T)^-1]_pq is the dot product of columns p and q over the rows at or below max(p, q).
template <typename S>
LRSMETA_HD inline void inverse_factor_column(const S* L, int n, int c, S* e) {
  for (int q = 0; q < n; ++q) e[q] = q == c ? S(1) : S(0);
  for (int p = c; p < n; ++p) {
    const S x = e[p] / L[p * n + p];
    e[p] = x;
    subtract_scaled(e + p + 1, L + p * n + p + 1, x, n - p - 1);
  }
}

// Solve L L^T x = b in place (b becomes x), L from cholesky_factor: both triangles are read, L and
// the mirror L^T it leaves in the upper one. Both substitutions subtract a solved unknown from the
// rest at once (independent updates, not a dot product's chain), along contiguous memory: the
// forward one reads column p of L as row p of the mirror, the backward one L's rows.
// Each unknown is a product with its pivot's reciprocal, taken one step ahead: the reciprocal
// depends on L alone, so its division runs beside the substitution rather than in its chain of
// dependent operations (where it cost more than the rest of a step).
template <typename S>
LRSMETA_HD inline void cholesky_solve(const S* L, int n, S* b) {
  if (n <= 0) return;
  S inverse_next = S(1) / L[0];
  for (int p = 0; p < n; ++p) {
    const S inverse = inverse_next;
    if (p + 1 < n) inverse_next = S(1) / L[(p + 1) * n + p + 1];
    const S bp = b[p] * inverse;
    b[p] = bp;
    subtract_scaled(b + p + 1, L + p * n + p + 1, bp, n - p - 1);
  }
  inverse_next = S(1) / L[(n - 1) * n + n - 1];
  for (int i = n - 1; i >= 0; --i) {
    const S inverse = inverse_next;
    if (i > 0) inverse_next = S(1) / L[(i - 1) * n + i - 1];
    const S bi = b[i] * inverse;
    b[i] = bi;
    subtract_scaled(b, L + i * n, bi, i);
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
  S kth = S(0);  // |v| of the k-th entry kept, once k are kept
  for (int j = 0; j < n; ++j) {
    // Most entries fall below the k-th kept one: that test first, the exclusion list only for the
    // few that would enter.
    const S mag = fabs(v[j]);
    if (count == k && !(mag > kth)) continue;
    bool skip = false;
    for (int e = 0; e < n_excluded; ++e) skip = skip || (excluded[e] == j);
    if (skip) continue;
    int pos = count < k ? count++ : k - 1;
    // Shift smaller entries down; strict comparison keeps earlier (smaller) indices ahead on ties.
    while (pos > 0 && mag > fabs(v[out[pos - 1]])) {
      out[pos] = out[pos - 1];
      --pos;
    }
    out[pos] = j;
    if (count == k) kth = fabs(v[out[k - 1]]);
  }
  return count;
}

// The same selection by value on magnitudes already taken (mag[j] = |v[j]|), where an entry below 0
// marks an excluded index: no list to search at each entry that would enter. Writes min(k,
// eligible) indices to out, in decreasing magnitude (ties to the smaller index), and returns how
// many: exactly what top_k_abs gives on v with those indices excluded.
template <typename S>
LRSMETA_HD inline int top_k_of_magnitudes(const S* mag, int n, int k, int* out) {
  int count = 0;
  if (k <= 0) return 0;
  S kth = S(0);
  for (int j = 0; j < n; ++j) {
    const S m = mag[j];
    if (count == k && !(m > kth)) continue;
    if (m < S(0)) continue;  // excluded
    int pos = count < k ? count++ : k - 1;
    while (pos > 0 && m > mag[out[pos - 1]]) {
      out[pos] = out[pos - 1];
      --pos;
    }
    out[pos] = j;
    if (count == k) kth = mag[out[k - 1]];
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
