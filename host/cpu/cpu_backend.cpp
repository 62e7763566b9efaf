#include "cpu/cpu_backend.hpp"

#include <omp.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <type_traits>

#include "core/posterior.hpp"
#include "core/u_solver.hpp"
#include "linalg/blas_lapack.hpp"
#include "cpu/task_step.hpp"
#include "lrsmeta/io.hpp"

namespace lrsmeta::cpu {


template <typename T>
CpuBackend<T>::CpuBackend(const TaskDataView<T>& data, const Options& options)
    : data_(data),
      options_(options),
      d_(static_cast<int>(data.d)),
      r_(options.rank),
      k_(options.sparsity),
      t_(data.t) {
  for (std::int64_t i = 0; i < t_; ++i)
    m_max_ = static_cast<int>(std::max<std::int64_t>(m_max_, data.task_size(i)));
  threads_ = options.threads > 0 ? options.threads : omp_get_max_threads();
  W_.assign(static_cast<std::size_t>(t_) * r_, 0.0);
  B_value_.assign(static_cast<std::size_t>(t_) * k_, 0.0);
  B_index_.assign(static_cast<std::size_t>(t_) * k_, -1);
}

template <typename T>
void CpuBackend<T>::set_U(const std::vector<double>& U) {
  if (U.size() != static_cast<std::size_t>(d_) * r_) throw Error("CPU backend: U has the wrong size");
  U_ = U;
  U_data_.assign(U.begin(), U.end());
}

template <typename T>
core::TaskStepTotals CpuBackend<T>::task_step_all(int k_in_effect) {
  return task_steps(k_in_effect, nullptr);
}

template <typename T>
core::TaskStepTotals CpuBackend<T>::task_step_all_with_u_start(int k_in_effect, core::UStepStart& start) {
  return task_steps(k_in_effect, &start);
}

template <typename T>
core::TaskStepTotals CpuBackend<T>::task_steps(int k_in_effect, core::UStepStart* u_start) {
  const std::int64_t r_ext = r_ + (has_prior_ ? 1 : 0), dr = static_cast<std::int64_t>(d_) * r_ext;
  if (u_start && static_cast<std::int64_t>(u_start->x0.size()) != dr)
    throw Error("CPU backend: the U step's warm start has the wrong size");
  TaskStepSettings settings = task_step_settings(options_, k_in_effect);
  TaskPrior task_prior;
  // With a prior the task step runs in whitened coordinates (core/posterior.hpp): Z = X (U L),
  // v's prior precision s2 I.
  std::vector<double> L, identity, prior_precision;
  const T* U_task = U_data_.data();
  if (has_prior_) {
    L = core::whitening_factor(prior_.Sigma, r_);
    core::whitened_basis(U_, L, d_, r_, U_whitened_);
    U_task = U_whitened_.data();
    identity.assign(static_cast<std::size_t>(r_) * r_, 0.0);
    prior_precision.assign(identity.size(), 0.0);
    for (int p = 0; p < r_; ++p) {
      identity[static_cast<std::size_t>(p) * r_ + p] = 1.0;
      prior_precision[static_cast<std::size_t>(p) * r_ + p] = prior_.noise_variance;
    }
    task_prior = core::task_prior_of(prior_, d_, settings.k, prior_.beta.data(), prior_precision.data(), identity.data());
    settings.prior = &task_prior;
  }
  const std::int64_t P = static_cast<std::int64_t>(r_) * (r_ + 1) / 2;
  // Per-task sums, added in task order afterwards: the reported loss does not depend on how the
  // dynamic schedule spread the (ragged) tasks over the threads.
  task_sse_.resize(static_cast<std::size_t>(t_));
  // cg's start (v, W_hat, the residual) is summed per block of consecutive tasks
  // (u_start_blocks), then over the blocks in order: the same sum whichever thread took a block
  // (the schedule is dynamic), so a fit is reproducible for a thread count.
  const std::int64_t start_size = u_start ? 2 * dr + r_ext * r_ext : 0;
  const std::int64_t n_blocks = u_start ? u_start_blocks(t_, threads_, start_size) : 0;
  const std::int64_t tasks_per_schedule_unit = u_start ? std::max<std::int64_t>(1, (t_ + n_blocks - 1) / n_blocks) : 16;
  const std::int64_t n_units = (t_ + tasks_per_schedule_unit - 1) / tasks_per_schedule_unit;
  if (u_start) start_parts_.resize(static_cast<std::size_t>(n_units));
  // Without the prior and with x0 the U of these task steps, the warm start's residual is
  // sum_i X_i^T e_i w_i^T, e_i = y_i - X_i U w_i - X_i b_i the task's own residual: one product
  // X_i^T e_i a task (none where the task step has it already), rather than G x0's two. Otherwise the
  // blocks sum G x0, subtracted from v at the end.
  bool residual_from_tasks = u_start && !has_prior_;
  for (int a = 0; residual_from_tasks && a < d_; ++a)
    for (int p = 0; residual_from_tasks && p < r_; ++p)
      residual_from_tasks = u_start->x0[static_cast<std::size_t>(a + static_cast<std::int64_t>(d_) * p)] ==
                            U_[static_cast<std::size_t>(a) * r_ + p];
  // x0 in the data's precision, converted once: the prior's operator (operator_of_task) reads it
  const std::vector<T> x0_data = u_start && has_prior_ ? std::vector<T>(u_start->x0.begin(), u_start->x0.end()) : std::vector<T>();
  linalg::BlasThreads single_threaded_blas(1);
#pragma omp parallel num_threads(threads_)
  {
    TaskWorkspace ws(m_max_, d_, r_, k_);
    std::vector<double> V(static_cast<std::size_t>(r_) * r_), map_scratch(V.size() + static_cast<std::size_t>(r_));
    TaskPosterior posterior{V.data(), 0.0, 0.0};
    std::optional<CgScratch> cg_scratch;
    if (u_start) {
      cg_scratch.emplace(d_, r_ext);
      cg_scratch->M_data = x0_data.data();
    }
#pragma omp for schedule(dynamic, 1)
    for (std::int64_t unit = 0; unit < n_units; ++unit) {
      double* start_part = nullptr;
      if (u_start) {
        std::vector<double>& part = start_parts_[static_cast<std::size_t>(unit)];
        part.assign(static_cast<std::size_t>(start_size), 0.0);  // v, W_hat, then the residual (or G x0)
        start_part = part.data();
      }
      for (std::int64_t i = unit * tasks_per_schedule_unit; i < std::min(t_, (unit + 1) * tasks_per_schedule_unit); ++i) {
        const std::int64_t row0 = data_.task_offsets[i];
        const int m = static_cast<int>(data_.task_offsets[i + 1] - row0);
        task_sse_[static_cast<std::size_t>(i)] =
            task_step(data_.X + row0 * d_, data_.y + row0, m, d_, U_task, r_, W_.data() + i * r_,
                      B_index_.data() + i * k_, B_value_.data() + i * k_, k_, settings, ws,
                      has_prior_ ? &posterior : nullptr);
        if (has_prior_) {
          core::map_back_from_whitened(L.data(), r_, W_.data() + i * r_, V.data(), V_.data() + i * P, map_scratch.data());
          double* stats = task_posterior_stats_.data() + i * kPosteriorStats;
          stats[0] = posterior.effective_params;
          stats[1] = posterior.effective_params_b;
          stats[2] = posterior.log_evidence;
          stats[3] = posterior.b_square_sum;
          stats[4] = posterior.b_count;
        }
        // The task's rows are in cache: its share of cg's start now.
        if (u_start && m > 0) start_of_task(i, ws, residual_from_tasks, u_start->x0.data(), start_part, *cg_scratch);
      }
    }
  }
  if (u_start) {  // each entry summed over the blocks in block order, the entries over the threads
    std::vector<double> total(static_cast<std::size_t>(start_size), 0.0);
#pragma omp parallel for num_threads(threads_) schedule(static)
    for (std::int64_t e = 0; e < start_size; ++e) {
      double sum = 0.0;
      for (std::int64_t b = 0; b < n_units; ++b) sum += start_parts_[static_cast<std::size_t>(b)][static_cast<std::size_t>(e)];
      total[static_cast<std::size_t>(e)] = sum;
    }
    u_start->v.assign(total.begin(), total.begin() + dr);
    u_start->W_hat.assign(total.begin() + dr, total.begin() + dr + r_ext * r_ext);
    u_start->residual.assign(total.begin() + dr + r_ext * r_ext, total.end());
    if (!residual_from_tasks)  // the blocks summed G x0
      for (std::int64_t e = 0; e < dr; ++e) u_start->residual[static_cast<std::size_t>(e)] = u_start->v[static_cast<std::size_t>(e)] - u_start->residual[static_cast<std::size_t>(e)];
  }
  core::TaskStepTotals totals;
  for (double e : task_sse_) totals.sse += e;
  totals.rows = data_.n;
  if (has_prior_) {
    totals.w_second_moment.assign(static_cast<std::size_t>(r_) * r_, 0.0);
    totals.w_sum.assign(static_cast<std::size_t>(r_), 0.0);
    for (std::int64_t i = 0; i < t_; ++i) {
      core::add_second_moment(W_.data() + i * r_, V_.data() + i * P, r_, totals.w_second_moment.data(), totals.w_sum.data());
      const double* stats = task_posterior_stats_.data() + i * kPosteriorStats;
      totals.effective_params += stats[0];
      totals.effective_params_b += stats[1];
      totals.log_evidence += stats[2];
      totals.b_square_sum += stats[3];
      totals.b_count += static_cast<std::int64_t>(stats[4]);
    }
    core::symmetrise_upper(totals.w_second_moment.data(), r_);
  }
  return totals;
}

template <typename T>
void CpuBackend<T>::set_prior(const core::PriorState* prior) {
  has_prior_ = prior != nullptr;
  if (!prior) return;
  if (prior->beta.size() != static_cast<std::size_t>(d_) || prior->Sigma.size() != static_cast<std::size_t>(r_) * r_)
    throw Error("CPU backend: the prior has the wrong size");
  prior_ = *prior;
  const std::size_t P = static_cast<std::size_t>(r_) * (r_ + 1) / 2;
  V_.resize(static_cast<std::size_t>(t_) * P, 0.0);
  task_posterior_stats_.resize(static_cast<std::size_t>(kPosteriorStats * t_), 0.0);
}

template <typename T>
core::DataMoments CpuBackend<T>::data_moments() {
  // The data never changes under a backend: the prior's start and cg's preconditioner share one
  // pass over X (at d = 1000 it is 1e12 flops per million rows).
  if (!moments_.XtX.empty()) return moments_;
  const std::int64_t d = d_;
  constexpr std::int64_t kRows = 256;
  const int n_threads = threads_;
  struct Partial {
    std::vector<double> XtX, Xty;
    double yty = 0;
  };
  std::vector<Partial> parts(static_cast<std::size_t>(n_threads));
  const std::int64_t n_blocks = (data_.n + kRows - 1) / kRows;
  linalg::BlasThreads single_threaded_blas(1);
#pragma omp parallel num_threads(n_threads)
  {
    Partial& part = parts[static_cast<std::size_t>(omp_get_thread_num())];
    part.XtX.assign(static_cast<std::size_t>(d * d), 0.0);
    part.Xty.assign(static_cast<std::size_t>(d), 0.0);
    std::vector<double> rows(static_cast<std::size_t>(kRows * d));
#pragma omp for schedule(static)
    for (std::int64_t block = 0; block < n_blocks; ++block) {
      const std::int64_t start = block * kRows, count = std::min(kRows, data_.n - start);
      for (std::int64_t j = 0; j < count; ++j) {
        const double y = static_cast<double>(data_.y[start + j]);
        part.yty += y * y;
        for (std::int64_t a = 0; a < d; ++a) {
          const double x = static_cast<double>(data_.X[(start + j) * d + a]);
          rows[static_cast<std::size_t>(j * d + a)] = x;
          part.Xty[static_cast<std::size_t>(a)] += x * y;
        }
      }
      linalg::syrk_upper_ata(d_, static_cast<int>(count), 1.0, rows.data(), d_, 1.0, part.XtX.data(), d_);
    }
  }
  core::DataMoments out;
  out.XtX.assign(static_cast<std::size_t>(d * d), 0.0);
  out.Xty.assign(static_cast<std::size_t>(d), 0.0);
  for (const Partial& part : parts) {
    for (std::size_t e = 0; e < out.XtX.size(); ++e) out.XtX[e] += part.XtX[e];
    for (std::size_t e = 0; e < out.Xty.size(); ++e) out.Xty[e] += part.Xty[e];
    out.yty += part.yty;
  }
  for (std::int64_t a = 0; a < d; ++a)  // syrk filled the upper triangle of the row-major matrix
    for (std::int64_t b = a + 1; b < d; ++b) out.XtX[static_cast<std::size_t>(b * d + a)] = out.XtX[static_cast<std::size_t>(a * d + b)];
  out.rows = data_.n;
  moments_ = std::move(out);
  return moments_;
}

template <typename T>
double CpuBackend<T>::orthonormalise_U(const std::vector<double>& U_tilde, std::vector<double>* R) {
  if (r_ == 0) return 0.0;
  if (U_tilde.size() != static_cast<std::size_t>(d_) * r_) throw Error("CPU backend: U~ has the wrong size");
  std::vector<double> Q = U_tilde;
  linalg::qr_q_factor(d_, r_, Q.data());
  if (R) {  // R = Q^T U~ (upper triangular up to rounding), row-major
    R->assign(static_cast<std::size_t>(r_) * r_, 0.0);
    for (int p = 0; p < r_; ++p)
      for (int q = 0; q < r_; ++q) {
        double s = 0.0;
        for (int a = 0; a < d_; ++a) s += Q[static_cast<std::size_t>(p) * d_ + a] * U_tilde[static_cast<std::size_t>(q) * d_ + a];
        (*R)[static_cast<std::size_t>(p) * r_ + q] = s;
      }
  }
  std::vector<double> U_new(U_.size());
  for (int a = 0; a < d_; ++a)
    for (int p = 0; p < r_; ++p) U_new[static_cast<std::size_t>(a) * r_ + p] = Q[static_cast<std::size_t>(p) * d_ + a];
  // ||(I - U U^T) U_new||_F: how far the subspace moved.
  const double change = subspace_distance(U_, U_new, d_, r_);
  set_U(U_new);
  return change;
}

template <typename T>
std::vector<double> CpuBackend<T>::spectral_moment(const core::PrivateRelease* release) {
  const std::int64_t d = d_;
  constexpr std::int64_t kRows = 256;
  const int n_threads = threads_;
  std::vector<std::vector<double>> M_of(static_cast<std::size_t>(n_threads));
  linalg::BlasThreads single_threaded_blas(1);
#pragma omp parallel num_threads(n_threads)
  {
    std::vector<double>& M = M_of[static_cast<std::size_t>(omp_get_thread_num())];
    M.assign(static_cast<std::size_t>(d * d), 0.0);
    std::vector<double> rows(static_cast<std::size_t>(kRows * d));
    if (!release) {
#pragma omp for schedule(static)
      for (std::int64_t start = 0; start < data_.n; start += kRows) {
        const std::int64_t count = std::min(kRows, data_.n - start);
        for (std::int64_t j = 0; j < count; ++j) {
          const double scale = std::fabs(static_cast<double>(data_.y[start + j]));  // |y| x: rows^T rows = sum y^2 x x^T
          for (std::int64_t a = 0; a < d; ++a)
            rows[static_cast<std::size_t>(j * d + a)] = scale * static_cast<double>(data_.X[(start + j) * d + a]);
        }
        linalg::syrk_upper_ata(d_, static_cast<int>(count), 1.0, rows.data(), d_, 1.0, M.data(), d_);
      }
    } else {
      // Bounded contributions: each task's first m_max rows, x scaled to norm <= C_x, y clipped to C_y.
      // A static schedule: which thread sums which task must not vary from run to run, or a fit
      // with a fixed noise seed would not repeat.
      const PrivacyOptions& b = release->bounds;
#pragma omp for schedule(static)
      for (std::int64_t i = 0; i < t_; ++i) {
        const std::int64_t row0 = data_.task_offsets[i];
        const std::int64_t m = std::min<std::int64_t>(data_.task_offsets[i + 1] - row0, b.max_samples);
        for (std::int64_t start = 0; start < m; start += kRows) {
          const std::int64_t count = std::min(kRows, m - start);
          for (std::int64_t j = 0; j < count; ++j) {
            const T* x = data_.X + (row0 + start + j) * d;
            double norm2 = 0;
            for (std::int64_t a = 0; a < d; ++a) norm2 += static_cast<double>(x[a]) * static_cast<double>(x[a]);
            const double norm = std::sqrt(norm2);
            const double y = std::clamp(static_cast<double>(data_.y[row0 + start + j]), -b.clip_y, b.clip_y);
            const double scale = std::fabs(y) * (norm > b.clip_x ? b.clip_x / norm : 1.0);
            for (std::int64_t a = 0; a < d; ++a) rows[static_cast<std::size_t>(j * d + a)] = scale * static_cast<double>(x[a]);
          }
          linalg::syrk_upper_ata(d_, static_cast<int>(count), 1.0, rows.data(), d_, 1.0, M.data(), d_);
        }
      }
    }
  }
  std::vector<double> M(static_cast<std::size_t>(d * d), 0.0);
  for (const auto& Mt : M_of)
    for (std::size_t e = 0; e < M.size(); ++e) M[e] += Mt[e];
  // Normalised by n for the plain start; the private start leaves the sum unnormalised (n is
  // private, and the eigenvectors do not depend on the scale).
  const double inv_n = release ? 1.0 : (data_.n > 0 ? 1.0 / static_cast<double>(data_.n) : 0.0);
  for (std::int64_t a = 0; a < d; ++a)
    for (std::int64_t b = a; b < d; ++b) {
      const double value = M[static_cast<std::size_t>(a * d + b)] * inv_n;
      M[static_cast<std::size_t>(a * d + b)] = value;
      M[static_cast<std::size_t>(b * d + a)] = value;
    }
  return M;
}

template <typename T>
void CpuBackend<T>::export_task_parameters(Model& model) const {
  model.W = W_;
  model.B_index = B_index_;
  model.B_value = B_value_;
}

template <typename T>
void CpuBackend<T>::import_task_parameters(const Model& model) {
  if (model.W.size() != W_.size() || model.B_index.size() != B_index_.size() || model.B_value.size() != B_value_.size())
    throw Error("CPU backend: the task parameters have the wrong size");
  W_ = model.W;
  B_index_ = model.B_index;
  B_value_ = model.B_value;
}

template class CpuBackend<float>;
template class CpuBackend<double>;

}  // namespace lrsmeta::cpu

