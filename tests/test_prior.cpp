// The empirical-Bayes model (docs/design.md section 6): the task step's posterior against a dense
// computation, the fit at r = d, k = 0 against an independent EM for the linear mixed model, prior
// none against the paper's loop run by hand, tiny tasks, selection and the model file.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>

#include "core/backend.hpp"
#include "core/posterior.hpp"
#include "core/prior.hpp"
#include "core/random.hpp"
#include "core/small_dense.hpp"
#include "core/task_posterior.hpp"
#include "core/u_solver.hpp"
#include "cpu/cpu_backend.hpp"
#include "cpu/task_step.hpp"
#include "lrsmeta/io.hpp"
#include "lrsmeta/lrsmeta.hpp"
#include "test_helpers.hpp"
#include "trapped_task.hpp"

namespace lrsmeta {
namespace {

using Matrix = std::vector<double>;  // row-major

Matrix inverse(const Matrix& A, int n) {
  Matrix inv(static_cast<std::size_t>(n) * n);
  for (int c = 0; c < n; ++c) {
    std::vector<double> e(n, 0.0);
    e[c] = 1.0;
    const std::vector<double> col = testing::solve_dense(A, e);
    for (int a = 0; a < n; ++a) inv[a * n + c] = col[a];
  }
  return inv;
}

Matrix random_spd(int r, std::uint64_t seed) { return testing::random_spd(r, seed, 0.5); }

TEST(PriorTaskStep, PosteriorModeCovarianceAndDegreesOfFreedomMatchADenseComputation) {
  const int m = 9, d = 7, r = 3;
  const std::vector<double> X = testing::random_normal(static_cast<std::size_t>(m) * d, 21);
  const std::vector<double> y = testing::random_normal(m, 22);
  const std::vector<double> U = testing::random_orthonormal(d, r, 23);
  const std::vector<double> beta = testing::random_normal(d, 24);
  const Matrix Sigma = random_spd(r, 25);
  const double s2 = 0.7;
  Matrix precision = inverse(Sigma, r);
  for (double& x : precision) x *= s2;
  cpu::TaskPrior prior;
  prior.beta = beta.data();
  prior.w_precision = precision.data();
  prior.w_covariance = Sigma.data();
  prior.noise_variance = s2;
  cpu::TaskStepSettings settings;
  settings.k = 0;
  settings.task_ridge = 0.0;
  settings.prior = &prior;
  cpu::TaskWorkspace ws(m, d, r, 0);
  std::vector<double> w(r), V(static_cast<std::size_t>(r) * r);
  cpu::TaskPosterior post{V.data(), 0.0, 0.0};
  const double sse = cpu::task_step(X.data(), y.data(), m, d, U.data(), r, w.data(), nullptr, nullptr, 0, settings, ws, &post);

  // Dense: Z = X U, K = Z^T Z + s2 Sigma^-1, w = K^-1 Z^T (y - X beta), V = s2 K^-1.
  Matrix Z(static_cast<std::size_t>(m) * r, 0.0), K(static_cast<std::size_t>(r) * r, 0.0);
  std::vector<double> target(m), rhs(r, 0.0);
  for (int j = 0; j < m; ++j) {
    target[j] = y[j];
    for (int a = 0; a < d; ++a) target[j] -= X[j * d + a] * beta[a];
    for (int p = 0; p < r; ++p)
      for (int a = 0; a < d; ++a) Z[j * r + p] += X[j * d + a] * U[a * r + p];
  }
  for (int p = 0; p < r; ++p) {
    for (int j = 0; j < m; ++j) rhs[p] += Z[j * r + p] * target[j];
    for (int q = 0; q < r; ++q) {
      for (int j = 0; j < m; ++j) K[p * r + q] += Z[j * r + p] * Z[j * r + q];
      K[p * r + q] += precision[p * r + q];
    }
  }
  const std::vector<double> w_ref = testing::solve_dense(K, rhs);
  const Matrix K_inv = inverse(K, r);
  double df_ref = 0.0, sse_ref = 0.0;
  for (int p = 0; p < r; ++p)
    for (int q = 0; q < r; ++q) {
      double ztz = 0;
      for (int j = 0; j < m; ++j) ztz += Z[j * r + p] * Z[j * r + q];
      df_ref += K_inv[p * r + q] * ztz;  // tr(K^-1 Z^T Z)
    }
  for (int j = 0; j < m; ++j) {
    double e = target[j];
    for (int p = 0; p < r; ++p) e -= Z[j * r + p] * w_ref[p];
    sse_ref += e * e;
  }
  constexpr double kTol = 1e-11;
  for (int p = 0; p < r; ++p) EXPECT_NEAR(w[p], w_ref[p], kTol * (1 + std::fabs(w_ref[p])));
  for (int e = 0; e < r * r; ++e) EXPECT_NEAR(V[e], s2 * K_inv[e], kTol * (1 + std::fabs(s2 * K_inv[e])));
  EXPECT_NEAR(post.effective_params, df_ref, kTol * df_ref);
  EXPECT_NEAR(post.effective_params_b, 0.0, kTol);
  EXPECT_NEAR(sse, sse_ref, kTol * sse_ref);
}

// The posterior statistics of a solved system with w's and b's blocks (core/task_posterior.hpp):
// V, the degrees of freedom of both blocks and b's posterior variances, against the inverse of K
// by Gaussian elimination.
TEST(PriorTaskStep, PosteriorOfASystemWithBMatchesTheDenseInverse) {
  const int r = 4, n_b = 3, n = r + n_b;
  const Matrix Sigma = random_spd(r, 31);
  const double s2 = 0.6, b_precision = 0.4;
  Matrix precision = inverse(Sigma, r);
  for (double& x : precision) x *= s2;
  // K = A^T A + s2 P, A random (12 rows), P = blockdiag(Sigma^-1, I / tau2).
  const std::vector<double> A = testing::random_normal(static_cast<std::size_t>(12) * n, 32);
  Matrix K(static_cast<std::size_t>(n) * n, 0.0), AtA(K.size(), 0.0);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j)
      for (int l = 0; l < 12; ++l) AtA[i * n + j] += A[l * n + i] * A[l * n + j];
  K = AtA;
  for (int p = 0; p < r; ++p)
    for (int q = 0; q < r; ++q) K[p * n + q] += precision[p * r + q];
  for (int q = r; q < n; ++q) K[q * n + q] += b_precision;
  Matrix chol = K, scratch(K.size());
  ASSERT_TRUE(detail::cholesky_factor(chol.data(), n));
  core::LastSystem last;
  last.chol = chol.data();
  last.n = n;
  last.r = r;
  last.factored = true;
  core::TaskPrior prior;
  prior.w_precision = precision.data();
  prior.w_covariance = Sigma.data();
  prior.b_precision = b_precision;
  prior.noise_variance = s2;
  std::vector<double> V(static_cast<std::size_t>(r) * r);
  core::TaskPosterior post;
  post.V = V.data();
  core::posterior_of_last_system(last, prior, scratch.data(), post);
  const Matrix K_inv = inverse(K, n);
  double df = 0.0, df_b = 0.0;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      df += K_inv[i * n + j] * AtA[j * n + i];  // tr(K^-1 A^T A)
      if (i >= r) df_b += K_inv[i * n + j] * AtA[j * n + i];
    }
  constexpr double kTol = 1e-11;
  for (int p = 0; p < r; ++p)
    for (int q = 0; q < r; ++q) EXPECT_NEAR(V[p * r + q], s2 * K_inv[p * n + q], kTol);
  EXPECT_NEAR(post.effective_params, df, kTol * df);
  EXPECT_NEAR(post.effective_params_b, df_b, kTol * df);
  for (int q = r; q < n; ++q) EXPECT_NEAR(scratch[q * n + q], K_inv[q * n + q], kTol);
}

