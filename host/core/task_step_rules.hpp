// What one task's step is given and returns, and the rules of the step that the CPU loop
// (cpu/task_step.hpp) and the CUDA kernel (kernels/task_step.cu) share: the settings of a fit's
// options, the prior as a task sees it, its posterior, and the candidate caps.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/evidence_search.hpp"
#include "core/small_dense.hpp"
#include "lrsmeta/lrsmeta.hpp"

namespace lrsmeta::core {

// The empirical-Bayes prior of docs/design.md section 6 as one task step sees it (all fixed during the
// step): theta_i = beta + U w_i + b_i, w_i ~ N(0, Sigma), each non-zero of b_i ~ N(0, tau2), noise
// variance s2. The task's system becomes (A^T A + s2 P) x = A^T (y - X beta), A = [X U, X_S],
// P = blockdiag(Sigma^-1, I / tau2).
struct TaskPrior {
  const double* beta = nullptr;          // d: the population model
  const double* w_precision = nullptr;   // r x r, row-major: s2 Sigma^-1
  const double* w_covariance = nullptr;  // r x r, row-major: Sigma (the posterior of a task with no rows)
  double b_precision = 0.0;              // s2 / tau2, on each entry of b_S
  double noise_variance = 0.0;           // s2
  // A non-zero of b is kept only where its posterior mean exceeds this many posterior variances
  // (b_q^2 > c Var(b_q)): the support of a task too small to identify it is pruned (0: never).
  double support_threshold = 0.0;
  // The prior over supports (PriorState::inclusion_probability pi): log pi and log(1 - pi), both 0
  // for none. A support S of d features has log prior |S| log pi + (d - |S|) log(1 - pi).
  double log_inclusion = 0.0, log_exclusion = 0.0;
  // log of that prior's mass on supports of at most k features (detail::support_prior_log_mass):
  // with k an upper bound the prior is renormalised over them, which makes a larger k cost.
  double log_support_mass = 0.0;
  // Each non-zero of b is returned times its posterior inclusion probability among the supports the
  // evidence search enumerated (a task's prediction averaged over its supports, as far as the k
  // non-zeros it stores allow); false: the posterior mode given the chosen support.
  bool average_supports = false;
};

// What the task step returns of the posterior, for the prior's hyperparameters and the U step.
struct TaskPosterior {
  double* V = nullptr;           // r x r, row-major: posterior covariance of w_i, s2 [(A^T A + s2 P)^-1]_ww
  double effective_params = 0;   // tr((A^T A + s2 P)^-1 A^T A): the fit's degrees of freedom
  double effective_params_b = 0; // the part of that trace on b's block
  // log p(y_i | U, beta, Sigma, s2, tau2, S_i): the task's marginal likelihood with w_i and b_S
  // integrated out, its support S_i as chosen (0 for a task with no rows).
  double log_evidence = 0;
  // sum over the support of E[b_q^2] = b_q^2 + Var(b_q | y_i), and the support's size: the sums
  // of tau2's EM update.
  double b_square_sum = 0;
  int b_count = 0;
};

struct TaskStepSettings {
  Variant variant = Variant::pursuit;
  int k = 0;               // sparsity in effect (0 during warm start)
  int inner_iterations = 3;
  double task_ridge = 1e-10;
  double step_size = 0.5;  // iht/htp: eta = step_size / m
  const TaskPrior* prior = nullptr;  // null: the paper's task step (no prior)
  // Pursuit under the prior: score every support among the candidates that the enumeration budget
  // allows, whatever the task's rows (else only for tasks with few rows per unknown).
  bool enumerate_supports = false;
};

// eta * m_i: the user's value, or the variant's default (iht 0.5: the paper's step, which at
// 1.0 oscillates when m_i < d; htp 1.0, which converges exactly where 0.5 stalls).
inline double effective_step_size(const Options& o) {
  if (o.step_size > 0) return o.step_size;
  return o.variant == Variant::iht ? 0.5 : 1.0;
}

// The task-step settings of a fit's options with sparsity k_in_effect (capped at the model's k).
inline TaskStepSettings task_step_settings(const Options& o, int k_in_effect) {
  TaskStepSettings s;
  s.variant = o.variant;
  s.k = std::min(k_in_effect, o.sparsity);
  s.inner_iterations = o.inner_iterations;
  s.task_ridge = o.task_ridge;
  s.step_size = effective_step_size(o);
  return s;
}

// Largest number of columns a joint least-squares system can have: r + candidates (pursuit's 3k,
// or under the prior as many as the evidence search weighs).
inline int max_joint_columns(int r, int k, int d) { return r + std::max(std::min(d, 3 * k), detail::evidence_candidate_capacity(d, k)); }

// Pursuit's candidate count: the current support plus up to 2k new entries, capped so that
// [X U, X_cand] keeps more rows than columns where the task allows it (at least k + 1 so the
// support can still move when the task is tiny; the ridge keeps that system well-posed).
LRSMETA_HD inline int pursuit_candidate_cap(int n_support, int k, int m, int r, int d) {
  const int overdetermined = m - r > k + 1 ? m - r : k + 1;
  int cap = n_support + 2 * k;
  if (overdetermined < cap) cap = overdetermined;
  return d < cap ? d : cap;
}

// Whether pursuit under the prior searches a task's support again from the empty one: the task has
// a support and its residual sum of squares is implausible under the noise variance s2 (beyond
// m s2 by six standard deviations of a chi-square with m degrees of freedom).
LRSMETA_HD inline bool restart_from_empty_support(const TaskStepSettings& settings, int m, double sse, const std::int32_t* b_index, int k_slots) {
  if (settings.variant != Variant::pursuit || settings.k <= 0 || !settings.prior || !(settings.prior->noise_variance > 0)) return false;
  bool has_support = false;
  for (int s = 0; s < k_slots; ++s) has_support = has_support || b_index[s] >= 0;
  const double expected = static_cast<double>(m);
  return has_support && sse > settings.prior->noise_variance * (expected + 6.0 * sqrt(2.0 * expected));
}

// Whether the step under the prior picks pursuit's support by the marginal likelihood (the prior
// in effect, with b's variance and the noise variance positive).
LRSMETA_HD inline bool chooses_support_by_evidence(bool has_prior, double b_precision, double noise_variance) {
  return has_prior && b_precision > 0 && noise_variance > 0;
}

// Pursuit's candidates to weigh (the current support of n_S and the largest |X^T residual| outside
// it): by the evidence, as many as the search weighs, and whether it enumerates their supports
// (tasks too small to identify their support, or every_support), within the workspace's
// max_candidates; otherwise pursuit_candidate_cap.
LRSMETA_HD inline int pursuit_candidates(bool by_evidence, int n_S, int k, int m, int r, int d, bool every_support, int max_candidates,
                                         bool* enumerate) {
  *enumerate = false;
  if (!by_evidence) return pursuit_candidate_cap(n_S, k, m, r, d);
  const int wanted = detail::evidence_candidates(m, d, r, k, enumerate, every_support);
  return wanted < max_candidates ? wanted : max_candidates;
}

// htp's and iht's new support: the k largest |b + eta X^T residual| (b_S on the support S, 0 off
// it), into S (overwritten); dense (d) keeps those values, which iht takes as b.
LRSMETA_HD inline int gradient_step_support(const double* corr, double eta, int d, int k, int* S, const double* b_S, int n_S,
                                            double* dense) {
  for (int a = 0; a < d; ++a) dense[a] = eta * corr[a];
  for (int q = 0; q < n_S; ++q) dense[S[q]] += b_S[q];
  return detail::top_k_abs(dense, d, k, static_cast<const int*>(nullptr), 0, S);
}

// The support threshold under the prior: the non-zeros q of b_S kept, b_q^2 > c s2 [K^-1]_qq, K the
// last joint system of r + n_S columns, factored in chol. Their positions go to kept; returns their
// count. e: r + n_S scratch.
LRSMETA_HD inline int kept_by_support_threshold(const double* chol, int r, int n_S, const double* b_S, double noise_variance,
                                                double threshold, double* e, int* kept) {
  const int n = r + n_S;
  int n_kept = 0;
  for (int q = 0; q < n_S; ++q) {
    // [K^-1]_qq = ||column q of L^-1||^2 (K = L L^T): a forward substitution from row r + q.
    const int c = r + q;
    detail::inverse_factor_column(chol, n, c, e);
    double inverse_qq = 0.0;
    for (int j = c; j < n; ++j) inverse_qq += e[j] * e[j];
    const double variance = noise_variance * inverse_qq;
    if (b_S[q] * b_S[q] > threshold * variance) kept[n_kept++] = q;
  }
  return n_kept;
}

// Pursuit's picks (positions among the candidates C) in the canonical order, by feature: the same
// support gives the same fit, bit for bit.
LRSMETA_HD inline void order_picks_by_feature(int* P, int n, const int* C) {
  for (int x = 1; x < n; ++x) {
    const int key = P[x];
    int y = x - 1;
    while (y >= 0 && C[P[y]] > C[key]) {
      P[y + 1] = P[y];
      --y;
    }
    P[y + 1] = key;
  }
}

// Whether two short index lists hold the same set (a support met again: the step has reached its
// fixed point).
LRSMETA_HD inline bool same_set(const int* a, int na, const int* b, int nb) {
  if (na != nb) return false;
  for (int i = 0; i < na; ++i) {
    bool found = false;
    for (int j = 0; j < nb && !found; ++j) found = a[i] == b[j];
    if (!found) return false;
  }
  return true;
}

// A short index list in ascending order (a support's canonical column order: the same support
// gives the same fit, bit for bit). Insertion sort: at most a few dozen entries.
LRSMETA_HD inline void sort_ascending(int* v, int n) {
  for (int i = 1; i < n; ++i) {
    const int key = v[i];
    int j = i - 1;
    while (j >= 0 && v[j] > key) {
      v[j + 1] = v[j];
      --j;
    }
    v[j + 1] = key;
  }
}

}  // namespace lrsmeta::core
