// Over-relaxed EM (core/em_acceleration.hpp): the geodesic of positive definite matrices against
// identities it must satisfy, computed independently; a covariance carried to another basis; and the
// rule that sets the stretch of the M-step from the history.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/em_acceleration.hpp"
#include "test_helpers.hpp"

namespace lrsmeta {
namespace {

using Matrix = std::vector<double>;

Matrix multiply(const Matrix& X, const Matrix& Y, int n) {
  Matrix Z(static_cast<std::size_t>(n) * n, 0.0);
  for (int a = 0; a < n; ++a)
    for (int b = 0; b < n; ++b)
      for (int c = 0; c < n; ++c) Z[a * n + b] += X[a * n + c] * Y[c * n + b];
  return Z;
}

// The inverse by Gauss-Jordan with partial pivoting (no LAPACK: independent of the library's).
Matrix inverse(Matrix X, int n) {
  Matrix I(static_cast<std::size_t>(n) * n, 0.0);
  for (int a = 0; a < n; ++a) I[a * n + a] = 1.0;
  for (int c = 0; c < n; ++c) {
    int pivot = c;
    for (int a = c + 1; a < n; ++a)
      if (std::fabs(X[a * n + c]) > std::fabs(X[pivot * n + c])) pivot = a;
    for (int b = 0; b < n; ++b) {
      std::swap(X[c * n + b], X[pivot * n + b]);
      std::swap(I[c * n + b], I[pivot * n + b]);
    }
    const double p = X[c * n + c];
    for (int b = 0; b < n; ++b) {
      X[c * n + b] /= p;
      I[c * n + b] /= p;
    }
    for (int a = 0; a < n; ++a) {
      if (a == c) continue;
      const double f = X[a * n + c];
      for (int b = 0; b < n; ++b) {
        X[a * n + b] -= f * X[c * n + b];
        I[a * n + b] -= f * I[c * n + b];
      }
    }
  }
  return I;
}

// G G^T / n + 0.1 I for a Gaussian G: positive definite, condition number of tens.
Matrix random_spd(int n, std::mt19937_64& gen) {
  std::normal_distribution<double> normal;
  Matrix G(static_cast<std::size_t>(n) * n), S(G.size(), 0.0);
  for (double& g : G) g = normal(gen);
  for (int a = 0; a < n; ++a)
    for (int b = 0; b < n; ++b) {
      for (int c = 0; c < n; ++c) S[a * n + b] += G[a * n + c] * G[b * n + c] / n;
      if (a == b) S[a * n + b] += 0.1;
    }
  return S;
}

double max_difference(const Matrix& X, const Matrix& Y) {
  double m = 0.0;
  for (std::size_t e = 0; e < X.size(); ++e) m = std::max(m, std::fabs(X[e] - Y[e]));
  return m;
}

// Along the geodesic gamma(eta) = A^{1/2} (A^{-1/2} B A^{-1/2})^eta A^{1/2}: gamma(0) = A,
// gamma(1) = B, gamma(2) = B A^-1 B, and the midpoint X = gamma(1/2) solves X A^-1 X = B (the
// geometric mean). Tolerance 1e-9 relative to the matrices' scale, in double.
TEST(EmAcceleration, TheGeodesicMeetsItsIdentities) {
  std::mt19937_64 gen(11);
  for (int n : {1, 2, 5, 9}) {
    for (int trial = 0; trial < 4; ++trial) {
      const Matrix A = random_spd(n, gen), B = random_spd(n, gen), A_inverse = inverse(A, n);
      EXPECT_LT(max_difference(core::covariance_geodesic(A, B, n, 0.0), A), 1e-9) << n;
      EXPECT_LT(max_difference(core::covariance_geodesic(A, B, n, 1.0), B), 1e-9) << n;
      EXPECT_LT(max_difference(core::covariance_geodesic(A, B, n, 2.0), multiply(multiply(B, A_inverse, n), B, n)), 1e-8) << n;
      const Matrix X = core::covariance_geodesic(A, B, n, 0.5);
      EXPECT_LT(max_difference(multiply(multiply(X, A_inverse, n), X, n), B), 1e-9) << n;
      // Commuting (diagonal) matrices: entrywise a^(1 - eta) b^eta.
      Matrix D(static_cast<std::size_t>(n) * n, 0.0), E(D.size(), 0.0), expected(D.size(), 0.0);
      for (int a = 0; a < n; ++a) {
        D[a * n + a] = A[a * n + a];
        E[a * n + a] = B[a * n + a];
        expected[a * n + a] = std::pow(D[a * n + a], 1.0 - 3.5) * std::pow(E[a * n + a], 3.5);
      }
      const Matrix stretched = core::covariance_geodesic(D, E, n, 3.5);
      for (std::size_t e = 0; e < D.size(); ++e) EXPECT_NEAR(stretched[e], expected[e], 1e-9 * (1.0 + std::fabs(expected[e])));
    }
  }
}

// A covariance in the coordinates of one orthonormal basis carried to another that spans the same
// space: T Sigma T^T with T = U^T U_before; the same basis leaves it as it is, and so does the
// covariance of theta, U Sigma U^T.
TEST(EmAcceleration, ACovarianceCarriedToAnotherBasisDescribesTheSameSpread) {
  std::mt19937_64 gen(5);
  const int d = 6, r = 3;
  // U = U_before Q for a rotation Q of w's space.
  const Matrix U_before = testing::random_orthonormal(d, r, 17);
  const double angle = 0.7;
  const Matrix Q = {std::cos(angle), -std::sin(angle), 0.0, std::sin(angle), std::cos(angle), 0.0, 0.0, 0.0, -1.0};
  Matrix U(static_cast<std::size_t>(d) * r, 0.0);
  for (int a = 0; a < d; ++a)
    for (int p = 0; p < r; ++p)
      for (int q = 0; q < r; ++q) U[a * r + p] += U_before[a * r + q] * Q[q * r + p];
  const Matrix Sigma = random_spd(r, gen);
  EXPECT_LT(max_difference(core::covariance_in_basis(Sigma, U_before, U_before, d, r), Sigma), 1e-12);
  const Matrix carried = core::covariance_in_basis(Sigma, U_before, U, d, r);
  auto spread = [&](const Matrix& basis, const Matrix& S) {  // U S U^T, d x d
    Matrix out(static_cast<std::size_t>(d) * d, 0.0);
    for (int a = 0; a < d; ++a)
      for (int b = 0; b < d; ++b)
        for (int p = 0; p < r; ++p)
          for (int q = 0; q < r; ++q) out[a * d + b] += basis[a * r + p] * S[p * r + q] * basis[b * r + q];
    return out;
  };
  EXPECT_LT(max_difference(spread(U, carried), spread(U_before, Sigma)), 1e-12);
}

// A history of n iterations at sparsity 0 whose s2 after each M-step is s2[j] and whose evidence is
// evidence[j].
std::vector<IterationInfo> history_of(const std::vector<double>& s2, const std::vector<double>& evidence, int sparsity = 0) {
  std::vector<IterationInfo> h;
  for (std::size_t j = 0; j < s2.size(); ++j) {
    IterationInfo info;
    info.iteration = static_cast<int>(j) + 1;
    info.noise_variance = s2[j];
    info.log_evidence = evidence[j];
    info.sparsity_in_effect = sparsity;
    h.push_back(info);
  }
  return h;
}

// The stretch: 1 until more than kOverrelaxationDelay steps went s2's way with the evidence rising,
// then kOverrelaxationGrowth per further step up to kOverrelaxationLimit; back to 1 where s2 turns
// or the evidence falls, where the sparsity in effect changed, or where the state is not the
// history's last.
TEST(EmAcceleration, TheStretchGrowsWithARunOfStepsTheSameWayAndEndsWithIt) {
  std::vector<double> s2 = {1.0}, evidence = {-100.0};
  std::vector<double> factors;
  for (int j = 1; j <= 12; ++j) {
    const double proposal = 1.0 + 0.1 * j;
    factors.push_back(core::overrelaxation_factor(history_of(s2, evidence), 0, evidence.back() + 1.0, s2.back(), proposal));
    s2.push_back(proposal);
    evidence.push_back(evidence.back() + 1.0);
  }
  // The proposal after j steps closes a run of j - 1 steps that went the same way.
  for (int j = 1; j <= 12; ++j) {
    const int run = j - 1;
    const double expected = run > core::kOverrelaxationDelay
                                ? std::min(core::kOverrelaxationLimit, std::pow(core::kOverrelaxationGrowth, run - core::kOverrelaxationDelay))
                                : 1.0;
    EXPECT_DOUBLE_EQ(factors[static_cast<std::size_t>(j - 1)], expected) << "step " << j;
  }
  EXPECT_DOUBLE_EQ(factors.back(), core::kOverrelaxationLimit);
  const std::vector<IterationInfo> h = history_of(s2, evidence);
  const double going_on = core::overrelaxation_factor(h, 0, evidence.back() + 1.0, s2.back(), s2.back() + 0.1);
  EXPECT_GT(going_on, 1.0);
  EXPECT_EQ(core::overrelaxation_factor(h, 0, evidence.back() + 1.0, s2.back(), s2.back() - 0.1), 1.0);  // s2 turns
  EXPECT_EQ(core::overrelaxation_factor(h, 0, evidence.back() - 1.0, s2.back(), s2.back() + 0.1), 1.0);  // the evidence fell
  EXPECT_EQ(core::overrelaxation_factor(h, 2, evidence.back() + 1.0, s2.back(), s2.back() + 0.1), 1.0);  // another sparsity
  EXPECT_EQ(core::overrelaxation_factor(h, 0, evidence.back() + 1.0, s2.back() * 1.5, s2.back() * 1.6), 1.0);  // another state
  EXPECT_EQ(core::overrelaxation_factor({}, 0, -1.0, 1.0, 2.0), 1.0);
}

}  // namespace
}  // namespace lrsmeta
