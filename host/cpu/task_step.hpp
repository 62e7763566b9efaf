// One task's (w, b) update with U fixed: the three variants of docs/design.md section 2.
// Works in double whatever the data precision; allocation-free (all scratch in TaskWorkspace,
// sized once per thread).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "core/small_dense.hpp"
#include "core/task_posterior.hpp"
#include "core/task_step_rules.hpp"
#include "cpu/task_workspace.hpp"
#include "lrsmeta/lrsmeta.hpp"

namespace lrsmeta::cpu {

// Updates (w, b) of one task in place and returns its sum of squared residuals.
// X: m x d row-major; U_data: U (d x r, row-major) in the data's precision T; w: r; b_index/b_value: k_slots slots (index -1 =
// unused). settings.k <= k_slots is the sparsity in effect.
namespace task_detail {

// The last system this workspace solved (core/task_posterior.hpp reads its factor).
inline core::LastSystem last_system(const TaskWorkspace& ws) { return {ws.chol.data(), ws.last_n, ws.last_factored, ws.r}; }

// The posterior statistics of the task's final fit (core/task_posterior.hpp, as the kernel's).
inline void posterior_statistics(TaskWorkspace& ws, const TaskPrior& prior, int m, int d, double sse, const double* v,
                                 const double* b_value, const std::int32_t* b_index, int k_slots, TaskPosterior& out) {
  const core::LastSystem last = last_system(ws);
  core::posterior_of_last_system(last, prior, ws.inverse.data(), out);
  core::evidence_and_b_moments(last, ws.inverse.data(), prior, m, d, sse, v, b_value, b_index, k_slots, out);
}

// Drop the non-zeros of b whose posterior mean is within sqrt(c) posterior standard deviations of 0
// (b_q^2 <= c s2 [K^-1]_qq, K the last system, factored in ws.chol), then refit (w, b) on what is
// left from the last joint system's Gram: nothing is recomputed from X.
inline void prune_support(TaskWorkspace& ws, const TaskPrior& prior, int n_joint, int* S, double* bS, int& n_S,
                          double ridge, double* w) {
  if (!ws.last_factored) return;
  int* kept = ws.previous.data();
  const int n_kept =
      core::kept_by_support_threshold(ws.chol.data(), ws.r, n_S, bS, prior.noise_variance, prior.support_threshold, ws.inverse.data(), kept);
  if (n_kept == n_S) return;
  int* P = ws.picked.data();
  for (int q = 0; q < n_kept; ++q) {
    P[q] = P[kept[q]];
    S[q] = S[kept[q]];
  }
  n_S = n_kept;
  subsystem_least_squares(ws, n_joint, P, n_S, ridge, w, bS);
}

// The task step proper; y is the data's targets (no prior) or y - X beta in double (prior).
template <typename T, typename Y>
double task_step_on(const T* X, const Y* y, int m, int d, const T* U_data, int r, double* w,
                    std::int32_t* b_index, double* b_value, int k_slots, const TaskStepSettings& settings,
                    TaskWorkspace& ws) {
  const int k = settings.k;
  const TaskPrior* prior = settings.prior;
  ws.last_n = 0;
  ws.last_factored = false;
  ws.support_system_columns = -1;
  ws.n_inclusion = 0;
  // Z = X U (into the first r entries of ws.Z's rows) by one small GEMM: the only full pass over X
  // besides X^T resid.
  // In the data's precision (U_data is U in that precision), then widened to double.
  if (r > 0) {
    if constexpr (std::is_same_v<T, double>) {
      linalg::gemm(false, false, m, r, d, 1.0, X, d, U_data, r, 0.0, ws.Z.data(), ws.cols);
    } else {
      linalg::gemm_nn(m, r, d, X, U_data, ws.Z_data.data());
      for (int j = 0; j < m; ++j)
        for (int p = 0; p < r; ++p)
          ws.Z[static_cast<std::size_t>(j) * ws.cols + p] = static_cast<double>(ws.Z_data[static_cast<std::size_t>(j) * r + p]);
    }
  }
  std::fill(ws.ZtZ.begin(), ws.ZtZ.end(), 0.0);
  task_detail::add_lower_gram_rows(ws.Z.data(), ws.cols, m, 0, r, ws.ZtZ.data(), r);  // Z^T Z's lower triangle
  // Current support (empty during warm start).
  int* S = ws.support.data();
  double* bS = ws.support_values.data();
  int n_S = 0;
  if (k > 0)
    for (int s = 0; s < k_slots; ++s)
      if (b_index[s] >= 0 && b_index[s] < d) {
        S[n_S] = b_index[s];
        bS[n_S] = b_value[s];
        ++n_S;
      }
  n_S = std::min(n_S, k);

  double* resid = ws.resid.data();
  double* joint_target = ws.joint_target.data();
  bool residual_is_final = false;
  double* corr = ws.corr.data();
  int n_joint = 0;  // htp, pursuit: columns of the last joint system; S[q] is its column ws.picked[q]
  const double eta = settings.step_size / m;
  const double ridge = settings.task_ridge;

  // y - X_S b_S, the target of the w-only fits.
  auto y_minus_sparse = [&](double* out) {
    for (int j = 0; j < m; ++j) {
      double s = static_cast<double>(y[j]);
      const T* x = X + static_cast<std::int64_t>(j) * d;
      for (int q = 0; q < n_S; ++q) s -= static_cast<double>(x[S[q]]) * bS[q];
      out[j] = s;
    }
  };

  if (k == 0 || settings.variant == Variant::iht) {
    // w-only start; for iht the w fit stays w-only throughout.
    y_minus_sparse(resid);
    joint_least_squares(X, m, d, ws, resid, S, 0, ridge, w, bS, prior);
  }

  if (k > 0) {
    for (int it = 0; it < settings.inner_iterations; ++it) {
      if (settings.variant == Variant::iht) {
        if (it > 0) {
          y_minus_sparse(resid);
          joint_least_squares(X, m, d, ws, resid, S, 0, ridge, w, bS, prior);
        }
        residual(X, y, m, d, ws, w, S, bS, n_S, resid);
        correlation(X, m, d, resid, corr);
        const double* u = ws.dense.data();
        n_S = core::gradient_step_support(corr, eta, d, k, S, bS, n_S, ws.dense.data());
        for (int q = 0; q < n_S; ++q) bS[q] = u[S[q]];
        continue;
      }
      // htp and pursuit refit (w, b_S) jointly, to y (in double: joint_target); on the first pass,
      // refit the incoming support.
      if (it == 0) {
        for (int j = 0; j < m; ++j) joint_target[j] = static_cast<double>(y[j]);
        joint_least_squares(X, m, d, ws, joint_target, S, n_S, ridge, w, bS, prior);
        if (settings.variant == Variant::pursuit) keep_support_system(ws, ws.gram.data(), ws.rhs_saved.data(), n_S);
      }
      residual(X, y, m, d, ws, w, S, bS, n_S, resid);
      correlation(X, m, d, resid, corr);
      int* previous = ws.previous.data();
      const int n_previous = n_S;
      std::copy(S, S + n_S, previous);
      if (settings.variant == Variant::htp) {
        n_S = core::gradient_step_support(corr, eta, d, k, S, bS, n_S, ws.dense.data());
        core::sort_ascending(S, n_S);  // a canonical column order, as the kernel's
        joint_least_squares(X, m, d, ws, joint_target, S, n_S, ridge, w, bS, prior);
        for (int q = 0; q < n_S; ++q) ws.picked[static_cast<std::size_t>(q)] = q;
        n_joint = n_S;
      } else {  // pursuit
        int* C = ws.candidates.data();
        std::copy(S, S + n_S, C);
        // Under the prior the system stays well-posed however few rows the task has, so the
        // candidates need not be capped by m.
        const bool by_evidence = core::chooses_support_by_evidence(prior != nullptr, prior ? prior->b_precision : 0.0,
                                                                   prior ? prior->noise_variance : 0.0);
        bool enumerate = false;
        const int cap = core::pursuit_candidates(by_evidence, n_S, k, m, r, d, settings.enumerate_supports, ws.cols - r, &enumerate);
        const int n_incoming = n_S;  // C starts with the incoming support
        // The new candidates: the largest |corr| outside S (S marked below every magnitude).
        double* magnitude = ws.dense.data();
#pragma omp simd
        for (int a = 0; a < d; ++a) magnitude[a] = std::fabs(corr[a]);
        for (int q = 0; q < n_S; ++q) magnitude[S[q]] = -1.0;
        const int n_C = n_S + detail::top_k_of_magnitudes(magnitude, d, cap - n_S, C + n_S);
        double* bC = ws.candidate_values.data();
        std::copy(w, w + r, ws.w_previous.data());  // (w, b_S) fit the incoming support S
        // C starts with S, whose system was kept (it = 0's refit, or the last subsystem solve).
        const int n_known = ws.support_system_columns == n_S ? n_S : 0;
        joint_least_squares(X, m, d, ws, joint_target, C, n_C, ridge, w, bC, prior, !by_evidence, n_known);
        int* P = ws.picked.data();
        n_S = -1;
        if (by_evidence) {
          const double entry_cost = core::support_entry_cost(*prior);
          n_S = detail::evidence_subset(ws.gram.data(), ws.rhs_saved.data(), r, n_C, k, entry_cost,
                                        prior->noise_variance, prior->b_precision, enumerate, n_incoming, ws.evidence_scratch.data(),
                                        ws.evidence_picks.data(), prior->average_supports ? ws.inclusion.data() : nullptr);
          if (n_S >= 0) std::copy(ws.evidence_picks.begin(), ws.evidence_picks.begin() + n_S, P);
          ws.n_inclusion = 0;
          if (prior->average_supports)
            for (int q = 0; q < n_S; ++q) {
              ws.inclusion_features[static_cast<std::size_t>(q)] = C[P[q]];
              ws.inclusion_chosen[static_cast<std::size_t>(q)] = ws.inclusion[static_cast<std::size_t>(P[q])];
              ++ws.n_inclusion;
            }
        }
        if (n_S < 0) {  // the w block could not be factored: rank the candidates' fitted values
          if (by_evidence) solve_system(ws.gram.data(), ws.rhs.data(), r + n_C, ridge, ws, w, bC);
          n_S = detail::top_k_abs(bC, n_C, k, static_cast<const int*>(nullptr), 0, P);
        }
        core::order_picks_by_feature(P, n_S, C);
        for (int q = 0; q < n_S; ++q) S[q] = C[P[q]];
        bool unchanged = !prior && n_S == n_previous;
        for (int q = 0; unchanged && q < n_S; ++q) unchanged = S[q] == previous[q];
        if (unchanged) {
          // The support the iteration started from, in the same order: its subsystem is the one
          // (w, b_S) were fitted on (the same Gram entries, summed in the same order), so that fit
          // is this one, bit for bit. (Under the prior the factor of the last solve is read
          // afterwards, for the posterior: there it is solved again.)
          std::copy(ws.w_previous.begin(), ws.w_previous.begin() + r, w);
          residual_is_final = true;  // resid is this fit's, from the start of the iteration
          break;
        }
        subsystem_least_squares(ws, n_C, P, n_S, ridge, w, bS);
        n_joint = n_C;
      }
      // The same support again means the same fit again: every later iteration would repeat this
      // one exactly, so stop (iht, whose values move by gradient steps, has no such fixed point).
      if (core::same_set(S, n_S, previous, n_previous)) break;
    }
    if (prior && prior->support_threshold > 0 && n_joint > 0 && n_S > 0) prune_support(ws, *prior, n_joint, S, bS, n_S, ridge, w);
    if (settings.variant == Variant::iht) {  // w optimal for the final support
      y_minus_sparse(resid);
      joint_least_squares(X, m, d, ws, resid, S, 0, ridge, w, bS, prior);
    }
  }

  if (!residual_is_final) residual(X, y, m, d, ws, w, S, bS, n_S, resid);
  ws.corr_is_of_final_residual = residual_is_final;  // corr was computed from that residual
  double sse = 0;
  for (int j = 0; j < m; ++j) sse += resid[j] * resid[j];

  detail::sort_by_index(S, bS, n_S);
  for (int s = 0; s < k_slots; ++s) {
    b_index[s] = s < n_S ? static_cast<std::int32_t>(S[s]) : -1;
    b_value[s] = s < n_S ? bS[s] : 0.0;
  }
  return sse;
}

}  // namespace task_detail

// Updates (w, b) of one task in place and returns its sum of squared residuals.
// X: m x d row-major; U_data: U (d x r, row-major) in the data's precision T; w: r; b_index/b_value: k_slots slots (index -1 =
// unused). settings.k <= k_slots is the sparsity in effect. With settings.prior, the step solves the
// posterior mode of the empirical-Bayes model and, where `posterior` is given, returns V_i and the
// effective number of parameters; without it, the paper's step, unchanged.
template <typename T>
double task_step(const T* X, const T* y, int m, int d, const T* U_data, int r, double* w,
                 std::int32_t* b_index, double* b_value, int k_slots, const TaskStepSettings& settings,
                 TaskWorkspace& ws, TaskPosterior* posterior = nullptr) {
  if (m == 0) {
    std::fill(w, w + r, 0.0);
    std::fill(b_index, b_index + k_slots, -1);
    std::fill(b_value, b_value + k_slots, 0.0);
    if (settings.prior && posterior) {
      ws.last_n = 0;
      task_detail::posterior_statistics(ws, *settings.prior, 0, d, 0.0, w, b_value, b_index, k_slots, *posterior);
    }
    return 0.0;
  }
  if (!settings.prior) return task_detail::task_step_on(X, y, m, d, U_data, r, w, b_index, b_value, k_slots, settings, ws);
  double* target = ws.target.data();
  const double* beta = settings.prior->beta;
  for (int j = 0; j < m; ++j) {
    const T* row = X + static_cast<std::int64_t>(j) * d;
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int a = 0; a < d; ++a) s += static_cast<double>(row[a]) * beta[a];
    target[j] = static_cast<double>(y[j]) - s;
  }
  double sse = task_detail::task_step_on(X, target, m, d, U_data, r, w, b_index, b_value, k_slots, settings, ws);
  if (core::restart_from_empty_support(settings, m, sse, b_index, k_slots)) {
    // The support the task came in with was chosen while U, beta and s2 were others, and the search
    // (swaps among the few columns that correlate with the residual) can stay next to it while the
    // task's rows reject it: its residual is far above the noise (measured: tasks with 1000 times
    // the noise, after U had converged). Searched again from the empty support, as in the first
    // iteration with b, but scoring every support among the candidates (the wrong support can also
    // be where greedy inclusion leads); the support kept is the one that fits the rows better.
    if (ws.kept_b_index.size() < static_cast<std::size_t>(k_slots)) {  // more slots than the workspace's k
      ws.kept_b_index.resize(static_cast<std::size_t>(k_slots));
      ws.kept_b_value.resize(static_cast<std::size_t>(k_slots));
    }
    std::copy(w, w + r, ws.kept_w.begin());
    std::copy(b_index, b_index + k_slots, ws.kept_b_index.begin());
    std::copy(b_value, b_value + k_slots, ws.kept_b_value.begin());
    std::fill(b_index, b_index + k_slots, -1);
    std::fill(b_value, b_value + k_slots, 0.0);
    TaskStepSettings every_support = settings;
    every_support.enumerate_supports = true;
    const double fresh = task_detail::task_step_on(X, target, m, d, U_data, r, w, b_index, b_value, k_slots, every_support, ws);
    if (fresh < sse) {
      sse = fresh;
    } else {  // the first search's support again (its step again, so that the workspace is its)
      std::copy(ws.kept_w.begin(), ws.kept_w.begin() + r, w);
      std::copy(ws.kept_b_index.begin(), ws.kept_b_index.begin() + k_slots, b_index);
      std::copy(ws.kept_b_value.begin(), ws.kept_b_value.begin() + k_slots, b_value);
      sse = task_detail::task_step_on(X, target, m, d, U_data, r, w, b_index, b_value, k_slots, settings, ws);
    }
  }
  if (posterior) {
    task_detail::posterior_statistics(ws, *settings.prior, m, d, sse, w, b_value, b_index, k_slots, *posterior);
  }
  if (settings.prior->average_supports)  // after the statistics, which are of the posterior mode
    for (int s = 0; s < k_slots; ++s)
      for (int q = 0; q < ws.n_inclusion; ++q)
        if (b_index[s] == ws.inclusion_features[static_cast<std::size_t>(q)]) b_value[s] *= ws.inclusion_chosen[static_cast<std::size_t>(q)];
  return sse;
}

}  // namespace lrsmeta::cpu