// A task trapped by its incoming support ends with one that fits its rows to the noise. The task
// (tests/data/trapped_task: 40 rows, d = 100) is one of the quickstart's, with the fitted U, beta,
// Sigma, s2, tau2 and pi of a fit in which it kept the support {21, 77, 90}, chosen in the first
// iterations with b, to the end: its residual sum of squares stayed 22.6 against 40 s2 = 0.0068,
// because no single swap among the candidates improves the marginal likelihood. Its true support
// is {0, 8, 80}.
TEST(PriorTaskStep, ATaskTrappedByItsIncomingSupportFindsOneThatFitsItsRows) {
  const testing::TrappedTask task(LRSMETA_TEST_DATA_DIR "/trapped_task/");
  const int m = task.m, d = task.d, r = task.r, k = task.k;
  ASSERT_EQ(k, 3);
  const double s2 = task.prior.noise_variance;
  cpu::TaskStepSettings settings;
  settings.k = k;
  settings.prior = &task.prior;
  cpu::TaskWorkspace ws(m, d, r, k);
  std::vector<double> w(r, 0.0), b_value(k, 0.0), V(static_cast<std::size_t>(r) * r);
  std::vector<std::int32_t> b_index = task.incoming;
  cpu::TaskPosterior post{V.data()};
  const double sse = cpu::task_step(task.X.data(), task.y.data(), m, d, task.U.data(), r, w.data(), b_index.data(), b_value.data(), k,
                                    settings, ws, &post);
  EXPECT_LT(sse, s2 * (m + 6.0 * std::sqrt(2.0 * m)));
  EXPECT_EQ(b_index, (std::vector<std::int32_t>{0, 8, 80}));
}

TEST(Posterior, WhiteningAndMappingBackMatchDenseProducts) {
  // Sigma = A A^T + I on fresh random A; L its factor; a whitened w and V (SPD) mapped back must be
  // L w and L V L^T, and the task's E[w w^T] is w w^T + V: all to 1e-12 against plain dense loops.
  std::mt19937_64 engine(20261205);
  std::normal_distribution<double> normal;
  for (int r : {1, 3, 6}) {
    std::vector<double> A(static_cast<std::size_t>(r * r)), Sigma(A.size(), 0.0);
    for (double& x : A) x = normal(engine);
    for (int p = 0; p < r; ++p)
      for (int q = 0; q < r; ++q) {
        for (int c = 0; c < r; ++c) Sigma[p * r + q] += A[p * r + c] * A[q * r + c];
        if (p == q) Sigma[p * r + q] += 1.0;
      }
    const std::vector<double> L = core::whitening_factor(Sigma, r);
    for (int p = 0; p < r; ++p)
      for (int q = 0; q < r; ++q) {
        double LLt = 0.0;
        for (int c = 0; c < r; ++c) LLt += L[p * r + c] * L[q * r + c];
        EXPECT_NEAR(LLt, Sigma[p * r + q], 1e-12 * (1.0 + std::abs(Sigma[p * r + q])));
        if (q > p) EXPECT_EQ(L[p * r + q], 0.0);
      }
    const int d = 5;
    std::vector<double> U(static_cast<std::size_t>(d * r));
    for (double& x : U) x = normal(engine);
    std::vector<double> UL;
    core::whitened_basis(U, L, d, r, UL);
    for (int a = 0; a < d; ++a)
      for (int q = 0; q < r; ++q) {
        double s = 0.0;
        for (int p = 0; p < r; ++p) s += U[a * r + p] * L[p * r + q];
        EXPECT_NEAR(UL[a * r + q], s, 1e-12 * (1.0 + std::abs(s)));
      }
    std::vector<double> w(static_cast<std::size_t>(r)), B(static_cast<std::size_t>(r * r)), V(B.size(), 0.0);
    for (double& x : w) x = normal(engine);
    for (double& x : B) x = normal(engine);
    for (int p = 0; p < r; ++p)
      for (int q = 0; q < r; ++q)
        for (int c = 0; c < r; ++c) V[p * r + q] += B[p * r + c] * B[q * r + c];
    std::vector<double> w_back = w, V_packed(static_cast<std::size_t>(r * (r + 1) / 2)), scratch(static_cast<std::size_t>(r + r * r));
    core::map_back_from_whitened(L.data(), r, w_back.data(), V.data(), V_packed.data(), scratch.data());
    std::vector<double> S(static_cast<std::size_t>(r * r), 0.0), w_sum(static_cast<std::size_t>(r), 0.0);
    core::add_second_moment(w_back.data(), V_packed.data(), r, S.data(), w_sum.data());
    core::symmetrise_upper(S.data(), r);
    for (int p = 0, pq = 0; p < r; ++p) {
      double Lw = 0.0;
      for (int c = 0; c < r; ++c) Lw += L[p * r + c] * w[c];
      EXPECT_NEAR(w_back[p], Lw, 1e-12 * (1.0 + std::abs(Lw)));
      EXPECT_EQ(w_sum[p], w_back[p]);
      for (int q = 0; q < r; ++q) {
        double LVLt = 0.0;
        for (int c = 0; c < r; ++c)
          for (int e = 0; e < r; ++e) LVLt += L[p * r + c] * V[c * r + e] * L[q * r + e];
        if (q >= p) EXPECT_NEAR(V_packed[pq++], LVLt, 1e-12 * (1.0 + std::abs(LVLt)));
        EXPECT_NEAR(S[p * r + q], LVLt + w_back[p] * w_back[q], 1e-12 * (1.0 + std::abs(LVLt)));
      }
    }
  }
}

