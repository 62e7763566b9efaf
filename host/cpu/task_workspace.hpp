// The CPU task step's scratch (TaskWorkspace, sized once per thread) and its small least-squares
// pieces: the Gram of [X U, X_S] and its solve, residuals and correlations (cpu/task_step.hpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "core/small_dense.hpp"
#include "core/task_step_rules.hpp"
#include "linalg/blas_lapack.hpp"
#include "lrsmeta/lrsmeta.hpp"

namespace lrsmeta::cpu {

// The task step's settings and prior, and the rules it shares with the CUDA kernel.
using core::effective_step_size;
using core::max_joint_columns;
using core::pursuit_candidate_cap;
using core::TaskPosterior;
using core::TaskPrior;
using core::task_step_settings;
using core::TaskStepSettings;

struct TaskWorkspace {
  int m_max = 0, d = 0, r = 0, k = 0, cols = 0;
  // m x cols, row-major: X U in the first r entries of each row, then the current system's X_S
  // gathered (joint_least_squares): the rows of [X U, X_S], whose Gram is the system's.
  std::vector<double> Z;
  std::vector<float> Z_data;   // X U in float, for float data
  std::vector<double> ZtZ;     // r x r, lower triangle
  std::vector<double> gram, gram_sub, chol, rhs, rhs_saved;
  std::vector<double> rhs_sub;     // the right-hand side of the system in gram_sub (keep_support_system)
  int support_system_columns = -1; // b's columns of that system (-1: none kept)
  // After a task step: resid holds the task's final residual e (y - Z w - X_S b_S), and corr X^T e
  // where this is true.
  bool corr_is_of_final_residual = false;
  std::vector<double> w_previous;  // pursuit: w of the support the iteration started from
  std::vector<double> resid, corr, dense;
  std::vector<double> joint_target;  // y in double: the target of htp's and pursuit's joint fits
  std::vector<double> target;   // y - X beta under a prior
  std::vector<double> inverse;  // (A^T A + s2 P)^-1 for the posterior
  std::vector<int> support, candidates, picked, previous;
  std::vector<double> support_values, candidate_values;
  std::vector<double> evidence_scratch;  // detail::evidence_subset's scratch
  std::vector<int> evidence_picks;
  // The last evidence search's posterior inclusion probabilities: of every candidate, then of the
  // chosen features (inclusion_features, n_inclusion of them).
  std::vector<double> inclusion, inclusion_chosen;
  std::vector<int> inclusion_features;
  int n_inclusion = 0;
  int last_n = 0;               // size of the last system solved, and whether it was factored
  bool last_factored = false;
  // A task's (w, b) before a restart from the empty support (task_step): r and k slots.
  std::vector<double> kept_w, kept_b_value;
  std::vector<std::int32_t> kept_b_index;

