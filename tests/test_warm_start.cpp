// A fit started from a neighbouring fit's state (core/warm_start.hpp): the new directions of U and
// the state carried to another r and k, against independent computations in double (a Jacobi
// eigenvalue iteration written here, not LAPACK's), and fits started from another's state.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <random>

#include "core/fitting.hpp"
#include "core/warm_start.hpp"
#include "lrsmeta/io.hpp"
#include "lrsmeta/lrsmeta.hpp"
#include "test_helpers.hpp"

namespace lrsmeta {
namespace {

using Matrix = std::vector<double>;  // row-major

// Eigenvalues of the symmetric n x n matrix A by cyclic Jacobi rotations, descending.
std::vector<double> jacobi_eigenvalues(Matrix A, int n) {
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0.0;
    for (int p = 0; p < n; ++p)
      for (int q = p + 1; q < n; ++q) off += A[p * n + q] * A[p * n + q];
    if (off < 1e-30) break;
    for (int p = 0; p < n; ++p)
      for (int q = p + 1; q < n; ++q) {
        if (std::fabs(A[p * n + q]) < 1e-300) continue;
        const double theta = (A[q * n + q] - A[p * n + p]) / (2.0 * A[p * n + q]);
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::fabs(theta) + std::sqrt(theta * theta + 1.0));
        const double c = 1.0 / std::sqrt(t * t + 1.0), s = t * c;
        for (int k = 0; k < n; ++k) {  // columns p and q
          const double akp = A[k * n + p], akq = A[k * n + q];
          A[k * n + p] = c * akp - s * akq;
          A[k * n + q] = s * akp + c * akq;
        }
        for (int k = 0; k < n; ++k) {  // rows p and q
          const double apk = A[p * n + k], aqk = A[q * n + k];
          A[p * n + k] = c * apk - s * aqk;
          A[q * n + k] = s * apk + c * aqk;
        }
      }
  }
  std::vector<double> values(static_cast<std::size_t>(n));
  for (int j = 0; j < n; ++j) values[static_cast<std::size_t>(j)] = A[j * n + j];
  std::sort(values.rbegin(), values.rend());
  return values;
}

// A random d x r matrix with orthonormal columns (Gram-Schmidt, twice), row-major.
Matrix random_orthonormal(int d, int r, std::mt19937_64& gen) {
  std::normal_distribution<double> normal;
  Matrix U(static_cast<std::size_t>(d) * r);
  for (int j = 0; j < r; ++j) {
    std::vector<double> v(static_cast<std::size_t>(d));
    for (double& x : v) x = normal(gen);
    for (int pass = 0; pass < 2; ++pass)
      for (int p = 0; p < j; ++p) {
        double dot = 0.0;
        for (int a = 0; a < d; ++a) dot += U[a * r + p] * v[a];
        for (int a = 0; a < d; ++a) v[a] -= dot * U[a * r + p];
      }
    double norm = 0.0;
    for (double x : v) norm += x * x;
    for (int a = 0; a < d; ++a) U[a * r + j] = v[a] / std::sqrt(norm);
  }
  return U;
}

// A^T B for row-major A (n x p) and B (n x q): p x q.
Matrix at_b(const Matrix& A, const Matrix& B, int n, int p, int q) {
  Matrix C(static_cast<std::size_t>(p) * q, 0.0);
  for (int i = 0; i < n; ++i)
    for (int a = 0; a < p; ++a)
      for (int b = 0; b < q; ++b) C[a * q + b] += A[i * p + a] * B[i * q + b];
  return C;
}

// U S U^T for U d x r, S r x r.
Matrix sandwich(const Matrix& U, const Matrix& S, int d, int r) {
  Matrix out(static_cast<std::size_t>(d) * d, 0.0);
  for (int a = 0; a < d; ++a)
    for (int b = 0; b < d; ++b)
      for (int p = 0; p < r; ++p)
        for (int q = 0; q < r; ++q) out[a * d + b] += U[a * r + p] * S[p * r + q] * U[b * r + q];
  return out;
}