TEST(PriorBackend, DataMomentsMatchPlainSums) {
  SyntheticSpec spec;
  spec.tasks = 40;
  spec.min_samples = 0;
  spec.max_samples = 30;
  spec.d = 6;
  spec.noise = 0.5;
  spec.seed = 17;
  const SyntheticData syn = generate_synthetic(spec);
  Options o;
  o.rank = 2;
  o.threads = 2;
  cpu::CpuBackend<double> backend(syn.data.view(), o);
  const core::DataMoments m = backend.data_moments();
  const int d = 6;
  Matrix XtX(d * d, 0.0);
  std::vector<double> Xty(d, 0.0);
  double yty = 0.0;
  for (std::int64_t j = 0; j < syn.data.n(); ++j) {
    const double yj = syn.data.y[static_cast<std::size_t>(j)];
    yty += yj * yj;
    for (int a = 0; a < d; ++a) {
      Xty[a] += syn.data.X[j * d + a] * yj;
      for (int b = 0; b < d; ++b) XtX[a * d + b] += syn.data.X[j * d + a] * syn.data.X[j * d + b];
    }
  }
  EXPECT_EQ(m.rows, syn.data.n());
  EXPECT_NEAR(m.yty, yty, 1e-12 * yty);
  for (int e = 0; e < d * d; ++e) EXPECT_NEAR(m.XtX[e], XtX[e], 1e-12 * (1 + std::fabs(XtX[e])));
  for (int a = 0; a < d; ++a) EXPECT_NEAR(m.Xty[a], Xty[a], 1e-12 * (1 + std::fabs(Xty[a])));
}

TEST(PriorTaskStep, AnEmptyTaskGetsThePriorAsPosterior) {
  const int d = 5, r = 2;
  const std::vector<double> U = testing::random_orthonormal(d, r, 3), beta(d, 0.3);
  const Matrix Sigma = random_spd(r, 4);
  Matrix precision = inverse(Sigma, r);
  cpu::TaskPrior prior{beta.data(), precision.data(), Sigma.data(), 0.0, 1.0, 0.0};
  cpu::TaskStepSettings settings;
  settings.prior = &prior;
  cpu::TaskWorkspace ws(1, d, r, 1);
  std::vector<double> w(r, 9.0), V(r * r), bv(1, 9.0);
  std::vector<std::int32_t> bi(1, 3);
  cpu::TaskPosterior post{V.data(), 0.0, 0.0};
  cpu::task_step<double>(nullptr, nullptr, 0, d, U.data(), r, w.data(), bi.data(), bv.data(), 1, settings, ws, &post);
  EXPECT_EQ(w, std::vector<double>(r, 0.0));
  EXPECT_EQ(bi[0], -1);
  EXPECT_EQ(V, Sigma);
  EXPECT_EQ(post.effective_params, 0.0);
}

// Ragged tasks from a linear mixed model: y_ij = x_ij^T (beta + u_i) + e, u_i ~ N(0, Sigma).
Dataset<double> mixed_model_data(int t, int d, std::uint64_t seed, int min_rows = 2, int max_rows = 12) {
  core::NormalGenerator gen(seed);
  const Matrix Sigma = random_spd(d, seed + 1);
  std::vector<double> beta(d);
  for (double& b : beta) b = gen();
  Dataset<double> ds;
  ds.d = d;
  ds.task_offsets.assign(1, 0);
  for (int i = 0; i < t; ++i) {
    // u = L z with L L^T = Sigma (by Cholesky, in place on a copy).
    Matrix L = Sigma;
    for (int j = 0; j < d; ++j) {
      for (int p = 0; p < j; ++p) L[j * d + j] -= L[j * d + p] * L[j * d + p];
      L[j * d + j] = std::sqrt(L[j * d + j]);
      for (int a = j + 1; a < d; ++a) {
        for (int p = 0; p < j; ++p) L[a * d + j] -= L[a * d + p] * L[j * d + p];
        L[a * d + j] /= L[j * d + j];
      }
    }
    std::vector<double> z(d), theta(beta);
    for (double& x : z) x = gen();
    for (int a = 0; a < d; ++a)
      for (int p = 0; p <= a; ++p) theta[a] += L[a * d + p] * z[p];
    const int m = min_rows + static_cast<int>(gen.below(static_cast<std::uint64_t>(max_rows - min_rows + 1)));
    for (int j = 0; j < m; ++j) {
      double yj = 0.5 * gen();
      for (int a = 0; a < d; ++a) {
        const double x = gen();
        ds.X.push_back(x);
        yj += x * theta[a];
      }
      ds.y.push_back(yj);
    }
    ds.task_offsets.push_back(ds.n());
  }
  return ds;
}

