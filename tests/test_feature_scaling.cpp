// Features at a common scale inside the fit (core/feature_scaling.hpp): the mapping of a model between
// scales against a dense computation of every theta_i and of the covariance of U w_i; fits of
// copies of the data with columns in other units; adapt; the model file.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "core/feature_scaling.hpp"
#include "lrsmeta/io.hpp"
#include "lrsmeta/lrsmeta.hpp"
#include "test_helpers.hpp"

namespace lrsmeta {
namespace {

SyntheticData planted(std::uint64_t seed) {
  SyntheticSpec spec;
  spec.tasks = 300;
  spec.min_samples = 6;
  spec.max_samples = 30;
  spec.d = 10;
  spec.r = 2;
  spec.k = 1;
  spec.noise = 0.2;
  spec.seed = seed;
  return generate_synthetic(spec);
}

// A copy of the data with column a multiplied by factor[a].
Dataset<double> with_units(const Dataset<double>& data, const std::vector<double>& factor) {
  Dataset<double> out = data;
  for (std::int64_t j = 0; j < out.n(); ++j)
    for (std::int64_t a = 0; a < out.d; ++a) out.X[static_cast<std::size_t>(j * out.d + a)] *= factor[static_cast<std::size_t>(a)];
  return out;
}

double max_relative_difference(const std::vector<double>& a, const std::vector<double>& b) {
  double scale = 0.0, diff = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    scale = std::max(scale, std::abs(a[i]));
    diff = std::max(diff, std::abs(a[i] - b[i]));
  }
  return diff / scale;
}

// A random model with the prior: U orthonormal, W, B (one slot unused), beta and Sigma.
Model random_model(int d, int r, int k, int t, std::uint64_t seed) {
  Model m;
  m.d = d;
  m.r = r;
  m.k = k;
  m.t = t;
  m.U = lrsmeta::testing::random_orthonormal(d, r, seed);
  m.W = lrsmeta::testing::random_normal(static_cast<std::size_t>(t * r), seed + 1);
  m.B_value = lrsmeta::testing::random_normal(static_cast<std::size_t>(t * k), seed + 2);
  for (int i = 0; i < t; ++i)
    for (int q = 0; q < k; ++q) m.B_index.push_back(i == 0 && q == 0 ? -1 : (3 * i + 5 * q) % d);
  m.beta = lrsmeta::testing::random_normal(static_cast<std::size_t>(d), seed + 3);
  m.Sigma = lrsmeta::testing::random_spd(r, seed + 4, 0.5);
  return m;
}

// Cov(U w) = U Sigma U^T (d x d), dense.
std::vector<double> covariance_of_U_w(const Model& m) {
  const std::int64_t d = m.d, r = m.r;
  std::vector<double> C(static_cast<std::size_t>(d * d), 0.0);
  for (std::int64_t a = 0; a < d; ++a)
    for (std::int64_t b = 0; b < d; ++b)
      for (std::int64_t p = 0; p < r; ++p)
        for (std::int64_t q = 0; q < r; ++q)
          C[static_cast<std::size_t>(a * d + b)] += m.U[static_cast<std::size_t>(a * r + p)] * m.Sigma[static_cast<std::size_t>(p * r + q)] *
                                                     m.U[static_cast<std::size_t>(b * r + q)];
  return C;
}

// Mapped to the features as given, every theta_i is divided by the factors entry by entry, the
// covariance of U w_i becomes D^-1 (U Sigma U^T) D^-1, U stays orthonormal; mapped back, the model
// is the one it was. Factors from 2^-10 to 2^12. The tolerances are relative to each vector's
// largest entry: U is re-orthonormalised in the given units, where entries span the factors'
// range (2^22), and an entry far smaller than the largest keeps only the digits the range leaves.
TEST(FeatureScaling, TheMappingKeepsEveryThetaAndTheCovarianceOfUw) {
  const int d = 9, r = 3, k = 2, t = 7;
  const Model unit = random_model(d, r, k, t, 5);
  const std::vector<double> scales = {1.0, 0.5, 4096.0, 1.0 / 1024.0, 8.0, 1.0, 0.25, 2.0, 64.0};
  Model given = unit;
  core::from_common_scale(given, scales);
  EXPECT_EQ(given.feature_scales, scales);
  given.validate();
  for (int i = 0; i < t; ++i) {
    const std::vector<double> a = unit.theta(i), b = given.theta(i);
    std::vector<double> expect(d);
    for (int q = 0; q < d; ++q) expect[q] = a[q] / scales[q];
    EXPECT_LT(max_relative_difference(expect, b), 1e-12) << "task " << i;
  }
  std::vector<double> beta_expect(d);
  for (int q = 0; q < d; ++q) beta_expect[q] = unit.beta[q] / scales[q];
  EXPECT_LT(max_relative_difference(beta_expect, given.beta), 1e-15);  // entry by entry, by powers of two: exact
  const std::vector<double> C_unit = covariance_of_U_w(unit), C_given = covariance_of_U_w(given);
  std::vector<double> C_expect(C_unit.size());
  for (int a = 0; a < d; ++a)
    for (int b = 0; b < d; ++b) C_expect[a * d + b] = C_unit[a * d + b] / (scales[a] * scales[b]);
  EXPECT_LT(max_relative_difference(C_expect, C_given), 1e-12);
  for (int p = 0; p < r; ++p)
    for (int q = 0; q < r; ++q) {
      double dot = 0.0;
      for (int a = 0; a < d; ++a) dot += given.U[a * r + p] * given.U[a * r + q];
      EXPECT_NEAR(dot, p == q ? 1.0 : 0.0, 1e-12);
    }
  Model back = given;
  core::to_common_scale(back);
  EXPECT_TRUE(back.feature_scales.empty());
  for (int i = 0; i < t; ++i) EXPECT_LT(max_relative_difference(back.theta(i), unit.theta(i)), 1e-12);
}

// The factors are powers of two near twice each column's root mean square (1 for a column of
// zeros), and for an indicator (every non-zero of one magnitude) near that magnitude, however rare;
// then the most common factor is divided out.
TEST(FeatureScaling, FactorsArePowersOfTwoNearTwiceTheRootMeanSquareOrAnIndicatorsValue) {
  Dataset<double> data;
  data.d = 7;
  data.task_offsets = {0, 2, 4};
  data.X = {1.0, 0.0, 3000.0, 0.001, 0.0, 0.0, -3.0,  //
            1.0, 0.0, -2500.0, 0.002, 0.0, 8.0, 3.0,   //
            1.0, 0.0, 2800.0, -0.001, 0.0, 8.0, 3.0,   //
            1.0, 0.0, 3100.0, 0.0015, 1.0, 0.0, -3.0};
  data.y = {1, 2, 3, 4};
  const std::vector<double> scales = core::feature_scales(data.view(), nullptr);
  ASSERT_EQ(scales.size(), 7u);
  EXPECT_EQ(scales[0], 1.0);  // the intercept
  EXPECT_EQ(scales[1], 1.0);  // zeros
  EXPECT_EQ(scales[2], 4096.0);  // twice the root mean square: 5720
  EXPECT_EQ(scales[3], 1.0 / 256.0);  // 0.00287: 2^-8.44
  EXPECT_EQ(scales[4], 1.0);  // a rare 0/1 indicator (root mean square 0.5) stays 0/1
  EXPECT_EQ(scales[5], 8.0);  // 0/8 becomes 0/1
  EXPECT_EQ(scales[6], 4.0);  // -3/3: 2^1.58
  for (std::size_t a : {2, 3}) {
    double ss = 0.0;
    for (int j = 0; j < 4; ++j) ss += data.X[j * 7 + a] * data.X[j * 7 + a];
    EXPECT_LE(std::abs(std::log2(2.0 * std::sqrt(ss / 4.0) / scales[a])), 0.5 + 1e-12);
  }
  // Columns that share a scale (here 4, 4, 4 and an indicator of 1) lose the common factor: only
  // their relative scales matter to the fit.
  Dataset<double> shared;
  shared.d = 4;
  shared.task_offsets = {0, 2};
  shared.X = {1.0, 1.5, -2.5, 2.2,  //
              1.0, -2.5, 1.5, 1.8};
  shared.y = {1, 2};
  EXPECT_EQ(core::feature_scales(shared.view(), nullptr), (std::vector<double>{0.25, 1.0, 1.0, 1.0}));
  EXPECT_FALSE(core::any_scaled(std::vector<double>{1.0, 1.0}));
}

// A copy of the data with its columns in other units (powers of two: 2^10, 2^-7, ...) gives the
// same predictions as the data, with r and k chosen; without the scaling it does not (the prior
// treats every feature alike). The model file keeps the factors, and adapt uses them.
TEST(FeatureScaling, ACopyInOtherUnitsGivesTheSamePredictions) {
  const SyntheticData syn = planted(61);
  const Dataset<double>& data = syn.data;
  const std::vector<double> units = {1024.0, 1.0 / 128.0, 1.0, 8.0, 0.25, 1.0, 32.0, 1.0, 1.0 / 16.0, 2.0};
  const Dataset<double> other = with_units(data, units);
  Options o;
  o.threads = 2;
  o.rank = Options::kAuto;
  o.sparsity = 1;
  o.iterations = 30;
  const Model as_given = fit(data.view(), o);
  const Model in_units = fit(other.view(), o);
  EXPECT_TRUE(as_given.feature_scales.empty());  // synthetic features share a scale: nothing copied
  ASSERT_EQ(in_units.feature_scales.size(), units.size());
  for (std::size_t a = 0; a < units.size(); ++a) EXPECT_EQ(in_units.feature_scales[a], units[a]);
  EXPECT_EQ(in_units.r, as_given.r);
  const std::vector<double> p = predict(as_given, data.view()), q = predict(in_units, other.view());
  EXPECT_LT(max_relative_difference(p, q), 1e-9);
  bool noted = false;
  for (const std::string& note : in_units.notes) noted = noted || note.find("power of two") != std::string::npos;
  EXPECT_TRUE(noted);

  Options fixed = o;
  fixed.rank = static_cast<int>(as_given.r);
  fixed.standardize = false;
  const std::vector<double> unscaled = predict(fit(other.view(), fixed), other.view());
  EXPECT_GT(max_relative_difference(p, unscaled), 1e-3);

  // The model file, and adapt (the new tasks' features scaled by the model's factors).
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("lrsmeta_scales_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  save_model(in_units, dir.string());
  const Model back = load_model(dir.string());
  EXPECT_EQ(back.feature_scales, in_units.feature_scales);
  EXPECT_EQ(predict(back, other.view()), predict(in_units, other.view()));
  const Model adapted = adapt(back, other.view(), o), adapted_given = adapt(as_given, data.view(), o);
  EXPECT_EQ(adapted.feature_scales, in_units.feature_scales);
  EXPECT_LT(max_relative_difference(predict(adapted_given, data.view()), predict(adapted, other.view())), 1e-9);
  // A file whose factors are not positive is refused, naming the file.
  {
    std::ifstream in(dir / "model.json");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::size_t at = text.find("\"feature_scales\"");
    ASSERT_NE(at, std::string::npos);
    const std::size_t first = text.find_first_of("0123456789", at + 17);
    text.insert(first, "-");
    std::ofstream(dir / "model.json") << text;
  }
  try {
    load_model(dir.string());
    ADD_FAILURE() << "a negative feature scale was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("feature_scales"), std::string::npos) << e.what();
  }
  // So is one with fewer factors than features.
  {
    std::ifstream in(dir / "model.json");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::size_t open = text.find('[', text.find("\"feature_scales\"")), close = text.find(']', open);
    text.replace(open, close - open + 1, "[1.0, 2.0]");
    std::ofstream(dir / "model.json") << text;
  }
  try {
    load_model(dir.string());
    ADD_FAILURE() << "2 feature scales for d = 10 were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("2 feature scales for d = 10"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
  // A non-finite value in data whose columns are scaled is named as in data that is not.
  Dataset<double> bad = other;
  bad.X[static_cast<std::size_t>(7 * bad.d + 3)] = std::nan("");
  try {
    fit(bad.view(), o);
    ADD_FAILURE() << "a NaN in X was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("non-finite value (NaN or Inf) at row 7, column 3"), std::string::npos) << e.what();
  }
}

// Neither the paper's model (--prior none) nor private training scales the features.
TEST(FeatureScaling, ThePapersModelAndPrivateTrainingFitTheFeaturesAsGiven) {
  const SyntheticData syn = planted(67);
  const std::vector<double> units = {64.0, 1.0, 64.0, 1.0, 64.0, 1.0, 64.0, 1.0, 64.0, 1.0};
  const Dataset<double> other = with_units(syn.data, units);
  Options o;
  o.threads = 2;
  o.rank = 2;
  o.sparsity = 1;
  o.iterations = 5;
  o.prior = Prior::none;
  EXPECT_TRUE(fit(other.view(), o).feature_scales.empty());
  o.prior = Prior::automatic;
  o.privacy.enabled = true;
  o.privacy.epsilon = 1.0;
  o.privacy.delta = 1e-6;
  EXPECT_TRUE(fit(other.view(), o).feature_scales.empty());
  o.privacy.enabled = false;
  EXPECT_EQ(fit(other.view(), o).feature_scales, units);
}

}  // namespace
}  // namespace lrsmeta
