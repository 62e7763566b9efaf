#include "core/u_solver.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "lrsmeta/io.hpp"
#include "linalg/blas_lapack.hpp"

namespace lrsmeta::core {

namespace {
// Steps a warm-started cg takes per U step, for the cost model (measured in bench/RESULTS.md).
constexpr double kCgStepsEstimate = 15.0;
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
  const double direct = static_cast<double>(n) * dd * (dd + 1) + static_cast<double>(t) * 2.0 * P * Q + unknowns * unknowns * unknowns / 3.0;
  // One operator pass: with the prior X_i M and X_i^T (.) per task (4 n d r'); without, E_i is rank
  // one and a pass is two matrix-vector products per task (4 n d) plus the w's (4 t d r).
  const double flops = prior ? 4.0 * static_cast<double>(n) * dd * rr : 4.0 * static_cast<double>(n) * dd + 4.0 * static_cast<double>(t) * dd * rr;
  // Measured on the 2-core development machine (bench/RESULTS.md), against G's GEMM at about 1e11
  // flops/s: a pass without the prior at d = 100 (2.4e8 flops, 160 MB of float32 X) took about
  // 15 ms, the time of 1.5e9 flops of GEMM (memory-bound); with the prior (r' = 11: 1.8e9 flops)
  // about 85 ms, 8.5e9 (its per-row products run at about a fifth of GEMM's rate).
  const double bytes = static_cast<double>(n) * dd * static_cast<double>(value_bytes);
  const double cg = kCgStepsEstimate * std::max(flops * (prior ? 5.0 : 1.0), 10.0 * bytes);
  choice.solver = cg < direct ? USolver::cg : USolver::direct;
  std::snprintf(text, sizeof text, "%s (cost model: about %.2g flops per U step to form and factor G, %.2g for %.0f cg steps)",
                cg < direct ? "cg" : "direct", direct, cg, kCgStepsEstimate);
  choice.why = text;
  return choice;
}

UStep::UStep(Backend& backend, const Options& options) : backend_(backend), options_(options) {
  if (options_.u_solver == USolver::automatic) throw Error("U step: the solver must be resolved (direct or cg) before the fit");
}

double UStep::run(const PrivateRelease* release, const PriorState* prior) {
  last_ = {};
  if (options_.u_solver != USolver::cg) return backend_.update_U_direct(release);
  if (release) throw Error("U update: private training solves directly (its noise goes on G): use --u-solver direct or auto");
  std::vector<double> v, W_hat;
  backend_.accumulate_rhs(v, W_hat);
  // Warm start: the current [beta, U] (column-major), which the task step's w were fitted to. A
  // direction G does not determine keeps it (as the direct solve's anchor does).
  std::vector<double> x;
  if (prior) x.assign(prior->beta.begin(), prior->beta.end());
  const std::vector<double> U = backend_.get_U();  // d x r, row-major
  const std::size_t r = static_cast<std::size_t>(options_.rank), d = r > 0 ? U.size() / r : 0;
  for (std::size_t p = 0; p < r; ++p)
    for (std::size_t a = 0; a < d; ++a) x.push_back(U[a * r + p]);
  if (x.size() != v.size()) throw Error("U update (cg): the warm start has " + std::to_string(x.size()) + " entries, v " + std::to_string(v.size()));
  last_ = solve_cg(v, W_hat, x, prior);
  return backend_.set_U_step_solution(std::move(x));
}

void UStep::apply(const std::vector<double>& x, std::vector<double>& y, const PriorState* prior) {
  backend_.apply_normal_operator(x, y);
  if (y.size() != x.size()) throw Error("U update (cg): the backend's product has the wrong size");
  for (std::size_t e = 0; e < y.size(); ++e) y[e] += options_.ridge * x[e];
  if (prior && prior->beta_precision > 0) {
    const std::size_t d = prior->beta.size();
    for (std::size_t a = 0; a < d && a < y.size(); ++a) y[a] += prior->beta_precision * x[a];
  }
}

SolverReport UStep::solve_cg(const std::vector<double>& v, const std::vector<double>& W_hat, std::vector<double>& x,
                             const PriorState* prior) {
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
  const double v_norm = std::sqrt(dot(v, v));
  if (v_norm == 0.0) {
    std::fill(x.begin(), x.end(), 0.0);
    return report;
  }
  std::vector<double> res(static_cast<std::size_t>(dr)), z(res.size()), p(res.size()), Ap(res.size());
  apply(x, Ap, prior);
  for (std::size_t e = 0; e < res.size(); ++e) res[e] = v[e] - Ap[e];
  report.residual = std::sqrt(dot(res, res)) / v_norm;
  if (report.residual <= options_.cg_tolerance) return report;
  precondition(res, z);
  p = z;
  double rz = dot(res, z);
  for (int step = 1; step <= options_.cg_max_steps; ++step) {
    apply(p, Ap, prior);
    const double pAp = dot(p, Ap);
    if (!(pAp > 0.0)) break;  // no descent left along p (G singular there): x keeps its warm start
    const double alpha = rz / pAp;
    for (std::size_t e = 0; e < res.size(); ++e) {
      x[e] += alpha * p[e];
      res[e] -= alpha * Ap[e];
    }
    report.steps = step;
    report.residual = std::sqrt(dot(res, res)) / v_norm;
    if (report.residual <= options_.cg_tolerance) break;
    precondition(res, z);
    const double rz_next = dot(res, z);
    const double beta = rz_next / rz;
    rz = rz_next;
    for (std::size_t e = 0; e < res.size(); ++e) p[e] = z[e] + beta * p[e];
  }
  if (!std::isfinite(report.residual)) throw Error("U update (cg): the iteration diverged (non-finite residual)");
  return report;
}

}  // namespace lrsmeta::core
