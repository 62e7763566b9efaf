// Launchers of lrsmeta's CUDA kernels (defined and explicitly instantiated in kernels/*.cu). This
// header is read by the host compiler: plain declarations, cudaStream_t the only CUDA type.
// Internal: never included from include/.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "lrsmeta/lrsmeta.hpp"  // Variant

namespace lrsmeta::kernels {

// Everything the batched task step reads and writes, all device pointers. One thread block per
// task runs the same per-task maths as the CPU path (host/cpu/task_step.hpp), with the small
// Cholesky and the top-k selection from host/core/small_dense.hpp.
template <typename T>
struct TaskStepArgs {
  const T* X = nullptr;              // n x d, row-major
  const T* y = nullptr;              // n
  const std::int64_t* offsets = nullptr;  // t + 1
  std::int64_t t = 0;
  int d = 0, r = 0;
  int k_slots = 0;                   // the model's k
  int k = 0;                         // sparsity in effect (0 during warm start)
  Variant variant = Variant::pursuit;
  int inner_iterations = 1;
  double task_ridge = 0.0;
  double step_size = 1.0;            // eta * m_i
  const T* U = nullptr;              // d x r row-major, in the data's precision
  double* Z = nullptr;               // n x r scratch: X U
  double* target = nullptr;          // n scratch
  double* resid = nullptr;           // n scratch
  double* W = nullptr;               // t x r
  std::int32_t* B_index = nullptr;   // t x k_slots
  double* B_value = nullptr;         // t x k_slots
  double* task_sse = nullptr;        // t
  // The empirical-Bayes prior (core/task_step_rules.hpp's TaskPrior); beta == nullptr: none.
  const double* beta = nullptr;          // d
  const double* w_precision = nullptr;   // r x r, row-major: added to the w block
  const double* w_covariance = nullptr;  // r x r: the posterior of a task with no rows
  double b_precision = 0.0;
  double noise_variance = 0.0;
  double support_threshold = 0.0;
  double log_inclusion = 0.0, log_exclusion = 0.0, log_support_mass = 0.0;  // the prior over supports
  bool average_supports = false;  // b times its posterior inclusion probability (the model's final step)
  double* response = nullptr;            // n scratch: y - X beta
  double* V = nullptr;                   // t x r x r: posterior covariance of w (null: not wanted)
  // t x 5 (with V): the effective numbers of parameters (all, b's part), the log marginal
  // likelihood, b's second moments and count (core/task_posterior.hpp, store_posterior_stats).
  double* posterior_stats = nullptr;
  // r x r, row-major (null: none): L with Sigma = L L^T, U the whitened basis U L. After the
  // statistics (which are of the whitened fit), w and V are mapped back: w = L v, V = L V_v L^T.
  const double* whitening = nullptr;
};

// The settings part of TaskStepArgs (the rest are data pointers): `Settings` is
// core::TaskStepSettings, taken as a template so that this header needs no internal headers.
template <typename T, typename Settings>
void set_task_step_settings(TaskStepArgs<T>& args, const Settings& s) {
  args.k = s.k;
  args.variant = s.variant;
  args.inner_iterations = s.inner_iterations;
  args.task_ridge = s.task_ridge;
  args.step_size = s.step_size;
}

// The prior part of TaskStepArgs from core::TaskPrior (its pointers the device's), taken as a
// template as set_task_step_settings takes its settings.
template <typename T, typename Prior>
void set_task_prior(TaskStepArgs<T>& args, const Prior& p) {
  args.beta = p.beta;
  args.w_precision = p.w_precision;
  args.w_covariance = p.w_covariance;
  args.b_precision = p.b_precision;
  args.noise_variance = p.noise_variance;
  args.support_threshold = p.support_threshold;
  args.log_inclusion = p.log_inclusion;
  args.log_exclusion = p.log_exclusion;
  args.log_support_mass = p.log_support_mass;
  args.average_supports = p.average_supports;
}

// Shared memory one block needs for the task step; 0 when the sizes exceed what a block can hold.
std::size_t task_step_shared_bytes(int d, int r, int k_slots, bool with_prior = false);
template <typename T>
void launch_task_step(const TaskStepArgs<T>& args, cudaStream_t stream);

// One chunk of the accumulation of G and v (tasks first .. first + count - 1): row l of Wp gets the
// packed w w^T (r(r+1)/2), row l of Sp the packed X_i^T X_i (d(d+1)/2), row l of Q the vector
// X_i^T (y_i - X_i b_i), row l of Wc the (possibly clipped) w_i. With bounds.enabled, each task's
// first max_samples rows are scaled to norm <= clip_x, residuals clipped to clip_y and w to clip_w.
// max_rows: the most rows any task of the chunk contributes (sizes the kernel's shared memory).
// With V (t x r x r posterior covariances of w, the prior's), the packing is for the joint [beta, U]
// system: w' = (1, w_i), row l of Wp the packed w' w'^T + blockdiag(0, V_i), Wp and Wc r + 1 wide.
// Wp and Sp may be null (cg's right-hand side needs neither); with Wm, row l of Wm gets m_i w_i (the
// rows counted), for cg's preconditioner sum_i m_i w_i w_i^T.
struct Bounds {
  bool enabled = false;
  double clip_x = 0, clip_y = 0, clip_w = 0;
  int max_samples = 0;
};
template <typename T>
void launch_pack_chunk(const T* X, const T* y, const std::int64_t* offsets, std::int64_t first, std::int64_t count,
                       int d, int r, int k_slots, const double* W, const std::int32_t* B_index, const double* B_value,
                       Bounds bounds, T* Wp, T* Sp, double* Q, double* Wc, int max_rows, cudaStream_t stream,
                       const double* V = nullptr, double* Wm = nullptr);

// cg's pass over tasks first .. first + count - 1 (no prior): row l of g (count x d) gets
// X_i^T X_i (M w_i), M the d x r column-major iterate; Mw (count x d) is scratch. The caller adds
// g^T W_chunk (the tasks' w) to the product.
template <typename T>
void launch_normal_operator(const T* X, const std::int64_t* offsets, std::int64_t first, std::int64_t count, int d, int r,
                            const double* W, const double* M, double* Mw, double* g, cudaStream_t stream);
// cg's pass under the prior over tasks first .. first + count - 1: row l of out (count x d r') gets
// X_i^T X_i M E_i (d x r' column-major, r' = r + 1), E_i = w' w'^T + blockdiag(0, V_i), w' = (1, w_i),
// V (t x r x r) the posterior covariances, M the d x r' column-major iterate. The caller sums the
// rows over the tasks. Refused (Error) where r' is too large for a block's shared memory.
template <typename T>
void launch_prior_normal_operator(const T* X, const std::int64_t* offsets, std::int64_t first, std::int64_t count, int d, int r,
                                  const double* W, const double* V, const double* M, double* out, cudaStream_t stream);
// Its threads a block and shared-memory limit, and the bytes it takes for rank r (0: too many), with
// the rows per tile in *tile.
constexpr int kPriorOperatorThreads = 128;
constexpr std::size_t kPriorOperatorSharedLimit = 96 * 1024;
std::size_t prior_normal_operator_shared_bytes(int r, int* tile = nullptr);
// Rows first_row .. first_row + count - 1 of X (count x d) and y (count) converted to double.
template <typename T>
void launch_rows_as_double(const T* X, const T* y, std::int64_t first_row, std::int64_t count, int d, double* rows,
                           double* y_rows, cudaStream_t stream);

// M (double) += chunk (float), elementwise, `count` entries.
void launch_add_float_to_double(const float* chunk, double* M, std::size_t count, cudaStream_t stream);
// Unpack M (P x Q packed blocks, row-major) into the full symmetric G (dr x dr, column-major).
void launch_unpack_gram(const double* M, int d, int r, double* G, cudaStream_t stream);
// G[i, i] += shift for i < n (column-major n x n).
void launch_add_diagonal(double* G, int n, double shift, cudaStream_t stream);
// U_data (d x r row-major, T) from U (d x r column-major, double).
template <typename T>
void launch_store_U(const double* U_colmajor, int d, int r, T* U_data, cudaStream_t stream);
// Rows j of `rows` (count x d) = s_j x_j with s_j = |y_j| (spectral moment), clipped under bounds.
// Under bounds, rows beyond a task's first max_samples get s_j = 0 (offsets, t locate the task).
template <typename T>
void launch_scaled_rows(const T* X, const T* y, const std::int64_t* offsets, std::int64_t t, std::int64_t first_row,
                        std::int64_t count, int d, Bounds bounds, double* rows, cudaStream_t stream);

// Test entry points (tests/test_cuda.cpp): top-k of each row, and a batch of ridged Cholesky solves.
void launch_top_k_rows(const double* values, int rows, int n, int k, int* out, cudaStream_t stream);
// scratch: batch x n x n doubles.
void launch_batched_ridge_solve(const double* A, double* b, int batch, int n, double relative_ridge, double* scratch,
                                cudaStream_t stream);

}  // namespace lrsmeta::kernels