void expect_orthonormal_and_off(const Matrix& V, const Matrix& U, int d, int r, int c) {
  const Matrix VtV = at_b(V, V, d, c, c), UtV = at_b(U, V, d, r, c);
  for (int a = 0; a < c; ++a)
    for (int b = 0; b < c; ++b) EXPECT_NEAR(VtV[a * c + b], a == b ? 1.0 : 0.0, 1e-12);
  for (double x : UtV) EXPECT_NEAR(x, 0.0, 1e-12);
}

TEST(WarmStart, NewDirectionsAreOrthonormalOffTheSpanAndTopOfTheProjectedMoment) {
  std::mt19937_64 gen(5);
  std::normal_distribution<double> normal;
  const int d = 12, r = 3, c = 4;
  const Matrix U = random_orthonormal(d, r, gen);
  Matrix B(static_cast<std::size_t>(d) * d), M(static_cast<std::size_t>(d) * d, 0.0);
  for (double& x : B) x = normal(gen);
  for (int a = 0; a < d; ++a)
    for (int b = 0; b < d; ++b)
      for (int e = 0; e < d; ++e) M[a * d + b] += B[a * d + e] * B[b * d + e];
  const Matrix V = core::directions_off_span(M, U, d, r, c, 1);
  expect_orthonormal_and_off(V, U, d, r, c);
  // P M P, P = I - U U^T, formed here: V's Rayleigh quotients sum to its top c eigenvalues.
  Matrix P(static_cast<std::size_t>(d) * d, 0.0), PM(P.size(), 0.0), PMP(P.size(), 0.0);
  for (int a = 0; a < d; ++a)
    for (int b = 0; b < d; ++b) {
      double uu = 0.0;
      for (int p = 0; p < r; ++p) uu += U[a * r + p] * U[b * r + p];
      P[a * d + b] = (a == b ? 1.0 : 0.0) - uu;
    }
  for (int a = 0; a < d; ++a)
    for (int b = 0; b < d; ++b)
      for (int e = 0; e < d; ++e) PM[a * d + b] += P[a * d + e] * M[e * d + b];
  for (int a = 0; a < d; ++a)
    for (int b = 0; b < d; ++b)
      for (int e = 0; e < d; ++e) PMP[a * d + b] += PM[a * d + e] * P[e * d + b];
  const std::vector<double> eig = jacobi_eigenvalues(PMP, d);
  double top = 0.0, quotient = 0.0;
  for (int j = 0; j < c; ++j) top += eig[static_cast<std::size_t>(j)];
  const Matrix MV = [&] {
    Matrix out(static_cast<std::size_t>(d) * c, 0.0);
    for (int a = 0; a < d; ++a)
      for (int j = 0; j < c; ++j)
        for (int e = 0; e < d; ++e) out[a * c + j] += M[a * d + e] * V[e * c + j];
    return out;
  }();
  const Matrix VtMV = at_b(V, MV, d, c, c);
  for (int j = 0; j < c; ++j) quotient += VtMV[j * c + j];
  EXPECT_NEAR(quotient, top, 1e-9 * top);

  // Without a moment: seeded draws, orthonormal and off the span; the same for the same seed.
  const Matrix drawn = core::directions_off_span({}, U, d, r, c, 7);
  expect_orthonormal_and_off(drawn, U, d, r, c);
  EXPECT_EQ(drawn, core::directions_off_span({}, U, d, r, c, 7));
  EXPECT_NE(drawn, core::directions_off_span({}, U, d, r, c, 8));
  // A moment of rank 1 off the span, 4 directions asked: the first is its direction, draws fill in.
  Matrix rank1(static_cast<std::size_t>(d) * d, 0.0);
  std::vector<double> x(static_cast<std::size_t>(d));
  for (double& e : x) e = normal(gen);
  for (int a = 0; a < d; ++a)
    for (int b = 0; b < d; ++b) rank1[a * d + b] = x[a] * x[b];
  const Matrix filled = core::directions_off_span(rank1, U, d, r, c, 3);
  expect_orthonormal_and_off(filled, U, d, r, c);
}