struct EmResult {
  std::vector<double> beta;
  Matrix Sigma;
  double s2;
  std::vector<std::vector<double>> theta;
};

// The textbook EM for the linear mixed model with random intercept and slopes (full Sigma), with
// the parameter expansion of the random effects' mean (PX-EM, Liu, Rubin and Wu 1998): the mean
// of the posterior means moves into beta. Same fixed point (the MLE); plain EM creeps towards it
// by 1e-4 per thousand iterations when tasks are large.
EmResult independent_em(const Dataset<double>& ds, int iterations) {
  const int d = static_cast<int>(ds.d), t = static_cast<int>(ds.t());
  const double n = static_cast<double>(ds.n());
  std::vector<Matrix> XtX(t, Matrix(d * d, 0.0));
  std::vector<std::vector<double>> Xty(t, std::vector<double>(d, 0.0));
  Matrix XtX_all(d * d, 0.0);
  for (int i = 0; i < t; ++i)
    for (std::int64_t j = ds.task_offsets[i]; j < ds.task_offsets[i + 1]; ++j)
      for (int a = 0; a < d; ++a) {
        Xty[i][a] += ds.X[j * d + a] * ds.y[j];
        for (int b = 0; b < d; ++b) XtX[i][a * d + b] += ds.X[j * d + a] * ds.X[j * d + b];
      }
  for (int i = 0; i < t; ++i)
    for (int e = 0; e < d * d; ++e) XtX_all[e] += XtX[i][e];
  EmResult res{std::vector<double>(d, 0.0), Matrix(d * d, 0.0), 1.0, {}};
  for (int a = 0; a < d; ++a) res.Sigma[a * d + a] = 1.0;
  std::vector<std::vector<double>> mu(t);
  std::vector<Matrix> C(t);
  for (int it = 0; it < iterations; ++it) {
    const Matrix Sigma_inv = inverse(res.Sigma, d);
    for (int i = 0; i < t; ++i) {  // E-step
      Matrix P(d * d);
      for (int e = 0; e < d * d; ++e) P[e] = XtX[i][e] / res.s2 + Sigma_inv[e];
      C[i] = inverse(P, d);
      std::vector<double> rhs(d);
      for (int a = 0; a < d; ++a) {
        double s = Xty[i][a];
        for (int b = 0; b < d; ++b) s -= XtX[i][a * d + b] * res.beta[b];
        rhs[a] = s / res.s2;
      }
      mu[i].assign(d, 0.0);
      for (int a = 0; a < d; ++a)
        for (int b = 0; b < d; ++b) mu[i][a] += C[i][a * d + b] * rhs[b];
    }
    std::vector<double> rhs(d, 0.0);  // M-step
    for (int i = 0; i < t; ++i)
      for (int a = 0; a < d; ++a) {
        rhs[a] += Xty[i][a];
        for (int b = 0; b < d; ++b) rhs[a] -= XtX[i][a * d + b] * mu[i][b];
      }
    res.beta = testing::solve_dense(XtX_all, rhs);
    Matrix S(d * d, 0.0);
    double sse = 0.0;
    for (int i = 0; i < t; ++i) {
      for (int a = 0; a < d; ++a)
        for (int b = 0; b < d; ++b) S[a * d + b] += (mu[i][a] * mu[i][b] + C[i][a * d + b]) / t;
      for (std::int64_t j = ds.task_offsets[i]; j < ds.task_offsets[i + 1]; ++j) {
        double e = ds.y[j];
        for (int a = 0; a < d; ++a) e -= ds.X[j * d + a] * (res.beta[a] + mu[i][a]);
        sse += e * e;
      }
      for (int e = 0; e < d * d; ++e) sse += XtX[i][e] * C[i][e];  // tr(X^T X C), both symmetric
    }
    std::vector<double> mean(d, 0.0);
    for (int i = 0; i < t; ++i)
      for (int a = 0; a < d; ++a) mean[a] += mu[i][a] / t;
    for (int a = 0; a < d; ++a) {
      res.beta[a] += mean[a];
      for (int i = 0; i < t; ++i) mu[i][a] -= mean[a];
      for (int b = 0; b < d; ++b) S[a * d + b] -= mean[a] * mean[b];
    }
    res.Sigma = S;
    res.s2 = sse / n;
  }
  for (int i = 0; i < t; ++i) {
    res.theta.push_back(res.beta);
    for (int a = 0; a < d; ++a) res.theta.back()[a] += mu[i][a];
  }
  return res;
}

