// The batched task step: one thread block per task, the same maths as host/cpu/task_step.hpp.
// Threads share the passes over the task's rows (X U, the Grams, X^T residual) and, under the prior,
// the enumeration of b's supports; one thread runs the small Cholesky solves and the top-k selection
// (host/core/small_dense.hpp, shared with the CPU).
// Without a GPU the kernels also compile as plain C++ and run on CPU fibers
// (tests/cuda_emulation/kernel_runtime.hpp): alone in tests/test_kernel_emulation.cpp
// (LRSMETA_EMULATE_KERNELS leaves out the launchers), and whole in the emulated CUDA build.
#ifndef LRSMETA_KERNELS_ON_CPU  // else tests/cuda_emulation/kernel_runtime.hpp defines these
#include <cuda_runtime.h>
#define LRSMETA_DYNAMIC_SHARED(name) extern __shared__ __align__(16) unsigned char name[]
#define LRSMETA_LAUNCH(kernel, grid, block, shared_bytes, stream) kernel<<<grid, block, shared_bytes, stream>>>
#endif

#include "core/posterior.hpp"
#include "core/small_dense.hpp"
#include "core/task_posterior.hpp"
#include "core/task_step_rules.hpp"
#include "cuda/cuda_utils.hpp"  // checked calls
#include "kernels/device_kernels.hpp"
#include "kernels/task_step_layout.hpp"

