// The U step as the algorithm runs it (docs/design.md section 8): which solver (Options::u_solver),
// decided once per fit from the data's sizes, and the conjugate-gradient solver itself, which runs
// here on two passes any backend provides (Backend::accumulate_rhs, Backend::apply_normal_operator).
// The direct solve is the backend's: it forms G where the data lives.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/backend.hpp"
#include "lrsmeta/lrsmeta.hpp"

namespace lrsmeta::core {

// Unknowns above which the direct solve is refused (its G would be 3.2 GB at 20000).
constexpr std::int64_t kDirectUnknownsLimit = 20000;

struct USolverChoice {
  USolver solver = USolver::direct;
  std::string why;  // for auto: one sentence, with the cost model's numbers
};

// For a fit of rank r on n rows, t tasks, d features of value_bytes bytes each: the solver asked
// for, or for auto the cheaper by a cost model (flops of forming G from every task's X_i^T X_i and
// factoring it, against the passes over the data cg is expected to make, fewer with cg_forcing,
// each costing its flops or, where more, ten per byte of X read, as measured when r' is small), never direct
// where G would not fit in half the memory available or above kDirectUnknownsLimit unknowns; direct
// for private training, and on the GPU below kDirectUnknownsLimit unknowns.
USolverChoice choose_u_solver(std::int64_t n, std::int64_t t, std::int64_t d, int r, int value_bytes, const Options& options,
                              bool on_gpu);

// G and v on the host (G column-major n x n), as DirectSystem (core/backend.hpp): the factor goes
// to a copy of G, which stays as it was.
class HostDirectSystem final : public DirectSystem {
 public:
  HostDirectSystem(std::vector<double>& G, std::vector<double>& v);
  int unknowns() const override { return static_cast<int>(v_.size()); }
  double largest_abs_diagonal() override;
  void add_noise(double sigma_G, double sigma_v, GaussianNoise& noise) override;
  void add_to_diagonal(int first, int count, double value) override;
  bool factor(double shift) override;
  std::vector<double> solve(const std::vector<double>* anchor, double weight) override;
  std::vector<double>& factor_matrix() { return factor_; }

 private:
  std::vector<double>& G_;
  std::vector<double>& v_;
  std::vector<double> factor_;
};

// The direct solve's policy: (G + shift I) x = v by Cholesky, where G is singular (too few tasks or
// samples for the unknowns) with a growing jitter relative to G's largest diagonal entry, pulling
// towards `anchor` (same layout as x) when given, towards 0 otherwise.
std::vector<double> solve_direct(DirectSystem& system, double shift, const std::vector<double>* anchor);

// Solve (G + shift I) x = v by Cholesky (G column-major n x n, overwritten by its factor); returns
// x. Where G is singular (too few tasks or samples for the unknowns) a growing jitter relative to
// G's largest diagonal entry keeps the factorisation defined, pulling towards `anchor` (same
// layout as x) when given, towards 0 otherwise.
std::vector<double> solve_normal_equations(std::vector<double>& G, std::vector<double> v, double shift,
                                           const std::vector<double>* anchor = nullptr);

// U held (LowRankBasis intercept or slopes): U~ is restricted to a few directions (column-major
// d x r each), whose weights the U step solves for with beta: U~ = sum_j alpha_j D_j, and then
// U~ = U R with R = sum_j alpha_j M_j. That keeps U (up to its columns' signs) and lets R rescale
// Sigma within its structure: parameter-expanded EM (Liu, Rubin and Wu, Biometrika 85, 1998), which
// converges in far fewer iterations than holding U~ = U. intercept: D = U (r = 1); slopes: D =
// U P and U (I - P), P = u u^T with u = U^T e_axis, the constant feature's direction in w's
// coordinates.
std::vector<std::vector<double>> held_directions(const std::vector<double>& U, int d, int r, LowRankBasis basis, std::int64_t axis);
// Whether the direct U step solves for beta and held_directions' weights rather than all of U~:
// under the prior, where U is held (LowRankBasis intercept or slopes), and where U is learned at
// full rank (r = d) with Sigma isotropic (shrinkage kIsotropicShrinkage or more). U's span is then
// everything and Sigma is one variance: a rotation of U changes nothing, and only U's scale (that
// variance) is left to solve for: d + 1 unknowns to factor instead of d (d + 1). (Not with Sigma's
// full covariance: solving for all of U~ = U R there is parameter-expanded EM with a full R; with
// U's scale alone the noisy benchmark's full-rank model was still 280 nats short of it after 100
// iterations.)
bool u_step_solves_held_directions(const Options& options, std::int64_t d);
// The U step's system G x = v over [beta, U] restricted to [beta, the directions' weights]:
// B^T G B y = B^T v, B = [I 0; 0 D] (into G, column-major (d + m) x (d + m) for m directions, and
// v), without forming G (d r' x d r'): its beta block is the data's X^T X (XtX, d x d, from
// Backend::data_moments), and the rest is G [0; D_j], one pass over the tasks per direction (the
// first with v). On the noisy benchmark's isotropic full-rank model (d = 30) forming G took 13 ms
// a U step; a pass about 3. Collective where the backend's sums are.
void held_directions_system(Backend& backend, const std::vector<double>& XtX, int d,
                            const std::vector<std::vector<double>>& directions, std::vector<double>& G, std::vector<double>& v);

// One fit's U steps on one backend, by the solver in options.u_solver (direct or cg; auto already
// resolved by choose_u_solver), over the communicator's processes (the backend's sums are over all
// of them: core/distributed_backend.hpp; rank 0 solves and takes cg's decisions, and every process
// gets rank 0's solution). Unknowns are column-major d x r' ([beta,] U~; r' = r + 1 under the
// prior, beta's block first).
class UStep {
 public:
  UStep(Backend& backend, const Options& options, Communicator& communicator);
  // One U step with the prior in effect (null: none) or, for private training, a release (its noise
  // drawn on rank 0 only). Returns ||(I - U_old U_old^T) U_new||_F.
  double run(const PrivateRelease* release, const PriorState* prior);
  // Whether this fit's U steps start from what the task step computes
  // (Backend::task_step_all_with_u_start): cg, with unknowns to solve for.
  bool starts_in_task_step(const PriorState* prior) const;
  // The request for that: x0, the warm start every process uses (rank 0's [beta,] U).
  UStepStart start_request(const PriorState* prior);
  // The rest of a cg U step, from a start filled in by the backend (summed over the processes).
  double run_from_start(UStepStart start, const PriorState* prior);
  // What the last run's solver did (zeros for a direct solve).
  SolverReport last() const { return last_; }
  // After a U step with the prior: beta (d), and R (r x r, row-major) of U~ = U R.
  const std::vector<double>& beta() const { return beta_; }
  const std::vector<double>& last_R() const { return R_; }
  // The constant feature, whose axis LowRankBasis::slopes keeps apart.
  void set_held_axis(std::int64_t axis) { held_axis_ = axis; }

