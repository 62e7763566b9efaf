// One task's (w, b) update against an independent double-precision computation of each variant's
// first iteration, on fresh random data.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "cpu/task_step.hpp"
#include "test_helpers.hpp"

namespace lrsmeta {
namespace {

struct Task {
  int m, d, r;
  std::vector<double> X, y, U, Ut;
};

Task make_task(int m, int d, int r, std::uint64_t seed) {
  Task t{m, d, r, testing::random_normal(static_cast<std::size_t>(m) * d, seed), testing::random_normal(m, seed + 1),
         testing::random_orthonormal(d, r, seed + 2), {}};
  t.Ut.resize(static_cast<std::size_t>(d) * r);
  for (int a = 0; a < d; ++a)
    for (int p = 0; p < r; ++p) t.Ut[p * d + a] = t.U[a * r + p];
  return t;
}

// Least squares min ||target - [X U, X_S] x|| by the normal equations, solved by elimination.
std::vector<double> reference_ls(const Task& t, const std::vector<int>& S, const std::vector<double>& target) {
  const int n = t.r + static_cast<int>(S.size());
  std::vector<double> A(static_cast<std::size_t>(t.m) * n);
  for (int j = 0; j < t.m; ++j) {
    for (int p = 0; p < t.r; ++p) {
      double s = 0;
      for (int a = 0; a < t.d; ++a) s += t.X[j * t.d + a] * t.U[a * t.r + p];
      A[j * n + p] = s;
    }
    for (std::size_t q = 0; q < S.size(); ++q) A[j * n + t.r + q] = t.X[j * t.d + S[q]];
  }
  std::vector<double> G(static_cast<std::size_t>(n) * n, 0.0), rhs(n, 0.0);
  for (int j = 0; j < t.m; ++j)
    for (int a = 0; a < n; ++a) {
      rhs[a] += A[j * n + a] * target[j];
      for (int b = 0; b < n; ++b) G[a * n + b] += A[j * n + a] * A[j * n + b];
    }
  return testing::solve_dense(G, rhs);
}

// X^T (target - X U w - X_S b_S)
std::vector<double> reference_correlation(const Task& t, const std::vector<double>& w, const std::vector<int>& S,
                                          const std::vector<double>& bS) {
  std::vector<double> theta(t.d, 0.0), c(t.d, 0.0);
  for (int a = 0; a < t.d; ++a)
    for (int p = 0; p < t.r; ++p) theta[a] += t.U[a * t.r + p] * w[p];
  for (std::size_t q = 0; q < S.size(); ++q) theta[S[q]] += bS[q];
  for (int j = 0; j < t.m; ++j) {
    double e = t.y[j];
    for (int a = 0; a < t.d; ++a) e -= t.X[j * t.d + a] * theta[a];
    for (int a = 0; a < t.d; ++a) c[a] += t.X[j * t.d + a] * e;
  }
  return c;
}

std::vector<int> top_by_magnitude(const std::vector<double>& v, int k, const std::vector<int>& skip = {}) {
  std::vector<int> idx;
  for (int i = 0; i < static_cast<int>(v.size()); ++i)
    if (std::find(skip.begin(), skip.end(), i) == skip.end()) idx.push_back(i);
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return std::fabs(v[a]) > std::fabs(v[b]); });
  idx.resize(std::min<std::size_t>(idx.size(), k));
  return idx;
}

struct Result {
  std::vector<double> w;
  std::vector<std::int32_t> bi;
  std::vector<double> bv;
  double sse;
};

Result run(const Task& t, Variant v, int k, int inner = 1, double step = 0.0) {
  cpu::TaskWorkspace ws(t.m, t.d, t.r, k);
  cpu::TaskStepSettings s;
  s.variant = v;
  s.k = k;
  s.inner_iterations = inner;
  s.task_ridge = 0.0;  // the reference has no ridge
  Options o;
  o.variant = v;
  o.step_size = step;
  s.step_size = cpu::effective_step_size(o);
  Result r{std::vector<double>(t.r), std::vector<std::int32_t>(k, -1), std::vector<double>(k, 0.0), 0};
  r.sse = cpu::task_step(t.X.data(), t.y.data(), t.m, t.d, t.U.data(), t.r, r.w.data(), r.bi.data(), r.bv.data(), k, s, ws);
  return r;
}

