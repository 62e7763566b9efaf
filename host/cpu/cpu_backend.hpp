// The CPU backend: OpenMP over tasks for the task steps, for building G and v and for cg's passes;
// OpenBLAS for the chunked GEMM that forms G and LAPACK for the QR of U (the core solves G).
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/backend.hpp"

namespace lrsmeta::cpu {

struct TaskWorkspace;  // cpu/task_step.hpp

// Tasks per GEMM in the accumulation of G: large enough for an efficient GEMM (K = chunk), small
// enough that a thread's packed Grams (chunk x d(d+1)/2 doubles) stay in cache-friendly sizes.
constexpr std::int64_t kTasksPerChunk = 64;

// Packed symmetric index of (a, b), a <= b < n, rows of the upper triangle one after another.
inline std::int64_t packed_index(std::int64_t a, std::int64_t b, std::int64_t n) {
  return a * n - a * (a - 1) / 2 + (b - a);
}

// Whether the direct U step keeps every task's packed Gram X_i^T X_i (t d (d + 1) / 2 values in
// the data's precision) rather than forming them again each iteration: where they take no more
// memory than X itself (n d values). Forming a task's Gram costs m d^2 / 2, more than its share of
// the GEMM into G (r'^2 d^2 / 4 per task for r' < sqrt(2 m)): two thirds of the accumulation on
// bench/noisy_synthetic at r = 3.
inline bool keeps_task_grams(std::int64_t n, std::int64_t t, std::int64_t d) {
  return static_cast<double>(t) * static_cast<double>(d) * static_cast<double>(d + 1) / 2 <= static_cast<double>(n) * static_cast<double>(d);
}

// The blocks of consecutive tasks that a task step sums cg's start over (values_per_block doubles
// each), for t tasks on `threads` threads: many per thread keep the threads' loads even under the
// dynamic schedule (with 8 a thread, the last block left a core idle for a few percent of the step);
// together at most about 64 MiB, but never fewer than one a thread.
inline std::int64_t u_start_blocks(std::int64_t t, int threads, std::int64_t values_per_block) {
  const std::int64_t bytes = std::max<std::int64_t>(values_per_block, 1) * static_cast<std::int64_t>(sizeof(double));
  return std::max<std::int64_t>(1, std::min<std::int64_t>({t, 64LL * threads, std::max<std::int64_t>(threads, (64LL << 20) / bytes)}));
}

template <typename T>
class CpuBackend final : public core::Backend {
 public:
  CpuBackend(const TaskDataView<T>& data, const Options& options);

  void set_U(const std::vector<double>& U) override;
  std::vector<double> get_U() const override { return U_; }
  core::TaskStepTotals task_step_all(int k_in_effect) override;
  core::TaskStepTotals task_step_all_with_u_start(int k_in_effect, core::UStepStart& start) override;
  void accumulate_rhs(std::vector<double>& v, std::vector<double>& W_hat) override;
  void apply_normal_operator(const std::vector<double>& x, std::vector<double>& y) override;
  void accumulate_rhs_and_apply(const std::vector<double>& x0, std::vector<double>& v, std::vector<double>& W_hat,
                                std::vector<double>& G_x0) override;
  double orthonormalise_U(const std::vector<double>& U_tilde, std::vector<double>* R) override;
  std::vector<double> spectral_moment(const core::PrivateRelease* release = nullptr) override;
  void export_task_parameters(Model& model) const override;
  void import_task_parameters(const Model& model) override;
  void set_prior(const core::PriorState* prior) override;
  core::DataMoments data_moments() override;

  // G and v as Backend::accumulate_normal_equations says, vec(U)[a + d p] = U[a, p]; the bounds
  // (privacy) scale each task's first max_samples rows to norm <= clip_x, clip residuals to clip_y
  // and w_i to norm <= clip_w. With a prior (set_prior) the system is the joint one for [beta, U]
  // with E[w w^T] = w w^T + V_i.
  void accumulate_normal_equations(std::vector<double>& G, std::vector<double>& v,
                                   const PrivacyOptions* bounds = nullptr) override;

