// The per-task small algebra shared with the device code: Cholesky with ridge, top-k selection.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "core/small_dense.hpp"
#include "core/task_step_rules.hpp"
#include "test_helpers.hpp"

namespace lrsmeta {
namespace {

TEST(SmallCholesky, SolvesRandomSpdSystemsLikeGaussianElimination) {
  for (int n : {1, 2, 5, 13, 25}) {
    // A = B^T B + 0.1 I with B random: SPD, moderately conditioned.
    const std::vector<double> B = testing::random_normal(static_cast<std::size_t>(n) * n, 100 + n);
    std::vector<double> A(static_cast<std::size_t>(n) * n, 0.0);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) {
        for (int p = 0; p < n; ++p) A[i * n + j] += B[p * n + i] * B[p * n + j];
        if (i == j) A[i * n + j] += 0.1;
      }
    const std::vector<double> b = testing::random_normal(n, 200 + n);
    const std::vector<double> want = testing::solve_dense(A, b);
    std::vector<double> L = A, x = b;
    ASSERT_TRUE(detail::cholesky_factor(L.data(), n));
    detail::cholesky_solve(L.data(), n, x.data());
    for (int i = 0; i < n; ++i) EXPECT_NEAR(x[i], want[i], 1e-9 * (1 + std::fabs(want[i]))) << "n = " << n;
  }
}

// The columns of L^-1 give every entry of A^-1 as a dot product over the rows at or below the
// later column: against the inverse by Gaussian elimination, column by column of the identity.
TEST(SmallCholesky, InverseFactorColumnsGiveTheInverse) {
  for (int n : {1, 3, 8, 17}) {
    const std::vector<double> A = testing::random_spd(n, 300 + n, 0.1);
    std::vector<double> L = A, columns(static_cast<std::size_t>(n) * n);
    ASSERT_TRUE(detail::cholesky_factor(L.data(), n));
    for (int c = 0; c < n; ++c) {
      detail::inverse_factor_column(L.data(), n, c, columns.data() + c * n);
      for (int q = 0; q < c; ++q) EXPECT_EQ(columns[c * n + q], 0.0);
    }
    for (int c = 0; c < n; ++c) {
      std::vector<double> unit(static_cast<std::size_t>(n), 0.0);
      unit[c] = 1.0;
      const std::vector<double> want = testing::solve_dense(A, unit);  // column c of A^-1
      for (int p = 0; p < n; ++p) {
        double entry = 0.0;
        for (int j = std::max(p, c); j < n; ++j) entry += columns[p * n + j] * columns[c * n + j];
        EXPECT_NEAR(entry, want[p], 1e-9 * (1 + std::fabs(want[p]))) << "n = " << n;
      }
    }
  }
}

TEST(SmallCholesky, RefusesIndefiniteAndNonFinite) {
  std::vector<double> A = {1, 2, 2, 1};  // eigenvalues 3 and -1
  EXPECT_FALSE(detail::cholesky_factor(A.data(), 2));
  std::vector<double> N = {std::nan(""), 0, 0, 1};
  EXPECT_FALSE(detail::cholesky_factor(N.data(), 2));
}

TEST(SmallCholesky, RidgeMakesSingularSystemsSolvable) {
  // Rank-one 3 x 3 (one sample, three unknowns): plain Cholesky fails, the ridge succeeds and the
  // solution is finite and close to the minimum-norm least-squares answer.
  const std::vector<double> x = {1.0, 2.0, -1.0};
  std::vector<double> A(9);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) A[i * 3 + j] = x[i] * x[j];
  std::vector<double> L(9);
  ASSERT_TRUE(detail::ridge_cholesky(A.data(), 3, 1e-10, L.data()));
  std::vector<double> rhs = {x[0] * 3.0, x[1] * 3.0, x[2] * 3.0};  // y = 3 for that sample
  detail::cholesky_solve(L.data(), 3, rhs.data());
  const double norm2 = 1 + 4 + 1;
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(rhs[i], 3.0 * x[i] / norm2, 1e-6);
  // An all-zero matrix has nothing to fit: reported, not NaN.
  std::vector<double> Z(9, 0.0);
  EXPECT_FALSE(detail::ridge_cholesky(Z.data(), 3, 1e-10, L.data()));
}