void expect_close(const std::vector<double>& got, const std::vector<double>& want, double tol, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol * (1 + std::fabs(want[i]))) << what << "[" << i << "]";
}

// The model's sparse b as (sorted index, value) lists.
void expect_support(const Result& r, std::vector<int> S, const std::vector<double>& values) {
  std::vector<int> order(S.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return S[a] < S[b]; });
  for (std::size_t q = 0; q < S.size(); ++q) {
    EXPECT_EQ(r.bi[q], S[order[q]]);
    EXPECT_NEAR(r.bv[q], values[order[q]], 1e-9 * (1 + std::fabs(values[order[q]])));
  }
}

constexpr double kTol = 1e-9;

TEST(TaskStep, LowRankOnlyIsLeastSquares) {
  const Task t = make_task(17, 12, 3, 1);
  const Result r = run(t, Variant::pursuit, 0);
  expect_close(r.w, reference_ls(t, {}, t.y), kTol, "w");
}

TEST(TaskStep, IhtFirstIterationMatchesReference) {
  const Task t = make_task(30, 20, 3, 2);
  const int k = 3;
  const std::vector<double> w0 = reference_ls(t, {}, t.y);
  const std::vector<double> c = reference_correlation(t, w0, {}, {});
  const double eta = 0.5 / t.m;
  std::vector<double> u(c.size());
  for (std::size_t a = 0; a < c.size(); ++a) u[a] = eta * c[a];
  const std::vector<int> S = top_by_magnitude(u, k);
  std::vector<double> bS;
  for (int s : S) bS.push_back(u[s]);
  std::vector<double> target = t.y;  // final w: least squares on y - X_S b_S
  for (int j = 0; j < t.m; ++j)
    for (int q = 0; q < k; ++q) target[j] -= t.X[j * t.d + S[q]] * bS[q];
  const Result r = run(t, Variant::iht, k);
  expect_close(r.w, reference_ls(t, {}, target), kTol, "w");
  expect_support(r, S, bS);
}

TEST(TaskStep, HtpFirstIterationMatchesReference) {
  const Task t = make_task(40, 25, 2, 3);
  const int k = 2;
  const std::vector<double> w0 = reference_ls(t, {}, t.y);
  const std::vector<double> c = reference_correlation(t, w0, {}, {});
  const std::vector<int> S = top_by_magnitude(c, k);  // b = 0: top-k of |eta c|
  const std::vector<double> x = reference_ls(t, S, t.y);
  const Result r = run(t, Variant::htp, k);
  expect_close(r.w, std::vector<double>(x.begin(), x.begin() + t.r), kTol, "w");
  expect_support(r, S, std::vector<double>(x.begin() + t.r, x.end()));
}

TEST(TaskStep, PursuitFirstIterationMatchesReference) {
  const Task t = make_task(35, 30, 3, 4);
  const int k = 2;
  const std::vector<double> w0 = reference_ls(t, {}, t.y);
  const std::vector<double> c = reference_correlation(t, w0, {}, {});
  const std::vector<int> C = top_by_magnitude(c, 2 * k);  // empty support: 2k candidates
  const std::vector<double> xc = reference_ls(t, C, t.y);
  const std::vector<double> bC(xc.begin() + t.r, xc.end());
  std::vector<int> S;
  for (int p : top_by_magnitude(bC, k)) S.push_back(C[p]);
  const std::vector<double> x = reference_ls(t, S, t.y);
  const Result r = run(t, Variant::pursuit, k);
  expect_close(r.w, std::vector<double>(x.begin(), x.begin() + t.r), kTol, "w");
  expect_support(r, S, std::vector<double>(x.begin() + t.r, x.end()));
}