// The prior with its settings estimated (what the evidence search's candidates fit), on 2 threads.
Options estimated_prior_options(int iterations, double relative_tolerance) {
  Options o;
  o.threads = 2;
  o.prior = Prior::automatic;
  o.selection = Selection::evidence;
  o.sparse_prior_scale = -1.0;
  o.covariance_shrinkage = -1.0;
  o.iterations = iterations;
  o.relative_tolerance = relative_tolerance;
  return o;
}

// A neighbour's state: d = 10, r = 3, k = 2, 6 tasks, Sigma random positive definite, some b
// slots unused.
Checkpoint neighbour(std::mt19937_64& gen) {
  std::normal_distribution<double> normal;
  const int d = 10, r = 3, k = 2, t = 6;
  Checkpoint c;
  Model& m = c.model;
  m.d = d;
  m.r = r;
  m.k = k;
  m.t = t;
  m.U = random_orthonormal(d, r, gen);
  Matrix L(static_cast<std::size_t>(r) * r);
  for (double& x : L) x = normal(gen);
  m.Sigma.assign(static_cast<std::size_t>(r) * r, 0.0);
  for (int a = 0; a < r; ++a)
    for (int b = 0; b < r; ++b)
      for (int e = 0; e < r; ++e) m.Sigma[a * r + b] += L[a * r + e] * L[b * r + e];
  for (int a = 0; a < r; ++a) m.Sigma[a * r + a] += 0.1;
  m.W.resize(static_cast<std::size_t>(t) * r);
  for (double& x : m.W) x = normal(gen);
  for (int i = 0; i < t; ++i)
    for (int s = 0; s < k; ++s) {
      const bool used = !(i == 2 && s == 1);
      m.B_index.push_back(used ? (i + 3 * s) % d : -1);
      m.B_value.push_back(used ? normal(gen) * (s + 1) : 0.0);
    }
  c.coefficient_scale = 1.0;
  return c;
}

TEST(WarmStart, TheNeighboursStateKeepsEveryTasksCoefficientsAtALargerRankAndK) {
  std::mt19937_64 gen(11);
  const Checkpoint from = neighbour(gen);
  const Model& m = from.model;
  const int d = 10, r0 = 3, r = 5, k = 3, t = 6;
  const Matrix columns = core::directions_off_span({}, m.U, d, r0, r - r0, 2);
  const core::NeighbourState s = core::state_from_neighbour(from, r, k, columns);
  // U: orthonormal, its first r0 columns spanning from's, the others the new columns.
  const Matrix UtU = at_b(s.U, s.U, d, r, r);
  for (int a = 0; a < r; ++a)
    for (int b = 0; b < r; ++b) EXPECT_NEAR(UtU[a * r + b], a == b ? 1.0 : 0.0, 1e-12);
  for (int a = 0; a < d; ++a)
    for (int j = r0; j < r; ++j) EXPECT_EQ(s.U[a * r + j], columns[a * (r - r0) + j - r0]);
  // Each task's U w and b unchanged; the new w entries 0; b padded with unused slots.
  for (int i = 0; i < t; ++i) {
    for (int a = 0; a < d; ++a) {
      double before = 0.0, after = 0.0;
      for (int p = 0; p < r0; ++p) before += m.U[a * r0 + p] * m.W[i * r0 + p];
      for (int p = 0; p < r; ++p) after += s.U[a * r + p] * s.task_parameters.W[i * r + p];
      EXPECT_NEAR(after, before, 1e-12);
    }
    for (int p = r0; p < r; ++p) EXPECT_EQ(s.task_parameters.W[i * r + p], 0.0);
    for (int e = 0; e < 2; ++e) {
      EXPECT_EQ(s.task_parameters.B_index[i * k + e], m.B_index[i * 2 + e] >= 0 ? m.B_index[i * 2 + e] : -1);
      if (m.B_index[i * 2 + e] >= 0) EXPECT_EQ(s.task_parameters.B_value[i * k + e], m.B_value[i * 2 + e]);
    }
    EXPECT_EQ(s.task_parameters.B_index[i * k + 2], -1);
  }
  // Sigma: the same covariance of U w on from's span (U Sigma U^T), diagonal; each new direction
  // a thousandth of the mean variance (tr Sigma / r0).
  const Matrix before = sandwich(m.U, m.Sigma, d, r0);
  Matrix kept_U(static_cast<std::size_t>(d) * r0), kept_Sigma(static_cast<std::size_t>(r0) * r0);
  for (int a = 0; a < d; ++a)
    for (int p = 0; p < r0; ++p) kept_U[a * r0 + p] = s.U[a * r + p];
  for (int p = 0; p < r0; ++p)
    for (int q = 0; q < r0; ++q) kept_Sigma[p * r0 + q] = s.Sigma[p * r + q];
  const Matrix after = sandwich(kept_U, kept_Sigma, d, r0);
  for (std::size_t e = 0; e < before.size(); ++e) EXPECT_NEAR(after[e], before[e], 1e-12);
  const double trace = m.Sigma[0] + m.Sigma[4] + m.Sigma[8];
  for (int p = 0; p < r; ++p)
    for (int q = 0; q < r; ++q)
      if (p != q) EXPECT_NEAR(s.Sigma[p * r + q], 0.0, 1e-12);
  for (int p = r0; p < r; ++p) EXPECT_NEAR(s.Sigma[p * r + p], core::kNewDirectionVariance * trace / r0, 1e-15);
}