TEST(MixedModel, FullRankWithoutSparsityIsTheLinearMixedModelFittedByEm) {
  const int d = 3;
  const Dataset<double> ds = mixed_model_data(60, d, 5);
  const EmResult em = independent_em(ds, 1000);
  Options o;
  o.rank = d;
  o.covariance_shrinkage = 0.0;  // the plain mixed model (maximum likelihood)
  o.sparsity = 0;
  o.population_prior = false;  // the classical model: beta unpenalised
  o.iterations = 400;  // both run to their fixed point
  o.warm_start_iterations = 0;
  const Model model = fit(ds.view(), o);
  ASSERT_TRUE(model.has_prior());
  constexpr double kTol = 1e-6;
  EXPECT_NEAR(model.noise_variance, em.s2, kTol * em.s2);
  for (int a = 0; a < d; ++a) EXPECT_NEAR(model.beta[a], em.beta[a], kTol * (1 + std::fabs(em.beta[a])));
  // Sigma in the data's coordinates: U Sigma_w U^T.
  for (int a = 0; a < d; ++a)
    for (int b = 0; b < d; ++b) {
      double s = 0;
      for (int p = 0; p < d; ++p)
        for (int q = 0; q < d; ++q) s += model.U[a * d + p] * model.Sigma[p * d + q] * model.U[b * d + q];
      EXPECT_NEAR(s, em.Sigma[a * d + b], kTol * (1 + std::fabs(em.Sigma[a * d + b])));
    }
  for (int i = 0; i < model.t; ++i) {
    const std::vector<double> theta = model.theta(i);
    for (int a = 0; a < d; ++a) EXPECT_NEAR(theta[a], em.theta[i][a], kTol * (1 + std::fabs(em.theta[i][a]))) << "task " << i;
  }
}

// The marginal log-likelihood of the linear mixed model: sum_i log N(y_i; X_i beta, X_i S X_i^T + s2 I).
double mixed_model_loglik(const Dataset<double>& ds, const std::vector<double>& beta, const Matrix& S, double s2) {
  const int d = static_cast<int>(ds.d);
  double ll = 0;
  for (std::int64_t i = 0; i < ds.t(); ++i) {
    const int m = static_cast<int>(ds.task_offsets[i + 1] - ds.task_offsets[i]);
    const double* X = ds.X.data() + ds.task_offsets[i] * d;
    Matrix XS(static_cast<std::size_t>(m) * d, 0.0), C(static_cast<std::size_t>(m) * m);
    std::vector<double> e(m);
    for (int a = 0; a < m; ++a) {
      e[a] = ds.y[static_cast<std::size_t>(ds.task_offsets[i] + a)];
      for (int c = 0; c < d; ++c) e[a] -= X[a * d + c] * beta[c];
      for (int q = 0; q < d; ++q)
        for (int p = 0; p < d; ++p) XS[a * d + q] += X[a * d + p] * S[p * d + q];
    }
    for (int a = 0; a < m; ++a)
      for (int b = 0; b < m; ++b) {
        double v = a == b ? s2 : 0.0;
        for (int q = 0; q < d; ++q) v += XS[a * d + q] * X[b * d + q];
        C[a * m + b] = v;
      }
    double logdet = 0;
    for (int j = 0; j < m; ++j) {
      for (int p = 0; p < j; ++p) C[j * m + j] -= C[j * m + p] * C[j * m + p];
      C[j * m + j] = std::sqrt(C[j * m + j]);
      logdet += 2 * std::log(C[j * m + j]);
      for (int a = j + 1; a < m; ++a) {
        for (int p = 0; p < j; ++p) C[a * m + j] -= C[a * m + p] * C[j * m + p];
        C[a * m + j] /= C[j * m + j];
      }
    }
    double q = 0;
    for (int a = 0; a < m; ++a) {
      for (int p = 0; p < a; ++p) e[a] -= C[a * m + p] * e[p];
      e[a] /= C[a * m + a];
      q += e[a] * e[a];
    }
    ll += -0.5 * (logdet + q + m * std::log(2 * M_PI));
  }
  return ll;
}

TEST(MixedModel, BinaryFeaturesAndAConstantReachTheMaximumLikelihood) {
  // 0/1 features and a constant column (like genres and an intercept), targets from other
  // features: the MLE of Sigma is close to singular. Inverting Sigma there made the fit drift
  // away from the maximum (its likelihood fell after 20 iterations); the whitened task step
  // (w = L v, Sigma = L L^T) does not.
  const int d = 12;
  Dataset<double> ds = mixed_model_data(150, d, 7, 15, 50);
  for (std::size_t e = 0; e < ds.X.size(); ++e) ds.X[e] = (e % d == d - 1) ? 1.0 : (ds.X[e] > 0.8 ? 1.0 : 0.0);
  const EmResult em = independent_em(ds, 400);
  Options o;
  o.rank = d;
  o.covariance_shrinkage = 0.0;  // the plain mixed model (maximum likelihood)
  o.sparsity = 0;
  o.population_prior = false;
  o.iterations = 200;
  o.warm_start_iterations = 0;
  const Model model = fit(ds.view(), o);
  Matrix S(static_cast<std::size_t>(d) * d, 0.0);
  for (int a = 0; a < d; ++a)
    for (int b = 0; b < d; ++b)
      for (int p = 0; p < d; ++p)
        for (int q = 0; q < d; ++q) S[a * d + b] += model.U[a * d + p] * model.Sigma[p * d + q] * model.U[b * d + q];
  const double mine = mixed_model_loglik(ds, model.beta, S, model.noise_variance);
  const double reference = mixed_model_loglik(ds, em.beta, em.Sigma, em.s2);
  EXPECT_GT(mine, reference - 1e-6 * std::fabs(reference));
  EXPECT_NEAR(model.noise_variance, em.s2, 1e-2 * em.s2);  // the likelihood is flat there: plain EM is still creeping
}

TEST(MixedModel, LargeTasksToo) {
  const int d = 4;
  const Dataset<double> ds = mixed_model_data(40, d, 6, 20, 300);
  const EmResult em = independent_em(ds, 500);
  Options o;
  o.rank = d;
  o.covariance_shrinkage = 0.0;  // the plain mixed model (maximum likelihood)
  o.sparsity = 0;
  o.population_prior = false;
  o.iterations = 300;
  o.warm_start_iterations = 0;
  const Model model = fit(ds.view(), o);
  EXPECT_NEAR(model.noise_variance, em.s2, 1e-6 * em.s2);
  for (int i = 0; i < model.t; ++i) {
    const std::vector<double> theta = model.theta(i);
    for (int a = 0; a < d; ++a) EXPECT_NEAR(theta[a], em.theta[i][a], 1e-6 * (1 + std::fabs(em.theta[i][a]))) << "task " << i;
  }
}