TEST(TaskStep, ReportsTheSumOfSquaredResiduals) {
  const Task t = make_task(25, 15, 2, 5);
  const Result r = run(t, Variant::pursuit, 2, 3);
  std::vector<int> S;
  std::vector<double> bS;
  for (int q = 0; q < 2; ++q) {
    S.push_back(r.bi[q]);
    bS.push_back(r.bv[q]);
  }
  double sse = 0;
  for (int j = 0; j < t.m; ++j) {
    double e = t.y[j];
    for (int a = 0; a < t.d; ++a) {
      double theta = 0;
      for (int p = 0; p < t.r; ++p) theta += t.U[a * t.r + p] * r.w[p];
      for (int q = 0; q < 2; ++q) theta += (S[q] == a) ? bS[q] : 0.0;
      e -= t.X[j * t.d + a] * theta;
    }
    sse += e * e;
  }
  EXPECT_NEAR(r.sse, sse, 1e-9 * (1 + sse));
}

TEST(TaskStep, NoiselessTaskIsRecoveredExactlyByEveryVariant) {
  Task t = make_task(40, 20, 3, 6);
  const std::vector<double> w_true = {1.5, -0.7, 0.9};
  const int S_true[2] = {4, 13};
  const double b_true[2] = {2.0, -1.3};
  for (int j = 0; j < t.m; ++j) {
    double s = 0;
    for (int a = 0; a < t.d; ++a) {
      double theta = 0;
      for (int p = 0; p < 3; ++p) theta += t.U[a * 3 + p] * w_true[p];
      s += t.X[j * t.d + a] * theta;
    }
    t.y[j] = s + t.X[j * t.d + S_true[0]] * b_true[0] + t.X[j * t.d + S_true[1]] * b_true[1];
  }
  for (Variant v : {Variant::pursuit, Variant::htp}) {
    const Result r = run(t, v, 2, 3);
    expect_close(r.w, w_true, 1e-10, to_string(v));
    EXPECT_EQ(r.bi[0], 4);
    EXPECT_EQ(r.bi[1], 13);
    EXPECT_NEAR(r.bv[0], 2.0, 1e-10);
    EXPECT_NEAR(r.bv[1], -1.3, 1e-10);
    EXPECT_LT(r.sse, 1e-20);
  }
  // iht converges geometrically: many inner iterations bring it to the same answer.
  const Result r = run(t, Variant::iht, 2, 400);
  EXPECT_EQ(r.bi[0], 4);
  EXPECT_EQ(r.bi[1], 13);
  expect_close(r.w, w_true, 1e-6, "iht w");
}

TEST(TaskStep, EmptyAndTinyTasksGiveFiniteAnswers) {
  const Task empty = make_task(0, 10, 2, 7);
  const Result r0 = run(empty, Variant::pursuit, 2);
  EXPECT_EQ(r0.w, std::vector<double>(2, 0.0));
  EXPECT_EQ(r0.bi, std::vector<std::int32_t>(2, -1));
  EXPECT_EQ(r0.sse, 0.0);
  const Task tiny = make_task(1, 10, 3, 8);  // one row, r + k = 5 unknowns
  for (Variant v : {Variant::pursuit, Variant::htp, Variant::iht}) {
    cpu::TaskWorkspace ws(1, 10, 3, 2);
    cpu::TaskStepSettings s;
    s.variant = v;
    s.k = 2;
    s.task_ridge = 1e-10;
    std::vector<double> w(3), bv(2);
    std::vector<std::int32_t> bi(2);
    const double sse = cpu::task_step(tiny.X.data(), tiny.y.data(), 1, 10, tiny.U.data(), 3, w.data(), bi.data(), bv.data(), 2, s, ws);
    EXPECT_TRUE(std::isfinite(sse)) << to_string(v);
    for (double x : w) EXPECT_TRUE(std::isfinite(x));
    for (double x : bv) EXPECT_TRUE(std::isfinite(x));
  }
}

