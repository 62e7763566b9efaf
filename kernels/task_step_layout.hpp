// The task-step kernel's block (kernels/task_step.cu): its threads, and its shared memory as one
// list of regions that both sizes the block (on the host) and carves it (on the device).
#pragma once

#include <cstddef>

#include "core/evidence_search.hpp"

namespace lrsmeta::kernels {
namespace {

constexpr int kTaskStepThreads = 128;
// Threads of a block that share the enumeration of b's supports under the prior (each scores every
// kEvidenceThreads-th support: detail::evidence_enumerate_share).
constexpr int kEvidenceThreads = 32;

// Columns of the largest joint system: r + pursuit's candidates (under the prior, as many as the
// evidence search weighs).
__host__ __device__ inline int joint_columns(int r, int k, int d, bool with_prior = false) {
  const int paper = 3 * k < d ? 3 * k : d;
  const int evidence = with_prior ? detail::evidence_candidate_capacity(d, k) : 0;
  return r + (evidence > paper ? evidence : paper);
}

// counts: [0] n_S, [1] n_C, [2] stop flag, [3] the previous support's size, [4] the last system's
// size, [5] whether it factored, [6] the last joint system's columns, [7] enumerate supports,
// [8] how many chosen features have an inclusion probability, [9] the shared enumeration's support
// size (-1: the w block did not factor), [10] the largest support it enumerates.
constexpr int kCounts = 11;

// One block's shared memory: pointers into it, carved by Layout.
struct Shared {
  double *G, *G_sub, *chol, *rhs_saved, *bS, *bC, *x, *corr, *dense, *w, *scalar, *evidence, *inclusion, *inclusion_chosen, *kept_w,
      *kept_b_value, *share_F, *share_v, *share_scores, *share_totals, *share_sums;
  int *S, *C, *P, *previous, *counts, *evidence_picks, *inclusion_features, *kept_b_index, *share_cols, *share_best, *share_sizes;
};

// Shared-memory layout of one block: regions() lists every region in order (doubles first, then
// ints), the one list that both sizes the block (bytes(), on the host) and carves it (carve(), on
// the device).
struct Layout {
  int cols, d, r;
  int k = 0;                // with the prior: the evidence search's scratch for sparsity k
  bool with_prior = false;
  // With the prior: the evidence search's scratch; each candidate's posterior inclusion probability
  // and the chosen features' (the model's final step averages b over the supports the search
  // weighed); the first pass's (w, b) while a trapped task is searched again from the empty support;
  // each enumerating thread's scratch and share (its best support, score and inclusion sums).
  template <typename Visit>
  __host__ __device__ void regions(Visit& v) const {
    const std::size_t cc = static_cast<std::size_t>(cols) * cols, p = with_prior ? 1 : 0;
    v.doubles(&Shared::G, cc);
    v.doubles(&Shared::G_sub, cc);
    v.doubles(&Shared::chol, cc);
    v.doubles(&Shared::rhs_saved, cols);
    v.doubles(&Shared::bS, cols);
    v.doubles(&Shared::bC, cols);
    v.doubles(&Shared::x, cols);
    v.doubles(&Shared::corr, d);
    v.doubles(&Shared::dense, d);
    v.doubles(&Shared::w, r);
    v.doubles(&Shared::scalar, 1);
    v.doubles(&Shared::evidence, p * static_cast<std::size_t>(detail::evidence_subset_scratch(r, cols - r, k)));
    v.doubles(&Shared::inclusion, p * cols);
    v.doubles(&Shared::inclusion_chosen, p * (k + 1));
    v.doubles(&Shared::kept_w, p * r);
    v.doubles(&Shared::kept_b_value, p * k);
    const std::size_t e = p * kEvidenceThreads;
    v.doubles(&Shared::share_F, e * k * k);
    v.doubles(&Shared::share_v, e * k);
    v.doubles(&Shared::share_scores, e);
    v.doubles(&Shared::share_totals, e);
    v.doubles(&Shared::share_sums, e * (cols - r));
    v.ints(&Shared::S, cols);
    v.ints(&Shared::C, cols);
    v.ints(&Shared::P, cols);
    v.ints(&Shared::previous, cols);
    v.ints(&Shared::counts, kCounts);
    v.ints(&Shared::evidence_picks, p * static_cast<std::size_t>(detail::evidence_subset_picks(k)));
    v.ints(&Shared::inclusion_features, p * (k + 1));
    v.ints(&Shared::kept_b_index, p * k);
    v.ints(&Shared::share_cols, e * k);
    v.ints(&Shared::share_best, e * k);
    v.ints(&Shared::share_sizes, e);
  }
  __host__ __device__ std::size_t bytes() const {
    struct Count {
      std::size_t doubles_ = 0, ints_ = 0;
      __host__ __device__ void doubles(double* Shared::*, std::size_t n) { doubles_ += n; }
      __host__ __device__ void ints(int* Shared::*, std::size_t n) { ints_ += n; }
    } count;
    regions(count);
    return count.doubles_ * sizeof(double) + count.ints_ * sizeof(int);
  }
};

__device__ Shared carve(void* base, const Layout& L) {
  struct Carve {
    Shared s;
    double* dp;
    int* ip = nullptr;
    __device__ void doubles(double* Shared::*region, std::size_t n) {
      s.*region = dp;
      dp += n;
    }
    __device__ void ints(int* Shared::*region, std::size_t n) {
      if (!ip) ip = reinterpret_cast<int*>(dp);  // the ints follow the doubles
      s.*region = ip;
      ip += n;
    }
  } carve{Shared{}, static_cast<double*>(base)};
  L.regions(carve);
  return carve.s;
}

}  // namespace
}  // namespace lrsmeta::kernels