TEST(PriorNone, IsThePapersLoopBitForBit) {
  SyntheticSpec spec;
  spec.tasks = 200;
  spec.min_samples = 3;
  spec.max_samples = 40;
  spec.d = 12;
  spec.r = 2;
  spec.k = 2;
  spec.noise = 0.2;
  spec.seed = 9;
  const SyntheticData syn = generate_synthetic(spec);
  Options o;
  o.prior = Prior::none;
  o.rank = 2;
  o.sparsity = 2;
  o.iterations = 9;
  o.warm_start_iterations = 3;
  o.threads = 2;
  const Model model = fit(syn.data.view(), o);
  EXPECT_FALSE(model.has_prior());
  EXPECT_FALSE(model.selection.performed);
  // The same loop by hand through the backend, with no prior anywhere.
  cpu::CpuBackend<double> backend(syn.data.view(), o);
  backend.set_U(core::random_orthonormal_basis(12, 2, o.seed));
  for (int it = 1; it <= o.iterations; ++it) {
    backend.task_step_all(it <= o.warm_start_iterations ? 0 : 2);
    core::direct_U_step(backend, o);
  }
  backend.task_step_all(2);
  EXPECT_EQ(model.U, backend.get_U());
  EXPECT_EQ(model.W, backend.W());
  EXPECT_EQ(model.B_index, backend.B_index());
  EXPECT_EQ(model.B_value, backend.B_value());
}

TEST(Prior, TinyTasksGetFiniteShrunkParameters) {
  // Noisy tasks, some with 1 row, some with 0, some whose rows all repeat one row.
  SyntheticSpec spec;
  spec.tasks = 300;
  spec.min_samples = 20;
  spec.max_samples = 20;
  spec.d = 10;
  spec.r = 2;
  spec.k = 1;
  spec.noise = 0.5;
  spec.seed = 31;
  const SyntheticData syn = generate_synthetic(spec);
  Dataset<double> ds;
  ds.d = spec.d;
  ds.task_offsets.assign(1, 0);
  for (std::int64_t i = 0; i < spec.tasks; ++i) {
    const std::int64_t row0 = syn.data.task_offsets[i];
    const int kind = static_cast<int>(i % 4);  // 0: all 20 rows, 1: one row, 2: none, 3: one row 6 times
    const int rows = kind == 0 ? 20 : kind == 1 ? 1 : kind == 2 ? 0 : 6;
    for (int j = 0; j < rows; ++j) {
      const std::int64_t src = row0 + (kind == 3 ? 0 : j);
      ds.X.insert(ds.X.end(), syn.data.X.begin() + src * spec.d, syn.data.X.begin() + (src + 1) * spec.d);
      ds.y.push_back(syn.data.y[static_cast<std::size_t>(src)]);
    }
    ds.task_offsets.push_back(ds.n());
  }
  Options o;
  o.rank = 2;
  o.sparsity = 1;
  const Model model = fit(ds.view(), o);
  const std::vector<double> truth = syn.theta();
  double biggest_true = 0;
  for (double x : truth) biggest_true = std::max(biggest_true, std::fabs(x));
  double biggest = 0;
  for (std::int64_t i = 0; i < spec.tasks; ++i) {
    const std::vector<double> th = model.theta(i);
    for (int a = 0; a < spec.d; ++a) {
      ASSERT_TRUE(std::isfinite(th[a]));
      biggest = std::max(biggest, std::fabs(th[a]));
      if (i % 4 == 2) EXPECT_EQ(th[a], model.beta[a]) << "a task with no rows predicts with beta";
    }
  }
  // Shrunk: no coefficient beyond the largest true one.
  EXPECT_LT(biggest, biggest_true);
}

TEST(Prior, SelectionIsRecordedAndTheModelFileRoundTrips) {
  SyntheticSpec spec;
  spec.tasks = 200;
  spec.min_samples = 8;
  spec.max_samples = 30;
  spec.d = 12;
  spec.r = 2;
  spec.k = 1;
  spec.noise = 0.3;
  spec.seed = 41;
  const SyntheticData syn = generate_synthetic(spec);
  Options o;
  o.rank_candidates = {0, 1, 2, 3};
  o.sparsity_candidates = {0, 1, 2};
  o.iterations = 12;
  o.selection = Selection::validation;
  const Model model = fit(syn.data.view(), o);
  ASSERT_TRUE(model.selection.performed);
  EXPECT_TRUE(model.selection.rank_auto && model.selection.sparsity_auto && model.selection.sparse_prior_scale_auto &&
              model.selection.covariance_shrinkage_auto);
  EXPECT_GT(model.selection.validation_rows, 0);
  EXPECT_EQ(model.selection.fit_rows + model.selection.validation_rows, syn.data.n());
  EXPECT_EQ(model.selection.tasks, 200);
  EXPECT_EQ(model.r, model.selection.chosen.rank);
  EXPECT_EQ(model.k, model.selection.chosen.sparsity);
  // The choice is one of the candidates scored (screens are then refitted: the choice is a fit's
  // own score), with the fitted model's settings.
  bool listed = false;
  for (const SelectionCandidate& c : model.selection.candidates) {
    EXPECT_TRUE(std::isfinite(c.validation_mse));
    const SelectionCandidate& ch = model.selection.chosen;
    listed = listed || (c.rank == ch.rank && c.sparsity == ch.sparsity && c.sparse_prior_scale == ch.sparse_prior_scale &&
                        c.support_threshold == ch.support_threshold && c.covariance_shrinkage == ch.covariance_shrinkage &&
                        c.validation_mse == ch.validation_mse);
  }
  EXPECT_TRUE(listed);
  if (model.r > 0) EXPECT_EQ(model.covariance_shrinkage, model.selection.chosen.covariance_shrinkage);
  if (model.k > 0) EXPECT_EQ(model.support_threshold, model.selection.chosen.support_threshold);
  // Never below the truth's rank here: a smaller U cannot fit these tasks.
  EXPECT_GE(model.r, 2);

  const std::string dir = ::testing::TempDir() + "/lrsmeta_prior_model";
  std::filesystem::remove_all(dir);
  save_model(model, dir);
  const Model back = load_model(dir);
  EXPECT_EQ(back.beta, model.beta);
  EXPECT_EQ(back.Sigma, model.Sigma);
  EXPECT_EQ(back.noise_variance, model.noise_variance);
  EXPECT_EQ(back.sparse_prior_variance, model.sparse_prior_variance);
  EXPECT_EQ(back.support_threshold, model.support_threshold);
  EXPECT_EQ(back.covariance_shrinkage, model.covariance_shrinkage);
  EXPECT_EQ(back.selection.chosen.covariance_shrinkage, model.selection.chosen.covariance_shrinkage);
  EXPECT_EQ(back.options.prior, Prior::automatic);
  EXPECT_EQ(back.selection.candidates.size(), model.selection.candidates.size());
  EXPECT_EQ(back.selection.chosen.rank, model.selection.chosen.rank);
  EXPECT_EQ(back.selection.tasks, model.selection.tasks);
  EXPECT_EQ(predict(back, syn.data.view()), predict(model, syn.data.view()));
  std::filesystem::remove_all(dir);
}