TEST(TaskStep, RepeatedRowsAndZeroColumnsStayFinite) {
  Task t = make_task(12, 8, 2, 9);
  for (int j = 1; j < t.m; ++j)
    for (int a = 0; a < t.d; ++a) t.X[j * t.d + a] = t.X[a];  // every row the same
  for (int j = 0; j < t.m; ++j) t.X[j * t.d + 5] = 0.0;        // and one column all zero
  for (Variant v : {Variant::pursuit, Variant::htp, Variant::iht}) {
    cpu::TaskWorkspace ws(t.m, t.d, t.r, 3);
    cpu::TaskStepSettings s;
    s.variant = v;
    s.k = 3;
    std::vector<double> w(2), bv(3);
    std::vector<std::int32_t> bi(3);
    const double sse = cpu::task_step(t.X.data(), t.y.data(), t.m, t.d, t.U.data(), 2, w.data(), bi.data(), bv.data(), 3, s, ws);
    EXPECT_TRUE(std::isfinite(sse)) << to_string(v);
    for (double x : w) EXPECT_TRUE(std::isfinite(x));
    for (double x : bv) EXPECT_TRUE(std::isfinite(x));
  }
}

TEST(TaskStep, StoppingAtARepeatedSupportChangesNothing) {
  // htp and pursuit stop their inner loop when the support repeats, because the state is then a
  // fixed point: fed back in, it must come out bit-identical.
  int fixed_points = 0;
  for (std::uint64_t seed = 20; seed < 40; ++seed) {
    const Task t = make_task(25, 30, 3, seed);
    for (Variant v : {Variant::pursuit, Variant::htp}) {
      Result first = run(t, v, 3, 50);
      cpu::TaskWorkspace ws(t.m, t.d, t.r, 3);
      cpu::TaskStepSettings s;
      s.variant = v;
      s.k = 3;
      s.inner_iterations = 1;
      s.task_ridge = 0.0;
      s.step_size = 1.0;
      Result again = first;
      cpu::task_step(t.X.data(), t.y.data(), t.m, t.d, t.U.data(), t.r, again.w.data(), again.bi.data(),
                     again.bv.data(), 3, s, ws);
      if (again.bi != first.bi) continue;  // htp may cycle without settling within 50 iterations
      ++fixed_points;
      EXPECT_EQ(again.w, first.w) << to_string(v) << " seed " << seed;
      EXPECT_EQ(again.bv, first.bv) << to_string(v) << " seed " << seed;
    }
    // Pursuit settles: a budget of 3 or 50 inner iterations gives the same answer.
    const Result few = run(t, Variant::pursuit, 3, 3), many = run(t, Variant::pursuit, 3, 50);
    EXPECT_EQ(few.bi, many.bi) << "seed " << seed;
    EXPECT_EQ(few.w, many.w) << "seed " << seed;
  }
  EXPECT_GE(fixed_points, 30);
}

TEST(TaskStep, PursuitCandidateCapKeepsSystemsOverdetermined) {
  EXPECT_EQ(cpu::pursuit_candidate_cap(0, 2, 60, 3, 40), 4);   // 2k new candidates
  EXPECT_EQ(cpu::pursuit_candidate_cap(2, 2, 60, 3, 40), 6);   // support + 2k
  EXPECT_EQ(cpu::pursuit_candidate_cap(2, 2, 8, 3, 40), 5);    // m - r rows left
  EXPECT_EQ(cpu::pursuit_candidate_cap(2, 2, 4, 3, 40), 3);    // never below k + 1
  EXPECT_EQ(cpu::pursuit_candidate_cap(2, 5, 100, 3, 7), 7);   // never above d
}

}  // namespace
}  // namespace lrsmeta