namespace lrsmeta::kernels {
namespace {

template <typename T>
struct Task {
  const TaskStepArgs<T>& a;
  std::int64_t row0;
  int m;
  // Column c of [Z, X_S] at row j.
  __device__ double column(int c, const int* S, int j) const {
    return c < a.r ? a.Z[(row0 + j) * a.r + c] : static_cast<double>(a.X[(row0 + j) * a.d + S[c - a.r]]);
  }
};

// Thread 0: ridged Cholesky solve of the system with lower triangle Gm (n x n) and right-hand side
// x. counts[4] and counts[5] keep the size of the last system and whether it was factored (the
// posterior and the support pruning read its factor).
__device__ void solve_small(const double* Gm, double* x, int n, double ridge, double* chol, int* counts) {
  const bool factored = detail::ridge_cholesky(Gm, n, ridge, chol);
  counts[4] = n;
  counts[5] = factored ? 1 : 0;
  if (factored) {
    detail::cholesky_solve(chol, n, x);
  } else {
    for (int i = 0; i < n; ++i) x[i] = 0.0;
  }
}

// Block-wide: least squares of target on [Z, X_S]; writes w (sh.w) and b_S (out), keeps the Gram
// (sh.G) and right-hand side (sh.rhs_saved) for a later subsystem solve.
// With solve false only the Gram and right-hand side are formed (the evidence search reads them).
template <typename T>
__device__ void joint_least_squares(const Task<T>& task, Shared& sh, const double* target, const int* S, int n_S,
                                    double* b_out, bool solve = true) {
  const int r = task.a.r, n = r + n_S;
  if (n == 0) return;
  const int entries = n * (n + 1) / 2;
  for (int e = threadIdx.x; e < entries + n; e += blockDim.x) {
    if (e < entries) {
      int row, col;
      detail::unrank_lower_triangle(e, &row, &col);
      double s = 0;
      for (int j = 0; j < task.m; ++j) s += task.column(row, S, j) * task.column(col, S, j);
      sh.G[row * n + col] = s;
    } else {
      const int c = e - entries;
      double s = 0;
      for (int j = 0; j < task.m; ++j) s += task.column(c, S, j) * target[j];
      sh.x[c] = s;
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    if (task.a.beta) {  // the prior's precision (block diagonal: a subset of columns keeps its own)
      for (int p = 0; p < r; ++p)
        for (int p2 = 0; p2 <= p; ++p2) sh.G[p * n + p2] += task.a.w_precision[p * r + p2];
      for (int q = 0; q < n_S; ++q) sh.G[(r + q) * n + r + q] += task.a.b_precision;
    }
    for (int c = 0; c < n; ++c) sh.rhs_saved[c] = sh.x[c];
    if (solve) {
      solve_small(sh.G, sh.x, n, task.a.task_ridge, sh.chol, sh.counts);
      for (int p = 0; p < r; ++p) sh.w[p] = sh.x[p];
      for (int q = 0; q < n_S; ++q) b_out[q] = sh.x[r + q];
    }
  }
  __syncthreads();
}

// Thread 0: least squares on [Z, X_C[P]] from the candidate system's Gram (n_C candidates).
__device__ void subsystem_least_squares(Shared& sh, int r, int n_C, int n_S, double ridge) {
  const int n = r + n_S, nC = r + n_C;
  for (int a = 0; a < n; ++a) {
    const int ia = a < r ? a : r + sh.P[a - r];
    for (int b = 0; b <= a; ++b) {
      const int ib = b < r ? b : r + sh.P[b - r];
      sh.G_sub[a * n + b] = ia >= ib ? sh.G[ia * nC + ib] : sh.G[ib * nC + ia];
    }
    sh.x[a] = sh.rhs_saved[ia];
  }
  solve_small(sh.G_sub, sh.x, n, ridge, sh.chol, sh.counts);
  for (int p = 0; p < r; ++p) sh.w[p] = sh.x[p];
  for (int q = 0; q < n_S; ++q) sh.bS[q] = sh.x[r + q];
}

// The target of task row j: y, or y - x_j^T beta under the prior.
template <typename T>
__device__ inline double response(const TaskStepArgs<T>& a, std::int64_t row) {
  return a.beta ? a.response[row] : static_cast<double>(a.y[row]);
}

// Thread 0, with the prior: drop the non-zeros of b with b_q^2 <= c s2 [K^-1]_qq (K the last
// system, factored in sh.chol), then refit from the joint system's Gram (n_joint columns; S[q] is
// its column sh.P[q]).
__device__ void prune_support(Shared& sh, int r, int n_joint, double ridge, double s2, double threshold) {
  const int n_S = sh.counts[0], n = r + n_S;
  if (!sh.counts[5] || sh.counts[4] != n) return;
  const int n_kept = core::kept_by_support_threshold(sh.chol, r, n_S, sh.bS, s2, threshold, sh.x, sh.previous);
  if (n_kept == n_S) return;
  for (int q = 0; q < n_kept; ++q) {
    sh.P[q] = sh.P[sh.previous[q]];
    sh.S[q] = sh.S[sh.previous[q]];
  }
  sh.counts[0] = n_kept;
  subsystem_least_squares(sh, r, n_joint, n_kept, ridge);
}

// The prior as core::TaskPrior (core/task_posterior.hpp reads it).
template <typename T>
__device__ core::TaskPrior prior_of(const TaskStepArgs<T>& a) {
  core::TaskPrior p;
  p.beta = a.beta;
  p.w_precision = a.w_precision;
  p.w_covariance = a.w_covariance;
  p.b_precision = a.b_precision;
  p.noise_variance = a.noise_variance;
  p.support_threshold = a.support_threshold;
  p.log_inclusion = a.log_inclusion;
  p.log_exclusion = a.log_exclusion;
  p.log_support_mass = a.log_support_mass;
  return p;
}

// Thread 0, with the prior, after the task's outputs are written: V_i and the posterior statistics
// from the last system solved (counts[4] its size, counts[5] whether it factored), as on the CPU.
template <typename T>
__device__ void posterior(const TaskStepArgs<T>& a, Shared& sh, std::int64_t i, int m, double sse) {
  const core::TaskPrior prior = prior_of(a);
  const core::LastSystem last{sh.chol, sh.counts[4], sh.counts[5] != 0, a.r};
  core::TaskPosterior out;
  out.V = a.V + i * a.r * a.r;
  core::posterior_of_last_system(last, prior, sh.G_sub, out);
  core::evidence_and_b_moments(last, sh.G_sub, prior, m, a.d, sse, a.W + i * a.r, a.B_value + i * a.k_slots,
                               a.B_index + i * a.k_slots, a.k_slots, out);
  if (a.posterior_stats) core::store_posterior_stats(out, a.posterior_stats + i * core::kPosteriorStats);
  if (a.whitening) {  // back from whitened coordinates (core/posterior.hpp); scratch from G on (G,
    // G_sub and chol are contiguous, 3 cols^2 >= r + r^2 + r(r+1)/2 doubles, and done with)
    double* packed = sh.G + a.r + a.r * a.r;
    core::map_back_from_whitened(a.whitening, a.r, a.W + i * a.r, out.V, packed, sh.G);
    for (int p = 0, pq = 0; p < a.r; ++p)
      for (int q = p; q < a.r; ++q, ++pq) out.V[p * a.r + q] = out.V[q * a.r + p] = packed[pq];
  }
}

// Block-wide: resid = y - Z w - X_S b_S (global, per row), then corr = X^T resid (shared).
template <typename T>
__device__ void residual_and_correlation(const Task<T>& task, Shared& sh, int n_S, bool with_correlation) {
  const auto& a = task.a;
  double* resid = a.resid + task.row0;
  for (int j = threadIdx.x; j < task.m; j += blockDim.x) {
    double s = response(a, task.row0 + j);
    for (int p = 0; p < a.r; ++p) s -= a.Z[(task.row0 + j) * a.r + p] * sh.w[p];
    for (int q = 0; q < n_S; ++q) s -= static_cast<double>(a.X[(task.row0 + j) * a.d + sh.S[q]]) * sh.bS[q];
    resid[j] = s;
  }
  __syncthreads();
  if (!with_correlation) return;
  for (int c = threadIdx.x; c < a.d; c += blockDim.x) {
    double s = 0;
    for (int j = 0; j < task.m; ++j) s += static_cast<double>(a.X[(task.row0 + j) * a.d + c]) * resid[j];
    sh.corr[c] = s;
  }
  __syncthreads();
}

// Block-wide, under the prior with enumeration: b's support among the n_C candidates by the marginal
// likelihood, the supports shared out among kEvidenceThreads threads (detail::evidence_subset's
// enumeration, the same choice). counts[9] gets the support's size, its positions go to
// evidence_picks and, with averaging, each candidate's inclusion probability to inclusion.
template <typename T>
__device__ void shared_evidence_search(const TaskStepArgs<T>& a, Shared& sh) {
  const int r = a.r, k = a.k, n_C = sh.counts[1];
  const double* M = sh.evidence + r * r + r + n_C * r;
  const double* h = M + n_C * n_C;
  const double entry_cost = core::support_entry_cost(prior_of(a));
  if (threadIdx.x == 0) {
    sh.counts[9] = detail::evidence_schur(sh.G, sh.rhs_saved, r, n_C, sh.evidence) ? 0 : -1;
    // The largest support that can beat the empty one (detail::evidence_size_limit; without
    // averaging, which sums over every support, and from kEvidenceBoundedSparsity): the threads
    // enumerate no larger ones. The ceiling's factor goes to G_sub and chol, free until the chosen
    // support's solve.
    const double entry = detail::evidence_bound_entry(entry_cost, prior_of(a).b_precision, k, a.average_supports);
    const double ceiling = entry > 0.0 && sh.counts[9] == 0
                               ? detail::evidence_fit_ceiling(M, h, n_C, a.noise_variance, prior_of(a).b_precision, sh.G_sub, sh.chol)
                               : INFINITY;
    sh.counts[10] = detail::evidence_size_limit(entry, ceiling, k);
  }
  __syncthreads();
  const int largest = sh.counts[10];
  const int threads = kEvidenceThreads < static_cast<int>(blockDim.x) ? kEvidenceThreads : static_cast<int>(blockDim.x);
  const int j = static_cast<int>(threadIdx.x);
  if (sh.counts[9] == 0 && j < threads)
    detail::evidence_enumerate_share(M, h, n_C, largest, entry_cost, a.noise_variance, j, threads, j == 0,
                                     sh.share_F + j * k * k, sh.share_v + j * k, sh.share_cols + j * k, sh.share_scores + j,
                                     sh.share_best + j * k, sh.share_sizes + j, sh.share_totals + j,
                                     a.average_supports ? sh.share_sums + j * n_C : nullptr);
  __syncthreads();
  if (threadIdx.x == 0 && sh.counts[9] == 0)
    sh.counts[9] = detail::evidence_merge(threads, k, n_C, sh.share_scores, sh.share_best, sh.share_sizes, sh.share_totals,
                                          sh.share_sums, sh.evidence_picks, a.average_supports ? sh.inclusion : nullptr);
  __syncthreads();
}

// One pass of the task step from the support in the task's output slots (empty during warm
// start): the variant's iterations, the final residual, and (thread 0) the outputs written, sorted
// by feature. Returns the sum of squared residuals, to every thread. every_support: pursuit under
// the prior scores every support the enumeration budget allows, whatever the task's rows.
template <typename T>
__device__ double step_once(const TaskStepArgs<T>& a, const Layout& L, Shared& sh, const Task<T>& task, std::int64_t i,
                            bool every_support) {
  const int r = a.r, d = a.d, k = a.k, m = task.m;
  // Under the prior, pursuit picks the support by the marginal likelihood (as on the CPU).
  const bool by_evidence = core::chooses_support_by_evidence(a.beta != nullptr && L.with_prior, a.b_precision, a.noise_variance);
  double* w_out = a.W + i * r;
  std::int32_t* bi_out = a.B_index + i * a.k_slots;
  double* bv_out = a.B_value + i * a.k_slots;
  // The incoming support (empty during warm start).
  if (threadIdx.x == 0) {
    int n_S = 0;
    if (k > 0)
      for (int s = 0; s < a.k_slots; ++s)
        if (bi_out[s] >= 0 && bi_out[s] < d && n_S < k) {
          sh.S[n_S] = bi_out[s];
          sh.bS[n_S] = bv_out[s];
          ++n_S;
        }
    sh.counts[0] = n_S;
    sh.counts[2] = 0;
    sh.counts[4] = sh.counts[5] = sh.counts[6] = 0;  // last system; columns of the last joint one
    sh.counts[8] = 0;
  }
  __syncthreads();
  double* target = a.target + task.row0;
  const double eta = a.step_size / m;
  auto fill_target = [&](bool minus_sparse) {
    const int n_S = sh.counts[0];
    for (int j = threadIdx.x; j < m; j += blockDim.x) {
      double s = response(a, task.row0 + j);
      if (minus_sparse)
        for (int q = 0; q < n_S; ++q) s -= static_cast<double>(a.X[(task.row0 + j) * d + sh.S[q]]) * sh.bS[q];
      target[j] = s;
    }
    __syncthreads();
  };
  if (k == 0 || a.variant == Variant::iht) {  // w-only start (iht keeps w-only fits throughout)
    fill_target(true);
    joint_least_squares(task, sh, target, sh.S, 0, sh.bS);
  }
  if (k > 0) {
    for (int it = 0; it < a.inner_iterations; ++it) {
      if (a.variant == Variant::iht) {
        if (it > 0) {
          fill_target(true);
          joint_least_squares(task, sh, target, sh.S, 0, sh.bS);
        }
        residual_and_correlation(task, sh, sh.counts[0], true);
        if (threadIdx.x == 0) {
          const int n_S = core::gradient_step_support(sh.corr, eta, d, k, sh.S, sh.bS, sh.counts[0], sh.dense);
          for (int q = 0; q < n_S; ++q) sh.bS[q] = sh.dense[sh.S[q]];
          sh.counts[0] = n_S;
        }
        __syncthreads();
        continue;
      }
      if (it == 0) {
        fill_target(false);
        joint_least_squares(task, sh, target, sh.S, sh.counts[0], sh.bS);
      }
      residual_and_correlation(task, sh, sh.counts[0], true);
      if (threadIdx.x == 0) {
        for (int q = 0; q < sh.counts[0]; ++q) sh.previous[q] = sh.S[q];
        sh.counts[3] = sh.counts[0];
        if (a.variant == Variant::htp) {  // a new support
          const int n_S = core::gradient_step_support(sh.corr, eta, d, k, sh.S, sh.bS, sh.counts[0], sh.dense);
          core::sort_ascending(sh.S, n_S);
          sh.counts[0] = n_S;
        } else {  // pursuit: candidates
          const int n_S = sh.counts[0];
          for (int q = 0; q < n_S; ++q) sh.C[q] = sh.S[q];
          bool enumerate = false;
          const int cap = core::pursuit_candidates(by_evidence, n_S, k, m, r, d, every_support, L.cols - r, &enumerate);
          sh.counts[7] = enumerate ? 1 : 0;
          sh.counts[1] = n_S + detail::top_k_abs(sh.corr, d, cap - n_S, sh.S, n_S, sh.C + n_S);
        }
      }
      __syncthreads();
      // target still holds y (htp and pursuit fit y itself).
      if (a.variant == Variant::htp) {
        joint_least_squares(task, sh, target, sh.S, sh.counts[0], sh.bS);
        if (threadIdx.x == 0) {
          for (int q = 0; q < sh.counts[0]; ++q) sh.P[q] = q;
          sh.counts[6] = sh.counts[0];
        }
      } else {
        joint_least_squares(task, sh, target, sh.C, sh.counts[1], sh.bC, !by_evidence);
        const bool enumerate = by_evidence && sh.counts[7] != 0;
        if (enumerate) shared_evidence_search(a, sh);
        if (threadIdx.x == 0) {
          const int n_C = sh.counts[1];
          int n_S = -1;
          if (by_evidence) {
            // The local search from the incoming support (larger tasks) stays with thread 0.
            n_S = enumerate ? sh.counts[9]
                            : detail::evidence_subset(sh.G, sh.rhs_saved, r, n_C, k, core::support_entry_cost(prior_of(a)),
                                                      a.noise_variance, prior_of(a).b_precision, false, sh.counts[3], sh.evidence,
                                                      sh.evidence_picks, a.average_supports ? sh.inclusion : nullptr);
            for (int q = 0; q < n_S; ++q) sh.P[q] = sh.evidence_picks[q];
            sh.counts[8] = 0;
            if (a.average_supports)
              for (int q = 0; q < n_S; ++q) {
                sh.inclusion_features[q] = sh.C[sh.P[q]];
                sh.inclusion_chosen[q] = sh.inclusion[sh.P[q]];
                ++sh.counts[8];
              }
            if (n_S < 0) {  // the w block could not be factored: rank the candidates' fitted values
              solve_small(sh.G, sh.x, r + n_C, a.task_ridge, sh.chol, sh.counts);
              for (int q = 0; q < n_C; ++q) sh.bC[q] = sh.x[r + q];
            }
          }
          if (n_S < 0) n_S = detail::top_k_abs(sh.bC, n_C, k, static_cast<const int*>(nullptr), 0, sh.P);
          core::order_picks_by_feature(sh.P, n_S, sh.C);
          for (int q = 0; q < n_S; ++q) sh.S[q] = sh.C[sh.P[q]];
          sh.counts[0] = n_S;
          subsystem_least_squares(sh, r, n_C, n_S, a.task_ridge);
          sh.counts[6] = n_C;
        }
        __syncthreads();
      }
      if (threadIdx.x == 0) sh.counts[2] = core::same_set(sh.S, sh.counts[0], sh.previous, sh.counts[3]) ? 1 : 0;
      __syncthreads();
      if (sh.counts[2]) break;
    }
    if (a.beta && a.support_threshold > 0 && threadIdx.x == 0 && sh.counts[6] > 0 && sh.counts[0] > 0)
      prune_support(sh, r, sh.counts[6], a.task_ridge, a.noise_variance, a.support_threshold);
    __syncthreads();
    if (a.variant == Variant::iht) {
      fill_target(true);
      joint_least_squares(task, sh, target, sh.S, 0, sh.bS);
    }
  }
  residual_and_correlation(task, sh, sh.counts[0], false);
  // Sum of squared residuals: a block reduction through the scalar slot.
  if (threadIdx.x == 0) sh.scalar[0] = 0.0;
  __syncthreads();
  double local = 0;
  for (int j = threadIdx.x; j < m; j += blockDim.x) local += a.resid[task.row0 + j] * a.resid[task.row0 + j];
  atomicAdd(sh.scalar, local);  // blockDim.x shared-memory atomics per task: negligible
  __syncthreads();
  if (threadIdx.x == 0) {
    const int n_S = sh.counts[0];
    detail::sort_by_index(sh.S, sh.bS, n_S);
    for (int p = 0; p < r; ++p) w_out[p] = sh.w[p];
    for (int s = 0; s < a.k_slots; ++s) {
      bi_out[s] = s < n_S ? sh.S[s] : -1;
      bv_out[s] = s < n_S ? sh.bS[s] : 0.0;
    }
  }
  __syncthreads();
  return sh.scalar[0];
}

template <typename T>
__global__ void task_step_kernel(TaskStepArgs<T> a, Layout L) {
  LRSMETA_DYNAMIC_SHARED(shared_raw);
  Shared sh = carve(shared_raw, L);
  const std::int64_t i = blockIdx.x;
  if (i >= a.t) return;
  const Task<T> task{a, a.offsets[i], static_cast<int>(a.offsets[i + 1] - a.offsets[i])};
  const int r = a.r, d = a.d, k = a.k, m = task.m;
  double* w_out = a.W + i * r;
  std::int32_t* bi_out = a.B_index + i * a.k_slots;
  double* bv_out = a.B_value + i * a.k_slots;
  if (m == 0) {
    for (int p = threadIdx.x; p < r; p += blockDim.x) w_out[p] = 0.0;
    for (int s = threadIdx.x; s < a.k_slots; s += blockDim.x) {
      bi_out[s] = -1;
      bv_out[s] = 0.0;
    }
    if (threadIdx.x == 0) {
      a.task_sse[i] = 0.0;
      if (a.beta && a.V) {
        sh.counts[4] = sh.counts[5] = 0;
        posterior(a, sh, i, 0, 0.0);
      }
    }
    return;
  }
  if (a.beta) {  // the prior's target y - X beta
    for (int j = threadIdx.x; j < m; j += blockDim.x) {
      double s = static_cast<double>(a.y[task.row0 + j]);
      for (int c = 0; c < d; ++c) s -= static_cast<double>(a.X[(task.row0 + j) * d + c]) * a.beta[c];
      a.response[task.row0 + j] = s;
    }
  }
  // Z = X U.
  for (int e = threadIdx.x; e < m * r; e += blockDim.x) {
    const int j = e / r, p = e % r;
    double s = 0;
    for (int c = 0; c < d; ++c)
      s += static_cast<double>(a.X[(task.row0 + j) * d + c]) * static_cast<double>(a.U[c * r + p]);
    a.Z[(task.row0 + j) * r + p] = s;
  }
  double sse = step_once(a, L, sh, task, i, false);
  // A support trapped by where it came from is searched again from the empty one, every support
  // scored; the better fit is kept (core::restart_from_empty_support, as on the CPU).
  const core::TaskPrior prior = prior_of(a);
  core::TaskStepSettings settings;
  settings.variant = a.variant;
  settings.k = k;
  settings.prior = a.beta ? &prior : nullptr;
  // Every thread decides from the outputs before thread 0 clears them.
  const bool restart = L.with_prior && core::restart_from_empty_support(settings, m, sse, bi_out, a.k_slots);
  __syncthreads();
  if (restart) {
    if (threadIdx.x == 0) {
      for (int p = 0; p < r; ++p) sh.kept_w[p] = w_out[p];
      for (int s = 0; s < a.k_slots; ++s) {
        sh.kept_b_index[s] = bi_out[s];
        sh.kept_b_value[s] = bv_out[s];
        bi_out[s] = -1;
        bv_out[s] = 0.0;
      }
    }
    __syncthreads();
    const double fresh = step_once(a, L, sh, task, i, true);
    if (fresh < sse) {
      sse = fresh;
    } else {  // the first search's support again (its step again, so that the last system is its)
      if (threadIdx.x == 0) {
        for (int p = 0; p < r; ++p) w_out[p] = sh.kept_w[p];
        for (int s = 0; s < a.k_slots; ++s) {
          bi_out[s] = sh.kept_b_index[s];
          bv_out[s] = sh.kept_b_value[s];
        }
      }
      __syncthreads();
      sse = step_once(a, L, sh, task, i, false);
    }
  }
  if (threadIdx.x == 0) {
    a.task_sse[i] = sse;
    if (a.beta && a.V) posterior(a, sh, i, m, sse);
    if (a.beta && a.average_supports)  // after the statistics, which are of the posterior mode
      for (int s = 0; s < a.k_slots; ++s)
        for (int q = 0; q < sh.counts[8]; ++q)
          if (bi_out[s] == sh.inclusion_features[q]) bv_out[s] *= sh.inclusion_chosen[q];
  }
}

__global__ void top_k_rows_kernel(const double* values, int rows, int n, int k, int* out) {
  const int row = blockIdx.x * blockDim.x + threadIdx.x;
  if (row < rows)
    detail::top_k_abs(values + static_cast<std::size_t>(row) * n, n, k, static_cast<const int*>(nullptr), 0,
                      out + static_cast<std::size_t>(row) * k);
}

__global__ void batched_ridge_solve_kernel(const double* A, double* b, int batch, int n, double relative_ridge,
                                           double* scratch) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= batch) return;
  double* L = scratch + static_cast<std::size_t>(i) * n * n;
  double* x = b + static_cast<std::size_t>(i) * n;
  if (detail::ridge_cholesky(A + static_cast<std::size_t>(i) * n * n, n, relative_ridge, L)) {
    detail::cholesky_solve(L, n, x);
  } else {
    for (int c = 0; c < n; ++c) x[c] = 0.0;
  }
}

}  // namespace

