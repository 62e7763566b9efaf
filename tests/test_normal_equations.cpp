// The U step: G and v against a direct Kronecker-product computation, the column-major vec
// convention, and the solve.
#include <gtest/gtest.h>

#include "core/u_solver.hpp"
#include "cpu/cpu_backend.hpp"
#include "lrsmeta/io.hpp"
#include "test_helpers.hpp"

namespace lrsmeta {
namespace {

struct Problem {
  Dataset<double> data;
  std::vector<double> W, Bv;
  std::vector<std::int32_t> Bi;
  int d, r, k;
};

// Ragged random tasks (0 to 9 rows) with random w_i and sparse b_i.
Problem random_problem(int t, int d, int r, int k, std::uint64_t seed) {
  Problem p{{}, {}, {}, {}, d, r, k};
  p.data.d = d;
  p.data.task_offsets.assign(1, 0);
  for (int i = 0; i < t; ++i) p.data.task_offsets.push_back(p.data.task_offsets.back() + (i * 7 + 3) % 10);
  const std::int64_t n = p.data.task_offsets.back();
  p.data.X = testing::random_normal(static_cast<std::size_t>(n * d), seed);
  p.data.y = testing::random_normal(static_cast<std::size_t>(n), seed + 1);
  p.W = testing::random_normal(static_cast<std::size_t>(t) * r, seed + 2);
  p.Bv = testing::random_normal(static_cast<std::size_t>(t) * k, seed + 3);
  p.Bi.resize(static_cast<std::size_t>(t) * k);
  for (int i = 0; i < t; ++i)
    for (int s = 0; s < k; ++s) p.Bi[i * k + s] = (s == k - 1 && i % 3 == 0) ? -1 : (i + 5 * s) % d;  // some unused slots
  return p;
}

Options options_for(const Problem& p, int threads) {
  Options o;
  o.rank = p.r;
  o.sparsity = p.k;
  o.threads = threads;
  return o;
}

cpu::CpuBackend<double> backend_for(Problem& p, int threads) {
  cpu::CpuBackend<double> b(p.data.view(), options_for(p, threads));
  b.W() = p.W;
  b.B_index() = p.Bi;
  b.B_value() = p.Bv;
  return b;
}

// Reference: G = sum_i sum_j (w_i kron x_j)(w_i kron x_j)^T, v = sum_i sum_j (w_i kron x_j) e_j,
// with (w kron x)[p * d + a] = w_p x_a, i.e. index a + d p.
void expect_kronecker_definition(const Problem& p, const std::vector<double>& G, const std::vector<double>& v) {
  const int d = p.d, r = p.r, k = p.k, dr = d * r;
  std::vector<double> G_ref(static_cast<std::size_t>(dr) * dr, 0.0), v_ref(dr, 0.0);
  for (std::int64_t i = 0; i + 1 < static_cast<std::int64_t>(p.data.task_offsets.size()); ++i)
    for (std::int64_t j = p.data.task_offsets[i]; j < p.data.task_offsets[i + 1]; ++j) {
      std::vector<double> z(dr);
      for (int q = 0; q < r; ++q)
        for (int a = 0; a < d; ++a) z[a + d * q] = p.W[i * r + q] * p.data.X[j * d + a];
      double e = p.data.y[j];
      for (int s = 0; s < k; ++s)
        if (p.Bi[i * k + s] >= 0) e -= p.data.X[j * d + p.Bi[i * k + s]] * p.Bv[i * k + s];
      for (int u = 0; u < dr; ++u) {
        v_ref[u] += z[u] * e;
        for (int v = 0; v < dr; ++v) G_ref[u + dr * v] += z[u] * z[v];
      }
    }
  ASSERT_EQ(G.size(), G_ref.size());
  for (std::size_t e = 0; e < G.size(); ++e) ASSERT_NEAR(G[e], G_ref[e], 1e-10 * (1 + std::fabs(G_ref[e]))) << "G entry " << e;
  for (int e = 0; e < dr; ++e) ASSERT_NEAR(v[e], v_ref[e], 1e-10 * (1 + std::fabs(v_ref[e]))) << "v entry " << e;
}

// Both ways of forming the tasks' Grams: kept from the first U step (d = 7: they take less memory
// than X) and formed every time (d = 15); a second U step with other w_i reads the kept ones.
TEST(NormalEquations, MatchKroneckerDefinition) {
  for (const int d : {7, 15}) {
    Problem p = random_problem(150, d, 3, 2, 21);  // 150 tasks: several GEMM chunks
    EXPECT_EQ(cpu::keeps_task_grams(p.data.n(), p.data.t(), d), d == 7) << "d " << d;
    for (int threads : {1, 2}) {
      auto backend = backend_for(p, threads);
      std::vector<double> G, v;
      backend.accumulate_normal_equations(G, v);
      expect_kronecker_definition(p, G, v);
      p.W = testing::random_normal(p.W.size(), 40 + threads);
      backend.W() = p.W;
      backend.accumulate_normal_equations(G, v);
      expect_kronecker_definition(p, G, v);
    }
  }
}

TEST(NormalEquations, ColumnMajorVecRecoversTheTrueU) {
  // Noiseless data generated with a known (non-orthonormal) U* and known w_i, b_i: the solution
  // of (G) vec(U) = v, read column-major (vec(U)[a + d p] = U[a, p]), is U* itself. Reading the
  // same vector row-major (the bug docs/design.md warns of) is not.
  const int t = 200, d = 6, r = 2, k = 1;
  Problem p = random_problem(t, d, r, k, 31);
  const std::vector<double> U_true = testing::random_normal(static_cast<std::size_t>(d) * r, 32);  // row-major d x r
  for (std::int64_t i = 0; i < t; ++i)
    for (std::int64_t j = p.data.task_offsets[i]; j < p.data.task_offsets[i + 1]; ++j) {
      double s = 0;
      for (int a = 0; a < d; ++a) {
        double theta = 0;
        for (int q = 0; q < r; ++q) theta += U_true[a * r + q] * p.W[i * r + q];
        if (p.Bi[i] == a) theta += p.Bv[i];
        s += p.data.X[j * d + a] * theta;
      }
      p.data.y[j] = s;
    }
  auto backend = backend_for(p, 2);
  std::vector<double> G, v;
  backend.accumulate_normal_equations(G, v);
  const std::vector<double> x = core::solve_normal_equations(G, v, Options().ridge);
  double col_err = 0, row_err = 0;
  for (int a = 0; a < d; ++a)
    for (int q = 0; q < r; ++q) {
      col_err = std::max(col_err, std::fabs(x[a + d * q] - U_true[a * r + q]));
      row_err = std::max(row_err, std::fabs(x[a * r + q] - U_true[a * r + q]));
    }
  EXPECT_LT(col_err, 1e-9);
  EXPECT_GT(row_err, 1e-2);
}

TEST(NormalEquations, UpdateUGivesOrthonormalBasisOfTheSolution) {
  const int t = 300, d = 8, r = 3, k = 0;
  Problem p = random_problem(t, d, r, k, 41);
  auto backend = backend_for(p, 2);
  backend.set_U(testing::random_orthonormal(d, r, 42));
  std::vector<double> G, v;
  backend.accumulate_normal_equations(G, v);
  const std::vector<double> x = core::solve_normal_equations(G, v, Options().ridge);  // d x r column-major
  const double change = core::direct_U_step(backend, options_for(p, 1));
  EXPECT_GT(change, 0.0);
  const std::vector<double> U = backend.get_U();
  // Orthonormal columns spanning the same space as the solution.
  for (int p1 = 0; p1 < r; ++p1)
    for (int p2 = 0; p2 < r; ++p2) {
      double dot = 0;
      for (int a = 0; a < d; ++a) dot += U[a * r + p1] * U[a * r + p2];
      EXPECT_NEAR(dot, p1 == p2 ? 1.0 : 0.0, 1e-12);
    }
  std::vector<double> x_rowmajor(static_cast<std::size_t>(d) * r);
  for (int a = 0; a < d; ++a)
    for (int q = 0; q < r; ++q) x_rowmajor[a * r + q] = x[a + d * q];
  for (int q = 0; q < r; ++q) {  // each solution column lies in span(U)
    double resid = 0, norm = 0;
    for (int a = 0; a < d; ++a) {
      double proj = 0;
      for (int p1 = 0; p1 < r; ++p1) {
        double c = 0;
        for (int b = 0; b < d; ++b) c += U[b * r + p1] * x_rowmajor[b * r + q];
        proj += U[a * r + p1] * c;
      }
      resid += std::pow(x_rowmajor[a * r + q] - proj, 2);
      norm += std::pow(x_rowmajor[a * r + q], 2);
    }
    EXPECT_LT(std::sqrt(resid / norm), 1e-10);
  }
}

TEST(NormalEquations, SingularSystemStillSolves) {
  // All w_i = 0: G = 0 and v = 0. The jitter keeps the Cholesky defined; U~ = 0 and QR still
  // returns an orthonormal basis, never NaN.
  Problem p = random_problem(20, 5, 2, 0, 51);
  std::fill(p.W.begin(), p.W.end(), 0.0);
  auto backend = backend_for(p, 1);
  backend.set_U(testing::random_orthonormal(5, 2, 52));
  const double change = core::direct_U_step(backend, options_for(p, 1));
  EXPECT_TRUE(std::isfinite(change));
  for (double u : backend.get_U()) EXPECT_TRUE(std::isfinite(u));
}

TEST(NormalEquations, FloatDataAgreesWithDoubleToFloatRounding) {
  Problem p = random_problem(90, 6, 2, 1, 61);
  Dataset<float> f;
  f.d = p.data.d;
  f.task_offsets = p.data.task_offsets;
  f.X.assign(p.data.X.begin(), p.data.X.end());
  f.y.assign(p.data.y.begin(), p.data.y.end());
  // Round the double data to float values so both see the same numbers.
  for (std::size_t e = 0; e < f.X.size(); ++e) p.data.X[e] = f.X[e];
  for (std::size_t e = 0; e < f.y.size(); ++e) p.data.y[e] = f.y[e];
  auto bd = backend_for(p, 2);
  Options o;
  o.rank = 2;
  o.sparsity = 1;
  cpu::CpuBackend<float> bf(f.view(), o);
  bf.W() = p.W;
  bf.B_index() = p.Bi;
  bf.B_value() = p.Bv;
  std::vector<double> Gd, vd, Gf, vf;
  bd.accumulate_normal_equations(Gd, vd);
  bf.accumulate_normal_equations(Gf, vf);
  // Float data builds each chunk's G in float (SGEMM) and adds the chunks in double: agreement to
  // float rounding; v is accumulated in double from the float values: agreement to double rounding.
  auto rel_diff = [](const std::vector<double>& a, const std::vector<double>& b) {
    double num = 0, den = 0;
    for (std::size_t e = 0; e < a.size(); ++e) {
      num += (a[e] - b[e]) * (a[e] - b[e]);
      den += b[e] * b[e];
    }
    return std::sqrt(num / den);
  };
  EXPECT_LT(rel_diff(Gf, Gd), 1e-6);
  EXPECT_LT(rel_diff(vf, vd), 1e-12);
}

// Under the prior, the U step restricted to held directions D_1 .. D_m of U (intercept, slopes, or
// U itself at r = d with Sigma isotropic), and to random ones: the full system restricted to [beta,
// the directions' weights], from X^T X and one operator pass per direction, against its definition
// row by row, with z = [x; x^T D_j w_i] and E[w w^T] = w w^T +
// V_i: G = sum z z^T + (x^T D_j) V_i (D_l^T x) in the directions' block, v = sum z e.
TEST(NormalEquations, TheSystemRestrictedToHeldDirectionsMatchesItsDefinition) {
  const int d = 6, r = 4, k = 2;
  Problem p = random_problem(140, d, r, k, 61);
  for (std::size_t j = 0; j < p.data.X.size(); j += d) p.data.X[j] = 1.0;  // a constant feature, for the slopes' directions
  core::PriorState prior;
  prior.beta = testing::random_normal(static_cast<std::size_t>(d), 62);
  const std::vector<double> L = testing::random_normal(static_cast<std::size_t>(r * r), 63);
  prior.Sigma.assign(static_cast<std::size_t>(r * r), 0.0);  // L L^T + I / 2
  for (int a = 0; a < r; ++a)
    for (int b = 0; b < r; ++b) {
      for (int c = 0; c < r; ++c) prior.Sigma[static_cast<std::size_t>(a * r + b)] += L[a * r + c] * L[b * r + c];
      if (a == b) prior.Sigma[static_cast<std::size_t>(a * r + b)] += 0.5;
    }
  prior.noise_variance = 0.4;
  prior.b_precision = 0.7;
  const std::vector<double> U = testing::random_orthonormal(d, r, 64);
  std::vector<std::vector<std::vector<double>>> direction_sets = {core::held_directions(U, d, r, LowRankBasis::slopes, 0),
                                                                 core::held_directions(U, d, r, LowRankBasis::learned, -1)};
  direction_sets.push_back({testing::random_normal(static_cast<std::size_t>(d * r), 65), testing::random_normal(static_cast<std::size_t>(d * r), 66),
                            testing::random_normal(static_cast<std::size_t>(d * r), 67)});
  for (const auto& directions : direction_sets) {
    const int m = static_cast<int>(directions.size()), n = d + m;
    for (int threads : {1, 2}) {
      Options o = options_for(p, threads);
      cpu::CpuBackend<double> backend(p.data.view(), o);
      backend.set_U(U);
      backend.set_prior(&prior);
      backend.task_step_all(k);  // W, every V_i and b under the prior
      const std::vector<double>& W = backend.W();
      const std::vector<double>& V = backend.V_packed();
      std::vector<double> G_ref(static_cast<std::size_t>(n * n), 0.0), v_ref(static_cast<std::size_t>(n), 0.0);
      for (std::int64_t i = 0; i + 1 < static_cast<std::int64_t>(p.data.task_offsets.size()); ++i) {
        std::vector<double> Vi(static_cast<std::size_t>(r * r));
        for (int a = 0, e = 0; a < r; ++a)
          for (int b = a; b < r; ++b, ++e) Vi[a * r + b] = Vi[b * r + a] = V[static_cast<std::size_t>(i * r * (r + 1) / 2 + e)];
        for (std::int64_t row = p.data.task_offsets[i]; row < p.data.task_offsets[i + 1]; ++row) {
          const double* x = p.data.X.data() + row * d;
          double e = p.data.y[static_cast<std::size_t>(row)];
          for (int s = 0; s < k; ++s) {
            const std::int32_t c = backend.B_index()[static_cast<std::size_t>(i * k + s)];
            if (c >= 0) e -= x[c] * backend.B_value()[static_cast<std::size_t>(i * k + s)];
          }
          std::vector<double> z(x, x + d), xD(static_cast<std::size_t>(m * r), 0.0);  // xD: row j is x^T D_j
          for (int j = 0; j < m; ++j) {
            for (int a = 0; a < d; ++a)
              for (int q = 0; q < r; ++q) xD[static_cast<std::size_t>(j * r + q)] += x[a] * directions[static_cast<std::size_t>(j)][static_cast<std::size_t>(a + d * q)];
            double zj = 0.0;
            for (int q = 0; q < r; ++q) zj += xD[static_cast<std::size_t>(j * r + q)] * W[static_cast<std::size_t>(i * r + q)];
            z.push_back(zj);
          }
          for (int a = 0; a < n; ++a) {
            v_ref[static_cast<std::size_t>(a)] += z[static_cast<std::size_t>(a)] * e;
            for (int b = 0; b < n; ++b) G_ref[static_cast<std::size_t>(a + n * b)] += z[static_cast<std::size_t>(a)] * z[static_cast<std::size_t>(b)];
          }
          for (int j = 0; j < m; ++j)
            for (int l = 0; l < m; ++l)
              for (int a = 0; a < r; ++a)
                for (int b = 0; b < r; ++b)
                  G_ref[static_cast<std::size_t>(d + j + n * (d + l))] += xD[static_cast<std::size_t>(j * r + a)] * Vi[a * r + b] * xD[static_cast<std::size_t>(l * r + b)];
        }
      }
      std::vector<double> G, v;
      core::held_directions_system(backend, backend.data_moments().XtX, d, directions, G, v);
      ASSERT_EQ(G.size(), G_ref.size());
      for (std::size_t e = 0; e < G_ref.size(); ++e)
        ASSERT_NEAR(G[e], G_ref[e], 1e-11 * (1 + std::fabs(G_ref[e]))) << m << " directions, " << threads << " threads, G entry " << e;
      ASSERT_EQ(v.size(), v_ref.size());
      for (std::size_t e = 0; e < v_ref.size(); ++e)
        ASSERT_NEAR(v[e], v_ref[e], 1e-11 * (1 + std::fabs(v_ref[e]))) << m << " directions, " << threads << " threads, v entry " << e;
    }
  }
}

}  // namespace
}  // namespace lrsmeta