// Reference: indices of the k largest |v| by std::nth_element + sort, ties to the smaller index.
std::vector<int> reference_top_k(const std::vector<double>& v, int k) {
  std::vector<int> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  auto before = [&](int a, int b) {
    const double fa = std::fabs(v[a]), fb = std::fabs(v[b]);
    return fa > fb || (fa == fb && a < b);
  };
  std::nth_element(idx.begin(), idx.begin() + (k - 1), idx.end(), before);
  idx.resize(k);
  std::sort(idx.begin(), idx.end(), before);
  return idx;
}

TEST(TopK, MatchesNthElementOnRandomRows) {
  std::mt19937_64 rng(3);
  for (int trial = 0; trial < 200; ++trial) {
    const int n = 1 + static_cast<int>(rng() % 120);
    const int k = 1 + static_cast<int>(rng() % n);
    const std::vector<double> v = testing::random_normal(n, 1000 + trial);
    std::vector<int> got(k);
    ASSERT_EQ(detail::top_k_abs(v.data(), n, k, static_cast<const int*>(nullptr), 0, got.data()), k);
    EXPECT_EQ(got, reference_top_k(v, k)) << "n = " << n << ", k = " << k;
  }
}

TEST(TopK, TiesGoToTheSmallerIndexAndKEqualsD) {
  const std::vector<double> v = {1, -3, 3, 0, -1, 3, 2};
  std::vector<int> got(3);
  detail::top_k_abs(v.data(), 7, 3, static_cast<const int*>(nullptr), 0, got.data());
  EXPECT_EQ(got, (std::vector<int>{1, 2, 5}));
  std::vector<int> all(7);
  EXPECT_EQ(detail::top_k_abs(v.data(), 7, 7, static_cast<const int*>(nullptr), 0, all.data()), 7);
  EXPECT_EQ(all, reference_top_k(v, 7));
  const std::vector<double> zeros(5, 0.0);
  std::vector<int> z(5);
  detail::top_k_abs(zeros.data(), 5, 5, static_cast<const int*>(nullptr), 0, z.data());
  EXPECT_EQ(z, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(TopK, SkipsExcludedIndicesAndReportsShortage) {
  const std::vector<double> v = {5, 4, 3, 2, 1};
  const int excluded[2] = {0, 2};
  std::vector<int> got(4, -7);
  EXPECT_EQ(detail::top_k_abs(v.data(), 5, 4, excluded, 2, got.data()), 3);  // only 3 eligible
  EXPECT_EQ(std::vector<int>(got.begin(), got.begin() + 3), (std::vector<int>{1, 3, 4}));
  EXPECT_EQ(detail::top_k_abs(v.data(), 5, 0, excluded, 2, got.data()), 0);
}

// The selection on magnitudes with excluded entries marked below 0 (the task step's candidates) is
// the selection on the values with an exclusion list: the same indices in the same order, ties
// (values drawn from a few levels) and shortages included.
TEST(TopK, OnMagnitudesEqualsTheSelectionWithAnExclusionList) {
  std::mt19937_64 rng(5);
  for (int trial = 0; trial < 300; ++trial) {
    const int n = 1 + static_cast<int>(rng() % 120);
    const int k = static_cast<int>(rng() % (n + 2));
    std::vector<double> v = testing::random_normal(n, 2000 + trial);
    if (trial % 2 == 0)
      for (double& x : v) x = std::round(x * 2.0) / 2.0;  // many ties, zeros among them
    std::vector<int> excluded;
    for (int j = 0; j < n; ++j)
      if (rng() % 4 == 0) excluded.push_back(j);
    std::vector<double> magnitude(v.size());
    for (int j = 0; j < n; ++j) magnitude[static_cast<std::size_t>(j)] = std::fabs(v[static_cast<std::size_t>(j)]);
    for (int j : excluded) magnitude[static_cast<std::size_t>(j)] = -1.0;
    std::vector<int> want(static_cast<std::size_t>(k) + 1, -7), got(static_cast<std::size_t>(k) + 1, -7);
    const int n_want = detail::top_k_abs(v.data(), n, k, excluded.data(), static_cast<int>(excluded.size()), want.data());
    const int n_got = detail::top_k_of_magnitudes(magnitude.data(), n, k, got.data());
    ASSERT_EQ(n_got, n_want) << "trial " << trial;
    EXPECT_EQ(std::vector<int>(got.begin(), got.begin() + n_got), std::vector<int>(want.begin(), want.begin() + n_want)) << "trial " << trial;
  }
}

TEST(TopK, FloatInstantiationAgrees) {
  const std::vector<double> v = testing::random_normal(64, 77);
  std::vector<float> f(v.begin(), v.end());
  std::vector<int> a(9), b(9);
  detail::top_k_abs(v.data(), 64, 9, static_cast<const int*>(nullptr), 0, a.data());
  detail::top_k_abs(f.data(), 64, 9, static_cast<const int*>(nullptr), 0, b.data());
  EXPECT_EQ(a, b);
}

// The packed lower triangle's index, as the kernels unpack G: against enumeration, up to 2000 rows
// (the square root must not round to the neighbouring row).
TEST(PackedIndex, UnrankingEnumeratesTheLowerTriangle) {
  int e = 0;
  for (int row = 0; row < 2000; ++row)
    for (int col = 0; col <= row; ++col, ++e) {
      int r = -1, c = -1;
      detail::unrank_lower_triangle(e, &r, &c);
      ASSERT_EQ(r, row) << e;
      ASSERT_EQ(c, col) << e;
    }
}

// The support rules the CPU loop and the kernel share: set equality and the canonical order, against
// std::sort and sorted comparison on random short lists.
TEST(SupportRules, SameSetAndCanonicalOrderMatchTheStandardLibrary) {
  std::mt19937 rng(17);
  for (int trial = 0; trial < 2000; ++trial) {
    const int n = static_cast<int>(rng() % 12), m = trial % 3 == 0 ? n : static_cast<int>(rng() % 12);
    std::vector<int> a(n), b(m);
    for (int& v : a) v = static_cast<int>(rng() % 40);
    std::sort(a.begin(), a.end());
    a.erase(std::unique(a.begin(), a.end()), a.end());
    b = a;
    if (trial % 3 != 0) {
      b.resize(m);
      for (int& v : b) v = static_cast<int>(rng() % 40);
      std::sort(b.begin(), b.end());
      b.erase(std::unique(b.begin(), b.end()), b.end());
    }
    std::shuffle(b.begin(), b.end(), rng);
    std::vector<int> sorted_b = b;
    std::sort(sorted_b.begin(), sorted_b.end());
    EXPECT_EQ(core::same_set(a.data(), static_cast<int>(a.size()), b.data(), static_cast<int>(b.size())), a == sorted_b);
    core::sort_ascending(b.data(), static_cast<int>(b.size()));
    EXPECT_EQ(b, sorted_b);
  }
}

// The task step's shared decisions against plain computations: the gradient step's support (the
// k largest |b + eta corr| by sorting), the support threshold (K^-1's diagonal by Gauss-Jordan on
// the full K), and the picks' canonical order (std::sort), on random inputs.
TEST(SupportRules, GradientStepThresholdAndOrderMatchPlainComputations) {
  std::mt19937 rng(23);
  std::normal_distribution<double> normal;
  for (int trial = 0; trial < 200; ++trial) {
    const int d = 3 + static_cast<int>(rng() % 20), k = 1 + static_cast<int>(rng() % std::min(d, 5));
    std::vector<double> corr(d), dense(d);
    for (double& c : corr) c = normal(rng);
    std::vector<int> all(d);
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), rng);
    const int n_S = static_cast<int>(rng() % (k + 1));
    std::vector<int> S(all.begin(), all.begin() + std::max(n_S, k));
    std::vector<double> b(n_S);
    for (double& v : b) v = normal(rng);
    const double eta = 0.3 + 0.5 * (trial % 3);
    std::vector<double> expected_dense(d);
    for (int a = 0; a < d; ++a) expected_dense[a] = eta * corr[a];
    for (int q = 0; q < n_S; ++q) expected_dense[S[q]] += b[q];
    std::vector<int> order(d);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return std::fabs(expected_dense[x]) > std::fabs(expected_dense[y]); });
    const int n = core::gradient_step_support(corr.data(), eta, d, k, S.data(), b.data(), n_S, dense.data());
    ASSERT_EQ(n, k);
    std::vector<int> got(S.begin(), S.begin() + n), want(order.begin(), order.begin() + k);
    std::sort(got.begin(), got.end());
    std::sort(want.begin(), want.end());
    EXPECT_EQ(got, want) << "trial " << trial;
    for (int a = 0; a < d; ++a) EXPECT_DOUBLE_EQ(dense[a], expected_dense[a]);

    // The threshold: K = A^T A + I (r + m columns), its inverse's diagonal by Gauss-Jordan.
    const int r = static_cast<int>(rng() % 3), m = 1 + static_cast<int>(rng() % 4), nn = r + m;
    const std::vector<double> A = testing::random_normal(static_cast<std::size_t>(nn * (nn + 2)), 300 + trial);
    std::vector<double> K(static_cast<std::size_t>(nn * nn), 0.0);
    for (int x = 0; x < nn; ++x)
      for (int y = 0; y < nn; ++y) {
        for (int j = 0; j < nn + 2; ++j) K[x * nn + y] += A[j * nn + x] * A[j * nn + y];
        if (x == y) K[x * nn + y] += 1.0;
      }
    std::vector<double> chol = K;
    ASSERT_TRUE(detail::cholesky_factor(chol.data(), nn));
    std::vector<double> M = K, inv(static_cast<std::size_t>(nn * nn), 0.0);
    for (int x = 0; x < nn; ++x) inv[x * nn + x] = 1.0;
    for (int c = 0; c < nn; ++c) {
      const double piv = M[c * nn + c];
      for (int y = 0; y < nn; ++y) M[c * nn + y] /= piv, inv[c * nn + y] /= piv;
      for (int x = 0; x < nn; ++x)
        if (x != c) {
          const double f = M[x * nn + c];
          for (int y = 0; y < nn; ++y) M[x * nn + y] -= f * M[c * nn + y], inv[x * nn + y] -= f * inv[c * nn + y];
        }
    }
    std::vector<double> bS(m), e(nn);
    for (double& v : bS) v = normal(rng);
    const double s2 = 0.2 + 0.1 * (trial % 5), threshold = 1.0 + trial % 4;
    std::vector<int> kept(m), expected_kept;
    for (int q = 0; q < m; ++q)
      if (bS[q] * bS[q] > threshold * s2 * inv[(r + q) * nn + r + q] * (1 + 1e-12)) expected_kept.push_back(q);
    const int n_kept = core::kept_by_support_threshold(chol.data(), r, m, bS.data(), s2, threshold, e.data(), kept.data());
    // (A b_q^2 within rounding of the threshold may go either way.)
    std::vector<int> got_kept(kept.begin(), kept.begin() + n_kept);
    for (int q : expected_kept) EXPECT_NE(std::find(got_kept.begin(), got_kept.end(), q), got_kept.end()) << "trial " << trial;
    for (int q : got_kept)
      EXPECT_GT(bS[q] * bS[q], threshold * s2 * inv[(r + q) * nn + r + q] * (1 - 1e-12)) << "trial " << trial;

    // The picks' order by feature.
    std::vector<int> C(all.begin(), all.begin() + std::min(d, 8)), P(C.size());
    std::iota(P.begin(), P.end(), 0);
    std::shuffle(P.begin(), P.end(), rng);
    std::vector<int> sorted_P = P;
    std::sort(sorted_P.begin(), sorted_P.end(), [&](int x, int y) { return C[x] < C[y]; });
    core::order_picks_by_feature(P.data(), static_cast<int>(P.size()), C.data());
    EXPECT_EQ(P, sorted_P);
  }
}

}  // namespace
}  // namespace lrsmeta