  // (G + lambda I) x, plus the beta prior's precision on beta's block, for rank 0's x on every
  // process: the backend's pass and what the model adds to it.
  void apply(std::vector<double> x, std::vector<double>& y, const PriorState* prior);
  // What the model adds to the backend's G x: the ridge, and beta's precision under the prior.
  void add_model_terms(const std::vector<double>& x, std::vector<double>& y, const PriorState* prior) const;
  // Preconditioned conjugate gradients from x (the warm start, overwritten by the solution: rank
  // 0's, on every process) on (G + lambda I) x = v, stopped at relative residual
  // options.cg_tolerance, or at options.cg_forcing times the warm start's, or after
  // options.cg_max_steps steps. The preconditioner is
  // (W_hat kron C + lambda I)^-1, C = X^T X / n: exact where every task's X_i^T X_i is m_i C.
  // start_residual, where given, is the warm start's residual v - A x (A as apply gives it)
  // computed already from an x that every process holds.
  SolverReport solve_cg(const std::vector<double>& v, const std::vector<double>& W_hat, std::vector<double>& x,
                        const PriorState* prior, const std::vector<double>* start_residual = nullptr);

 private:
  double direct(const PrivateRelease* release, const PriorState* prior);
  std::vector<double> current_solution(const PriorState* prior) const;  // [beta,] U, column-major
  // From a solution [beta,] U~: beta and, under the prior, R; U <- U~'s Q factor. Returns
  // ||(I - U_old U_old^T) U_new||_F.
  double take_solution(std::vector<double> solution, const PriorState* prior);

  Backend& backend_;
  Options options_;
  Communicator& comm_;
  std::vector<double> C_vectors_, C_values_;  // C's eigendecomposition, on the first cg solve
  std::vector<double> XtX_;                     // the data's X^T X, on the first U step that holds U
  SolverReport last_;
  std::vector<double> beta_, R_;
  std::int64_t held_axis_ = -1;
};

// One direct U step in this process alone (tests and benchmarks).
double direct_U_step(Backend& backend, const Options& options, const PrivateRelease* release = nullptr,
                     const PriorState* prior = nullptr);

}  // namespace lrsmeta::core