namespace lrsmeta::core {
template <typename T>
std::unique_ptr<Backend> make_cpu_backend(const TaskDataView<T>& data, const Options& options) {
  return std::make_unique<cpu::CpuBackend<T>>(data, options);
}
template std::unique_ptr<Backend> make_cpu_backend(const TaskDataView<float>&, const Options&);
template std::unique_ptr<Backend> make_cpu_backend(const TaskDataView<double>&, const Options&);

template <typename T>
MemoryPlan plan_cpu_memory(const TaskDataView<T>& data, const Options& o, bool validation_copy) {
  const double n = static_cast<double>(data.n), d = static_cast<double>(data.d), t = static_cast<double>(data.t);
  const double r = o.rank_candidates.empty() ? o.rank : *std::max_element(o.rank_candidates.begin(), o.rank_candidates.end());
  const double k = o.sparsity_candidates.empty() ? o.sparsity : *std::max_element(o.sparsity_candidates.begin(), o.sparsity_candidates.end());
  const bool prior = o.prior == Prior::automatic;
  const double r_aug = r + (prior ? 1 : 0);  // [beta, U] under the prior
  const double threads = o.threads > 0 ? o.threads : std::max(1, omp_get_max_threads());
  std::int64_t m_max = 0;
  for (std::int64_t i = 0; i < data.t; ++i) m_max = std::max(m_max, data.task_offsets[i + 1] - data.task_offsets[i]);
  const double elem = sizeof(T);
  MemoryPlan plan;
  plan.parts.push_back({"data", n * (d + 1) * elem + (t + 1) * 8});
  if (validation_copy) {
    // The rows of the tasks the choice is made on (all, or o.selection_tasks of them: their share
    // of the rows taken as their share of the tasks).
    const double share = o.selection_tasks > 0 && t > static_cast<double>(o.selection_tasks) ? static_cast<double>(o.selection_tasks) / t : 1.0;
    plan.parts.push_back({"validation split (a copy of the rows)", share * n * (d + 1) * elem + 2 * (share * t + 1) * 8});
  }
  plan.parts.push_back({"per-task state", t * (r * 8 + k * 12 + 8 + (prior ? r * (r + 1) / 2 * 8 + 40 : 0))});
  // Choosing r or k by evidence keeps the best candidate's (w, b) to continue it.
  if (prior && o.selection == Selection::evidence && (!o.rank_candidates.empty() || !o.sparsity_candidates.empty()))
    plan.parts.push_back({"the best candidate's (w, b)", t * (r * 8 + k * 12)});
  const double dr = d * r_aug;
  const bool cg = core::choose_u_solver(data.n, data.t, data.d, static_cast<int>(r), static_cast<int>(sizeof(T)), o, false).solver == USolver::cg;
  Options at_r = o;
  at_r.rank = static_cast<int>(r);
  if (core::u_step_solves_held_directions(at_r, data.d)) {
    // U held: the U step's system over beta and one or two directions comes from passes over the
    // tasks (core::held_directions_system), never G: the directions, their products and the
    // passes' per-thread sums.
    plan.parts.push_back({"the held directions' passes", (2 * threads + 8) * dr * 8 + 2 * (d + 2) * (d + 2) * 8});
  } else if (cg) {
    plan.parts.push_back({"cg vectors", (threads + 8) * dr * 8 + 2 * d * d * 8});
    const double start_values = 2 * dr + r_aug * r_aug;  // the task step's sums of cg's start
    plan.parts.push_back({"cg's start, per block of tasks",
                          static_cast<double>(cpu::u_start_blocks(data.t, static_cast<int>(threads), static_cast<std::int64_t>(start_values))) *
                              start_values * 8});
  } else {
    plan.parts.push_back({"G and its factor", 2 * dr * dr * 8});
    const double P = r_aug * (r_aug + 1) / 2, Q = d * (d + 1) / 2;
    const bool kept = !o.privacy.enabled && cpu::keeps_task_grams(data.n, data.t, data.d);
    plan.parts.push_back({"per-thread Gram scratch", threads * (P * Q * (8 + (sizeof(T) == 4 ? 4 : 0)) + cpu::kTasksPerChunk * (P + (kept ? 0 : Q)) * elem + dr * 8)});
    if (kept) plan.parts.push_back({"the tasks' Grams (kept for the U step)", t * Q * elem});
  }
  const double cols = cpu::max_joint_columns(static_cast<int>(r), static_cast<int>(k), static_cast<int>(d));
  plan.parts.push_back({"per-thread task-step scratch", threads * (static_cast<double>(m_max) * (2 * r + cols + 4) * 8 + 6 * cols * cols * 8 + 4 * d * 8)});
  return plan;
}
template MemoryPlan plan_cpu_memory(const TaskDataView<float>&, const Options&, bool);
template MemoryPlan plan_cpu_memory(const TaskDataView<double>&, const Options&, bool);

}  // namespace lrsmeta::core
