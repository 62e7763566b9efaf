// One task's posterior statistics under the prior, from the last system its step solved: V_i, the
// effective numbers of parameters, the log marginal likelihood and b's second moments. Shared by
// the CPU loop (cpu/task_step.hpp) and the CUDA kernel (kernels/task_step.cu): `__host__
// __device__` under nvcc, no allocation, raw pointers.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/small_dense.hpp"
#include "core/task_step_rules.hpp"

namespace lrsmeta::core {

// The last system a task step solved: K = A^T A + s2 P (A = [Z, X_S], n = r + |S| unknowns, w's
// block first), its Cholesky factor as detail::ridge_cholesky leaves it (n x n, stride n), and
// whether that factorisation succeeded.
struct LastSystem {
  const double* chol = nullptr;
  int n = 0;
  bool factored = false;
  int r = 0;
};

// The per-task numbers the backends sum (TaskStepTotals), in this order.
constexpr int kPosteriorStats = 5;
LRSMETA_HD inline void store_posterior_stats(const TaskPosterior& p, double* stats) {
  stats[0] = p.effective_params;
  stats[1] = p.effective_params_b;
  stats[2] = p.log_evidence;
  stats[3] = p.b_square_sum;
  stats[4] = static_cast<double>(p.b_count);
}

// V = s2 [K^-1]_ww and tr(K^-1 A^T A) = n - tr(K^-1 s2 P) (all, and b's block). K^-1 = L^-T L^-1,
// so [K^-1]_pq = sum over j >= max(p, q) of (L^-1)_jp (L^-1)_jq: the w block needs the first r
// columns of L^-1 and each diagonal entry of b's block its own column, about n^3 / 6 flop in all
// where solving for the whole of K^-1 took 2 n^3. `inverse` (n x n) holds the columns (column c
// in row c) and is left with b's diagonal entries [K^-1]_qq at (q, q), for
// evidence_and_b_moments; its other entries are scratch. Nothing fitted (no rows, or K not
// factored): the posterior is the prior. The relative task ridge on K is ignored.
LRSMETA_HD inline void posterior_of_last_system(const LastSystem& last, const TaskPrior& prior, double* inverse, TaskPosterior& out) {
  const int r = last.r, n = last.n;
  if (!last.factored || n == 0) {
    if (out.V)
      for (int e = 0; e < r * r; ++e) out.V[e] = prior.w_covariance[e];
    out.effective_params = out.effective_params_b = 0.0;
    return;
  }
  for (int c = 0; c < n; ++c) detail::inverse_factor_column(last.chol, n, c, inverse + c * n);
  double trace_prior_w = 0.0, trace_prior_b = 0.0;
  for (int p = 0; p < r; ++p)
    for (int q = 0; q <= p; ++q) {
      const double* lp = inverse + p * n;
      const double* lq = inverse + q * n;
      double entry = 0.0;  // [K^-1]_pq, q <= p
      for (int j = p; j < n; ++j) entry += lp[j] * lq[j];
      trace_prior_w += entry * prior.w_precision[q * r + p];
      if (q != p) trace_prior_w += entry * prior.w_precision[p * r + q];
      if (out.V) out.V[p * r + q] = out.V[q * r + p] = prior.noise_variance * entry;
    }
  for (int q = r; q < n; ++q) {
    const double* lq = inverse + q * n;
    double entry = 0.0;
    for (int j = q; j < n; ++j) entry += lq[j] * lq[j];
    inverse[q * n + q] = entry;  // column q is not read again
    trace_prior_b += entry * prior.b_precision;
  }
  out.effective_params_b = static_cast<double>(n - r) - trace_prior_b;
  out.effective_params = static_cast<double>(r) - trace_prior_w + out.effective_params_b;
}

// The task's log marginal likelihood and b's posterior second moments, from the last system (the
// final support's) and the fit it gave, with K^-1 from posterior_of_last_system. Where
// P = blockdiag(I, I / tau2) (w whitened: Z = X U L), the covariance of y_i - X_i beta is
// C = s2 I + A P^-1 A^T, and by the determinant lemma and Woodbury's identity
//   log det C = (m - n) log s2 + log det K + |S| log tau2,
//   y^T C^-1 y = (||y - A x||^2 + s2 x^T P x) / s2 = sse / s2 + ||v||^2 + ||b_S||^2 / tau2,
// x = (v, b_S) the posterior mode. b_value/b_index: the task's slots, sorted by feature as the
// system's b columns are. b's outside the last system (iht's gradient steps) are taken as fixed.
LRSMETA_HD inline void evidence_and_b_moments(const LastSystem& last, const double* inverse, const TaskPrior& prior, int m, int d,
                                              double sse, const double* v, const double* b_value, const std::int32_t* b_index,
                                              int k_slots, TaskPosterior& out) {
  out.log_evidence = 0.0;
  out.b_square_sum = 0.0;
  out.b_count = 0;
  const int r = last.r, n = last.factored ? last.n : 0;
  const double s2 = prior.noise_variance;
  if (m == 0 || !(s2 > 0)) return;
  const int n_b = n > r ? n - r : 0;  // b's integrated out
  const double tau2 = prior.b_precision > 0 ? s2 / prior.b_precision : 0.0;
  if (n_b > 0 && !(tau2 > 0)) return;  // no b prior: no evidence
  double log_det_K = 0.0;
  for (int c = 0; c < n; ++c) log_det_K += 2.0 * log(last.chol[c * n + c]);
  // Without a factored system (Sigma = 0 and no support) K is the w block s2 I, C = s2 I.
  if (n == 0) log_det_K = r * log(s2);
  const int n_unknowns = n == 0 ? r : n;
  double quad = sse / s2;
  for (int p = 0; p < r; ++p) quad += v[p] * v[p];
  int slot_q = 0;
  for (int s = 0; s < k_slots; ++s) {
    if (b_index[s] < 0) continue;
    const double b = b_value[s];
    if (n_b > 0) {
      quad += b * b / tau2;
      out.b_square_sum += b * b + s2 * inverse[(r + slot_q) * n + r + slot_q];
      ++out.b_count;
    }
    ++slot_q;
  }
  constexpr double kLog2Pi = 1.8378770664093453;
  const double log_support_prior = slot_q * prior.log_inclusion + (d - slot_q) * prior.log_exclusion - prior.log_support_mass;
  const double log_det_b_prior = n_b > 0 ? n_b * log(tau2) : 0.0;
  out.log_evidence = -0.5 * (m * kLog2Pi + (m - n_unknowns) * log(s2) + log_det_K + log_det_b_prior + quad) + log_support_prior;
}

// What a non-zero of b costs in the evidence search's -log score: log(tau2 / s2) and, with a prior
// over supports, 2 log((1 - pi) / pi).
LRSMETA_HD inline double support_entry_cost(const TaskPrior& prior) {
  return -log(prior.b_precision) + 2.0 * (prior.log_exclusion - prior.log_inclusion);
}

}  // namespace lrsmeta::core