TEST(WarmStart, ASmallerRankKeepsSigmasLeadingDirectionsAndASmallerKTheLargestEntries) {
  std::mt19937_64 gen(12);
  const Checkpoint from = neighbour(gen);
  const Model& m = from.model;
  const int d = 10, r0 = 3, r = 2, k = 1, t = 6;
  const core::NeighbourState s = core::state_from_neighbour(from, r, k, {});
  const Matrix UtU = at_b(s.U, s.U, d, r, r);
  for (int a = 0; a < r; ++a)
    for (int b = 0; b < r; ++b) EXPECT_NEAR(UtU[a * r + b], a == b ? 1.0 : 0.0, 1e-12);
  // Sigma: its two largest eigenvalues (Jacobi, here), on the diagonal; U's columns in from's span.
  const std::vector<double> eig = jacobi_eigenvalues(m.Sigma, r0);
  EXPECT_NEAR(s.Sigma[0], eig[0], 1e-12 * eig[0]);
  EXPECT_NEAR(s.Sigma[3], eig[1], 1e-12 * eig[0]);
  EXPECT_NEAR(s.Sigma[1], 0.0, 1e-12);
  const Matrix in_span = at_b(m.U, s.U, d, r0, r);  // r0 x r: the columns' coordinates in from's U
  for (int j = 0; j < r; ++j) {
    double norm = 0.0;
    for (int p = 0; p < r0; ++p) norm += in_span[p * r + j] * in_span[p * r + j];
    EXPECT_NEAR(norm, 1.0, 1e-12);
  }
  // w: the projection of from's U w on the kept columns; b: each task's largest entry.
  for (int i = 0; i < t; ++i) {
    for (int j = 0; j < r; ++j) {
      double projected = 0.0;
      for (int a = 0; a < d; ++a) {
        double theta = 0.0;
        for (int p = 0; p < r0; ++p) theta += m.U[a * r0 + p] * m.W[i * r0 + p];
        projected += s.U[a * r + j] * theta;
      }
      EXPECT_NEAR(s.task_parameters.W[i * r + j], projected, 1e-12);
    }
    int largest = m.B_index[i * 2] >= 0 ? 0 : 1;
    if (m.B_index[i * 2 + 1] >= 0 && std::fabs(m.B_value[i * 2 + 1]) > std::fabs(m.B_value[i * 2 + largest])) largest = 1;
    EXPECT_EQ(s.task_parameters.B_index[i], m.B_index[i * 2 + largest]);
    EXPECT_EQ(s.task_parameters.B_value[i], m.B_value[i * 2 + largest]);
  }
  // A held basis keeps U, Sigma and w as they are, at its own rank only.
  const core::NeighbourState held = core::state_from_neighbour(from, r0, 2, {}, true);
  EXPECT_EQ(held.U, m.U);
  EXPECT_EQ(held.Sigma, m.Sigma);
  EXPECT_EQ(held.task_parameters.W, m.W);
  EXPECT_THROW(core::state_from_neighbour(from, r, 2, {}, true), Error);
  EXPECT_THROW(core::state_from_neighbour(from, 5, 2, Matrix(7, 0.0)), Error);  // 2 columns of 10 needed
}

