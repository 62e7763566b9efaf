// The seam between the algorithm (host/core/fit_loop.cpp, which knows nothing of hardware) and the
// backends that run its heavy steps: the reference CPU path (host/cpu) and the CUDA path (kernels/
// with its host side). A backend owns the data as it needs it, the current U and every task's
// (w, b); U stays inside the backend between iterations so that a device backend never copies it
// back to the host inside the loop.
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/module_api.hpp"
#include "core/noise.hpp"
#include "core/task_step_rules.hpp"
#include "lrsmeta/lrsmeta.hpp"

namespace lrsmeta::core {

struct TaskStepTotals {
  double sse = 0.0;         // sum of squared residuals over all rows
  std::int64_t rows = 0;
  // With a prior only: sum over every task of E[w_i w_i^T] = w_i w_i^T + V_i (r x r, row-major; a task
  // with no rows adds Sigma), and of the tasks' effective numbers of parameters.
  std::vector<double> w_second_moment;
  std::vector<double> w_sum;  // r: sum over every task of w_i
  double effective_params = 0.0;
  double effective_params_b = 0.0;  // the part of it on the b's
  // The model's log marginal likelihood, sum_i log p(y_i | U, beta, Sigma, s2, tau2, S_i), and the
  // sums of tau2's EM update: E[b_q^2] over every task's support, and how many non-zeros there are.
  double log_evidence = 0.0;
  double b_square_sum = 0.0;
  std::int64_t b_count = 0;
};

// The empirical-Bayes prior (docs/design.md section 6) handed to the task steps; the core estimates it.
struct PriorState {
  std::vector<double> beta;         // d: the population model
  std::vector<double> Sigma;        // r x r, row-major: covariance of w_i
  double b_precision = 0.0;         // s2 / tau2
  double noise_variance = 0.0;      // s2
  double support_threshold = 0.0;   // b_q kept where b_q^2 > c Var(b_q | data) (0: always)
  double beta_variance = 0.0;       // prior variance of beta's entries (0: no prior on beta)
  double beta_precision = 0.0;      // s2 / beta_variance: added to beta's block of the U step
  double covariance_shrinkage = 0.0;  // f: each M-step shrinks Sigma towards isotropic
  // pi: each feature is in a task's support with this probability, independently (the prior over
  // supports, so that a task choosing among many supports pays for the choice: 2 log((1 - pi) / pi)
  // per non-zero in -2 log evidence). 0: no prior over supports.
  double inclusion_probability = 0.0;
  // The task steps return each non-zero of b times its posterior inclusion probability (the
  // prediction averaged over the supports enumerated): the model's final step under
  // Selection::evidence. false: the posterior mode given the chosen support (the EM steps).
  bool average_supports = false;
};

// The prior as every task step of a fit sees it (core/task_step_rules.hpp), with sparsity k in effect:
// its scalars and the prior over supports' logs; beta, v's prior precision and covariance where the
// backend keeps them (host or device memory).
inline TaskPrior task_prior_of(const PriorState& prior, int d, int k, const double* beta, const double* w_precision,
                               const double* w_covariance) {
  TaskPrior p;
  p.beta = beta;
  p.w_precision = w_precision;
  p.w_covariance = w_covariance;
  p.b_precision = prior.b_precision;
  p.noise_variance = prior.noise_variance;
  p.support_threshold = prior.support_threshold;
  p.average_supports = prior.average_supports;
  if (prior.inclusion_probability > 0 && prior.inclusion_probability < 1) {
    p.log_inclusion = std::log(prior.inclusion_probability);
    p.log_exclusion = std::log1p(-prior.inclusion_probability);
    p.log_support_mass = detail::support_prior_log_mass(d, k, p.log_inclusion, p.log_exclusion);
  }
  return p;
}

// The cg U step's start asked of a task step: x0, the warm start ([beta,] U, column-major, as the
// U step's unknowns), in; v, W_hat and the warm start's residual v - G x0 (as
// accumulate_rhs_and_apply would give them) for the (w, b) that task step produces, out.
struct UStepStart {
  std::vector<double> x0;
  std::vector<double> v, W_hat, residual;
};

// What the last U step's iterative solver did (cg; zeros for a direct solve).
struct SolverReport {
  int steps = 0;
  double residual = 0.0;  // ||v - A x|| / ||v|| when it stopped
};

// Sums over all rows: X^T X (d x d, row-major, full), X^T y (d), y^T y, and the row count.
struct DataMoments {
  std::vector<double> XtX, Xty;
  double yty = 0.0;
  std::int64_t rows = 0;
};

// The direct U step's system, G x = v, where it was formed: the core's solve policy (the release's
// noise, beta's precision, the ridge, and the jitter with its anchor: core/u_solver.cpp,
// solve_direct) runs on it through these operations, so that a backend whose memory is not the
// host's factors G where it is and only the solution comes back.
class LRSMETA_MODULE_API DirectSystem {
 public:
  virtual ~DirectSystem() = default;
  virtual int unknowns() const = 0;
  // max_i |G_ii| (a noisy G, under privacy, can have negative diagonal entries).
  virtual double largest_abs_diagonal() = 0;
  // G += sigma_G N (N symmetric, its upper triangle i.i.d. standard normal) and v += sigma_v n, drawn
  // from `noise` in the order core::add_symmetric_noise and core::add_noise draw them.
  virtual void add_noise(double sigma_G, double sigma_v, GaussianNoise& noise) = 0;
  // G_ii += value for i in [first, first + count).
  virtual void add_to_diagonal(int first, int count, double value) = 0;
  // The Cholesky factor of G + shift I; false where that is not positive definite.
  virtual bool factor(double shift) = 0;
  // After factor: x = (G + shift I)^-1 (v + weight anchor) (anchor null: v).
  virtual std::vector<double> solve(const std::vector<double>* anchor, double weight) = 0;
};

class LRSMETA_MODULE_API Backend {
 public:
  virtual ~Backend() = default;