  TaskWorkspace(int m_max_, int d_, int r_, int k_)
      : m_max(m_max_), d(d_), r(r_), k(k_), cols(max_joint_columns(r_, k_, d_)) {
    const std::size_t m = static_cast<std::size_t>(std::max(m_max, 1));
    Z.resize(m * std::max(cols, 1));
    Z_data.resize(m * std::max(r, 1));
    ZtZ.resize(static_cast<std::size_t>(std::max(r, 1)) * std::max(r, 1));
    gram.resize(static_cast<std::size_t>(cols) * cols + 1);
    gram_sub.resize(gram.size());
    chol.resize(gram.size());
    rhs.resize(cols + 1);
    rhs_saved.resize(cols + 1);
    rhs_sub.resize(cols + 1);
    w_previous.resize(static_cast<std::size_t>(std::max(r, 1)));
    resid.resize(m);
    joint_target.resize(m);
    target.resize(m);
    inverse.resize(gram.size());
    corr.resize(static_cast<std::size_t>(d));
    dense.resize(static_cast<std::size_t>(d));
    support.resize(cols + 1);
    candidates.resize(cols + 1);
    picked.resize(cols + 1);
    previous.resize(cols + 1);
    support_values.resize(cols + 1);
    candidate_values.resize(cols + 1);
    evidence_scratch.resize(static_cast<std::size_t>(detail::evidence_subset_scratch(r, cols - r, k, true)) + 1);
    evidence_picks.resize(static_cast<std::size_t>(detail::evidence_subset_picks(k)));
    inclusion.resize(static_cast<std::size_t>(std::max(cols - r, 1)));
    inclusion_chosen.resize(static_cast<std::size_t>(k + 1));
    inclusion_features.resize(static_cast<std::size_t>(k + 1));
    kept_w.resize(static_cast<std::size_t>(std::max(r, 1)));
    kept_b_index.resize(static_cast<std::size_t>(std::max(k, 1)));
    kept_b_value.resize(kept_b_index.size());
  }
};

namespace task_detail {

inline void solve_system(const double* G, double* x, int n, double ridge, TaskWorkspace& ws, double* w, double* b_S);

// Add the prior's precision s2 P to the lower triangle of the Gram of [Z, X_S] (n = r + n_S), from
// b's column first_new on (the w block only where that is 0: a block copied from an earlier system
// has its prior already). P is block diagonal with a diagonal b block, so the Gram of a subset of
// the columns (as subsystem_least_squares extracts) carries exactly that subset's prior.
inline void add_prior(double* G, int r, int n_S, const TaskPrior& prior, int first_new = 0) {
  const int n = r + n_S;
  if (first_new == 0)
    for (int p = 0; p < r; ++p)
      for (int p2 = 0; p2 <= p; ++p2) G[p * n + p2] += prior.w_precision[p * r + p2];
  for (int q = first_new; q < n_S; ++q) G[(r + q) * n + r + q] += prior.b_precision;
}

// Rows first..last-1 of G's lower triangle (entries 0..q of row q; leading dimension ldg) += the
// Gram of the m rows of A (leading dimension lda). Four rows of A at a time, so that each load and
// store of G carries four multiply-adds (one row at a time, the loop waits on G's memory, not on
// its arithmetic). An entry's terms depend on its two columns alone, in the same order whatever the
// other columns: the Gram of a subset of the columns, built here or extracted from a larger one
// (subsystem_least_squares), is the same, bit for bit.
inline void add_lower_gram_rows(const double* A, int lda, int m, int first, int last, double* G, int ldg) {
  int j = 0;
  for (; j + 4 <= m; j += 4) {
    const double* __restrict a0 = A + static_cast<std::size_t>(j) * lda;
    const double* __restrict a1 = a0 + lda;
    const double* __restrict a2 = a1 + lda;
    const double* __restrict a3 = a2 + lda;
    for (int q = first; q < last; ++q) {
      const double c0 = a0[q], c1 = a1[q], c2 = a2[q], c3 = a3[q];
      double* __restrict g = G + static_cast<std::size_t>(q) * ldg;
#pragma omp simd
      for (int p = 0; p <= q; ++p) g[p] += c0 * a0[p] + c1 * a1[p] + c2 * a2[p] + c3 * a3[p];
    }
  }
  for (; j < m; ++j) {
    const double* __restrict a = A + static_cast<std::size_t>(j) * lda;
    for (int q = first; q < last; ++q) {
      const double c = a[q];
      double* __restrict g = G + static_cast<std::size_t>(q) * ldg;
#pragma omp simd
      for (int p = 0; p <= q; ++p) g[p] += c * a[p];
    }
  }
}

// x[first..last) += (A^T t)[first..last) for the m rows of A (leading dimension lda; float or
// double, summed in double), four rows at a time (four multiply-adds to each load and store of x).
template <typename E>
inline void add_transposed_product(const E* A, std::int64_t lda, int m, int first, int last, const double* t,
                                   double* __restrict x) {
  int j = 0;
  for (; j + 4 <= m; j += 4) {
    const E* __restrict a0 = A + j * lda;
    const E* __restrict a1 = a0 + lda;
    const E* __restrict a2 = a1 + lda;
    const E* __restrict a3 = a2 + lda;
    const double t0 = t[j], t1 = t[j + 1], t2 = t[j + 2], t3 = t[j + 3];
#pragma omp simd
    for (int c = first; c < last; ++c)
      x[c] += t0 * static_cast<double>(a0[c]) + t1 * static_cast<double>(a1[c]) + t2 * static_cast<double>(a2[c]) +
              t3 * static_cast<double>(a3[c]);
  }
  for (; j < m; ++j) {
    const E* __restrict a = A + j * lda;
    const double tj = t[j];
#pragma omp simd
    for (int c = first; c < last; ++c) x[c] += tj * static_cast<double>(a[c]);
  }
}

// Keep the system just built for the support S (n_S columns of b; Gram in G with n = r + n_S
// columns, right-hand side x): the next candidate system, whose first columns are S, copies it.
inline void keep_support_system(TaskWorkspace& ws, const double* G, const double* x, int n_S) {
  const int n = ws.r + n_S;
  if (G != ws.gram_sub.data()) std::copy(G, G + n * n, ws.gram_sub.data());
  std::copy(x, x + n, ws.rhs_sub.data());
  ws.support_system_columns = n_S;
}

// Solve min ||target - [Z, X_S] x||^2 (+ ridge) for x = (w, b_S). The Gram is accumulated as a sum
// of outer products of the rows of [Z, X_S] (contiguous, vectorisable loops; dot products of
// length m would spend their time in horizontal reductions). Its Z block, Z^T Z, is computed once
// per task step (ws.ZtZ) and reused. Only the lower triangle is formed: that is what the Cholesky
// reads. With n_known > 0, the first n_known columns of S are the support whose system
// keep_support_system kept (same target): their rows of the Gram and right-hand side are copied
// from it, and only the other columns' are computed from X (the same numbers: an entry depends on
// its two columns alone).
// With solve false, only the Gram (ws.gram) and right-hand side (ws.rhs_saved) are formed: the
// evidence search reads them and solves only the subsystem it picks.
template <typename T>
inline void joint_least_squares(const T* X, int m, int d, TaskWorkspace& ws, const double* target,
                                const int* S, int n_S, double ridge, double* w, double* b_S,
                                const TaskPrior* prior = nullptr, bool solve = true, int n_known = 0) {
  const int r = ws.r, n = r + n_S;
  if (n == 0) return;
  double* __restrict G = ws.gram.data();
  double* __restrict x = ws.rhs.data();
  std::fill(G, G + n * n, 0.0);
  std::fill(x, x + n, 0.0);
  if (n_known > 0) {
    const int nk = r + n_known;
    for (int a = 0; a < nk; ++a) {
      std::copy(ws.gram_sub.data() + a * nk, ws.gram_sub.data() + a * nk + a + 1, G + a * n);
      x[a] = ws.rhs_sub[static_cast<std::size_t>(a)];
    }
  } else {
    for (int p = 0; p < r; ++p)
      for (int p2 = 0; p2 <= p; ++p2) G[p * n + p2] = ws.ZtZ[static_cast<std::size_t>(p) * r + p2];
  }
  // X_S gathered once beside X U in ws.Z's rows: then only the rows of G and entries of x not
  // copied above, from the rows of [X U, X_S].
  const int ld = ws.cols;
  double* __restrict A = ws.Z.data();
  for (int j = 0; j < m; ++j) {
    const T* row = X + static_cast<std::int64_t>(j) * d;
    for (int q = 0; q < n_S; ++q) A[j * ld + r + q] = static_cast<double>(row[S[q]]);
  }
  const int first_new = n_known > 0 ? r + n_known : r;
  add_transposed_product(A, ld, m, n_known > 0 ? first_new : 0, n, target, x);
  add_lower_gram_rows(A, ld, m, first_new, n, G, n);
  if (prior) add_prior(G, r, n_S, *prior, n_known);
  std::copy(x, x + n, ws.rhs_saved.data());  // kept with G for subsystem_least_squares
  if (solve) solve_system(G, x, n, ridge, ws, w, b_S);
}

// Solve the ridged system G x = rhs (G: n x n, lower triangle) and split x into (w, b_S).
inline void solve_system(const double* G, double* x, int n, double ridge, TaskWorkspace& ws, double* w, double* b_S) {
  const int r = ws.r;
  ws.last_n = n;
  ws.last_factored = detail::ridge_cholesky(G, n, ridge, ws.chol.data());
  if (ws.last_factored) {
    detail::cholesky_solve(ws.chol.data(), n, x);
  } else {
    std::fill(x, x + n, 0.0);  // every column is zero: nothing to fit
  }
  std::copy(x, x + r, w);
  std::copy(x + r, x + n, b_S);
}

// The least squares on [Z, X_S] for S a subset of the candidates C of the last
// joint_least_squares call (S = C[P]): its Gram and right-hand side are sub-blocks of that call's,
// so nothing is recomputed from X.
inline void subsystem_least_squares(TaskWorkspace& ws, int n_C, const int* P, int n_S, double ridge, double* w,
                                    double* b_S) {
  const int r = ws.r, n = r + n_S, nC = r + n_C;
  const double* Gc = ws.gram.data();
  double* G = ws.gram_sub.data();
  double* x = ws.rhs.data();
  auto source = [&](int a) { return a < r ? a : r + P[a - r]; };
  for (int a = 0; a < n; ++a) {
    const int ia = source(a);
    for (int b = 0; b <= a; ++b) {
      const int ib = source(b);
      G[a * n + b] = ia >= ib ? Gc[ia * nC + ib] : Gc[ib * nC + ia];
    }
    x[a] = ws.rhs_saved[static_cast<std::size_t>(ia)];
  }
  keep_support_system(ws, G, x, n_S);
  solve_system(G, x, n, ridge, ws, w, b_S);
}

// resid = y - Z w - X_S b_S.
template <typename T, typename Y>
inline void residual(const T* X, const Y* y, int m, int d, const TaskWorkspace& ws, const double* w,
                     const int* S, const double* b_S, int n_S, double* __restrict resid) {
  const int r = ws.r;
  for (int j = 0; j < m; ++j) {
    double s = static_cast<double>(y[j]);
    const double* z = ws.Z.data() + static_cast<std::size_t>(j) * ws.cols;
    for (int p = 0; p < r; ++p) s -= z[p] * w[p];
    const T* row = X + static_cast<std::int64_t>(j) * d;
    for (int q = 0; q < n_S; ++q) s -= static_cast<double>(row[S[q]]) * b_S[q];
    resid[j] = s;
  }
}

// corr = X^T resid.
template <typename T>
inline void correlation(const T* X, int m, int d, const double* resid, double* corr) {
  std::fill(corr, corr + d, 0.0);
  add_transposed_product(X, d, m, 0, d, resid, corr);
}

}  // namespace task_detail

}  // namespace lrsmeta::cpu
