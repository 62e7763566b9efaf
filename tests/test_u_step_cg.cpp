// The U step by conjugate gradients: its operator against the definition G x = sum_i X_i^T X_i M E_i
// computed here in double, its right-hand side against the direct path's, cg against the direct
// solve in whole fits, exact recovery with cg, and the refusals and choices around it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <memory>

#include "core/backend.hpp"
#include "core/communicator.hpp"
#include "core/u_solver.hpp"
#include "cpu/cpu_backend.hpp"
#include "lrsmeta/io.hpp"
#include "test_helpers.hpp"

namespace lrsmeta {
namespace {

// Ragged random tasks (0 to 12 rows), d = 9.
Dataset<double> ragged_data(int t, int d, std::uint64_t seed) {
  Dataset<double> data;
  data.d = d;
  data.task_offsets.assign(1, 0);
  for (int i = 0; i < t; ++i) data.task_offsets.push_back(data.task_offsets.back() + (i * 5 + 2) % 13);
  const std::int64_t n = data.task_offsets.back();
  data.X = testing::random_normal(static_cast<std::size_t>(n * d), seed);
  data.y = testing::random_normal(static_cast<std::size_t>(n), seed + 1);
  return data;
}

// (G + ridge I) x by the definition, with E_i = w'_i w'_i^T (+ blockdiag(0, V_i)), in double.
std::vector<double> reference_product(const Dataset<double>& data, const std::vector<double>& W, const std::vector<double>* V, int r,
                                      double ridge, double beta_precision, const std::vector<double>& x) {
  const bool prior = V != nullptr;
  const int d = static_cast<int>(data.d), rr = r + (prior ? 1 : 0);
  const int P = r * (r + 1) / 2;
  std::vector<double> y(x.size(), 0.0);
  for (std::int64_t i = 0; i < data.t(); ++i) {
    std::vector<double> w(static_cast<std::size_t>(rr));
    for (int p = 0; p < r; ++p) w[static_cast<std::size_t>(p + (prior ? 1 : 0))] = W[static_cast<std::size_t>(i * r + p)];
    if (prior) w[0] = 1.0;
    std::vector<double> E(static_cast<std::size_t>(rr * rr));
    for (int p = 0; p < rr; ++p)
      for (int q = 0; q < rr; ++q) E[static_cast<std::size_t>(p * rr + q)] = w[static_cast<std::size_t>(p)] * w[static_cast<std::size_t>(q)];
    if (prior)
      for (int p = 0, pq = 0; p < r; ++p)
        for (int q = p; q < r; ++q, ++pq) {
          const double v = (*V)[static_cast<std::size_t>(i * P + pq)];
          E[static_cast<std::size_t>((p + 1) * rr + q + 1)] += v;
          if (q != p) E[static_cast<std::size_t>((q + 1) * rr + p + 1)] += v;
        }
    // S = X_i^T X_i (d x d), then y[:, p] += S (sum_q M[:, q] E[q, p]).
    std::vector<double> S(static_cast<std::size_t>(d * d), 0.0);
    for (std::int64_t j = data.task_offsets[i]; j < data.task_offsets[i + 1]; ++j)
      for (int a = 0; a < d; ++a)
        for (int b = 0; b < d; ++b) S[static_cast<std::size_t>(a * d + b)] += data.X[static_cast<std::size_t>(j * d + a)] * data.X[static_cast<std::size_t>(j * d + b)];
    for (int p = 0; p < rr; ++p) {
      std::vector<double> ME(static_cast<std::size_t>(d), 0.0);
      for (int q = 0; q < rr; ++q)
        for (int a = 0; a < d; ++a) ME[static_cast<std::size_t>(a)] += x[static_cast<std::size_t>(a + d * q)] * E[static_cast<std::size_t>(q * rr + p)];
      for (int a = 0; a < d; ++a)
        for (int b = 0; b < d; ++b) y[static_cast<std::size_t>(a + d * p)] += S[static_cast<std::size_t>(a * d + b)] * ME[static_cast<std::size_t>(b)];
    }
  }
  for (std::size_t e = 0; e < y.size(); ++e) y[e] += ridge * x[e];
  if (prior)
    for (int a = 0; a < d; ++a) y[static_cast<std::size_t>(a)] += beta_precision * x[static_cast<std::size_t>(a)];
  return y;
}

double relative_difference(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (std::size_t e = 0; e < a.size(); ++e) {
    num += (a[e] - b[e]) * (a[e] - b[e]);
    den += b[e] * b[e];
  }
  return std::sqrt(num / den);
}

// A prior for rank 3 (d features), as the core would hand the backend: beta drawn from `seed`.
core::PriorState rank3_prior(int d, std::uint64_t seed) {
  core::PriorState ps;
  ps.beta = testing::random_normal(static_cast<std::size_t>(d), seed);
  ps.Sigma = {1.0, 0.2, 0.0, 0.2, 0.8, 0.1, 0.0, 0.1, 0.5};
  ps.noise_variance = 0.3;
  ps.b_precision = 0.5;
  ps.beta_precision = 2.5;
  return ps;
}

TEST(CgUStep, OperatorMatchesTheDefinitionWithoutAndWithThePrior) {
  const int t = 170, d = 9, r = 3, k = 2;
  const Dataset<double> data = ragged_data(t, d, 31);
  for (bool prior : {false, true}) {
    for (int threads : {1, 2}) {
      Options o;
      o.rank = r;
      o.sparsity = k;
      o.threads = threads;
      o.ridge = 0.37;
      cpu::CpuBackend<double> backend(data.view(), o);
      backend.set_U(testing::random_orthonormal(d, r, 5));
      core::PriorState ps;
      if (prior) {
        // A task step under a prior fills W and every V_i.
        ps = rank3_prior(d, 7);
        backend.set_prior(&ps);
        backend.task_step_all(k);
      } else {
        backend.W() = testing::random_normal(static_cast<std::size_t>(t * r), 8);
      }
      const int rr = r + (prior ? 1 : 0);
      const std::vector<double> x = testing::random_normal(static_cast<std::size_t>(d * rr), 9);
      // The backend's pass is G x alone; the core's operator adds the ridge and beta's precision.
      std::vector<double> Gx_pass, y;
      backend.apply_normal_operator(x, Gx_pass);
      const std::vector<double> V = backend.V_packed();
      EXPECT_LT(relative_difference(Gx_pass, reference_product(data, backend.W(), prior ? &V : nullptr, r, 0.0, 0.0, x)), 1e-13)
          << (prior ? "prior" : "no prior") << ", " << threads << " threads";
      Options cg_options = o;
      cg_options.u_solver = USolver::cg;
      core::SingleProcess alone;
      core::UStep u_step(backend, cg_options, alone);
      u_step.apply(x, y, prior ? &ps : nullptr);
      const std::vector<double> ref = reference_product(data, backend.W(), prior ? &V : nullptr, r, o.ridge, ps.beta_precision, x);
      EXPECT_LT(relative_difference(y, ref), 1e-13) << (prior ? "prior" : "no prior") << ", " << threads << " threads";
      // Its right-hand side is the direct path's v (G itself is tested against its definition in
      // test_normal_equations).
      std::vector<double> v_cg, W_hat, G, v_direct;
      backend.accumulate_rhs(v_cg, W_hat);
      backend.accumulate_normal_equations(G, v_direct);
      EXPECT_LT(relative_difference(v_cg, v_direct), 1e-13);
      ASSERT_EQ(W_hat.size(), static_cast<std::size_t>(rr * rr));
      // The pass that gives both (a cg step's start) gives the same three, bit for bit.
      std::vector<double> v_both, W_hat_both, Gx_both;
      backend.accumulate_rhs_and_apply(x, v_both, W_hat_both, Gx_both);
      EXPECT_EQ(v_both, v_cg);
      EXPECT_EQ(W_hat_both, W_hat);
      EXPECT_EQ(Gx_both, Gx_pass);
      // And G's product agrees with the operator (beta's precision and the ridge added to G here).
      std::vector<double> Gx(x.size(), 0.0);
      for (std::size_t a = 0; a < x.size(); ++a)
        for (std::size_t b = 0; b < x.size(); ++b) Gx[a] += G[a + x.size() * b] * x[b];
      for (std::size_t e = 0; e < x.size(); ++e) Gx[e] += o.ridge * x[e] + (prior && e < static_cast<std::size_t>(d) ? ps.beta_precision * x[e] : 0.0);
      EXPECT_LT(relative_difference(y, Gx), 1e-12);
    }
  }
}

// Float data: the operator's products over the task's rows run in float (as the direct solve
// forms X_i^T X_i in float), Mw and the sums in double: the definition, computed in double on the
// same (float) numbers, to float's precision.
TEST(CgUStep, OperatorOnFloatDataAgreesWithTheDefinitionToFloatsPrecision) {
  const int t = 170, d = 9, r = 3;
  const Dataset<double> exact = ragged_data(t, d, 37);
  Dataset<float> data;
  data.d = d;
  data.task_offsets = exact.task_offsets;
  data.X.assign(exact.X.begin(), exact.X.end());
  data.y.assign(exact.y.begin(), exact.y.end());
  Dataset<double> as_double = exact;  // the float data's own values, in double
  as_double.X.assign(data.X.begin(), data.X.end());
  as_double.y.assign(data.y.begin(), data.y.end());
  Options o;
  o.rank = r;
  o.sparsity = 2;
  cpu::CpuBackend<float> backend(data.view(), o);
  backend.W() = testing::random_normal(static_cast<std::size_t>(t * r), 38);
  const std::vector<double> x = testing::random_normal(static_cast<std::size_t>(d * r), 39);
  std::vector<double> Gx;
  backend.apply_normal_operator(x, Gx);
  const double error = relative_difference(Gx, reference_product(as_double, backend.W(), nullptr, r, 0.0, 0.0, x));
  EXPECT_LT(error, 1e-6);
  EXPECT_GT(error, 1e-12) << "float arithmetic was expected (double gives about 1e-16)";
  std::printf("float data: G x within %.2g of the definition\n", error);
}

// The CPU backend adds each task's share of cg's start as its task step ends (one reading of the
// data): the same (w, b) as task_step_all, and the same v, W_hat and residual v - G x0 as the
// separate pass after it, up to the order of the sums; the same numbers, bit for bit, however the
// dynamic schedule spreads the tasks over a number of threads. Without the prior and with x0 the
// task steps' own U, the residual comes from each task's residual e_i (sum X_i^T e_i w_i^T); for
// another x0, or under the prior, from G x0.
TEST(CgUStep, TheStartComputedWithTheTaskStepIsTheSeparatePass) {
  const int t = 230, d = 9, r = 3, k = 2;
  const Dataset<double> data = ragged_data(t, d, 43);
  for (bool prior : {false, true}) {
    for (bool x0_is_U : {true, false}) {
      for (int threads : {1, 2, 3}) {
        Options o;
        o.rank = r;
        o.sparsity = k;
        o.threads = threads;
        core::PriorState ps;
        if (prior) ps = rank3_prior(d, 17);
        const int rr = r + (prior ? 1 : 0);
        const std::vector<double> U = testing::random_orthonormal(d, r, 19);
        const std::string what = std::string(prior ? "prior" : "no prior") + (x0_is_U ? ", x0 = U, " : ", another x0, ") +
                                 std::to_string(threads) + " threads";
        auto backend_at_start = [&] {
          auto b = std::make_unique<cpu::CpuBackend<double>>(data.view(), o);
          b->set_U(U);
          if (prior) b->set_prior(&ps);
          b->task_step_all(k);  // a support and w to start from
          return b;
        };
        core::UStepStart start;
        if (x0_is_U) {  // [beta,] U, column-major
          if (prior) start.x0 = ps.beta;
          for (int p = 0; p < r; ++p)
            for (int a = 0; a < d; ++a) start.x0.push_back(U[static_cast<std::size_t>(a * r + p)]);
        } else {
          start.x0 = testing::random_normal(static_cast<std::size_t>(d * rr), 23);
        }
        auto separate = backend_at_start();
        const core::TaskStepTotals totals_separate = separate->task_step_all(k);
        std::vector<double> v, W_hat, G_x0;
        separate->accumulate_rhs_and_apply(start.x0, v, W_hat, G_x0);
        std::vector<double> residual = v, residual_by_definition = v;
        const std::vector<double> V = separate->V_packed();
        const std::vector<double> Gx_by_definition = reference_product(data, separate->W(), prior ? &V : nullptr, r, 0.0, 0.0, start.x0);
        double scale = 0.0;  // the residual is a difference of two larger vectors: errors relative to them
        for (std::size_t e = 0; e < v.size(); ++e) {
          residual[e] -= G_x0[e];
          residual_by_definition[e] -= Gx_by_definition[e];
          scale += G_x0[e] * G_x0[e];
        }
        scale = std::sqrt(scale);
        auto distance = [](const std::vector<double>& a, const std::vector<double>& b) {
          double s = 0.0;
          for (std::size_t e = 0; e < a.size(); ++e) s += (a[e] - b[e]) * (a[e] - b[e]);
          return std::sqrt(s);
        };
        std::vector<core::UStepStart> fused_starts;
        for (int run = 0; run < 2; ++run) {
          auto fused = backend_at_start();
          core::UStepStart s = start;
          const core::TaskStepTotals totals = fused->task_step_all_with_u_start(k, s);
          EXPECT_EQ(fused->W(), separate->W()) << what;
          EXPECT_EQ(fused->B_index(), separate->B_index()) << what;
          EXPECT_EQ(totals.sse, totals_separate.sse) << what;
          EXPECT_LT(relative_difference(s.v, v), 1e-14) << what;
          EXPECT_LT(relative_difference(s.W_hat, W_hat), 1e-14) << what;
          ASSERT_EQ(s.residual.size(), residual.size()) << what;
          EXPECT_LT(distance(s.residual, residual), 1e-13 * scale) << what;
          EXPECT_LT(distance(s.residual, residual_by_definition), 1e-12 * scale) << what;
          fused_starts.push_back(std::move(s));
        }
        EXPECT_EQ(fused_starts[0].v, fused_starts[1].v) << what;
        EXPECT_EQ(fused_starts[0].residual, fused_starts[1].residual) << what;
        EXPECT_EQ(fused_starts[0].W_hat, fused_starts[1].W_hat) << what;
        // A warm start of the wrong size is refused before any work.
        core::UStepStart wrong;
        wrong.x0.assign(3, 0.0);
        EXPECT_THROW(separate->task_step_all_with_u_start(k, wrong), Error) << what;
      }
    }
  }
}

SyntheticData well_posed(double noise, std::uint64_t seed) {
  SyntheticSpec spec;
  spec.tasks = 600;
  spec.min_samples = 15;
  spec.max_samples = 30;
  spec.d = 20;
  spec.r = 3;
  spec.k = 2;
  spec.noise = noise;
  spec.seed = seed;
  return generate_synthetic(spec);
}

// The whole fits the solvers are compared on: rank 3, the prior's settings given, the direct solve.
Options whole_fit_options(Prior prior, int sparsity, int iterations) {
  Options o;
  o.rank = 3;
  o.sparsity = sparsity;
  o.prior = prior;
  o.iterations = iterations;
  o.relative_tolerance = 0;
  o.sparse_prior_scale = 0.3;
  o.support_threshold = 2.0;
  o.covariance_shrinkage = 1.0;
  o.selection = Selection::validation;  // the prior's settings as given, fixed during the fit
  o.threads = 2;
  o.u_solver = USolver::direct;
  return o;
}

TEST(CgUStep, AgreesWithTheDirectSolveInWholeFits) {
  const SyntheticData s = well_posed(0.2, 41);
  for (Prior prior : {Prior::none, Prior::automatic}) {
    Options o = whole_fit_options(prior, 2, 6);
    const Model direct = fit(s.data.view(), o);
    o.u_solver = USolver::cg;
    o.cg_tolerance = 1e-14;
    o.cg_forcing = 0;  // every U step solved: the same iterates as the direct solve's
    const Model cg = fit(s.data.view(), o);
    ASSERT_EQ(cg.U.size(), direct.U.size());
    double worst = 0;
    for (std::size_t e = 0; e < cg.U.size(); ++e) worst = std::max(worst, std::fabs(cg.U[e] - direct.U[e]));
    EXPECT_LT(worst, 1e-8) << "prior " << to_string(prior);
    EXPECT_LT(relative_difference(cg.theta_matrix(), direct.theta_matrix()), 1e-8);
    for (const IterationInfo& h : cg.history) {
      EXPECT_GT(h.u_solver_steps, 0);
      EXPECT_LE(h.u_solver_residual, 1e-14);
    }
    for (const IterationInfo& h : direct.history) EXPECT_EQ(h.u_solver_steps, 0);
    EXPECT_EQ(cg.options.u_solver, USolver::cg);
  }
}

// Inexact U steps (the default forcing) take fewer cg steps and end at the direct solve's fixed
// point: on noisy data run to convergence, the two models agree to 1e-7 where the fixed point is
// unique (the low-rank model alone: with a sparse part and no prior, pursuit's supports can cycle
// on noisy data). With the prior's discrete choices (supports, pruning) a different path may end at
// another fixed point: there the models agree to 1e-3.
TEST(CgUStep, InexactStepsEndAtTheDirectSolvesFixedPoint) {
  const SyntheticData s = well_posed(0.2, 43);
  for (Prior prior : {Prior::none, Prior::automatic}) {
    Options o = whole_fit_options(prior, prior == Prior::none ? 0 : 2, 200);
    o.tolerance = 1e-12;
    const Model direct = fit(s.data.view(), o);
    o.u_solver = USolver::cg;
    ASSERT_EQ(o.cg_forcing, 0.1);  // the default
    const Model inexact = fit(s.data.view(), o);
    o.cg_forcing = 0;
    const Model exact = fit(s.data.view(), o);
    ASSERT_LT(direct.history.size(), 200u) << "the direct fit did not converge: no fixed point to compare";
    ASSERT_LT(inexact.history.size(), 200u) << "the inexact fit did not converge";
    const double agree = prior == Prior::none ? 1e-7 : 1e-3;
    EXPECT_LT(relative_difference(inexact.theta_matrix(), direct.theta_matrix()), agree) << "prior " << to_string(prior);
    EXPECT_LT(testing::subspace_distance(inexact.U, direct.U, static_cast<int>(s.data.d), 3), agree);
    int steps_inexact = 0, steps_exact = 0;
    for (const IterationInfo& h : inexact.history) steps_inexact += h.u_solver_steps;
    for (const IterationInfo& h : exact.history) steps_exact += h.u_solver_steps;
    EXPECT_LT(steps_inexact, steps_exact) << "prior " << to_string(prior);
    std::printf("prior %s: outer iterations direct %zu, cg exact %zu (%d steps), inexact %zu (%d steps)\n", to_string(prior),
                direct.history.size(), exact.history.size(), steps_exact, inexact.history.size(), steps_inexact);
  }
}

TEST(CgUStep, RecoversNoiselessDataExactly) {
  // The problem test_recovery recovers with the direct solve.
  SyntheticSpec spec;
  spec.tasks = 1000;
  spec.min_samples = spec.max_samples = 60;
  spec.d = 40;
  spec.r = 3;
  spec.k = 2;
  spec.seed = 11;
  const SyntheticData s = generate_synthetic(spec);
  for (Prior prior : {Prior::none, Prior::automatic}) {
    Options o;
    o.rank = 3;
    o.sparsity = 2;
    o.prior = prior;
    o.iterations = 30;
    o.sparse_prior_scale = 0.1;
    o.support_threshold = 2.0;
    o.covariance_shrinkage = 10.0;
    o.u_solver = USolver::cg;
    o.seed = 7;
    const Model m = fit(s.data.view(), o);
    EXPECT_LT(relative_error(m.theta_matrix(), s.theta()), 1e-8) << "prior " << to_string(prior);
    EXPECT_LT(testing::subspace_distance(m.U, s.U, 40, 3), 1e-8);
  }
}

TEST(CgUStep, DirectIsRefusedAboveItsLimitAndAutoTakesCgThere) {
  Options o;
  o.rank = 50;
  o.sparsity = 0;
  o.prior = Prior::none;
  o.u_solver = USolver::direct;
  try {
    validate(o, 500);
    FAIL() << "25000 unknowns were accepted for a direct solve";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--u-solver cg has no such limit"), std::string::npos) << e.what();
  }
  o.u_solver = USolver::cg;
  EXPECT_NO_THROW(validate(o, 500));
  for (double forcing : {-0.1, 1.0, std::nan("")}) {  // the forcing term: a fraction, less than one
    Options bad = o;
    bad.cg_forcing = forcing;
    EXPECT_THROW(validate(bad, 500), Error) << forcing;
  }
  o.u_solver = USolver::automatic;
  EXPECT_NO_THROW(validate(o, 500));
  const core::USolverChoice big = core::choose_u_solver(500000, 10000, 500, 50, 8, o, false);
  EXPECT_EQ(big.solver, USolver::cg);
  EXPECT_NE(big.why.find("above the 20000 a direct solve takes"), std::string::npos) << big.why;
  // Small systems: direct; private training and the GPU: direct below the limit.
  EXPECT_EQ(core::choose_u_solver(20000, 1000, 10, 2, 8, o, false).solver, USolver::direct);
  Options priv = o;
  priv.rank = 10;
  priv.privacy.enabled = true;
  EXPECT_EQ(core::choose_u_solver(400000, 20000, 100, 10, 4, priv, false).solver, USolver::direct);
  priv.u_solver = USolver::cg;
  EXPECT_THROW(validate(priv, 100), Error);
  EXPECT_EQ(core::choose_u_solver(400000, 20000, 100, 10, 4, o, true).solver, USolver::direct);
  EXPECT_EQ(core::choose_u_solver(500000, 10000, 500, 50, 8, o, true).solver, USolver::cg);  // above the limit on the GPU too
}

TEST(CgUStep, AMemoryRefusalOfADirectSolveNamesCg) {
  const SyntheticData s = well_posed(0.1, 47);
  Options o;
  o.rank = 3;
  o.sparsity = 2;
  o.prior = Prior::none;
  o.iterations = 2;
  o.u_solver = USolver::direct;
  ::setenv("LRSMETA_MEMORY_LIMIT", "100000", 1);
  try {
    fit(s.data.view(), o);
    ADD_FAILURE() << "no refusal";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--u-solver cg"), std::string::npos) << e.what();
  }
  ::unsetenv("LRSMETA_MEMORY_LIMIT");
}

}  // namespace
}  // namespace lrsmeta
