#include "core/u_solver.hpp"

#include <algorithm>
#include <optional>
#include <cmath>
#include <cstdio>

#include "core/communicator.hpp"
#include "core/noise.hpp"
#include "core/prior.hpp"
#include "lrsmeta/io.hpp"
#include "linalg/blas_lapack.hpp"

namespace lrsmeta::core {

namespace {
// Passes over the data a cg U step makes (its start, then one a step), for the cost model: with
// the forcing term 1 to 3 steps were measured per U step, solved to 1e-10 10 to 22
// (docs/benchmarks.md).
double cg_passes_estimate(const Options& o) { return 1.0 + (o.cg_forcing > 0 ? 3.0 : 15.0); }
}  // namespace

USolverChoice choose_u_solver(std::int64_t n, std::int64_t t, std::int64_t d, int r, int value_bytes, const Options& o, bool on_gpu) {
  USolverChoice choice;
  if (o.u_solver != USolver::automatic) {
    choice.solver = o.u_solver;
    return choice;
  }
  const bool prior = o.prior == Prior::automatic && !o.privacy.enabled;
  const double rr = static_cast<double>(r + (prior ? 1 : 0)), dd = static_cast<double>(d), unknowns = dd * rr;
  if (o.privacy.enabled) {
    choice.why = "direct (private training: its noise goes on G)";
    return choice;
  }
  if (o.low_rank_basis == LowRankBasis::intercept || o.low_rank_basis == LowRankBasis::slopes) {
    choice.why = "direct (U held: beta's d unknowns and U's scale are solved for)";
    return choice;
  }
  if (u_step_solves_held_directions(o, d)) {
    choice.why = "direct (r = d with Sigma isotropic: only beta's d unknowns and U's scale are solved for)";
    return choice;
  }
  if (rr == 0) return choice;
  char text[300];
  if (unknowns > static_cast<double>(kDirectUnknownsLimit)) {
    std::snprintf(text, sizeof text, "cg (%.0f unknowns: above the %lld a direct solve takes)", unknowns,
                  static_cast<long long>(kDirectUnknownsLimit));
    choice.solver = USolver::cg;
    choice.why = text;
    return choice;
  }
  if (on_gpu) {
    // Below the limit, the GPU forms G with one GEMM per chunk near its peak and factors it in
    // well under a second; cg's passes are not yet tuned there (no measurement on hardware yet).
    choice.why = "direct (the GPU, below the direct solve's limit)";
    return choice;
  }
  std::string source;
  const double g_bytes = 2.0 * unknowns * unknowns * 8.0, available = available_memory_bytes(&source);
  if (g_bytes > available / 2) {
    std::snprintf(text, sizeof text, "cg (a direct solve's G would need %s, more than half of the %s of %s)",
                  format_bytes(g_bytes).c_str(), format_bytes(available).c_str(), source.c_str());
    choice.solver = USolver::cg;
    choice.why = text;
    return choice;
  }
  const double P = rr * (rr + 1) / 2, Q = dd * (dd + 1) / 2;
  // Forming G (each task's packed X_i^T X_i, then one GEMM of the packed w w^T and X^T X per chunk
  // of tasks) and factoring it ran at 26 to 32 Gflop/s on the 2-core development machine (noisy
  // benchmark data at r = 8 and r = 30, MovieLens at r = 22: 2.5, 25 and 5.5 ms a U step; dpotrf
  // of n = 930 alone 35 Gflop/s), not at the 1e11 of the large GEMM cg's passes are counted in
  // below: its flops count three times.
  const double direct = 3.0 * (static_cast<double>(n) * dd * (dd + 1) + static_cast<double>(t) * 2.0 * P * Q +
                               unknowns * unknowns * unknowns / 3.0);
  // One operator pass: with the prior X_i M and X_i^T (.) per task (4 n d r'); without, E_i is rank
  // one and a pass is two matrix-vector products per task (4 n d) plus the w's (4 t d r).
  const double flops = prior ? 4.0 * static_cast<double>(n) * dd * rr : 4.0 * static_cast<double>(n) * dd + 4.0 * static_cast<double>(t) * dd * rr;
  // Measured on the 2-core development machine (docs/benchmarks.md), against G's GEMM at about 1e11
  // flops/s: a pass without the prior at d = 100 (2.4e8 flops, 160 MB of float32 X) took about
  // 15 ms (11 to 12 ms once its products on float data ran in float), the time of 1.1e9
  // to 1.5e9 flops of GEMM (its short products run far below GEMM's rate, and it waits on X's
  // memory; the ten flops a byte stand for that); with the prior (r' = 11: 1.8e9 flops) about 85 ms
  // with per-row products, 30 ms with two small GEMMs a task: 3e9, hence the
  // factor 2. Since the start runs inside the task step (without the prior it is one product a
  // task there), the pass counted for it is an overestimate: near the break-even point the model
  // leans towards direct.
  const double bytes = static_cast<double>(n) * dd * static_cast<double>(value_bytes);
  const double passes = cg_passes_estimate(o);
  const double cg = passes * std::max(flops * (prior ? 2.0 : 1.0), 10.0 * bytes);
  choice.solver = cg < direct ? USolver::cg : USolver::direct;
  std::snprintf(text, sizeof text, "%s (cost model, in flops at a large GEMM's rate: about %.2g per U step to form and factor G, %.2g for %.0f cg passes)",
                cg < direct ? "cg" : "direct", direct, cg, passes);
  choice.why = text;
  return choice;
}

HostDirectSystem::HostDirectSystem(std::vector<double>& G, std::vector<double>& v) : G_(G), v_(v) {
  if (G_.size() != v_.size() * v_.size()) throw Error("U update: G and v have inconsistent sizes");
}

double HostDirectSystem::largest_abs_diagonal() {
  const int n = unknowns();
  double scale = 0;
  for (int i = 0; i < n; ++i) scale = std::max(scale, std::fabs(G_[static_cast<std::size_t>(i) * n + i]));
  return scale;
}

void HostDirectSystem::add_noise(double sigma_G, double sigma_v, GaussianNoise& noise) {
  core::add_symmetric_noise(G_.data(), unknowns(), sigma_G, noise);
  core::add_noise(v_.data(), unknowns(), sigma_v, noise);
}

void HostDirectSystem::add_to_diagonal(int first, int count, double value) {
  const std::size_t n = v_.size();
  for (int a = first; a < first + count; ++a) G_[static_cast<std::size_t>(a) * n + static_cast<std::size_t>(a)] += value;
}

bool HostDirectSystem::factor(double shift) {
  const int n = unknowns();
  factor_ = G_;
  for (int i = 0; i < n; ++i) factor_[static_cast<std::size_t>(i) * n + i] += shift;
  return linalg::potrf_lower(n, factor_.data()) == 0;
}

std::vector<double> HostDirectSystem::solve(const std::vector<double>* anchor, double weight) {
  const int n = unknowns();
  std::vector<double> x = v_;
  if (anchor)
    for (int i = 0; i < n; ++i) x[static_cast<std::size_t>(i)] += weight * (*anchor)[static_cast<std::size_t>(i)];
  linalg::potrs_lower(n, factor_.data(), x.data());
  return x;
}

std::vector<double> solve_direct(DirectSystem& system, double shift, const std::vector<double>* anchor) {
  // Scale of G for the jitter.
  const double scale = system.largest_abs_diagonal();
  if (!std::isfinite(scale)) throw Error("U update: the normal equations are not finite");
  // The ridge first; where G is singular a growing jitter relative to G's scale keeps the Cholesky
  // well-posed.
  double jitter = 0.0;
  for (int attempt = 0; attempt < 10; ++attempt) {
    if (system.factor(shift + jitter)) return system.solve(anchor && jitter > 0 ? anchor : nullptr, jitter);
    jitter = jitter > 0 ? jitter * 100 : std::max(scale, 1e-300) * 1e-12;
  }
  throw Error("U update: the dr x dr system is not positive definite even with a ridge");
}

std::vector<double> solve_normal_equations(std::vector<double>& G, std::vector<double> v, double shift,
                                           const std::vector<double>* anchor) {
  HostDirectSystem system(G, v);
  std::vector<double> x = solve_direct(system, shift, anchor);
  G = std::move(system.factor_matrix());
  return x;
}

void Backend::u_step_start(UStepStart& start) {
  std::vector<double> G_x0;
  accumulate_rhs_and_apply(start.x0, start.v, start.W_hat, G_x0);
  if (G_x0.size() != start.v.size())
    throw Error("U update (cg): v has " + std::to_string(start.v.size()) + " entries, the warm start's product " + std::to_string(G_x0.size()));
  start.residual = start.v;
  for (std::size_t e = 0; e < G_x0.size(); ++e) start.residual[e] -= G_x0[e];
}

void Backend::sum_in_place_over(Communicator&) { throw Error("this backend sums nothing over processes itself"); }


double UStep::take_solution(std::vector<double> solution, const PriorState* prior) {
  if (!prior) return backend_.orthonormalise_U(solution, nullptr);
  const std::size_t d = prior->beta.size();
  if (solution.size() < d) throw Error("U update: the solution has no beta block");
  beta_.assign(solution.begin(), solution.begin() + static_cast<std::ptrdiff_t>(d));
  solution.erase(solution.begin(), solution.begin() + static_cast<std::ptrdiff_t>(d));
  return backend_.orthonormalise_U(solution, &R_);
}

bool u_step_solves_held_directions(const Options& options, std::int64_t d) {
  if (options.prior != Prior::automatic || options.privacy.enabled) return false;
  if (options.low_rank_basis == LowRankBasis::intercept || options.low_rank_basis == LowRankBasis::slopes) return true;
  return options.rank > 0 && options.rank == d && options.covariance_shrinkage >= kIsotropicShrinkage;
}

std::vector<std::vector<double>> held_directions(const std::vector<double>& U, int d, int r, LowRankBasis basis, std::int64_t axis) {
  // U (d x r, row-major) times M (r x r, row-major), column-major as the solution holds U~.
  auto times = [&](const std::vector<double>& M) {
    std::vector<double> out(static_cast<std::size_t>(d) * r, 0.0);
    for (int a = 0; a < d; ++a)
      for (int p = 0; p < r; ++p)
        for (int q = 0; q < r; ++q)
          out[static_cast<std::size_t>(p) * d + a] += U[static_cast<std::size_t>(a) * r + q] * M[static_cast<std::size_t>(q) * r + p];
    return out;
  };
  std::vector<double> identity(static_cast<std::size_t>(r) * r, 0.0), apart(identity.size(), 0.0);
  for (int q = 0; q < r; ++q) identity[static_cast<std::size_t>(q) * r + q] = 1.0;
  if (basis != LowRankBasis::slopes) return {times(identity)};
  if (axis < 0 || axis >= d) throw Error("U update: no constant feature to hold the intercept's direction at");
  // P = u u^T, u = U^T e_axis (U's row): the constant feature's direction in w's coordinates.
  for (int p = 0; p < r; ++p)
    for (int q = 0; q < r; ++q)
      apart[static_cast<std::size_t>(p) * r + q] = U[static_cast<std::size_t>(axis) * r + p] * U[static_cast<std::size_t>(axis) * r + q];
  std::vector<double> rest = identity;
  for (std::size_t e = 0; e < rest.size(); ++e) rest[e] -= apart[e];
  return {times(apart), times(rest)};
}

void held_directions_system(Backend& backend, const std::vector<double>& XtX, int d,
                            const std::vector<std::vector<double>>& directions, std::vector<double>& G, std::vector<double>& v) {
  const std::size_t dd = static_cast<std::size_t>(d), m = directions.size(), reduced = dd + m;
  if (XtX.size() != dd * dd) throw Error("U update: the data's X^T X has the wrong size");
  if (m == 0) throw Error("U update: no held direction to solve for");
  const std::size_t block = directions.front().size();
  for (const std::vector<double>& D : directions)
    if (D.size() != block || block % dd != 0) throw Error("U update: a held direction does not match U's block");
  // G B e_j for each direction j, and v (with the first pass).
  std::vector<std::vector<double>> products(m);
  std::vector<double> full_v, W_hat, x(dd + block, 0.0);
  for (std::size_t j = 0; j < m; ++j) {
    std::copy(directions[j].begin(), directions[j].end(), x.begin() + static_cast<std::ptrdiff_t>(dd));
    if (j == 0) backend.accumulate_rhs_and_apply(x, full_v, W_hat, products[j]);
    else backend.apply_normal_operator(x, products[j]);
    if (products[j].size() != x.size() || (j == 0 && full_v.size() != x.size()))
      throw Error("U update: the backend's product over the held directions has the wrong size");
  }
  auto project = [&](const std::vector<double>& full, std::size_t j) {  // D_j^T (full's U block)
    const std::vector<double>& D = directions[j];
    double s = 0.0;
    for (std::size_t c = 0; c < block; ++c) s += D[c] * full[dd + c];
    return s;
  };
  G.assign(reduced * reduced, 0.0);
  for (std::size_t a = 0; a < dd; ++a)
    for (std::size_t b = 0; b < dd; ++b) G[b * reduced + a] = XtX[a * dd + b];
  for (std::size_t j = 0; j < m; ++j) {
    for (std::size_t a = 0; a < dd; ++a) G[(dd + j) * reduced + a] = G[a * reduced + dd + j] = products[j][a];
    for (std::size_t l = 0; l <= j; ++l) {  // exactly symmetric
      const double entry = 0.5 * (project(products[j], l) + project(products[l], j));
      G[(dd + j) * reduced + dd + l] = G[(dd + l) * reduced + dd + j] = entry;
    }
  }
  v.assign(reduced, 0.0);
  for (std::size_t a = 0; a < dd; ++a) v[a] = full_v[a];
  for (std::size_t j = 0; j < m; ++j) v[dd + j] = project(full_v, j);
}

UStep::UStep(Backend& backend, const Options& options, Communicator& communicator)
    : backend_(backend), options_(options), comm_(communicator) {
  if (options_.u_solver == USolver::automatic) throw Error("U step: the solver must be resolved (direct or cg) before the fit");
}

std::vector<double> UStep::current_solution(const PriorState* prior) const {
  std::vector<double> x;
  if (prior) x.assign(prior->beta.begin(), prior->beta.end());
  const std::vector<double> U = backend_.get_U();  // d x r, row-major
  const std::size_t r = static_cast<std::size_t>(options_.rank), d = r > 0 ? U.size() / r : 0;
  for (std::size_t p = 0; p < r; ++p)
    for (std::size_t a = 0; a < d; ++a) x.push_back(U[a * r + p]);
  return x;
}

double UStep::run(const PrivateRelease* release, const PriorState* prior) {
  last_ = {};
  if (options_.rank == 0 && !prior) return 0.0;
  if (options_.u_solver != USolver::cg) return direct(release, prior);
  if (release) throw Error("U update: private training solves directly (its noise goes on G): use --u-solver direct or auto");
  UStepStart start = start_request(prior);
  backend_.u_step_start(start);
  return run_from_start(std::move(start), prior);
}

bool UStep::starts_in_task_step(const PriorState* prior) const {
  return options_.u_solver == USolver::cg && (options_.rank > 0 || prior);
}

// Warm start: the current [beta,] U (column-major), which the task step's w were fitted to. A
// direction G does not determine keeps it (as the direct solve's anchor does).
UStepStart UStep::start_request(const PriorState* prior) {
  UStepStart start;
  start.x0 = current_solution(prior);
  broadcast(comm_, start.x0);
  return start;
}

double UStep::run_from_start(UStepStart start, const PriorState* prior) {
  last_ = {};
  std::vector<double>& x = start.x0;
  if (x.size() != start.v.size() || start.residual.size() != start.v.size())
    throw Error("U update (cg): the warm start has " + std::to_string(x.size()) + " entries, v " + std::to_string(start.v.size()) +
                ", its residual " + std::to_string(start.residual.size()));
  std::vector<double> model_terms(x.size(), 0.0);  // the ridge and beta's precision: (G + these) x0
  add_model_terms(x, model_terms, prior);
  for (std::size_t e = 0; e < x.size(); ++e) start.residual[e] -= model_terms[e];
  last_ = solve_cg(start.v, start.W_hat, x, prior, &start.residual);
  return take_solution(std::move(x), prior);
}

// G and v (summed over the processes by the backend: core/distributed_backend.hpp); rank 0 adds the release's noise (drawn once), the ridges and
// beta's precision, and solves; every process takes rank 0's solution.
double UStep::direct(const PrivateRelease* release, const PriorState* prior) {
  const PrivacyOptions* bounds = release ? &release->bounds : nullptr;
  // One process: the system where the backend formed it, if it can; else G and v on the host.
  // U held (LowRankBasis intercept or slopes, or learned at r = d with Sigma isotropic): U~ only
  // within the held directions, the system restricted to them on the host.
  const bool holds_u = prior && !release && u_step_solves_held_directions(options_, static_cast<std::int64_t>(prior->beta.size()));
  DirectSystem* in_place = comm_.size() == 1 && !holds_u ? backend_.direct_system_in_place(bounds) : nullptr;
  std::vector<double> G, v;
  std::size_t full_size = 0;
  std::vector<std::vector<double>> directions;
  if (holds_u) {  // every process takes part in the passes
    const int d = static_cast<int>(prior->beta.size());
    if (XtX_.empty()) XtX_ = backend_.data_moments().XtX;
    directions = held_directions(backend_.get_U(), d, options_.rank, options_.low_rank_basis, held_axis_);
    held_directions_system(backend_, XtX_, d, directions, G, v);
    full_size = static_cast<std::size_t>(d) * static_cast<std::size_t>(options_.rank + 1);
  } else if (!in_place) {
    backend_.accumulate_normal_equations(G, v, bounds);
    full_size = v.size();
  }
  std::vector<double> x;
  std::string failure;
  if (comm_.rank() == 0) {
    try {
      std::optional<HostDirectSystem> on_host;
      if (!in_place) on_host.emplace(G, v);
      DirectSystem& system = in_place ? *in_place : *on_host;
      double extra_ridge = 0.0;
      if (release) {
        system.add_noise(release->sigma_G, release->sigma_v, *release->noise);
        extra_ridge = release->ridge;
      }
      if (prior && prior->beta_precision > 0)  // beta's prior: its block comes first
        system.add_to_diagonal(0, static_cast<int>(prior->beta.size()), prior->beta_precision);
      // With the prior, the jitter (where G is singular) pulls towards the current [beta, U] rather
      // than towards 0: a direction the data does not determine then keeps its column, where
      // shrinking it would shrink R and with it Sigma, a little more every iteration.
      std::vector<double> anchor = prior ? current_solution(prior) : std::vector<double>();
      if (holds_u) {  // [beta, the directions' weights], each weight 1 now
        anchor.resize(prior->beta.size());
        anchor.insert(anchor.end(), directions.size(), 1.0);
      }
      x = solve_direct(system, options_.ridge + extra_ridge, prior ? &anchor : nullptr);
      if (holds_u) {  // U~ = the directions weighted by the solution
        const std::size_t d = prior->beta.size();
        std::vector<double> full(x.begin(), x.begin() + static_cast<std::ptrdiff_t>(d));
        full.resize(full_size, 0.0);
        for (std::size_t j = 0; j < directions.size(); ++j)
          for (std::size_t c = 0; c < directions[j].size(); ++c) full[d + c] += x[d + j] * directions[j][c];
        x = std::move(full);
      }
    } catch (const std::exception& e) {
      failure = e.what();
    }
  } else {
    x.assign(full_size, 0.0);
  }
  if (comm_.size() > 1) {  // the others wait for rank 0's solution: they must learn of its failure
    const std::string first = comm_.first_error(failure);
    if (!first.empty()) throw CollectiveError(first);
  } else if (!failure.empty()) {
    throw Error(failure);
  }
  broadcast(comm_, x);
  return take_solution(std::move(x), prior);
}

void UStep::apply(std::vector<double> x, std::vector<double>& y, const PriorState* prior) {
  broadcast(comm_, x);  // every process applies rank 0's vector
  backend_.apply_normal_operator(x, y);
  if (y.size() != x.size()) throw Error("U update (cg): the backend's product has the wrong size");
  add_model_terms(x, y, prior);
}

void UStep::add_model_terms(const std::vector<double>& x, std::vector<double>& y, const PriorState* prior) const {
  for (std::size_t e = 0; e < y.size(); ++e) y[e] += options_.ridge * x[e];
  if (prior && prior->beta_precision > 0) {
    const std::size_t d = prior->beta.size();
    for (std::size_t a = 0; a < d && a < y.size(); ++a) y[a] += prior->beta_precision * x[a];
  }
}

double direct_U_step(Backend& backend, const Options& options, const PrivateRelease* release, const PriorState* prior) {
  SingleProcess alone;
  Options o = options;
  o.u_solver = USolver::direct;
  UStep step(backend, o, alone);
  return step.run(release, prior);
}

SolverReport UStep::solve_cg(const std::vector<double>& v, const std::vector<double>& W_hat, std::vector<double>& x,
                             const PriorState* prior, const std::vector<double>* start_residual) {
  const int rr = static_cast<int>(std::lround(std::sqrt(static_cast<double>(W_hat.size()))));
  const int d = rr > 0 ? static_cast<int>(v.size()) / rr : 0;
  const std::int64_t dr = static_cast<std::int64_t>(d) * rr;
  if (rr * rr != static_cast<int>(W_hat.size()) || dr != static_cast<std::int64_t>(v.size()) || x.size() != v.size())
    throw Error("U update (cg): v, W_hat and x have inconsistent sizes");
  if (C_vectors_.empty()) {  // C = X^T X / n, once per fit
    const DataMoments moments = backend_.data_moments();
    std::vector<double> C = moments.XtX;
    if (C.size() != static_cast<std::size_t>(d) * d) throw Error("U update (cg): the data's moments have the wrong size");
    for (double& c : C) c /= static_cast<double>(std::max<std::int64_t>(moments.rows, 1));
    C_vectors_ = linalg::symmetric_eigen(d, C, &C_values_);
  }
  std::vector<double> W_values;
  const std::vector<double> W_vectors = linalg::symmetric_eigen(rr, W_hat, &W_values);  // symmetric: either layout
  // The preconditioner's eigenvalues lambda_c(a) lambda_w(p) + lambda, floored relative to the
  // largest so that a direction no task informs is not divided by zero.
  std::vector<double> scale(static_cast<std::size_t>(dr));
  double largest = 0.0;
  for (int p = 0; p < rr; ++p)
    for (int a = 0; a < d; ++a) {
      const double e = std::max(0.0, C_values_[static_cast<std::size_t>(a)]) * std::max(0.0, W_values[static_cast<std::size_t>(p)]) + options_.ridge;
      scale[static_cast<std::size_t>(a) + static_cast<std::size_t>(d) * p] = e;
      largest = std::max(largest, e);
    }
  for (double& e : scale) e = 1.0 / std::max(e, largest * 1e-12 + 1e-300);
  std::vector<double> tmp(static_cast<std::size_t>(dr)), tmp2(static_cast<std::size_t>(dr));
  // z = Qc (S .* (Qc^T R Qw)) Qw^T, R d x r' column-major = row-major r' x d (R^T): tmp = R^T Qc
  // (C_vectors_, column-major, reads row-major as Qc^T: hence the transpose), tmp2 = Qw^T tmp,
  // scaled; then tmp = Qw tmp2, z = tmp Qc^T.
  auto precondition = [&](const std::vector<double>& res, std::vector<double>& z) {
    linalg::gemm(false, true, rr, d, d, 1.0, res.data(), d, C_vectors_.data(), d, 0.0, tmp.data(), d);
    linalg::gemm(false, false, rr, d, rr, 1.0, W_vectors.data(), rr, tmp.data(), d, 0.0, tmp2.data(), d);
    for (std::int64_t e = 0; e < dr; ++e) tmp2[static_cast<std::size_t>(e)] *= scale[static_cast<std::size_t>(e)];
    linalg::gemm(true, false, rr, d, rr, 1.0, W_vectors.data(), rr, tmp2.data(), d, 0.0, tmp.data(), d);
    linalg::gemm(false, false, rr, d, d, 1.0, tmp.data(), d, C_vectors_.data(), d, 0.0, z.data(), d);
  };
  auto dot = [](const std::vector<double>& a, const std::vector<double>& b) {
    double s = 0.0;
    for (std::size_t e = 0; e < a.size(); ++e) s += a[e] * b[e];
    return s;
  };
  SolverReport report;
  const double v_norm = std::sqrt(dot(v, v));  // v is the same on every process (summed)
  if (v_norm == 0.0) {
    std::fill(x.begin(), x.end(), 0.0);
    return report;
  }
  std::vector<double> res(static_cast<std::size_t>(dr)), z(res.size()), p(res.size()), Ap(res.size());
  // Over many processes every decision is rank 0's (values computed on each could differ in their
  // last bits), and its x is the one every process keeps.
  auto finish = [&] {
    broadcast(comm_, x);
    double numbers[2] = {static_cast<double>(report.steps), report.residual};
    comm_.broadcast(numbers, 2, 0);
    report.steps = static_cast<int>(numbers[0]);
    report.residual = numbers[1];
    return report;
  };
  if (start_residual) {
    res = *start_residual;
  } else {
    apply(x, Ap, prior);
    for (std::size_t e = 0; e < res.size(); ++e) res[e] = v[e] - Ap[e];
  }
  report.residual = std::sqrt(dot(res, res)) / v_norm;
  const double stop_at = std::max(options_.cg_tolerance, options_.cg_forcing * report.residual);
  if (rank0_says(comm_, report.residual <= options_.cg_tolerance)) return finish();
  precondition(res, z);
  p = z;
  double rz = dot(res, z);
  for (int step = 1; step <= options_.cg_max_steps; ++step) {
    apply(p, Ap, prior);
    const double pAp = dot(p, Ap);
    if (!rank0_says(comm_, pAp > 0.0)) break;  // no descent left along p (G singular there): x keeps its warm start
    const double alpha = rz / pAp;
    for (std::size_t e = 0; e < res.size(); ++e) {
      x[e] += alpha * p[e];
      res[e] -= alpha * Ap[e];
    }
    report.steps = step;
    report.residual = std::sqrt(dot(res, res)) / v_norm;
    if (rank0_says(comm_, report.residual <= stop_at)) break;
    precondition(res, z);
    const double rz_next = dot(res, z);
    const double beta = rz_next / rz;
    rz = rz_next;
    for (std::size_t e = 0; e < res.size(); ++e) p[e] = z[e] + beta * p[e];
  }
  finish();
  if (!std::isfinite(report.residual)) throw Error("U update (cg): the iteration diverged (non-finite residual)");
  return report;
}

}  // namespace lrsmeta::core