#ifndef LRSMETA_EMULATE_KERNELS
std::size_t task_step_shared_bytes(int d, int r, int k_slots, bool with_prior) {
  const Layout L{joint_columns(r, k_slots, d, with_prior), d, r, k_slots, with_prior};
  const std::size_t bytes = L.bytes();
  return bytes <= 200 * 1024 ? bytes : 0;  // Hopper: up to 227 KiB of shared memory per block
}

template <typename T>
void launch_task_step(const TaskStepArgs<T>& args, cudaStream_t stream) {
  if (args.t == 0) return;
  const bool with_prior = args.beta != nullptr;
  const Layout L{joint_columns(args.r, args.k_slots, args.d, with_prior), args.d, args.r, args.k_slots, with_prior};
  const std::size_t bytes = L.bytes();
  auto* const kernel = &task_step_kernel<T>;  // one specialisation, for the typed overload
  LRSMETA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  LRSMETA_LAUNCH(task_step_kernel<T>, static_cast<unsigned>(args.t), kTaskStepThreads, bytes, stream)(args, L);
  cuda::check_launch("task_step_kernel", __FILE__, __LINE__);
}
template void launch_task_step<float>(const TaskStepArgs<float>&, cudaStream_t);
template void launch_task_step<double>(const TaskStepArgs<double>&, cudaStream_t);

void launch_top_k_rows(const double* values, int rows, int n, int k, int* out, cudaStream_t stream) {
  LRSMETA_LAUNCH(top_k_rows_kernel, (rows + 127) / 128, 128, 0, stream)(values, rows, n, k, out);
  cuda::check_launch("top_k_rows_kernel", __FILE__, __LINE__);
}

void launch_batched_ridge_solve(const double* A, double* b, int batch, int n, double relative_ridge, double* scratch,
                                cudaStream_t stream) {
  LRSMETA_LAUNCH(batched_ridge_solve_kernel, (batch + 63) / 64, 64, 0, stream)(A, b, batch, n, relative_ridge, scratch);
  cuda::check_launch("batched_ridge_solve_kernel", __FILE__, __LINE__);
}

#endif  // LRSMETA_EMULATE_KERNELS

}  // namespace lrsmeta::kernels
