// Differential privacy: the accountant against closed forms, the contribution bounds, the noise's
// calibration, and the private path with the noise off equal to the plain one.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "core/noise.hpp"
#include "cpu/cpu_backend.hpp"
#include "lrsmeta/io.hpp"
#include "lrsmeta/privacy.hpp"
#include "test_helpers.hpp"

namespace lrsmeta {
namespace {

TEST(Accountant, SingleGaussianMechanism) {
  // rho = S^2 / (2 sigma^2); epsilon = rho + 2 sqrt(rho ln(1/delta)).
  EXPECT_DOUBLE_EQ(privacy::gaussian_zcdp(2.0, 4.0), 0.125);
  EXPECT_DOUBLE_EQ(privacy::gaussian_zcdp(1.0, 1.0), 0.5);
  const double rho = 0.5, delta = 1e-5;
  EXPECT_NEAR(privacy::zcdp_to_epsilon(rho, delta), 0.5 + 2.0 * std::sqrt(0.5 * std::log(1e5)), 1e-14);
  EXPECT_NEAR(privacy::zcdp_to_epsilon(rho, delta), 5.29853, 1e-5);  // by hand: 0.5 + 2 * 2.39926
  EXPECT_EQ(privacy::zcdp_to_epsilon(0.0, delta), 0.0);
}

TEST(Accountant, CompositionOverRounds) {
  // L rounds of G and v at noise multiplier z: rho = 2 L / (2 z^2) = L / z^2.
  const int L = 30;
  const double z = 5.0;
  double rho = 0;
  for (int i = 0; i < privacy::releases(L, false); ++i) rho += privacy::gaussian_zcdp(1.0, z);
  EXPECT_NEAR(rho, L / (z * z), 1e-15);
  EXPECT_EQ(privacy::releases(L, true), 2 * L + 1);
}

TEST(Accountant, InverseWithinOneMillionth) {
  for (double eps : {0.1, 1.0, 2.0, 8.0, 50.0})
    for (double delta : {1e-3, 1e-6, 1e-9})
      for (int releases : {1, 20, 200}) {
        const double rho = privacy::epsilon_to_zcdp(eps, delta);
        EXPECT_NEAR(privacy::zcdp_to_epsilon(rho, delta), eps, 1e-6 * eps);
        const double z = privacy::noise_multiplier(eps, delta, releases);
        const double spent = privacy::zcdp_to_epsilon(releases * privacy::gaussian_zcdp(1.0, z), delta);
        EXPECT_NEAR(spent, eps, 1e-6 * eps) << eps << " " << delta << " " << releases;
      }
  EXPECT_THROW(privacy::epsilon_to_zcdp(-1.0, 1e-5), Error);
  EXPECT_THROW(privacy::zcdp_to_epsilon(1.0, 1.5), Error);
}

// Data with one task that carries huge values; the bounded G and v with and without it differ by
// at most the stated sensitivities.
TEST(Clipping, OneTaskChangesGAndVByAtMostTheSensitivity) {
  const int d = 6, r = 2, k = 1;
  PrivacyOptions bounds;
  bounds.enabled = true;
  bounds.clip_x = 1.5;
  bounds.clip_y = 0.7;
  bounds.clip_w = 2.0;
  bounds.max_samples = 5;
  auto build = [&](bool with_outlier, std::vector<double>& G, std::vector<double>& v) {
    Dataset<double> data;
    data.d = d;
    data.task_offsets = {0};
    std::vector<double> W, Bv;
    std::vector<std::int32_t> Bi;
    const int tasks = with_outlier ? 11 : 10;
    for (int i = 0; i < tasks; ++i) {
      const bool outlier = with_outlier && i == 10;
      const int m = outlier ? 40 : 4 + i % 3;  // the outlier also has more rows than m_max
      const std::vector<double> X = testing::random_normal(static_cast<std::size_t>(m) * d, 100 + i);
      const std::vector<double> y = testing::random_normal(m, 200 + i);
      for (double x : X) data.X.push_back(outlier ? x * 1e6 : x);
      for (double e : y) data.y.push_back(outlier ? e * 1e8 : e);
      data.task_offsets.push_back(data.task_offsets.back() + m);
      W.push_back(outlier ? 3e5 : 0.3 * i);
      W.push_back(outlier ? -7e5 : 0.1);
      Bi.push_back(i % d);
      Bv.push_back(outlier ? 1e7 : 0.5);
    }
    Options o;
    o.rank = r;
    o.sparsity = k;
    cpu::CpuBackend<double> backend(data.view(), o);
    backend.W() = W;
    backend.B_index() = Bi;
    backend.B_value() = Bv;
    backend.accumulate_normal_equations(G, v, &bounds);
  };
  std::vector<double> G0, v0, G1, v1;
  build(false, G0, v0);
  build(true, G1, v1);
  double dG = 0, dv = 0;
  for (std::size_t e = 0; e < G0.size(); ++e) dG += (G1[e] - G0[e]) * (G1[e] - G0[e]);
  for (std::size_t e = 0; e < v0.size(); ++e) dv += (v1[e] - v0[e]) * (v1[e] - v0[e]);
  dG = std::sqrt(dG);
  dv = std::sqrt(dv);
  const double SG = privacy::sensitivity_G(bounds), Sv = privacy::sensitivity_v(bounds);
  EXPECT_DOUBLE_EQ(SG, 5 * 1.5 * 1.5 * 2.0 * 2.0);
  EXPECT_DOUBLE_EQ(Sv, 5 * 1.5 * 0.7 * 2.0);
  EXPECT_LE(dG, SG * (1 + 1e-12));
  EXPECT_LE(dv, Sv * (1 + 1e-12));
  EXPECT_GT(dG, 0.5 * SG) << "the outlier saturates its bounds, so it should come close";
  EXPECT_GT(dv, 0.3 * Sv);
}

TEST(Noise, EmpiricalStandardDeviationMatchesTheCalibration) {
  PrivacyOptions p;
  p.enabled = true;  // kernel randomness (getrandom)
  core::GaussianNoise noise(p);
  const int n = 400;  // 80,200 distinct entries
  std::vector<double> G(static_cast<std::size_t>(n) * n, 0.0);
  const double sigma = 3.5;
  core::add_symmetric_noise(G.data(), n, sigma, noise);
  double sum = 0, sum2 = 0;
  int count = 0;
  for (int c = 0; c < n; ++c)
    for (int r = 0; r <= c; ++r) {
      const double e = G[r + static_cast<std::size_t>(n) * c];
      EXPECT_EQ(e, G[c + static_cast<std::size_t>(n) * r]) << "not symmetric";
      sum += e;
      sum2 += e * e;
      ++count;
    }
  const double mean = sum / count, sd = std::sqrt(sum2 / count - mean * mean);
  // Standard error of the sd estimate: sigma / sqrt(2 count) ~ 0.009; allow 5 of them.
  EXPECT_NEAR(sd, sigma, 5 * sigma / std::sqrt(2.0 * count));
  EXPECT_NEAR(mean, 0.0, 5 * sigma / std::sqrt(static_cast<double>(count)));
  std::vector<double> v(100000, 0.0);
  core::add_noise(v.data(), static_cast<int>(v.size()), 0.25, noise);
  double s2 = 0;
  for (double e : v) s2 += e * e;
  EXPECT_NEAR(std::sqrt(s2 / v.size()), 0.25, 5 * 0.25 / std::sqrt(2.0 * v.size()));
}

TEST(Noise, FixedSeedIsReproducibleKernelNoiseIsNot) {
  PrivacyOptions p;
  p.fixed_seed = true;
  p.noise_seed = 9;
  core::GaussianNoise a(p), b(p);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(a(), b());
  p.fixed_seed = false;
  core::GaussianNoise c(p), e(p);
  bool differ = false;
  for (int i = 0; i < 10; ++i) differ = differ || c() != e();
  EXPECT_TRUE(differ);
}

SyntheticData utility_data(std::uint64_t seed) {
  SyntheticSpec s;
  s.tasks = 400;
  s.min_samples = s.max_samples = 30;
  s.d = 20;
  s.r = 2;
  s.k = 1;
  s.seed = seed;
  return generate_synthetic(s);
}

TEST(PrivateFit, WithNoiseOffAndLooseBoundsEqualsThePlainFit) {
  const SyntheticData syn = utility_data(3);
  Options o;
  o.rank = 2;
  o.sparsity = 1;
  o.iterations = 8;
  o.prior = Prior::none;  // what private training runs
  const Model plain = fit(syn.data.view(), o);
  o.privacy.enabled = true;
  o.privacy.noise_multiplier = 0.0;
  o.privacy.clip_x = o.privacy.clip_y = o.privacy.clip_w = 1e300;
  o.privacy.max_samples = 1000;
  const Model priv = fit(syn.data.view(), o);
  EXPECT_EQ(priv.U, plain.U);
  EXPECT_EQ(priv.W, plain.W);
  EXPECT_EQ(priv.B_index, plain.B_index);
  EXPECT_EQ(priv.B_value, plain.B_value);
  EXPECT_TRUE(priv.privacy.enabled);
  EXPECT_TRUE(std::isinf(priv.privacy.epsilon)) << "no noise spends unbounded epsilon";
  EXPECT_FALSE(plain.privacy.enabled);
}

TEST(PrivateFit, ReportsWhatItSpentAndImprovesWithEpsilon) {
  const SyntheticData syn = utility_data(4);
  Options o;
  o.rank = 2;
  o.sparsity = 1;
  o.iterations = 6;
  o.privacy.enabled = true;
  o.privacy.delta = 1e-6;
  // Bounds from the generating distribution (public knowledge), not from the data.
  o.privacy.clip_x = 1.5 * std::sqrt(20.0);
  o.privacy.clip_y = 4.0;
  o.privacy.clip_w = 3.0;
  o.privacy.max_samples = 30;
  double previous_error = INFINITY;
  for (double eps : {1.0, 1e3, 1e6}) {
    o.privacy.epsilon = eps;
    const Model m = fit(syn.data.view(), o);
    EXPECT_EQ(m.privacy.releases, 12);
    EXPECT_LE(m.privacy.epsilon, eps);
    EXPECT_NEAR(m.privacy.epsilon, eps, 1e-6 * eps);
    EXPECT_GT(m.privacy.sigma_G, 0.0);
    for (double u : m.U) ASSERT_TRUE(std::isfinite(u));
    const double err = testing::subspace_distance(m.U, syn.U, 20, 2);
    EXPECT_LT(err, previous_error * 1.05) << "epsilon " << eps;
    previous_error = err;
  }
  EXPECT_LT(previous_error, 0.05) << "with epsilon = 1e6 the noise is negligible";
  // An early stop spends less than planned.
  o.privacy.epsilon = 2.0;
  const Model early = fit(syn.data.view(), o, [](const IterationInfo& it) { return it.iteration < 3; });
  EXPECT_EQ(early.privacy.releases, 6);
  EXPECT_LT(early.privacy.epsilon, 2.0);
  // The privatised spectral start is one more release.
  o.init = Init::spectral;
  EXPECT_EQ(fit(syn.data.view(), o).privacy.releases, 13);
}

TEST(PrivateFit, ModelJsonRoundTripsTheReport) {
  const SyntheticData syn = utility_data(5);
  Options o;
  o.rank = 2;
  o.sparsity = 1;
  o.iterations = 3;
  o.privacy.enabled = true;
  o.privacy.epsilon = 2.0;
  o.privacy.fixed_seed = true;
  o.privacy.noise_seed = 1;
  const Model m = fit(syn.data.view(), o);
  const std::string dir = (std::filesystem::temp_directory_path() / ("lrsmeta_priv_" + std::to_string(::getpid()))).string();
  save_model(m, dir);
  const Model back = load_model(dir);
  std::filesystem::remove_all(dir);
  EXPECT_TRUE(back.privacy.enabled);
  EXPECT_TRUE(back.privacy.fixed_seed);
  EXPECT_DOUBLE_EQ(back.privacy.epsilon, m.privacy.epsilon);
  EXPECT_EQ(back.privacy.releases, 6);
  EXPECT_TRUE(back.options.privacy.enabled);
  // Same fixed seed, same model.
  EXPECT_EQ(fit(syn.data.view(), o).U, m.U);
}

TEST(PrivateFit, BadPrivacyOptionsAreRefused) {
  const SyntheticData syn = utility_data(6);
  Options o;
  o.rank = 2;
  o.sparsity = 1;
  o.privacy.enabled = true;
  o.privacy.delta = 0.0;
  EXPECT_THROW(fit(syn.data.view(), o), Error);
  o.privacy.delta = 1e-6;
  o.privacy.clip_x = -1;
  EXPECT_THROW(fit(syn.data.view(), o), Error);
  o.privacy.clip_x = 1;
  o.privacy.max_samples = 0;
  EXPECT_THROW(fit(syn.data.view(), o), Error);
  o.privacy.max_samples = 10;
  o.privacy.epsilon = std::nan("");
  EXPECT_THROW(fit(syn.data.view(), o), Error);
}

}  // namespace
}  // namespace lrsmeta