// Fits started from another fit's state: from its own converged state a fit stays there, and r = 3
// started from r = 2's state reaches the evidence of r = 3 from scratch.
// A held basis started from a learned neighbour: every task's w the held coordinates of its U w
// (all of it for the slopes, its constant entry for the intercept), Sigma the held form of U Sigma
// U^T (the constant feature's variance, the mean of the others'), b cut to k by size; from a
// neighbour without a low-rank part (r = 0), both variances kNewDirectionVariance times the
// coefficients' scale.
TEST(WarmStart, AHeldBasisTakesTheNeighboursDeviationsAndSpreadInItsCoordinates) {
  std::mt19937_64 gen(21);
  const Checkpoint from = neighbour(gen);
  const Model& m = from.model;
  const int d = 10, r0 = 3, t = 6, constant = 4;
  const Matrix spread = sandwich(m.U, m.Sigma, d, r0);
  double trace = 0.0;
  for (int a = 0; a < d; ++a) trace += spread[a * d + a];
  const double own = spread[constant * d + constant], shared = (trace - own) / (d - 1);
  const core::NeighbourState slopes = core::state_in_held_basis(from, LowRankBasis::slopes, constant, d, 1);
  const core::NeighbourState intercept = core::state_in_held_basis(from, LowRankBasis::intercept, constant, 1, 3);
  for (int a = 0; a < d; ++a) {
    for (int b = 0; b < d; ++b) {
      EXPECT_EQ(slopes.U[a * d + b], a == b ? 1.0 : 0.0);
      EXPECT_NEAR(slopes.Sigma[a * d + b], a != b ? 0.0 : a == constant ? own : shared, 1e-12);
    }
    EXPECT_EQ(intercept.U[a], a == constant ? 1.0 : 0.0);
  }
  EXPECT_NEAR(intercept.Sigma[0], own, 1e-12);
  for (int i = 0; i < t; ++i) {
    for (int a = 0; a < d; ++a) {
      double deviation = 0.0;
      for (int p = 0; p < r0; ++p) deviation += m.U[a * r0 + p] * m.W[i * r0 + p];
      EXPECT_NEAR(slopes.task_parameters.W[i * d + a], deviation, 1e-12);
      if (a == constant) EXPECT_NEAR(intercept.task_parameters.W[i], deviation, 1e-12);
    }
    // k = 1 keeps the larger of the two entries; k = 3 all, and one unused slot more.
    const int larger = m.B_index[i * 2 + 1] >= 0 && std::fabs(m.B_value[i * 2 + 1]) > std::fabs(m.B_value[i * 2]) ? 1 : 0;
    EXPECT_EQ(slopes.task_parameters.B_index[i], m.B_index[i * 2 + larger]);
    EXPECT_EQ(slopes.task_parameters.B_value[i], m.B_value[i * 2 + larger]);
    for (int e = 0; e < 2; ++e) EXPECT_EQ(intercept.task_parameters.B_index[i * 3 + e], m.B_index[i * 2 + e]);
    EXPECT_EQ(intercept.task_parameters.B_index[i * 3 + 2], -1);
  }
  Checkpoint sparse_only = from;
  sparse_only.model.r = 0;
  sparse_only.model.U.clear();
  sparse_only.model.Sigma.clear();
  sparse_only.model.W.clear();
  sparse_only.coefficient_scale = 3.0;
  const core::NeighbourState fresh = core::state_in_held_basis(sparse_only, LowRankBasis::slopes, constant, d, 2);
  for (int a = 0; a < d; ++a) EXPECT_DOUBLE_EQ(fresh.Sigma[a * d + a], core::kNewDirectionVariance * 3.0);
  for (double w : fresh.task_parameters.W) EXPECT_EQ(w, 0.0);
  EXPECT_THROW(core::state_in_held_basis(from, LowRankBasis::slopes, constant, 3, 1), Error);
  EXPECT_THROW(core::state_in_held_basis(from, LowRankBasis::intercept, d, 1, 1), Error);
  EXPECT_THROW(core::state_in_held_basis(from, LowRankBasis::learned, constant, 1, 1), Error);
}