  // U: d x r row-major with orthonormal columns.
  virtual void set_U(const std::vector<double>& U) = 0;
  virtual std::vector<double> get_U() const = 0;

  // Every task's (w, b) <- task_step(U, X_i, y_i, b_i) with sparsity k_in_effect (0: b = 0).
  virtual TaskStepTotals task_step_all(int k_in_effect) = 0;
  // task_step_all, and the cg U step's start for the (w, b) it produces (start.x0 given: the U the
  // task steps use, with beta first under the prior). A backend that can adds each task's share of
  // v, W_hat and the residual as that task's step ends, while its rows are still in cache, rather
  // than read the data again (and where x0 is that U, the residual is X_i^T e_i w_i^T from the task's
  // own residual e_i); this default runs the two passes one after the other.
  virtual TaskStepTotals task_step_all_with_u_start(int k_in_effect, UStepStart& start) {
    TaskStepTotals totals = task_step_all(k_in_effect);
    u_step_start(start);
    return totals;
  }
  // The start by itself, after the task step: accumulate_rhs_and_apply(x0), then v - G x0 (checked
  // for size).
  void u_step_start(UStepStart& start);

  // The U step's pieces (host/core/u_solver.hpp runs them). Unknowns are column-major d x r'
  // ([beta,] U~, vec(U~)[a + d p] = U~[a, p]; r' = r + 1 under a prior, beta's block first).
  //
  // The direct solve's sums, into host memory: G = sum_i E[w'_i w'_i^T] kron X_i^T X_i (d r' x d r',
  // column-major, full) and v = sum_i w'_i kron X_i^T (y_i - X_i b_i), from every task's current
  // (w, b). With `bounds`, each task's contribution is bounded before it is summed (the private
  // release's sensitivity).
  virtual void accumulate_normal_equations(std::vector<double>& G, std::vector<double>& v,
                                           const PrivacyOptions* bounds = nullptr) = 0;
  // A backend whose memory is not the host's may form G and v where it is (one process only) and
  // hand the core that system to solve (bounded as accumulate_normal_equations bounds it); null
  // where it cannot (the core then solves accumulate_normal_equations' G and v on the host).
  virtual DirectSystem* direct_system_in_place(const PrivacyOptions* /*bounds*/) { return nullptr; }
  // For cg, one pass over the tasks: v (d r') and W_hat = sum_i m_i E[w'_i w'_i^T] (r' x r',
  // row-major), the preconditioner's task side.
  virtual void accumulate_rhs(std::vector<double>& v, std::vector<double>& W_hat) = 0;
  // For cg, one pass over the tasks: y = G x, G = sum_i E[w'_i w'_i^T] kron X_i^T X_i (no ridge,
  // no prior on beta: the core adds what the model adds).
  virtual void apply_normal_operator(const std::vector<double>& x, std::vector<double>& y) = 0;
  // accumulate_rhs and apply_normal_operator(x0) at once (the cg step's start: v, W_hat and the warm
  // start's product): a backend that can reads the data once for both; this default runs the two.
  virtual void accumulate_rhs_and_apply(const std::vector<double>& x0, std::vector<double>& v, std::vector<double>& W_hat,
                                        std::vector<double>& G_x0) {
    accumulate_rhs(v, W_hat);
    apply_normal_operator(x0, G_x0);
  }
  // The U step's factorisation: U <- the Q factor of U~ (d x r, column-major, as the U step's
  // unknowns after beta's block); with R, also R = Q^T U~ (r x r, row-major: U~ = U R). Returns
  // ||(I - U_old U_old^T) U_new||_F. (With r = 0: nothing to do, 0, R left as it was.)
  virtual double orthonormalise_U(const std::vector<double>& U_tilde, std::vector<double>* R) = 0;

