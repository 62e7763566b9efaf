// The random intercept (LowRankBasis::intercept: U held at the constant feature's axis, r = 1):
// its fit against an independent maximum-likelihood computation of the same model (profile
// likelihood of the variance ratio, generalised least squares for beta), the evidence's choice of
// it where tasks have a few rows, and its refusals.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>

#include <unistd.h>

#include "lrsmeta/io.hpp"
#include "lrsmeta/lrsmeta.hpp"
#include "lrsmeta/option_table.hpp"
#include "test_helpers.hpp"

namespace lrsmeta {
namespace {

// y_ij = x_ij^T beta + u_i + e_ij, u_i ~ N(0, intercept_variance), e_ij ~ N(0, noise^2); the
// constant feature (1) is column `constant` of d, the others standard normal.
Dataset<double> random_intercept_data(int tasks, int min_rows, int max_rows, int d, int constant, double intercept_variance,
                                      double noise, std::uint64_t seed, Dataset<double>* test = nullptr) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> normal;
  std::uniform_int_distribution<int> rows(min_rows, max_rows);
  std::vector<double> beta(static_cast<std::size_t>(d));
  for (double& b : beta) b = normal(gen);
  Dataset<double> data;
  data.d = d;
  data.task_offsets.assign(1, 0);
  if (test) {
    test->d = d;
    test->task_offsets.assign(1, 0);
  }
  for (int i = 0; i < tasks; ++i) {
    const double u = std::sqrt(intercept_variance) * normal(gen);
    const int m = rows(gen);
    for (int j = 0; j < m + (test ? 2 : 0); ++j) {
      Dataset<double>& to = j < m ? data : *test;
      double y = u + noise * normal(gen);
      for (int a = 0; a < d; ++a) {
        const double x = a == constant ? 1.0 : normal(gen);
        to.X.push_back(x);
        y += x * beta[static_cast<std::size_t>(a)];
      }
      to.y.push_back(y);
    }
    data.task_offsets.push_back(data.n());
    if (test) test->task_offsets.push_back(test->n());
  }
  return data;
}

// The random-intercept model by maximum likelihood, independently of the library: for a ratio
// lambda = s_u^2 / s2 each task's covariance is s2 (I + lambda 1 1^T), whose inverse is
// (I - lambda / (1 + m lambda) 1 1^T) / s2; beta is then generalised least squares and s2 the mean
// weighted residual, and lambda maximises the profile log likelihood (golden-section search on
// log lambda).
struct InterceptFit {
  std::vector<double> beta;
  double noise_variance = 0, intercept_variance = 0, log_likelihood = 0;
};
InterceptFit profile_likelihood_fit(const Dataset<double>& data) {
  const int d = static_cast<int>(data.d);
  auto at = [&](double lambda) {
    std::vector<double> A(static_cast<std::size_t>(d * d), 0.0), b(static_cast<std::size_t>(d), 0.0);
    for (std::int64_t i = 0; i < data.t(); ++i) {
      const std::int64_t r0 = data.task_offsets[i], r1 = data.task_offsets[i + 1];
      const double m = static_cast<double>(r1 - r0), c = lambda / (1.0 + m * lambda);
      std::vector<double> sx(static_cast<std::size_t>(d), 0.0);
      double sy = 0;
      for (std::int64_t j = r0; j < r1; ++j) {
        sy += data.y[j];
        for (int a = 0; a < d; ++a) sx[a] += data.X[j * d + a];
      }
      for (std::int64_t j = r0; j < r1; ++j)
        for (int a = 0; a < d; ++a) {
          b[a] += data.X[j * d + a] * data.y[j];
          for (int e = 0; e < d; ++e) A[a * d + e] += data.X[j * d + a] * data.X[j * d + e];
        }
      for (int a = 0; a < d; ++a) {
        b[a] -= c * sx[a] * sy;
        for (int e = 0; e < d; ++e) A[a * d + e] -= c * sx[a] * sx[e];
      }
    }
    InterceptFit f;
    f.beta = testing::solve_dense(A, b);
    double quadratic = 0, log_det = 0;
    for (std::int64_t i = 0; i < data.t(); ++i) {
      const std::int64_t r0 = data.task_offsets[i], r1 = data.task_offsets[i + 1];
      const double m = static_cast<double>(r1 - r0), c = lambda / (1.0 + m * lambda);
      double ss = 0, s = 0;
      for (std::int64_t j = r0; j < r1; ++j) {
        double e = data.y[j];
        for (int a = 0; a < d; ++a) e -= data.X[j * d + a] * f.beta[a];
        ss += e * e;
        s += e;
      }
      quadratic += ss - c * s * s;
      log_det += std::log1p(m * lambda);
    }
    const double n = static_cast<double>(data.n());
    f.noise_variance = quadratic / n;
    f.intercept_variance = lambda * f.noise_variance;
    f.log_likelihood = -0.5 * n * (std::log(2 * M_PI * f.noise_variance) + 1.0) - 0.5 * log_det;
    return f;
  };
  double lo = std::log(1e-6), hi = std::log(1e3);
  const double g = (std::sqrt(5.0) - 1) / 2;
  for (int it = 0; it < 200; ++it) {
    const double x1 = hi - g * (hi - lo), x2 = lo + g * (hi - lo);
    if (at(std::exp(x1)).log_likelihood > at(std::exp(x2)).log_likelihood) hi = x2;
    else lo = x1;
  }
  return at(std::exp(0.5 * (lo + hi)));
}

Options intercept_options() {
  Options o;
  o.threads = 2;
  o.rank = 1;
  o.sparsity = 0;
  o.low_rank_basis = LowRankBasis::intercept;
  o.population_prior = false;  // beta unpenalised: the classical model
  o.relative_tolerance = 1e-13;
  o.iterations = 3000;
  return o;
}

// The slopes model (U held at the d features' axes) with the same settings.
Options slopes_options(int d) {
  Options o = intercept_options();
  o.rank = d;
  o.low_rank_basis = LowRankBasis::slopes;
  return o;
}

// Tolerances: EM stops at a relative change of 1e-13 a step; the estimates agree to 1e-6
// relatively (EM's fixed point is the likelihood's maximum; the search brackets log lambda to
// 1e-40), the log likelihood to 1e-6 nats a row.
TEST(RandomIntercept, MatchesAnIndependentMaximumLikelihoodFit) {
  for (int constant : {0, 2}) {
    const Dataset<double> data = random_intercept_data(300, 2, 6, 4, constant, 0.5, 0.4, 17 + constant);
    const InterceptFit truth = profile_likelihood_fit(data);
    const Model m = fit(data.view(), intercept_options());
    ASSERT_EQ(m.r, 1);
    EXPECT_EQ(m.options.low_rank_basis, LowRankBasis::intercept);
    // U is the constant feature's axis.
    for (int a = 0; a < 4; ++a) EXPECT_NEAR(std::abs(m.U[static_cast<std::size_t>(a)]), a == constant ? 1.0 : 0.0, 1e-12);
    for (int a = 0; a < 4; ++a) EXPECT_NEAR(m.beta[a], truth.beta[a], 1e-6 * (1.0 + std::abs(truth.beta[a]))) << "feature " << a;
    EXPECT_NEAR(m.noise_variance, truth.noise_variance, 1e-6 * truth.noise_variance);
    EXPECT_NEAR(m.Sigma[0], truth.intercept_variance, 1e-6 * truth.intercept_variance);
    EXPECT_NEAR(m.log_evidence, truth.log_likelihood, 1e-6 * static_cast<double>(data.n()));
    // Each task's theta is beta plus its posterior mean intercept on the constant feature only.
    for (std::int64_t i = 0; i < m.t; i += 37) {
      const std::vector<double> th = m.theta(i);
      for (int a = 0; a < 4; ++a)
        if (a != constant) EXPECT_NEAR(th[a], m.beta[a], 1e-12);
    }
  }
}

// The slopes model by maximum likelihood, independently of the library: for variance ratios
// (l0, l1) (the intercept's and the slopes' to s2) each task's covariance is s2 H_i, H_i = I +
// X_i diag(l) X_i^T (dense m x m); beta is generalised least squares, s2 the mean weighted
// residual, and (log l0, log l1) maximise the profile log likelihood (golden-section searches on
// each in turn until neither moves).
struct SlopesFit {
  std::vector<double> beta;
  double noise_variance = 0, intercept_variance = 0, slope_variance = 0, log_likelihood = 0;
};
SlopesFit profile_likelihood_slopes(const Dataset<double>& data, int constant) {
  const int d = static_cast<int>(data.d);
  auto at = [&](double l0, double l1) {
    std::vector<double> A(static_cast<std::size_t>(d * d), 0.0), b(static_cast<std::size_t>(d), 0.0);
    std::vector<std::vector<double>> inverses;
    double log_det = 0;
    for (std::int64_t i = 0; i < data.t(); ++i) {
      const std::int64_t r0 = data.task_offsets[i];
      const int m = static_cast<int>(data.task_offsets[i + 1] - r0);
      std::vector<double> H(static_cast<std::size_t>(m * m), 0.0), Hinv(H.size(), 0.0);
      for (int p = 0; p < m; ++p)
        for (int q = 0; q < m; ++q) {
          double s = p == q ? 1.0 : 0.0;
          for (int a = 0; a < d; ++a) s += data.X[(r0 + p) * d + a] * (a == constant ? l0 : l1) * data.X[(r0 + q) * d + a];
          H[p * m + q] = s;
        }
      for (int q = 0; q < m; ++q) {  // H^-1 column by column
        std::vector<double> e(static_cast<std::size_t>(m), 0.0);
        e[q] = 1.0;
        const std::vector<double> col = testing::solve_dense(H, e);
        for (int p = 0; p < m; ++p) Hinv[p * m + q] = col[p];
      }
      // log det H by elimination (H is symmetric positive definite).
      std::vector<double> L = H;
      for (int j = 0; j < m; ++j) {
        log_det += std::log(L[j * m + j]);
        for (int p = j + 1; p < m; ++p) {
          const double f = L[p * m + j] / L[j * m + j];
          for (int q = j; q < m; ++q) L[p * m + q] -= f * L[j * m + q];
        }
      }
      for (int a = 0; a < d; ++a)
        for (int p = 0; p < m; ++p)
          for (int q = 0; q < m; ++q) {
            const double w = data.X[(r0 + p) * d + a] * Hinv[p * m + q];
            b[a] += w * data.y[r0 + q];
            for (int e = 0; e < d; ++e) A[a * d + e] += w * data.X[(r0 + q) * d + e];
          }
      inverses.push_back(std::move(Hinv));
    }
    SlopesFit f;
    f.beta = testing::solve_dense(A, b);
    double quadratic = 0;
    for (std::int64_t i = 0; i < data.t(); ++i) {
      const std::int64_t r0 = data.task_offsets[i];
      const int m = static_cast<int>(data.task_offsets[i + 1] - r0);
      std::vector<double> e(static_cast<std::size_t>(m));
      for (int p = 0; p < m; ++p) {
        e[p] = data.y[r0 + p];
        for (int a = 0; a < d; ++a) e[p] -= data.X[(r0 + p) * d + a] * f.beta[a];
      }
      for (int p = 0; p < m; ++p)
        for (int q = 0; q < m; ++q) quadratic += e[p] * inverses[static_cast<std::size_t>(i)][p * m + q] * e[q];
    }
    const double n = static_cast<double>(data.n());
    f.noise_variance = quadratic / n;
    f.intercept_variance = l0 * f.noise_variance;
    f.slope_variance = l1 * f.noise_variance;
    f.log_likelihood = -0.5 * n * (std::log(2 * M_PI * f.noise_variance) + 1.0) - 0.5 * log_det;
    return f;
  };
  double x0 = 0.0, x1 = 0.0;  // log l0, log l1
  const double g = (std::sqrt(5.0) - 1) / 2;
  auto search = [&](auto&& value) {
    double lo = std::log(1e-6), hi = std::log(1e3);
    for (int it = 0; it < 60; ++it) {
      const double a = hi - g * (hi - lo), c = lo + g * (hi - lo);
      if (value(a) > value(c)) hi = c;
      else lo = a;
    }
    return 0.5 * (lo + hi);
  };
  for (int round = 0; round < 40; ++round) {
    const double before0 = x0, before1 = x1;
    x0 = search([&](double x) { return at(std::exp(x), std::exp(x1)).log_likelihood; });
    x1 = search([&](double x) { return at(std::exp(x0), std::exp(x)).log_likelihood; });
    if (std::abs(x0 - before0) < 1e-9 && std::abs(x1 - before1) < 1e-9) break;
  }
  return at(std::exp(x0), std::exp(x1));
}

// The slopes model (Sigma with the intercept's variance and one shared by the slopes) against its
// independent maximum-likelihood fit: estimates to 1e-5 relatively, the log likelihood to 1e-6
// nats a row. Its U stays the features' axes.
TEST(RandomIntercept, TheSlopesModelMatchesAnIndependentMaximumLikelihoodFit) {
  const int constant = 1, d = 4;
  const Dataset<double> data = testing::intercept_and_slopes_data(150, 3, 8, d, constant, 0.8, 0.15, 0.5, 23);
  const SlopesFit truth = profile_likelihood_slopes(data, constant);
  Options o = slopes_options(d);
  const Model m = fit(data.view(), o);
  ASSERT_EQ(m.r, d);
  EXPECT_EQ(m.options.low_rank_basis, LowRankBasis::slopes);
  for (int a = 0; a < d; ++a)
    for (int q = 0; q < d; ++q) EXPECT_NEAR(std::abs(m.U[static_cast<std::size_t>(a * d + q)]), a == q ? 1.0 : 0.0, 1e-12);
  for (int a = 0; a < d; ++a) EXPECT_NEAR(m.beta[a], truth.beta[a], 1e-5 * (1.0 + std::abs(truth.beta[a]))) << "feature " << a;
  EXPECT_NEAR(m.noise_variance, truth.noise_variance, 1e-5 * truth.noise_variance);
  for (int a = 0; a < d; ++a)
    for (int q = 0; q < d; ++q) {
      const double expected = a != q ? 0.0 : a == constant ? truth.intercept_variance : truth.slope_variance;
      EXPECT_NEAR(m.Sigma[static_cast<std::size_t>(a * d + q)], expected, 1e-5 * truth.intercept_variance) << a << "," << q;
    }
  EXPECT_NEAR(m.log_evidence, truth.log_likelihood, 1e-6 * static_cast<double>(data.n()));
}

// Where the slopes' variance is small and tasks have a few rows, plain EM creeps towards it (each
// step moves it by a small share of the way); the over-relaxed steps (Options::em_acceleration)
// reach the same maximum, that of the independent fit, in fewer iterations.
TEST(RandomIntercept, TheSlopesModelReachesTheSameMaximumInFewerIterationsAccelerated) {
  const int constant = 0, d = 4;
  const Dataset<double> data = testing::intercept_and_slopes_data(150, 3, 6, d, constant, 1.0, 0.03, 0.5, 41);
  const SlopesFit truth = profile_likelihood_slopes(data, constant);
  Options o = slopes_options(d);
  o.relative_tolerance = 1e-10;
  o.em_acceleration = false;
  const Model plain = fit(data.view(), o);
  o.em_acceleration = true;
  const Model accelerated = fit(data.view(), o);
  for (const Model* m : {&plain, &accelerated}) {
    const char* which = m == &plain ? "plain" : "accelerated";
    EXPECT_NEAR(m->noise_variance, truth.noise_variance, 1e-5 * truth.noise_variance) << which;
    EXPECT_NEAR(m->Sigma[static_cast<std::size_t>(constant * d + constant)], truth.intercept_variance, 1e-4 * truth.intercept_variance) << which;
    const int slope = constant == 0 ? 1 : 0;
    EXPECT_NEAR(m->Sigma[static_cast<std::size_t>(slope * d + slope)], truth.slope_variance, 1e-3 * truth.slope_variance + 1e-6) << which;
    EXPECT_NEAR(m->log_evidence, truth.log_likelihood, 1e-6 * static_cast<double>(data.n())) << which;
  }
  std::fprintf(stderr, "iterations: plain %zu, accelerated %zu; slope variance %g\n", plain.history.size(), accelerated.history.size(), truth.slope_variance);
  EXPECT_LT(accelerated.history.size() * 3, plain.history.size() * 2);  // at most two thirds
}

// Where the truth is the slopes model (tasks of 4 to 10 rows), the default chooses it.
TEST(RandomIntercept, EvidenceChoosesTheSlopesModelWhereSlopesVary) {
  const Dataset<double> data = testing::intercept_and_slopes_data(300, 4, 10, 5, 0, 1.0, 0.3, 0.5, 31);
  Options o = default_options();
  o.threads = 2;
  const Model m = fit(data.view(), o);
  EXPECT_EQ(m.r, 5);
  EXPECT_EQ(m.options.low_rank_basis, LowRankBasis::slopes);
  EXPECT_EQ(m.selection.chosen.low_rank_basis, LowRankBasis::slopes);
  EXPECT_NEAR(m.Sigma[0], 1.0, 0.3);
  EXPECT_NEAR(m.Sigma[6], 0.3, 0.1);
}

// Where tasks have 3 to 5 rows and the truth is a random intercept, the default (r and k auto)
// chooses it over learning U's direction, predicts held-out rows as well as the model that knows
// it is one, and model.json says which basis each candidate had.
TEST(RandomIntercept, EvidenceChoosesItWhereTasksHaveAFewRows) {
  Dataset<double> test;
  const Dataset<double> data = random_intercept_data(400, 3, 5, 8, 7, 1.0, 1.0, 5, &test);
  Options o = default_options();
  o.threads = 2;
  const Model m = fit(data.view(), o);
  EXPECT_EQ(m.r, 1);
  EXPECT_EQ(m.options.low_rank_basis, LowRankBasis::intercept);
  EXPECT_EQ(m.selection.chosen.low_rank_basis, LowRankBasis::intercept);
  int learned = 0, intercept = 0;
  for (const SelectionCandidate& c : m.selection.candidates) (c.low_rank_basis == LowRankBasis::intercept ? intercept : learned) += 1;
  EXPECT_GE(learned, 2);
  EXPECT_GE(intercept, 1);
  const Model known = fit(data.view(), intercept_options());
  auto rmse = [&](const Model& model) {
    const std::vector<double> p = predict(model, test.view());
    double s = 0;
    for (std::size_t j = 0; j < p.size(); ++j) s += (p[j] - test.y[j]) * (p[j] - test.y[j]);
    return std::sqrt(s / static_cast<double>(p.size()));
  };
  EXPECT_LT(rmse(m), 1.01 * rmse(known));
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("lrsmeta_intercept_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  save_model(m, dir.string());
  const Model back = load_model(dir.string());
  EXPECT_EQ(back.options.low_rank_basis, LowRankBasis::intercept);
  ASSERT_EQ(back.selection.candidates.size(), m.selection.candidates.size());
  for (std::size_t c = 0; c < m.selection.candidates.size(); ++c)
    EXPECT_EQ(back.selection.candidates[c].low_rank_basis, m.selection.candidates[c].low_rank_basis);
  EXPECT_NEAR(rmse(back), rmse(m), 1e-12);
  std::filesystem::remove_all(dir);
}

TEST(RandomIntercept, RefusesWhatItCannotFit) {
  const Dataset<double> data = random_intercept_data(50, 3, 5, 4, 1, 1.0, 1.0, 3);
  auto message = [](auto&& call) {
    try {
      call();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  Options o = intercept_options();
  o.rank = 2;
  EXPECT_NE(message([&] { fit(data.view(), o); }).find("holds U at one column (r = 1), but rank r = 2"), std::string::npos);
  o = intercept_options();
  o.low_rank_basis = LowRankBasis::slopes;
  EXPECT_NE(message([&] { fit(data.view(), o); }).find("holds U at the features' axes (r = d = 4), but rank r = 1"), std::string::npos);
  o = intercept_options();
  o.prior = Prior::none;
  EXPECT_NE(message([&] { fit(data.view(), o); }).find("needs the prior"), std::string::npos);
  o = intercept_options();
  o.u_solver = USolver::cg;
  EXPECT_NE(message([&] { fit(data.view(), o); }).find("solves for beta directly"), std::string::npos);
  // No constant feature: column 1 with one row changed.
  Dataset<double> no_constant = data;
  no_constant.X[5 * 4 + 1] = 2.0;
  o = intercept_options();
  EXPECT_NE(message([&] { fit(no_constant.view(), o); }).find("needs a constant feature"), std::string::npos);
  // rank auto with the intercept basis is r = 1.
  o.rank = Options::kAuto;
  EXPECT_EQ(fit(data.view(), o).r, 1);
  // A basis that holds U, asked for with k auto: every candidate holds U so, and without a constant
  // feature the fit is refused.
  for (LowRankBasis basis : {LowRankBasis::intercept, LowRankBasis::slopes}) {
    Options asked = default_options();
    asked.threads = 2;
    asked.low_rank_basis = basis;
    const Model held = fit(data.view(), asked);
    EXPECT_EQ(held.options.low_rank_basis, basis);
    EXPECT_EQ(held.r, basis == LowRankBasis::intercept ? 1 : 4);
    ASSERT_GE(held.selection.candidates.size(), 2u);
    for (const SelectionCandidate& c : held.selection.candidates) EXPECT_EQ(c.low_rank_basis, basis);
    EXPECT_NE(message([&] { fit(no_constant.view(), asked); }).find("needs a constant feature"), std::string::npos);
  }
  // auto never tries it where no feature is constant.
  Options by_default = default_options();
  by_default.threads = 2;
  for (const SelectionCandidate& c : fit(no_constant.view(), by_default).selection.candidates)
    EXPECT_EQ(c.low_rank_basis, LowRankBasis::learned);
}

}  // namespace
}  // namespace lrsmeta