// The slopes model started from a learned fit's state reaches the optimum it reaches from scratch.
TEST(WarmStart, TheSlopesModelStartedFromALearnedFitReachesItsOwnOptimum) {
  // Tasks whose coefficients vary on every feature (the slopes model's truth) plus a constant.
  const int d = 5, constant = 0;
  const Dataset<double> data = testing::intercept_and_slopes_data(200, 8, 8, d, constant, 1.0, 0.16, 0.3, 8);
  Options o = estimated_prior_options(300, 1e-9);
  o.sparsity = 0;
  auto fitted = [&](int r, LowRankBasis basis, const Checkpoint* start, std::optional<Checkpoint>* last) {
    Options fo = o;
    fo.rank = r;
    fo.low_rank_basis = basis;
    Checkpoint header;
    FitRun run;
    run.start_from = start;
    run.header = &header;
    run.constant_feature = constant;
    run.checkpoint = [last](const Checkpoint& c) { *last = c; };
    run.checkpoint_every = 1 << 30;
    run.checkpoint_at_end = true;
    return fit_fixed(data.view(), fo, run);
  };
  std::optional<Checkpoint> learned, unused;
  fitted(2, LowRankBasis::learned, nullptr, &learned);
  ASSERT_TRUE(learned);
  const Model scratch = fitted(d, LowRankBasis::slopes, nullptr, &unused);
  const Model warm = fitted(d, LowRankBasis::slopes, &*learned, &unused);
  EXPECT_NEAR(warm.log_evidence, scratch.log_evidence, 1e-6 * std::fabs(scratch.log_evidence));
  EXPECT_NEAR(warm.noise_variance, scratch.noise_variance, 1e-4 * scratch.noise_variance);
  for (int a = 0; a < d; ++a)
    EXPECT_NEAR(warm.Sigma[a * d + a], scratch.Sigma[a * d + a], 1e-3 * scratch.Sigma[a * d + a]) << a;
  std::fprintf(stderr, "slopes from scratch %zu iterations, from the learned r = 2 %zu\n", scratch.history.size(), warm.history.size());
}

TEST(WarmStart, AFitStartedFromANeighboursStateReachesItsOwnOptimum) {
  SyntheticSpec spec;
  spec.tasks = 300;
  spec.min_samples = 15;
  spec.max_samples = 30;
  spec.d = 12;
  spec.r = 3;
  spec.k = 1;
  spec.noise = 0.2;
  spec.seed = 4;
  const SyntheticData syn = generate_synthetic(spec);
  const TaskDataView<double> data = syn.data.view();
  const Options o = estimated_prior_options(80, 1e-7);
  auto fitted = [&](int r, const Checkpoint* start, std::optional<Checkpoint>* last) {
    Options fo = o;
    fo.rank = r;
    fo.sparsity = 1;
    Checkpoint header;
    FitRun run;
    run.start_from = start;
    run.header = &header;
    run.checkpoint = [last](const Checkpoint& c) { *last = c; };
    run.checkpoint_every = 1 << 30;
    run.checkpoint_at_end = true;
    return fit_fixed(data, fo, run);
  };
  std::optional<Checkpoint> two, three;
  const Model r2 = fitted(2, nullptr, &two);
  const Model r3 = fitted(3, nullptr, &three);
  ASSERT_TRUE(two && three);
  std::optional<Checkpoint> unused;
  const Model again = fitted(3, &*three, &unused);
  EXPECT_LE(again.history.size(), 3u);
  EXPECT_NEAR(again.log_evidence, r3.log_evidence, 1e-5 * std::fabs(r3.log_evidence));
  const Model grown = fitted(3, &*two, &unused);
  EXPECT_EQ(grown.history.front().sparsity_in_effect, 1);  // no warm-start phase
  EXPECT_GT(grown.log_evidence, r2.log_evidence + 100.0);
  EXPECT_NEAR(grown.log_evidence, r3.log_evidence, 1e-5 * std::fabs(r3.log_evidence));
}

}  // namespace
}  // namespace lrsmeta