  // (1/n) sum_j y_j^2 x_j x_j^T, d x d (for the spectral initialisation). With `release`: the sum
  // over each task's first m_max rows, clipped (rows to C_x, y to C_y), unnormalised (n is private),
  // noise not yet added.
  virtual std::vector<double> spectral_moment(const PrivateRelease* release = nullptr) = 0;

  // Copy every task's (w, b) into model.W, model.B_index, model.B_value (sized by the caller).
  virtual void export_task_parameters(Model& model) const = 0;
  // The reverse: every task's (w, b) from model.W, model.B_index, model.B_value.
  virtual void import_task_parameters(const Model& model) = 0;

  // The prior of the following task steps (null: none, the paper's AMHT-LRS). With a prior the task
  // steps also return V_i and the U step solves for [beta, U~] jointly, with E[w w^T] = w w^T + V_i in
  // G: G = sum_i E[w'_i w'_i^T] kron X_i^T X_i, w'_i = (1, w_i), v = sum_i w'_i kron X_i^T (y_i - X_i b_i).
  virtual void set_prior(const PriorState* prior) = 0;

  virtual DataMoments data_moments() = 0;

  // Over many processes (core/distributed_backend.hpp): whether this backend can sum its U-step sums
  // (G and v, cg's products and right-hand side) over the processes where they are, without the
  // host (the CUDA backend with NCCL); when every process's can, each is handed the processes once
  // (a collective call) and from then on returns those sums already summed over them.
  virtual bool can_sum_in_place() const { return false; }
  virtual void sum_in_place_over(Communicator& processes);

};

// What a fit will hold in memory, by part, in bytes, estimated before any work (the CPU backend's
// plan: cpu/cpu_backend.hpp).
struct MemoryPlan {
  std::vector<std::pair<std::string, double>> parts;
  double total() const;
  std::string describe() const;  // "data 1.6 GB, per-task state 0.2 GB, ..."
};

// The memory this process may use, in bytes: the cgroup's limit where there is one (v2 memory.max,
// v1 memory.limit_in_bytes), else physical memory; the environment variable LRSMETA_MEMORY_LIMIT
// (bytes) overrides both (for tests and for users who share a machine; anything but a positive
// number there is an error). Sets *source to where the number came from.
double available_memory_bytes(std::string* source);

// The backends, from host/backends/registry.cpp, the one file that knows which exist. The backend
// of device_for(options) (lrsmeta.hpp): the CPU's, or the CUDA module's (loaded on first use).
template <typename T>
std::unique_ptr<Backend> make_backend(const TaskDataView<T>& data, const Options& options);
// The host memory a fit on device_for(options) plans to hold: the CPU backend's plan, with (where
// r, k or the priors are chosen on validation rows) the copy of the rows split for validation;
// empty on the GPU (whose allocations that fail are errors naming the call).
template <typename T>
MemoryPlan plan_host_memory(const TaskDataView<T>& data, const Options& options, bool validation_copy);

}  // namespace lrsmeta::core