TEST(Prior, TheChoiceOnManyTasksIsMadeOnARandomSubsetOfThem) {
  SyntheticSpec spec;
  spec.tasks = 300;
  spec.min_samples = 5;
  spec.max_samples = 25;  // ragged: the subset's rows are not a fixed share of all rows
  spec.d = 10;
  spec.r = 2;
  spec.k = 1;
  spec.noise = 0.3;
  spec.seed = 43;
  const SyntheticData syn = generate_synthetic(spec);
  Options o;
  o.rank_candidates = {1, 2};
  o.sparsity = 1;
  o.iterations = 8;
  o.selection = Selection::validation;
  o.selection_tasks = 100;
  const Model model = fit(syn.data.view(), o);
  ASSERT_TRUE(model.selection.performed);
  EXPECT_EQ(model.selection.tasks, 100);
  EXPECT_EQ(model.t, 300);  // the final fit has every task
  const std::int64_t rows = model.selection.fit_rows + model.selection.validation_rows;
  EXPECT_GT(rows, 100 * 5);
  EXPECT_LT(rows, 100 * 25);
  EXPECT_NE(rows, syn.data.task_offsets[100]);  // a draw, not the first 100 tasks
  // Seeded: the same draw again; another seed, another draw.
  EXPECT_EQ(fit(syn.data.view(), o).selection.fit_rows, model.selection.fit_rows);
  Options other = o;
  other.seed = o.seed + 1;
  const Model reseeded = fit(syn.data.view(), other);
  EXPECT_NE(reseeded.selection.fit_rows + reseeded.selection.validation_rows, rows);
  // 0: every task.
  o.selection_tasks = 0;
  const Model all = fit(syn.data.view(), o);
  EXPECT_EQ(all.selection.tasks, 300);
  EXPECT_EQ(all.selection.fit_rows + all.selection.validation_rows, syn.data.n());
  o.selection_tasks = -1;
  EXPECT_THROW(fit(syn.data.view(), o), Error);
}

TEST(Prior, AdaptUsesTheTrainedPrior) {
  SyntheticSpec spec;
  spec.tasks = 300;
  spec.min_samples = spec.max_samples = 25;
  spec.d = 10;
  spec.r = 2;
  spec.k = 1;
  spec.noise = 0.3;
  spec.seed = 51;
  spec.basis_seed = 5;
  const SyntheticData train = generate_synthetic(spec);
  Options o;
  o.rank = 2;
  o.sparsity = 1;
  const Model model = fit(train.data.view(), o);
  spec.tasks = 4;
  spec.seed = 52;
  SyntheticData fresh = generate_synthetic(spec);
  // Task 3 has no rows: it gets beta.
  fresh.data.X.resize(static_cast<std::size_t>(fresh.data.task_offsets[3] * spec.d));
  fresh.data.y.resize(static_cast<std::size_t>(fresh.data.task_offsets[3]));
  fresh.data.task_offsets[4] = fresh.data.task_offsets[3];
  const Model adapted = adapt(model, fresh.data.view(), o);
  EXPECT_EQ(adapted.beta, model.beta);
  EXPECT_EQ(adapted.theta(3), model.beta);
  const std::vector<double> truth = fresh.theta();
  for (int i = 0; i < 3; ++i) {
    const std::vector<double> th = adapted.theta(i);
    std::vector<double> want(truth.begin() + i * spec.d, truth.begin() + (i + 1) * spec.d);
    EXPECT_LT(relative_error(th, want), 0.4) << "task " << i;
  }
}

TEST(CovarianceShrinkage, ShrinkingKeepsTheTraceAndUnshrinkingUndoesIt) {
  const int r = 4;
  const std::vector<double> B = testing::random_normal(static_cast<std::size_t>(r) * r, 71);
  std::vector<double> Sigma(static_cast<std::size_t>(r) * r, 0.0);
  for (int a = 0; a < r; ++a)
    for (int b = 0; b < r; ++b)
      for (int c = 0; c < r; ++c) Sigma[a * r + b] += B[a * r + c] * B[b * r + c];
  double trace = 0;
  for (int a = 0; a < r; ++a) trace += Sigma[a * r + a];
  for (double f : {0.0, 0.5, 3.0}) {
    std::vector<double> S = Sigma;
    core::shrink_covariance(S, r, f);
    double t2 = 0;
    for (int a = 0; a < r; ++a) t2 += S[a * r + a];
    EXPECT_NEAR(t2, trace, 1e-12 * trace);
    // Off-diagonal entries scale by 1 / (1 + f); diagonal ones move towards the mean variance.
    for (int a = 0; a < r; ++a)
      for (int b = 0; b < r; ++b)
        EXPECT_NEAR(S[a * r + b], a == b ? (Sigma[a * r + a] + f * trace / r) / (1 + f) : Sigma[a * r + b] / (1 + f), 1e-12 * trace);
    core::unshrink_covariance(S, r, f);
    for (std::size_t e = 0; e < S.size(); ++e) EXPECT_NEAR(S[e], Sigma[e], 1e-12 * trace);
  }
}

