// Settings estimated from all rows (docs/design.md section 10, host/core/estimation.hpp): the task steps'
// log marginal likelihood and b's posterior moments against a dense computation from each task's
// m x m covariance, the inverse-Wishart marginal likelihood of Sigma's shrinkage against Bayes'
// identity, and the fit's estimates on planted data.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include <unistd.h>

#include "core/backend.hpp"
#include "core/estimation.hpp"
#include "core/fitting.hpp"
#include "core/u_solver.hpp"
#include "cpu/cpu_backend.hpp"
#include "lrsmeta/io.hpp"
#include "lrsmeta/lrsmeta.h"
#include "lrsmeta/lrsmeta.hpp"
#include "lrsmeta/option_table.hpp"
#include "test_helpers.hpp"

namespace lrsmeta {
namespace {

using Matrix = std::vector<double>;  // row-major

// log det and inverse of a symmetric positive definite n x n matrix, by a plain Cholesky here.
double log_det_and_inverse(Matrix A, int n, Matrix* inv) {
  double log_det = 0.0;
  for (int j = 0; j < n; ++j) {
    for (int i = j; i < n; ++i) {
      double s = A[i * n + j];
      for (int c = 0; c < j; ++c) s -= A[i * n + c] * A[j * n + c];
      if (i == j) {
        A[j * n + j] = std::sqrt(s);
        log_det += 2.0 * std::log(A[j * n + j]);
      } else {
        A[i * n + j] = s / A[j * n + j];
      }
    }
  }
  if (inv) {
    inv->assign(static_cast<std::size_t>(n) * n, 0.0);
    for (int c = 0; c < n; ++c) {
      std::vector<double> e(n, 0.0);
      e[c] = 1.0;
      for (int i = 0; i < n; ++i) {
        for (int p = 0; p < i; ++p) e[i] -= A[i * n + p] * e[p];
        e[i] /= A[i * n + i];
      }
      for (int i = n - 1; i >= 0; --i) {
        for (int p = i + 1; p < n; ++p) e[i] -= A[p * n + i] * e[p];
        e[i] /= A[i * n + i];
      }
      for (int i = 0; i < n; ++i) (*inv)[i * n + c] = e[i];
    }
  }
  return log_det;
}

Matrix random_spd(int r, std::uint64_t seed) { return testing::random_spd(r, seed, 0.3); }

struct DenseTotals {
  double log_evidence = 0.0, b_square_sum = 0.0;
  std::int64_t b_count = 0;
};

// Each task's log N(y_i - X_i beta; 0, s2 I + A Lambda A^T) with A = [X_i U, X_i[:, S_i]], Lambda =
// blockdiag(Sigma, tau2 I), plus the support's prior log pi^|S| (1 - pi)^(d - |S|), formed as an
// m x m covariance; and E[b_q^2] from the joint posterior (A^T A / s2 + Lambda^-1)^-1.
DenseTotals dense_totals(const Dataset<double>& data, const Matrix& U, int r, const core::PriorState& prior, double tau2,
                         const Model& steps) {
  const int d = static_cast<int>(data.d), k = static_cast<int>(steps.k);
  const double s2 = prior.noise_variance, pi = prior.inclusion_probability;
  DenseTotals out;
  for (std::int64_t i = 0; i < data.t(); ++i) {
    const std::int64_t row0 = data.task_offsets[i];
    const int m = static_cast<int>(data.task_offsets[i + 1] - row0);
    if (m == 0) continue;
    std::vector<int> S;
    for (int s = 0; s < k; ++s)
      if (steps.B_index[static_cast<std::size_t>(i * k + s)] >= 0) S.push_back(steps.B_index[static_cast<std::size_t>(i * k + s)]);
    const int n = r + static_cast<int>(S.size());
    Matrix A(static_cast<std::size_t>(m) * n, 0.0), Lambda(static_cast<std::size_t>(n) * n, 0.0);
    std::vector<double> target(m);
    for (int j = 0; j < m; ++j) {
      const double* x = data.X.data() + (row0 + j) * d;
      double s = data.y[static_cast<std::size_t>(row0 + j)];
      for (int a = 0; a < d; ++a) s -= x[a] * prior.beta[a];
      target[j] = s;
      for (int p = 0; p < r; ++p)
        for (int a = 0; a < d; ++a) A[j * n + p] += x[a] * U[a * r + p];
      for (std::size_t q = 0; q < S.size(); ++q) A[j * n + r + static_cast<int>(q)] = x[S[q]];
    }
    for (int p = 0; p < r; ++p)
      for (int p2 = 0; p2 < r; ++p2) Lambda[p * n + p2] = prior.Sigma[p * r + p2];
    for (int q = r; q < n; ++q) Lambda[q * n + q] = tau2;
    Matrix C(static_cast<std::size_t>(m) * m, 0.0);
    for (int a = 0; a < m; ++a)
      for (int b = 0; b < m; ++b) {
        double v = a == b ? s2 : 0.0;
        for (int p = 0; p < n; ++p)
          for (int q = 0; q < n; ++q) v += A[a * n + p] * Lambda[p * n + q] * A[b * n + q];
        C[a * m + b] = v;
      }
    Matrix C_inv;
    const double log_det = log_det_and_inverse(C, m, &C_inv);
    double quad = 0.0;
    for (int a = 0; a < m; ++a)
      for (int b = 0; b < m; ++b) quad += target[a] * C_inv[a * m + b] * target[b];
    out.log_evidence += -0.5 * (m * std::log(2.0 * M_PI) + log_det + quad);
    if (pi > 0) {
      // The prior over supports, renormalised over those of at most k features.
      double mass = 0.0;
      for (int s = 0; s <= k; ++s) {
        double choose = 1.0;
        for (int j = 0; j < s; ++j) choose = choose * (d - j) / (j + 1);
        mass += choose * std::pow(pi, s) * std::pow(1.0 - pi, d - s);
      }
      out.log_evidence += S.size() * std::log(pi) + (d - static_cast<double>(S.size())) * std::log(1.0 - pi) - std::log(mass);
    }
    // The joint posterior of (w, b_S).
    Matrix Lambda_inv, K(static_cast<std::size_t>(n) * n, 0.0);
    log_det_and_inverse(Lambda, n, &Lambda_inv);
    std::vector<double> rhs(n, 0.0);
    for (int p = 0; p < n; ++p) {
      for (int j = 0; j < m; ++j) rhs[p] += A[j * n + p] * target[j] / s2;
      for (int q = 0; q < n; ++q) {
        double v = Lambda_inv[p * n + q];
        for (int j = 0; j < m; ++j) v += A[j * n + p] * A[j * n + q] / s2;
        K[p * n + q] = v;
      }
    }
    Matrix cov;
    log_det_and_inverse(K, n, &cov);
    for (int q = r; q < n; ++q) {
      double mean = 0.0;
      for (int p = 0; p < n; ++p) mean += cov[q * n + p] * rhs[p];
      out.b_square_sum += mean * mean + cov[q * n + q];
      ++out.b_count;
    }
  }
  return out;
}

// The task steps' log evidence and b moments, summed by the CPU backend, against dense_totals on
// fresh random data (ragged tasks of 0 to 14 rows, some smaller than r + k), with and without a
// prior over supports, and at k = 0.
TEST(Evidence, TaskStepsLogMarginalLikelihoodAndBMomentsMatchADenseComputation) {
  for (const int k : {0, 2}) {
    for (const double pi : {0.0, 0.1}) {
      if (k == 0 && pi > 0) continue;
      SyntheticSpec spec;
      spec.tasks = 30;
      spec.min_samples = 0;
      spec.max_samples = 14;
      spec.d = 7;
      spec.r = 2;
      spec.k = 2;
      spec.noise = 0.4;
      spec.seed = 41 + k;
      const SyntheticData syn = generate_synthetic(spec);
      const int d = 7, r = 2;
      Options o;
      o.rank = r;
      o.sparsity = k;
      o.threads = 2;
      o.support_threshold = 0.0;
      cpu::CpuBackend<double> backend(syn.data.view(), o);
      // U with orthonormal columns, beta and Sigma: random.
      const Matrix U = testing::random_orthonormal(d, r, 5);
      backend.set_U(U);
      core::PriorState prior;
      prior.beta = testing::random_normal(d, 6);
      prior.Sigma = random_spd(r, 7);
      prior.noise_variance = 0.3;
      prior.inclusion_probability = pi;
      const double tau2 = 0.8;
      prior.b_precision = prior.noise_variance / tau2;
      backend.set_prior(&prior);
      const core::TaskStepTotals totals = backend.task_step_all(k);
      Model steps;
      steps.d = d;
      steps.r = r;
      steps.k = k;
      steps.t = syn.data.t();
      steps.W.resize(static_cast<std::size_t>(steps.t * r));
      steps.B_index.resize(static_cast<std::size_t>(steps.t * k));
      steps.B_value.resize(static_cast<std::size_t>(steps.t * k));
      backend.export_task_parameters(steps);
      const DenseTotals dense = dense_totals(syn.data, U, r, prior, tau2, steps);
      SCOPED_TRACE("k = " + std::to_string(k) + ", pi = " + std::to_string(pi));
      // The task step's systems carry a relative ridge of 1e-10: the tolerance allows for it.
      EXPECT_NEAR(totals.log_evidence, dense.log_evidence, 1e-7 * std::fabs(dense.log_evidence));
      EXPECT_EQ(totals.b_count, dense.b_count);
      EXPECT_NEAR(totals.b_square_sum, dense.b_square_sum, 1e-7 * (1.0 + dense.b_square_sum));
      if (k > 0) EXPECT_GT(dense.b_count, 0);
    }
  }
}

// The marginal likelihood of Sigma's shrinkage: by Bayes' identity, log p(W | nu, Psi) = log p(W |
// Sigma) + log IW(Sigma; nu, Psi) - log IW(Sigma; nu + t, Psi + T) at any Sigma. Each density is
// computed here from its textbook form; the difference between two values of f must agree.
double log_inverse_wishart(const Matrix& Sigma, int r, double nu, const Matrix& Psi) {
  Matrix Sigma_inv;
  const double log_det_sigma = log_det_and_inverse(Sigma, r, &Sigma_inv);
  const double log_det_psi = log_det_and_inverse(Psi, r, nullptr);
  double trace = 0.0;
  for (int a = 0; a < r; ++a)
    for (int b = 0; b < r; ++b) trace += Psi[a * r + b] * Sigma_inv[b * r + a];
  double log_gamma_r = 0.25 * r * (r - 1) * std::log(M_PI);
  for (int j = 0; j < r; ++j) log_gamma_r += std::lgamma(0.5 * (nu - j));
  return 0.5 * nu * log_det_psi - 0.5 * nu * r * std::log(2.0) - log_gamma_r - 0.5 * (nu + r + 1) * log_det_sigma - 0.5 * trace;
}

TEST(Estimation, ShrinkageMarginalLikelihoodAgreesWithBayesIdentity) {
  const int r = 3, t = 25;
  const std::vector<double> W = testing::random_normal(static_cast<std::size_t>(t) * r, 11);  // t x r
  Matrix T(static_cast<std::size_t>(r) * r, 0.0);
  for (int i = 0; i < t; ++i)
    for (int a = 0; a < r; ++a)
      for (int b = 0; b < r; ++b) T[a * r + b] += W[i * r + a] * W[i * r + b];
  Matrix S = T;
  for (double& x : S) x /= t;
  double mean_variance = 0.0;
  for (int a = 0; a < r; ++a) mean_variance += S[a * r + a] / r;
  // S's eigenvalues, by the library's eigen solver's independent check: the characteristic
  // polynomial is not needed; the marginal takes log det(c I + T) = sum log(c + t lambda).
  std::vector<double> eigenvalues;
  {
    // Jacobi rotations, written here.
    Matrix A = S;
    for (int sweep = 0; sweep < 50; ++sweep)
      for (int p = 0; p < r; ++p)
        for (int q = p + 1; q < r; ++q) {
          if (std::fabs(A[p * r + q]) < 1e-300) continue;
          const double theta = 0.5 * std::atan2(2 * A[p * r + q], A[q * r + q] - A[p * r + p]);
          const double c = std::cos(theta), s = std::sin(theta);
          for (int k = 0; k < r; ++k) {
            const double akp = A[k * r + p], akq = A[k * r + q];
            A[k * r + p] = c * akp - s * akq;
            A[k * r + q] = s * akp + c * akq;
          }
          for (int k = 0; k < r; ++k) {
            const double apk = A[p * r + k], aqk = A[q * r + k];
            A[p * r + k] = c * apk - s * aqk;
            A[q * r + k] = s * apk + c * aqk;
          }
        }
    for (int a = 0; a < r; ++a) eigenvalues.push_back(A[a * r + a]);
  }
  const Matrix Sigma = random_spd(r, 12);
  Matrix Sigma_inv;
  const double log_det_sigma = log_det_and_inverse(Sigma, r, &Sigma_inv);
  double trace = 0.0;
  for (int a = 0; a < r; ++a)
    for (int b = 0; b < r; ++b) trace += T[a * r + b] * Sigma_inv[b * r + a];
  const double log_likelihood = -0.5 * t * r * std::log(2.0 * M_PI) - 0.5 * t * log_det_sigma - 0.5 * trace;
  auto by_bayes = [&](double f) {
    const double nu = f * t + r + 1.0;
    Matrix Psi(static_cast<std::size_t>(r) * r, 0.0), Post = T;
    for (int a = 0; a < r; ++a) {
      Psi[a * r + a] = f * t * mean_variance;
      Post[a * r + a] += f * t * mean_variance;
    }
    return log_likelihood + log_inverse_wishart(Sigma, r, nu, Psi) - log_inverse_wishart(Sigma, r, nu + t, Post);
  };
  // shrinkage_log_marginal drops f-free constants: compare differences between values of f.
  const double f0 = 0.3;
  for (double f : {0.01, 0.1, 1.0, 10.0, 1000.0}) {
    const double ours = core::shrinkage_log_marginal(eigenvalues, mean_variance, t, f) -
                        core::shrinkage_log_marginal(eigenvalues, mean_variance, t, f0);
    const double theirs = by_bayes(f) - by_bayes(f0);
    EXPECT_NEAR(ours, theirs, 1e-8 * (1.0 + std::fabs(theirs))) << "f = " << f;
  }
  // The estimate maximises it: no point of a fine grid does better.
  const double f_hat = core::estimate_covariance_shrinkage(S, r, t);
  const double at_hat = core::shrinkage_log_marginal(eigenvalues, mean_variance, t, f_hat);
  for (double log_f = -6; log_f <= 6; log_f += 0.01)
    EXPECT_LE(core::shrinkage_log_marginal(eigenvalues, mean_variance, t, std::pow(10.0, log_f)), at_hat + 1e-8 * std::fabs(at_hat));
}

TEST(Estimation, ShrinkageIsLargeForIsotropicAndSmallForAnisotropicSpread) {
  const int r = 4;
  const std::int64_t t = 2000;
  Matrix isotropic(static_cast<std::size_t>(r) * r, 0.0), anisotropic = isotropic;
  for (int a = 0; a < r; ++a) {
    isotropic[a * r + a] = 1.0;
    anisotropic[a * r + a] = std::pow(10.0, -a);
  }
  EXPECT_GT(core::estimate_covariance_shrinkage(isotropic, r, t), 1e4);
  EXPECT_LT(core::estimate_covariance_shrinkage(anisotropic, r, t), 1e-2);
  EXPECT_EQ(core::estimate_covariance_shrinkage({}, 0, t), 0.0);
}

TEST(Estimation, SparsePriorVarianceAndInclusionProbabilityUpdates) {
  core::TaskStepTotals totals;
  totals.b_square_sum = 12.0;
  totals.b_count = 8;
  EXPECT_DOUBLE_EQ(core::estimate_sparse_prior_variance(totals, 3.0), 1.5);
  EXPECT_DOUBLE_EQ(core::estimate_inclusion_probability(totals, 10, 20), 8.0 / 200.0);
  totals.b_count = 0;
  totals.b_square_sum = 0.0;
  EXPECT_DOUBLE_EQ(core::estimate_sparse_prior_variance(totals, 3.0), 3.0);  // nothing to estimate from
  EXPECT_DOUBLE_EQ(core::estimate_inclusion_probability(totals, 10, 20), 0.5 / 200.0);
}

// Planted tasks: d features, rank r, k non-zeros, noise 0.2, tasks of min_rows to max_rows rows.
SyntheticData planted(std::int64_t tasks, int min_rows, int max_rows, int d, int r, int k, std::uint64_t seed) {
  return generate_synthetic(testing::task_shape(tasks, d, r, k, min_rows, max_rows, 0.2, seed));
}

// The fit's estimates on planted data (noisy, d = 20, r = 3, k = 2, b's non-zeros N(0, 1), noise
// 0.2): tau2 near the truth's 1, s2 near 0.04, and the rank the truth's.
TEST(Estimation, TheFitRecoversThePlantedRankAndPriors) {
  const SyntheticData syn = planted(600, 20, 40, 20, 3, 2, 3);
  Options o;
  o.threads = 2;
  o.selection = Selection::evidence;
  o.rank_candidates = default_rank_candidates(20);
  o.sparsity = 2;
  const Model m = fit(syn.data.view(), o);
  EXPECT_EQ(m.selection.method, Selection::evidence);
  EXPECT_EQ(m.r, 3);
  EXPECT_NEAR(m.noise_variance, 0.04, 0.008);
  EXPECT_GT(m.sparse_prior_variance, 0.6);
  EXPECT_LT(m.sparse_prior_variance, 1.6);
  EXPECT_GT(m.support_inclusion_probability, 0.05);
  EXPECT_LT(m.support_inclusion_probability, 0.15);  // the truth: 2 of 20
  // Every rank tried was scored by its log evidence less BIC's charge (k = 2 given: tau2 and pi
  // estimated); r = 3 had the best criterion.
  ASSERT_GE(m.selection.candidates.size(), 4u);
  for (const SelectionCandidate& c : m.selection.candidates) {
    EXPECT_TRUE(std::isfinite(c.log_evidence));
    const double span = c.rank * (20.0 - c.rank), sigma = c.rank > 0 ? 1.0 + (c.rank * (c.rank + 1) / 2.0 - 1.0) / (1.0 + c.covariance_shrinkage) : 0.0;
    EXPECT_NEAR(c.score, c.log_evidence - 0.5 * (span + sigma + 2.0) * std::log(600.0), 1e-9 * std::fabs(c.log_evidence)) << "r " << c.rank;
  }
  // Ranks above the truth's, which cannot catch r = 3 once their evidence has settled, are
  // abandoned before the candidates' iteration cap (40), and the model file says which. They start
  // from the best candidate's state (r = 3), with no warm-start phase: two iterations settle before
  // one may be abandoned.
  // Ranks below it stop ahead of the one before (by thousands of nats) without running to their
  // tolerance, with what they were extrapolated to reach.
  int abandoned = 0, ahead = 0;
  for (const SelectionCandidate& c : m.selection.candidates) {
    if (c.ahead) {
      ++ahead;
      EXPECT_LE(c.rank, 3);
      EXPECT_FALSE(c.abandoned);
      EXPECT_TRUE(std::isfinite(c.reach_log_evidence));
      EXPECT_GE(c.reach_log_evidence, c.log_evidence);
    }
    if (!c.abandoned) continue;
    ++abandoned;
    EXPECT_GT(c.rank, 3);
    EXPECT_LT(c.iterations, 40);
    EXPECT_GT(c.iterations, 2);  // never before those two
    // What it was extrapolated to reach (which decides whether its k is searched) is recorded.
    EXPECT_TRUE(std::isfinite(c.reach_log_evidence));
    EXPECT_GE(c.reach_log_evidence, c.log_evidence);
  }
  EXPECT_GE(abandoned, 1);
  EXPECT_GE(ahead, 1);
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("lrsmeta_abandoned_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  save_model(m, dir.string());
  const Model back = load_model(dir.string());
  ASSERT_EQ(back.selection.candidates.size(), m.selection.candidates.size());
  for (std::size_t c = 0; c < m.selection.candidates.size(); ++c) {
    EXPECT_EQ(back.selection.candidates[c].abandoned, m.selection.candidates[c].abandoned);
    EXPECT_EQ(back.selection.candidates[c].ahead, m.selection.candidates[c].ahead);
    EXPECT_EQ(back.selection.candidates[c].score, m.selection.candidates[c].score);
    const double reach = m.selection.candidates[c].reach_log_evidence;
    EXPECT_EQ(std::isnan(reach), !m.selection.candidates[c].abandoned && !m.selection.candidates[c].ahead);
    if (!std::isnan(reach)) EXPECT_EQ(back.selection.candidates[c].reach_log_evidence, reach);
  }
  std::filesystem::remove_all(dir);
}

// The full-rank model with Sigma isotropic (per-task ridge towards beta): its direct U step solves
// for beta and U's scale alone (core::u_step_solves_held_directions), since U then spans
// everything and a rotation of it changes nothing. That is EM for this model, and it ends at a
// maximum of the marginal likelihood: the dense log N(y_i - X_i beta; 0, s2 I + c X_i X_i^T) is
// the model's, and moving the variance c or s2 by 0.1% either way lowers it. Solving for all of
// U~ = U R and then shrinking Sigma back to isotropic (as at a shrinkage just under the threshold)
// is not EM for it, and ends lower.
TEST(Estimation, TheIsotropicFullRankModelSolvesForUsScaleAloneAndEndsAtAMaximum) {
  const int d = 6;
  const SyntheticData syn = planted(150, 4, 15, d, 2, 0, 29);
  Options o;
  o.threads = 2;
  o.rank = d;
  o.sparsity = 0;
  o.covariance_shrinkage = 1e6;
  o.population_prior = false;
  o.relative_tolerance = 1e-12;
  o.iterations = 3000;
  EXPECT_TRUE(core::u_step_solves_held_directions(o, d));
  const Model m = fit(syn.data.view(), o);
  auto dense_at = [&](double variance_factor, double noise_factor) {
    core::PriorState p;
    p.beta = m.beta;
    p.Sigma = m.Sigma;
    for (double& e : p.Sigma) e *= variance_factor;
    p.noise_variance = m.noise_variance * noise_factor;
    return dense_totals(syn.data, m.U, d, p, 0.0, m).log_evidence;
  };
  const double at_fit = dense_at(1.0, 1.0);
  EXPECT_NEAR(at_fit, m.log_evidence, 1e-9 * std::fabs(at_fit));
  for (double step : {0.999, 1.001}) {
    EXPECT_LT(dense_at(step, 1.0), at_fit) << "the variance times " << step;
    EXPECT_LT(dense_at(1.0, step), at_fit) << "s2 times " << step;
  }
  Options full = o;
  full.covariance_shrinkage = 0.999999e6;
  EXPECT_FALSE(core::u_step_solves_held_directions(full, d));
  EXPECT_LT(fit(syn.data.view(), full).log_evidence, m.log_evidence);
  // Not with Sigma's full covariance (U~ = U R, R full, is EM for that model), nor at r < d.
  Options learned = o;
  learned.covariance_shrinkage = -1.0;
  EXPECT_FALSE(core::u_step_solves_held_directions(learned, d));
  learned = o;
  learned.rank = d - 1;
  EXPECT_FALSE(core::u_step_solves_held_directions(learned, d));
}

// What a candidate is taken to still gain, against the sum of an EM trace's gains: where the gains
// fall geometrically (rate rho), the allowance's multiple of what is left, never more than the last
// gain for every iteration left; where they have not started falling, that linear bound; nothing
// where the evidence fell.
TEST(Estimation, TheEvidenceStillToGainFollowsTheGainsGeometricFall) {
  std::mt19937_64 gen(5);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (int trial = 0; trial < 50; ++trial) {
    const double rho = 0.05 + 0.9 * unit(gen), first_gain = 1.0 + 1000.0 * unit(gen), start = -1e5 * unit(gen);
    const int left = 1 + static_cast<int>(60 * unit(gen));
    // Evidence at three iterations of a trace whose gains are first_gain rho^j.
    const double e0 = start, e1 = e0 + first_gain, e2 = e1 + first_gain * rho;
    double rest = 0.0;  // what the trace still gains in `left` iterations, summed in long double
    long double g = first_gain * rho;
    for (int j = 0; j < left; ++j) rest += static_cast<double>(g *= rho);
    const double expected_tail = kEvidenceTailAllowance * first_gain * rho * rho / (1.0 - rho);
    const double still = evidence_still_to_gain(e0, e1, e2, left);
    EXPECT_NEAR(still, std::min(expected_tail, first_gain * rho * left), 1e-9 * first_gain) << rho << " " << left;
    EXPECT_GE(still, rest * (1.0 - 1e-12)) << "less than the geometric trace still gains: rho " << rho;
  }
  EXPECT_DOUBLE_EQ(evidence_still_to_gain(0.0, 10.0, 30.0, 7), 20.0 * 7);  // gains rising: the linear bound
  EXPECT_DOUBLE_EQ(evidence_still_to_gain(0.0, 10.0, 20.0, 7), 10.0 * 7);  // not falling either
  EXPECT_EQ(evidence_still_to_gain(0.0, 10.0, 9.0, 7), 0.0);               // the evidence fell
  EXPECT_EQ(evidence_still_to_gain(0.0, 10.0, 15.0, 0), 0.0);              // no iteration left
}

// Gains rise where the last is larger than the one before, unless the last is within the
// evidence's jitter (kEvidenceGainNoise of it): a settled fit's last digits move either way.
TEST(Estimation, GainsRiseOnlyAboveTheEvidencesJitter) {
  EXPECT_TRUE(evidence_gains_rising(-3164.0, -3163.9, -3163.7));
  EXPECT_FALSE(evidence_gains_rising(-3164.0, -3163.7, -3163.6));
  // The trace of a fit restarted from its own end: gains of -8.5e-7 and then 2.5e-6 nats.
  EXPECT_FALSE(evidence_gains_rising(-3164.2859647380, -3164.2859655844, -3164.2859630421));
  // The same gains on an evidence of 30: above its jitter, so rising.
  EXPECT_TRUE(evidence_gains_rising(-30.0, -30.0 - 8.5e-7, -30.0 + 1.65e-6));
  // A growing direction's gains of a tenth of a nat on an evidence of 1e6 still rise.
  EXPECT_TRUE(evidence_gains_rising(-1e6, -1e6 + 0.05, -1e6 + 0.15));
}

// BIC's count for a candidate, against the parameters written out by hand for d = 22: a learned
// U of rank r estimates its span (r (d - r)) and Sigma (shrunk by f to 1 + (r (r + 1) / 2 - 1) /
// (1 + f) effective entries); the random intercept only its variance; the slopes model two
// variances; r = 0 nothing. With b (k > 0), the b prior's inclusion probability, and tau2 where it
// is estimated rather than given.
TEST(Estimation, TheChargeCountsUsSpanSigmaAndTheBPrior) {
  auto candidate = [](int r, int k, double f, LowRankBasis basis) {
    SelectionCandidate c;
    c.rank = r;
    c.sparsity = k;
    c.covariance_shrinkage = f;
    c.low_rank_basis = basis;
    return c;
  };
  const LowRankBasis learned = LowRankBasis::learned;
  EXPECT_EQ(estimated_shared_parameters(candidate(0, 0, 0.0, learned), 22, true), 0.0);
  // r = 8, f = 0: 8 * 14 = 112 for the span, 36 entries of Sigma.
  EXPECT_DOUBLE_EQ(estimated_shared_parameters(candidate(8, 0, 0.0, learned), 22, true), 148.0);
  // f = 1 halves Sigma's entries but the first: 1 + 35 / 2.
  EXPECT_DOUBLE_EQ(estimated_shared_parameters(candidate(8, 0, 1.0, learned), 22, true), 112.0 + 18.5);
  // With b: two more (tau2 and pi), or one where tau2 is given.
  EXPECT_DOUBLE_EQ(estimated_shared_parameters(candidate(8, 3, 0.0, learned), 22, true), 150.0);
  EXPECT_DOUBLE_EQ(estimated_shared_parameters(candidate(8, 3, 0.0, learned), 22, false), 149.0);
  EXPECT_DOUBLE_EQ(estimated_shared_parameters(candidate(0, 2, 0.0, learned), 22, true), 2.0);
  // r = d: no span; the full covariance's 253 entries.
  EXPECT_DOUBLE_EQ(estimated_shared_parameters(candidate(22, 0, 0.0, learned), 22, true), 253.0);
  EXPECT_DOUBLE_EQ(estimated_shared_parameters(candidate(1, 0, 0.0, LowRankBasis::intercept), 22, true), 1.0);
  EXPECT_DOUBLE_EQ(estimated_shared_parameters(candidate(1, 1, 0.0, LowRankBasis::intercept), 22, true), 3.0);
  EXPECT_DOUBLE_EQ(estimated_shared_parameters(candidate(22, 0, 0.0, LowRankBasis::slopes), 22, true), 2.0);
  EXPECT_DOUBLE_EQ(estimated_shared_parameters(candidate(22, 1, 0.0, LowRankBasis::slopes), 22, false), 3.0);
}

// Every candidate fit that ends before its cap of 40 iterations ends for a stated reason: its
// relative tolerance (1e-4 on s2 and the training loss, against the iteration before or the one
// before that), what it would still gain under a quarter of a nat, abandoned (it could not catch
// the best so far) or ahead (it beat the best so far; the record says what it was extrapolated to
// reach). A candidate stopped ahead and continued later counts its iterations on from where it
// stopped, under its own index. Read from the iterations the callback sees.
TEST(Estimation, EveryCandidateThatEndsEarlyEndsForAStatedReason) {
  const SyntheticData syn = planted(300, 5, 30, 12, 2, 1, 7);
  Options o = default_options();
  o.threads = 2;
  std::vector<std::vector<IterationInfo>> traces;
  int continued = 0;
  std::size_t last_index = 0;
  FitControl control;
  control.on_iteration = [&](const IterationInfo& info) {
    EXPECT_EQ(info.candidate_index >= 0, info.candidate) << "iteration " << info.iteration;
    if (!info.candidate || info.candidate_index < 0) return true;
    const std::size_t c = static_cast<std::size_t>(info.candidate_index);
    if (traces.size() <= c) traces.resize(c + 1);
    EXPECT_EQ(info.iteration, static_cast<int>(traces[c].size()) + 1) << "candidate " << c;
    if (!traces[c].empty() && c != last_index) ++continued;  // stopped ahead, continued after a later candidate
    last_index = c;
    traces[c].push_back(info);
    return true;
  };
  const Model m = fit(syn.data.view(), o, control);
  ASSERT_EQ(traces.size(), m.selection.candidates.size());
  auto relative = [](double now, double then) { return std::fabs(now - then) / std::max(std::fabs(then), 1e-300); };
  int early = 0, by_evidence = 0, ahead = 0;
  for (std::size_t c = 0; c < traces.size(); ++c) {
    const std::vector<IterationInfo>& h = traces[c];
    const SelectionCandidate& cand = m.selection.candidates[c];
    ASSERT_EQ(static_cast<int>(h.size()), cand.iterations) << "candidate " << c;
    EXPECT_FALSE(cand.abandoned && cand.ahead) << "candidate " << c;
    if (cand.abandoned || cand.ahead) {
      EXPECT_TRUE(std::isfinite(cand.reach_log_evidence)) << "candidate " << c;
      EXPECT_GE(cand.reach_log_evidence, h.back().log_evidence) << "candidate " << c;
      // No closing task step: its score is its last iteration's.
      EXPECT_EQ(cand.log_evidence, h.back().log_evidence) << "candidate " << c;
    } else {
      EXPECT_TRUE(std::isnan(cand.reach_log_evidence)) << "candidate " << c;
    }
    ahead += cand.ahead ? 1 : 0;
    if (cand.iterations >= 40 || cand.abandoned || cand.ahead) continue;
    ++early;
    const std::size_t n = h.size();
    ASSERT_GE(n, 3u) << "candidate " << c;
    auto met = [&](const IterationInfo& then) {
      return relative(h[n - 1].noise_variance, then.noise_variance) < 1e-4 && relative(h[n - 1].training_loss, then.training_loss) < 1e-4;
    };
    const bool tolerance = met(h[n - 2]) || met(h[n - 3]);
    const bool rising = evidence_gains_rising(h[n - 3].log_evidence, h[n - 2].log_evidence, h[n - 1].log_evidence);
    const bool scored = !rising && evidence_still_to_gain(h[n - 3].log_evidence, h[n - 2].log_evidence, h[n - 1].log_evidence,
                                                          40 - h[n - 1].iteration) < 0.25;
    by_evidence += scored && !tolerance ? 1 : 0;
    EXPECT_TRUE(tolerance || scored) << "candidate " << c << " (r " << cand.rank << ", k " << cand.sparsity << ") ended after "
                                     << n << " iterations";
  }
  EXPECT_GT(early, 0);
  EXPECT_GE(continued, 1);  // the data make one: its continuation was checked above
  std::fprintf(stderr, "candidates %zu, ended early %d, of them on what they would still gain %d; ahead %d; continued later %d\n",
               traces.size(), early, by_evidence, ahead, continued);
}

// "auto" is one value, Options::kAuto, resolved inside fit for the data's d: with d <= 32 the
// full-rank model is among the ranks tried, from C++ and from the C API alike.
TEST(Estimation, AutoRankTriesTheFullRankModelFromCppAndC) {
  const SyntheticData syn = planted(120, 5, 15, 6, 2, 1, 11);
  const TaskDataView<double> v = syn.data.view();
  auto tried_full_rank = [&](const Model& m) {
    for (const SelectionCandidate& c : m.selection.candidates)
      if (c.rank == 6) return true;
    return false;
  };
  Options o;
  o.threads = 2;
  o.rank = Options::kAuto;
  o.sparsity = 1;
  EXPECT_TRUE(tried_full_rank(fit(v, o)));

  lrsmeta_options* opts = nullptr;
  ASSERT_EQ(lrsmeta_options_create(&opts), LRSMETA_OK);
  ASSERT_EQ(lrsmeta_options_set_string(opts, "rank", "auto"), LRSMETA_OK);
  ASSERT_EQ(lrsmeta_options_set_int(opts, "sparsity", 1), LRSMETA_OK);
  ASSERT_EQ(lrsmeta_options_set_int(opts, "threads", 2), LRSMETA_OK);
  lrsmeta_model* model = nullptr;
  ASSERT_EQ(lrsmeta_fit_f64(v.X, v.y, v.task_offsets, v.n, v.d, v.t, opts, &model), LRSMETA_OK) << lrsmeta_last_error();
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("lrsmeta_auto_rank_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  ASSERT_EQ(lrsmeta_model_save(model, dir.string().c_str()), LRSMETA_OK) << lrsmeta_last_error();
  lrsmeta_model_destroy(model);
  lrsmeta_options_destroy(opts);
  EXPECT_TRUE(tried_full_rank(load_model(dir.string())));
  std::filesystem::remove_all(dir);
}

// The method and the estimates survive the model file; an unknown selection name in it is refused
// naming the file.
TEST(Estimation, TheEstimatesRoundTripAndABadSelectionNameIsRefused) {
  const SyntheticData syn = planted(80, 5, 15, 8, 2, 1, 9);
  Options o;
  o.threads = 2;
  o.selection = Selection::evidence;
  o.rank = 2;
  o.sparsity_candidates = {0, 1, 2};
  const Model m = fit(syn.data.view(), o);
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("lrsmeta_estimation_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  save_model(m, dir.string());
  const Model back = load_model(dir.string());
  EXPECT_EQ(back.selection.method, Selection::evidence);
  EXPECT_EQ(back.options.selection, Selection::evidence);
  EXPECT_EQ(back.log_evidence, m.log_evidence);
  EXPECT_EQ(back.support_inclusion_probability, m.support_inclusion_probability);
  ASSERT_EQ(back.selection.candidates.size(), m.selection.candidates.size());
  for (std::size_t c = 0; c < m.selection.candidates.size(); ++c)
    EXPECT_EQ(back.selection.candidates[c].log_evidence, m.selection.candidates[c].log_evidence);
  // A model whose prior over supports is not a probability is refused.
  Model bad = back;
  bad.support_inclusion_probability = 1.5;
  EXPECT_THROW(bad.validate(), Error);
  bad.support_inclusion_probability = std::nan("");
  EXPECT_THROW(predict(bad, syn.data.view()), Error);
  // Chosen on validation rows instead, the report says so.
  o.selection = Selection::validation;
  EXPECT_EQ(fit(syn.data.view(), o).selection.method, Selection::validation);
  // A new task predicts under the same prior over supports.
  EXPECT_EQ(adapt(back, syn.data.view(), o).support_inclusion_probability, m.support_inclusion_probability);
  {
    std::ifstream in(dir / "model.json");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::string key = "\"selection\": \"evidence\"";
    const std::size_t at = text.find(key);
    ASSERT_NE(at, std::string::npos);
    text.replace(at, key.size(), "\"selection\": \"bogus\"");
    std::ofstream(dir / "model.json") << text;
  }
  try {
    load_model(dir.string());
    ADD_FAILURE() << "a bad selection name was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bogus"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace lrsmeta