  // Task parameters, row-major t x r and t x k.
  std::vector<double>& W() { return W_; }
  std::vector<std::int32_t>& B_index() { return B_index_; }
  std::vector<double>& B_value() { return B_value_; }
  int threads() const { return threads_; }
  // With a prior: each task's V_i, packed upper triangle (r(r+1)/2 per task), after a task step.
  const std::vector<double>& V_packed() const { return V_; }

 private:
  TaskDataView<T> data_;
  Options options_;
  int d_, r_, k_;
  std::int64_t t_;
  int m_max_ = 0;
  int threads_ = 1;
  std::vector<double> U_;  // d x r, row-major
  std::vector<T> U_data_;  // U in the data's precision, for the task steps' X U
  std::vector<double> W_, B_value_;
  std::vector<std::int32_t> B_index_;
  std::vector<double> task_sse_;
  // The prior (set_prior) and what it adds: each task's V_i (packed upper triangle, r(r+1)/2) and
  // posterior statistics (effective numbers of parameters, all and b's part; log evidence; b's
  // E[b^2] sum and count). Per task, summed in task order.
  static constexpr int kPosteriorStats = 5;
  bool has_prior_ = false;
  core::PriorState prior_;
  std::vector<double> V_, task_posterior_stats_;
  std::vector<T> U_whitened_;  // U L, Sigma = L L^T: the task steps' basis under the prior
  // Per-thread buffers of accumulate_normal_equations, kept between iterations (allocating a few
  // MiB per call costs page faults on every iteration).
  struct GramScratch {
    std::vector<double> M, v;
    std::vector<T> Wp, Sp, clipped_rows;
    std::vector<float> chunk_product;  // float data: one chunk's SGEMM result
  };
  std::vector<GramScratch> scratch_;
  // Every task's packed Gram, in task order, where keeps_task_grams (filled on the first direct U
  // step; empty until then and otherwise).
  std::vector<T> task_grams_;
  core::DataMoments moments_;  // data_moments(), computed on first use
  // cg's passes (u_step_cg.cpp): per task, then over all tasks (either part or both at once).
  struct CgScratch {  // one thread's
    std::vector<double> w, q, Mw, e, E;
    std::vector<double> XM_wide, XME_wide;  // float data: X_i M and X_i M E_i in double
    std::vector<T> Mw_data, g_data;  // M w and X_i^T X_i M w in the data's precision
    std::vector<T> XM, XME, product;  // under the prior: X_i M, X_i M E_i (m x r'), their product with X_i (r' x d)
    const T* M_data = nullptr;        // the pass's M in the data's precision (d x r', column-major)
    CgScratch(std::int64_t d, std::int64_t r)
        : w(static_cast<std::size_t>(std::max<std::int64_t>(r, 1))), q(static_cast<std::size_t>(d)), Mw(q.size()),
          E(w.size() * w.size()), Mw_data(q.size()), g_data(q.size()), product(static_cast<std::size_t>(d) * w.size()) {}
  };
  std::int64_t extended_w(std::int64_t i, double* w) const;
  void rhs_of_task(std::int64_t i, double* part, CgScratch& scratch) const;
  void operator_of_task(std::int64_t i, const double* M, double* acc, CgScratch& scratch) const;
  void start_of_task(std::int64_t i, const TaskWorkspace& ws, bool residual_from_tasks, const double* x0, double* part,
                     CgScratch& scratch) const;
  void cg_pass(std::vector<double>* v, std::vector<double>* W_hat, const std::vector<double>* x, std::vector<double>* y);
  std::vector<std::vector<double>> cg_parts_;  // cg_pass's per-thread sums
  // The task steps, with cg's start where asked (summed per block of tasks in start_parts_).
  core::TaskStepTotals task_steps(int k_in_effect, core::UStepStart* u_start);
  std::vector<std::vector<double>> start_parts_;
};

}  // namespace lrsmeta::cpu

namespace lrsmeta::core {
template <typename T>
std::unique_ptr<Backend> make_cpu_backend(const TaskDataView<T>& data, const Options& options);
// What a CPU fit will hold in memory, by part: the data, the per-task state, G and its factor, the
// threads' scratch, and with validation_copy the copy of the rows split for validation.
template <typename T>
MemoryPlan plan_cpu_memory(const TaskDataView<T>& data, const Options& options, bool validation_copy);
}  // namespace lrsmeta::core