// With Sigma shrunk all the way to isotropic, the full-rank model is per-task ridge towards the
// population model, theta_i = argmin ||y_i - X_i theta||^2 + (s2 / sigma^2) ||theta - beta||^2,
// computed here independently from the model's beta, s2 and sigma^2.
TEST(CovarianceShrinkage, LargeShrinkageAtFullRankIsRidgeTowardsThePopulationModel) {
  const int d = 4;
  const Dataset<double> ds = mixed_model_data(80, d, 17);
  Options o;
  o.rank = d;
  o.sparsity = 0;
  o.covariance_shrinkage = 1e9;
  o.iterations = 60;
  const Model model = fit(ds.view(), o);
  ASSERT_TRUE(model.has_prior());
  EXPECT_EQ(model.covariance_shrinkage, 1e9);
  double variance = 0;
  for (int a = 0; a < d; ++a) variance += model.Sigma[a * d + a] / d;
  for (int a = 0; a < d; ++a)
    for (int b = 0; b < d; ++b) EXPECT_NEAR(model.Sigma[a * d + b], a == b ? variance : 0.0, 1e-7 * variance);
  const double lambda = model.noise_variance / variance;
  ASSERT_GT(lambda, 0.0);
  for (std::int64_t i = 0; i < ds.t(); ++i) {
    std::vector<double> A(static_cast<std::size_t>(d) * d, 0.0), rhs(static_cast<std::size_t>(d), 0.0);
    for (std::int64_t j = ds.task_offsets[i]; j < ds.task_offsets[i + 1]; ++j) {
      double resid = ds.y[j];
      for (int a = 0; a < d; ++a) resid -= ds.X[j * d + a] * model.beta[a];
      for (int a = 0; a < d; ++a) {
        rhs[a] += ds.X[j * d + a] * resid;
        for (int b = 0; b < d; ++b) A[a * d + b] += ds.X[j * d + a] * ds.X[j * d + b];
      }
    }
    for (int a = 0; a < d; ++a) A[a * d + a] += lambda;
    const std::vector<double> delta = testing::solve_dense(A, rhs);
    const std::vector<double> theta = model.theta(i);
    for (int a = 0; a < d; ++a)
      EXPECT_NEAR(theta[a], model.beta[a] + delta[a], 1e-6 * (1 + std::fabs(theta[a]))) << "task " << i << ", coefficient " << a;
  }
}

// --select kfold: every row of a task with 2 rows or more is held out in exactly one of the K
// fits (a task of one row never is), the choice is recorded as such, and on planted data it finds
// the truth's rank as the choice on validation rows does.
TEST(Prior, KFoldHoldsOutEveryRowOfATaskWithTwoRowsOnce) {
  SyntheticSpec spec;
  spec.tasks = 240;
  spec.min_samples = 1;
  spec.max_samples = 30;
  spec.d = 10;
  spec.r = 2;
  spec.k = 1;
  spec.noise = 0.2;
  spec.seed = 47;
  const SyntheticData syn = generate_synthetic(spec);
  std::int64_t rows_of_tasks_with_two = 0, single_row_tasks = 0;
  for (std::int64_t i = 0; i < syn.data.t(); ++i) {
    const std::int64_t m = syn.data.task_offsets[i + 1] - syn.data.task_offsets[i];
    if (m >= 2) rows_of_tasks_with_two += m;
    else ++single_row_tasks;
  }
  ASSERT_GT(single_row_tasks, 0);
  Options o;
  o.rank_candidates = {1, 2, 3};
  o.sparsity = 1;
  o.iterations = 15;
  o.selection = Selection::kfold;
  o.folds = 4;
  const Model model = fit(syn.data.view(), o);
  ASSERT_TRUE(model.selection.performed);
  EXPECT_EQ(model.selection.method, Selection::kfold);
  EXPECT_EQ(model.selection.folds, 4);
  EXPECT_EQ(model.selection.validation_rows, rows_of_tasks_with_two);
  EXPECT_EQ(model.selection.fit_rows, syn.data.n());
  for (const SelectionCandidate& c : model.selection.candidates) EXPECT_TRUE(std::isfinite(c.validation_mse));
  EXPECT_EQ(model.r, 2);
  EXPECT_EQ(model.r, model.selection.chosen.rank);
  // Seeded: the same folds and the same choice again.
  const Model again = fit(syn.data.view(), o);
  EXPECT_EQ(again.selection.chosen.validation_mse, model.selection.chosen.validation_mse);
  // Recorded in the model folder.
  const std::string dir = ::testing::TempDir() + "/lrsmeta_kfold_model";
  std::filesystem::remove_all(dir);
  save_model(model, dir);
  const Model back = load_model(dir);
  EXPECT_EQ(back.selection.method, Selection::kfold);
  EXPECT_EQ(back.selection.folds, 4);
  EXPECT_EQ(back.options.selection, Selection::kfold);
  EXPECT_EQ(back.options.folds, 4);
  std::filesystem::remove_all(dir);
  o.folds = 1;
  EXPECT_THROW(fit(syn.data.view(), o), Error);
}

}  // namespace
}  // namespace lrsmeta
