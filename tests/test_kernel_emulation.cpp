// The CUDA kernels' logic checked on the CPU: kernels/*.cu compiled as C++ and run by
// cuda_emulation/kernel_runtime.hpp on CPU fibers, against the CPU path on the same random ragged data. This
// runs in every build that has the CUDA toolkit, GPU or not; the hardware-specific parts (cuBLAS,
// cuSOLVER, the memory model) are left to tests/test_cuda.cpp on a GPU.
#include <gtest/gtest.h>

#include "kernels/device_kernels.hpp"
#include "cuda_emulation/kernel_runtime.hpp"

#define LRSMETA_EMULATE_KERNELS
#include "kernels/normal_equations.cu"
#include "kernels/task_step.cu"

#include "cpu/cpu_backend.hpp"
#include "cpu/task_step.hpp"
#include "lrsmeta/io.hpp"
#include "test_helpers.hpp"
#include "trapped_task.hpp"

namespace lrsmeta {
namespace {

SyntheticData ragged(std::uint64_t seed, std::int64_t tasks, int d, int r, int k) {
  return generate_synthetic(testing::task_shape(tasks, d, r, k, 0, 45, 0.05, seed));
}

// One task step over all tasks: the emulated kernel against cpu::task_step, from the same state.
void compare_task_step(Variant variant, int k_in_effect) {
  const int d = 16, r = 3, k = 2;
  const std::int64_t t = 60;
  const SyntheticData syn = ragged(40 + static_cast<int>(variant), t, d, r, k);
  const Dataset<double>& data = syn.data;
  const std::vector<double> U = testing::random_orthonormal(d, r, 41);
  // A starting state with supports: one CPU step at full sparsity from U.
  Options o;
  o.rank = r;
  o.sparsity = k;
  o.variant = variant;
  cpu::CpuBackend<double> cpu(data.view(), o);
  cpu.set_U(U);
  cpu.task_step_all(k);
  std::vector<double> W = cpu.W(), Bv = cpu.B_value();
  std::vector<std::int32_t> Bi = cpu.B_index();
  // The next step on both, from that state.
  cpu.task_step_all(k_in_effect);
  kernels::TaskStepArgs<double> a;
  std::vector<double> Z(static_cast<std::size_t>(data.n()) * r), target(static_cast<std::size_t>(data.n())),
      resid(static_cast<std::size_t>(data.n())), sse(static_cast<std::size_t>(t));
  a.X = data.X.data();
  a.y = data.y.data();
  a.offsets = data.task_offsets.data();
  a.t = t;
  a.d = d;
  a.r = r;
  a.k_slots = k;
  kernels::set_task_step_settings(a, cpu::task_step_settings(o, k_in_effect));
  a.U = U.data();
  a.Z = Z.data();
  a.target = target.data();
  a.resid = resid.data();
  a.W = W.data();
  a.B_index = Bi.data();
  a.B_value = Bv.data();
  a.task_sse = sse.data();
  const kernels::Layout L{kernels::joint_columns(r, k, d), d, r};
  emulation::launch(static_cast<unsigned>(t), 32, L.bytes(), [&] { kernels::task_step_kernel<double>(a, L); });
  int same_support = 0;
  for (std::int64_t i = 0; i < t; ++i) {
    const bool same = std::equal(Bi.begin() + i * k, Bi.begin() + (i + 1) * k, cpu.B_index().begin() + i * k);
    same_support += same;
    if (!same) continue;  // a near tie decided the other way: nothing to compare value by value
    // Tasks with fewer rows than unknowns are solved through the 1e-10 relative ridge: their
    // answers carry rounding amplified by a condition number near 1e10.
    const std::int64_t m = data.task_offsets[i + 1] - data.task_offsets[i];
    const double tol = m >= 2 * (r + k) ? 1e-9 : 1e-4;
    for (int p = 0; p < r; ++p)
      EXPECT_NEAR(W[static_cast<std::size_t>(i * r + p)], cpu.W()[static_cast<std::size_t>(i * r + p)], tol)
          << to_string(variant) << " task " << i << " m " << data.task_offsets[i + 1] - data.task_offsets[i];
    for (int s = 0; s < k; ++s)
      EXPECT_NEAR(Bv[static_cast<std::size_t>(i * k + s)], cpu.B_value()[static_cast<std::size_t>(i * k + s)], tol)
          << to_string(variant) << " task " << i << " m " << data.task_offsets[i + 1] - data.task_offsets[i];
  }
  EXPECT_GE(same_support, t - 2) << to_string(variant);
  // The reported per-task losses equal the residuals of the returned (w, b).
  for (std::int64_t i = 0; i < t; ++i) {
    double s = 0;
    for (std::int64_t j = data.task_offsets[i]; j < data.task_offsets[i + 1]; ++j) {
      double e = data.y[j];
      for (int c = 0; c < d; ++c) {
        double theta = 0;
        for (int p = 0; p < r; ++p) theta += U[static_cast<std::size_t>(c * r + p)] * W[static_cast<std::size_t>(i * r + p)];
        for (int q = 0; q < k; ++q)
          if (Bi[static_cast<std::size_t>(i * k + q)] == c) theta += Bv[static_cast<std::size_t>(i * k + q)];
        e -= data.X[static_cast<std::size_t>(j * d + c)] * theta;
      }
      s += e * e;
    }
    EXPECT_NEAR(sse[static_cast<std::size_t>(i)], s, 1e-9 * (1 + s)) << to_string(variant) << " task " << i;
  }
}

TEST(KernelEmulation, TaskStepMatchesTheCpuForEveryVariant) {
  for (Variant v : {Variant::pursuit, Variant::htp, Variant::iht}) {
    compare_task_step(v, 2);
    compare_task_step(v, 0);  // warm start: b = 0
  }
}

// The prior's task step over tasks t (rows by offsets), every buffer on the host (the kernel runs
// here): its scratch, and V_i and the statistics it writes.
struct PriorStepBuffers {
  std::vector<double> Z, target, resid, response, sse, V, stats;
  PriorStepBuffers(std::int64_t n, std::int64_t t, int r)
      : Z(static_cast<std::size_t>(n) * r), target(static_cast<std::size_t>(n)), resid(target.size()), response(target.size()),
        sse(static_cast<std::size_t>(t)), V(static_cast<std::size_t>(t) * r * r, -1.0),
        stats(static_cast<std::size_t>(core::kPosteriorStats * t), -1.0) {}
};
void run_prior_step(const double* X, const double* y, const std::int64_t* offsets, std::int64_t t, int d, int r, int k,
                    const cpu::TaskStepSettings& settings, const cpu::TaskPrior& prior, const double* U, double* W,
                    std::int32_t* B_index, double* B_value, PriorStepBuffers& b, unsigned threads) {
  kernels::TaskStepArgs<double> a;
  a.X = X;
  a.y = y;
  a.offsets = offsets;
  a.t = t;
  a.d = d;
  a.r = r;
  a.k_slots = k;
  kernels::set_task_step_settings(a, settings);
  a.U = U;
  a.Z = b.Z.data();
  a.target = b.target.data();
  a.resid = b.resid.data();
  a.W = W;
  a.B_index = B_index;
  a.B_value = B_value;
  a.task_sse = b.sse.data();
  kernels::set_task_prior(a, prior);
  a.response = b.response.data();
  a.V = b.V.data();
  a.posterior_stats = b.stats.data();
  const kernels::Layout L{kernels::joint_columns(r, k, d, true), d, r, k, true};
  emulation::launch(static_cast<unsigned>(t), threads, L.bytes(), [&] { kernels::task_step_kernel<double>(a, L); });
}

// The task step under the empirical-Bayes prior (a general Sigma, beta, the b prior and the support
// threshold): the emulated kernel against cpu::task_step task by task, from the same state, with
// the posterior covariance, the effective numbers of parameters, the log evidence and b's moments.
// support_prior: no pruning threshold, a prior over supports that makes each non-zero cost 14 nats
// more (the evidence search must charge it, as the CPU's does), and with `average` b averaged over
// the supports the search weighed (the model's final step); without, the steps of EM, whose
// enumeration (from k = 3) passes over the supports that cannot win.
void compare_task_step_with_prior(Variant variant, int k_in_effect, bool support_prior = false, bool average = true, int k = 2) {
  const int d = 14, r = 3;
  const std::int64_t t = 50;
  const SyntheticData syn = ragged(60 + static_cast<int>(variant), t, d, r, k);
  const Dataset<double>& data = syn.data;
  const std::vector<double> U = testing::random_orthonormal(d, r, 61);
  const std::vector<double> beta = testing::random_normal(static_cast<std::size_t>(d), 62);
  // Sigma = B B^T + 0.3 I, and the precision s2 Sigma^-1 by elimination.
  const std::vector<double> B = testing::random_normal(static_cast<std::size_t>(r) * r, 63);
  std::vector<double> Sigma(static_cast<std::size_t>(r) * r, 0.0), precision(Sigma.size());
  for (int a = 0; a < r; ++a)
    for (int b = 0; b < r; ++b) {
      for (int c = 0; c < r; ++c) Sigma[a * r + b] += B[a * r + c] * B[b * r + c];
      if (a == b) Sigma[a * r + b] += 0.3;
    }
  const double s2 = 0.05;
  for (int c = 0; c < r; ++c) {
    std::vector<double> e(r, 0.0);
    e[c] = 1.0;
    const std::vector<double> col = testing::solve_dense(Sigma, e);
    for (int a = 0; a < r; ++a) precision[a * r + c] = s2 * col[a];
  }
  // A high threshold, so that the pruning runs on these clean tasks too.
  cpu::TaskPrior prior{beta.data(), precision.data(), Sigma.data(), s2 / 0.8, s2, support_prior ? 0.0 : 400.0};
  const double pi = support_prior ? 1e-3 : 0.2;  // the evidence below charges it either way
  prior.log_inclusion = std::log(pi);
  prior.log_exclusion = std::log1p(-pi);
  prior.log_support_mass = detail::support_prior_log_mass(d, k, prior.log_inclusion, prior.log_exclusion);
  prior.average_supports = support_prior && average;  // and b averaged over the supports weighed
  Options o;
  o.rank = r;
  o.sparsity = k;
  o.variant = variant;
  cpu::TaskStepSettings settings = cpu::task_step_settings(o, k);
  settings.prior = &prior;
  // A starting state with supports: one CPU step at full sparsity.
  std::vector<double> W(static_cast<std::size_t>(t) * r, 0.0), Bv(static_cast<std::size_t>(t) * k, 0.0);
  std::vector<std::int32_t> Bi(static_cast<std::size_t>(t) * k, -1);
  cpu::TaskWorkspace ws(45, d, r, k);
  for (std::int64_t i = 0; i < t; ++i) {
    const std::int64_t row0 = data.task_offsets[i];
    const int m = static_cast<int>(data.task_offsets[i + 1] - row0);
    cpu::task_step(data.X.data() + row0 * d, data.y.data() + row0, m, d, U.data(), r, W.data() + i * r, Bi.data() + i * k,
                   Bv.data() + i * k, k, settings, ws);
  }
  // The next step: the CPU task by task, the kernel on all tasks, from that state.
  settings = cpu::task_step_settings(o, k_in_effect);
  settings.prior = &prior;
  std::vector<double> W_cpu = W, Bv_cpu = Bv, V_cpu(static_cast<std::size_t>(t) * r * r),
                      stats_cpu(static_cast<std::size_t>(core::kPosteriorStats * t)), sse_cpu(static_cast<std::size_t>(t));
  std::vector<std::int32_t> Bi_cpu = Bi;
  for (std::int64_t i = 0; i < t; ++i) {
    const std::int64_t row0 = data.task_offsets[i];
    const int m = static_cast<int>(data.task_offsets[i + 1] - row0);
    cpu::TaskPosterior post{V_cpu.data() + i * r * r, 0.0, 0.0};
    sse_cpu[static_cast<std::size_t>(i)] =
        cpu::task_step(data.X.data() + row0 * d, data.y.data() + row0, m, d, U.data(), r, W_cpu.data() + i * r,
                       Bi_cpu.data() + i * k, Bv_cpu.data() + i * k, k, settings, ws, &post);
    core::store_posterior_stats(post, stats_cpu.data() + i * core::kPosteriorStats);
  }
  PriorStepBuffers buffers(data.n(), t, r);
  run_prior_step(data.X.data(), data.y.data(), data.task_offsets.data(), t, d, r, k, settings, prior, U.data(), W.data(), Bi.data(),
                 Bv.data(), buffers, 32);
  const std::vector<double>& V = buffers.V;
  const std::vector<double>& stats = buffers.stats;
  const std::vector<double>& sse = buffers.sse;
  int same_support = 0;
  for (std::int64_t i = 0; i < t; ++i) {
    const bool same = std::equal(Bi.begin() + i * k, Bi.begin() + (i + 1) * k, Bi_cpu.begin() + i * k);
    same_support += same;
    if (!same) continue;
    // The prior keeps every system well conditioned, small tasks too.
    constexpr double kTol = 1e-9;
    const std::string where = std::string(to_string(variant)) + " task " + std::to_string(i);
    for (int p = 0; p < r; ++p) EXPECT_NEAR(W[i * r + p], W_cpu[i * r + p], kTol) << where;
    for (int s = 0; s < k; ++s) EXPECT_NEAR(Bv[i * k + s], Bv_cpu[i * k + s], kTol) << where;
    for (int e = 0; e < r * r; ++e) EXPECT_NEAR(V[i * r * r + e], V_cpu[i * r * r + e], kTol) << where;
    // The effective numbers of parameters, the log evidence, b's second moments and count.
    for (int e = 0; e < core::kPosteriorStats; ++e)
      EXPECT_NEAR(stats[i * core::kPosteriorStats + e], stats_cpu[i * core::kPosteriorStats + e],
                  kTol * (1 + std::fabs(stats_cpu[i * core::kPosteriorStats + e])))
          << where << ", statistic " << e;
    EXPECT_NEAR(sse[i], sse_cpu[i], kTol * (1 + sse_cpu[i])) << where;
  }
  EXPECT_GE(same_support, t - 2) << to_string(variant);
  // Not vacuous: the threshold pruned some supports (htp, pursuit), and tasks with rows have a
  // posterior narrower than the prior.
  int pruned = 0, narrower = 0;
  for (std::int64_t i = 0; i < t; ++i) {
    if (data.task_offsets[i + 1] == data.task_offsets[i]) continue;
    int nonzeros = 0;
    for (int s = 0; s < k; ++s) nonzeros += Bi_cpu[i * k + s] >= 0;
    pruned += nonzeros < k;
    narrower += V_cpu[i * r * r] < Sigma[0];
  }
  if (variant != Variant::iht && k_in_effect > 0 && !support_prior) EXPECT_GT(pruned, 0) << to_string(variant);
  EXPECT_GT(narrower, t / 2) << to_string(variant);
  // And the statistics are not all zero: evidence for tasks with rows, b's moments where b is kept.
  int with_evidence = 0, with_b = 0;
  for (std::int64_t i = 0; i < t; ++i) {
    with_evidence += stats_cpu[i * core::kPosteriorStats + 2] != 0.0;
    with_b += stats_cpu[i * core::kPosteriorStats + 4] > 0;
  }
  EXPECT_GT(with_evidence, t / 2) << to_string(variant);
  if (variant != Variant::iht && k_in_effect > 0) EXPECT_GT(with_b, 0) << to_string(variant);
}

TEST(KernelEmulation, TaskStepWithThePriorMatchesTheCpuForEveryVariant) {
  for (Variant v : {Variant::pursuit, Variant::htp, Variant::iht}) {
    compare_task_step_with_prior(v, 2);
    compare_task_step_with_prior(v, 0);
    compare_task_step_with_prior(v, 2, true);
    compare_task_step_with_prior(v, 3, true, false, 3);  // k = 3: the enumeration is bounded
  }
}

// A task trapped by its incoming support (tests/data/trapped_task, one of the quickstart's: 40
// rows, d = 100, with the fitted U, beta, Sigma, s2, tau2, pi): the kernel searches it again from
// the empty support, as the CPU does, and ends with the CPU's support, w and b.
TEST(KernelEmulation, ATrappedTaskIsSearchedAgainAsOnTheCpu) {
  const testing::TrappedTask task(LRSMETA_TEST_DATA_DIR "/trapped_task/");
  const int m = task.m, d = task.d, r = task.r, k = task.k;
  const std::vector<double>& X = task.X;
  const std::vector<double>& y = task.y;
  const std::vector<double>& U = task.U;
  const cpu::TaskPrior& prior = task.prior;
  cpu::TaskStepSettings settings;
  settings.k = k;
  settings.prior = &prior;
  const std::vector<std::int32_t>& incoming = task.incoming;
  // The CPU.
  cpu::TaskWorkspace ws(m, d, r, k);
  std::vector<double> w_cpu(static_cast<std::size_t>(r), 0.0), b_cpu(static_cast<std::size_t>(k), 0.0),
      V_cpu(static_cast<std::size_t>(r) * r);
  std::vector<std::int32_t> bi_cpu = incoming;
  cpu::TaskPosterior post{V_cpu.data()};
  const double sse_cpu = cpu::task_step(X.data(), y.data(), m, d, U.data(), r, w_cpu.data(), bi_cpu.data(), b_cpu.data(), k, settings,
                                        ws, &post);
  ASSERT_EQ(bi_cpu, (std::vector<std::int32_t>{0, 8, 80}));  // the CPU's answer (test_prior checks it)
  // The kernel, one task, from the same incoming support.
  const std::vector<std::int64_t> offsets{0, m};
  std::vector<double> W(static_cast<std::size_t>(r), 0.0), Bv(static_cast<std::size_t>(k), 0.0);
  std::vector<std::int32_t> Bi = incoming;
  PriorStepBuffers buffers(m, 1, r);
  run_prior_step(X.data(), y.data(), offsets.data(), 1, d, r, k, settings, prior, U.data(), W.data(), Bi.data(), Bv.data(), buffers, 128);
  const std::vector<double>& sse = buffers.sse;
  const std::vector<double>& stats = buffers.stats;
  EXPECT_EQ(Bi, bi_cpu);
  EXPECT_NEAR(sse[0], sse_cpu, 1e-9 * sse_cpu);
  for (int p = 0; p < r; ++p) EXPECT_NEAR(W[static_cast<std::size_t>(p)], w_cpu[static_cast<std::size_t>(p)], 1e-9);
  for (int q = 0; q < k; ++q) EXPECT_NEAR(Bv[static_cast<std::size_t>(q)], b_cpu[static_cast<std::size_t>(q)], 1e-9);
  EXPECT_NEAR(stats[2], post.log_evidence, 1e-9 * std::fabs(post.log_evidence));
}

// The host side of the U step done naively on what the emulated packing kernel wrote: M (P x Q) =
// Wp^T Sp, v (d x cols, column-major) = Q^T Wc, then the emulated unpack of M into G.
void gram_and_rhs(const std::vector<double>& Wp, const std::vector<double>& Sp, const std::vector<double>& Qv,
                  const std::vector<double>& Wc, std::int64_t t, int d, int cols, std::vector<double>& G, std::vector<double>& v) {
  const int P = cols * (cols + 1) / 2, Q = d * (d + 1) / 2;
  std::vector<double> M(static_cast<std::size_t>(P) * Q, 0.0);
  v.assign(static_cast<std::size_t>(d) * cols, 0.0);
  for (std::int64_t l = 0; l < t; ++l) {
    for (int pq = 0; pq < P; ++pq)
      for (int ab = 0; ab < Q; ++ab) M[static_cast<std::size_t>(pq) * Q + ab] += Wp[static_cast<std::size_t>(l * P + pq)] * Sp[static_cast<std::size_t>(l * Q + ab)];
    for (int p = 0; p < cols; ++p)
      for (int a = 0; a < d; ++a) v[static_cast<std::size_t>(a + d * p)] += Qv[static_cast<std::size_t>(l * d + a)] * Wc[static_cast<std::size_t>(l * cols + p)];
  }
  G.assign(static_cast<std::size_t>(d * cols) * d * cols, -1.0);
  emulation::launch(4, 32, 0, [&] { kernels::unpack_gram_kernel(M.data(), d, cols, G.data()); });
}

void expect_same_system(const std::vector<double>& G, const std::vector<double>& v, const std::vector<double>& G_cpu,
                        const std::vector<double>& v_cpu) {
  ASSERT_EQ(G.size(), G_cpu.size());
  ASSERT_EQ(v.size(), v_cpu.size());
  for (std::size_t e = 0; e < G.size(); ++e) ASSERT_NEAR(G[e], G_cpu[e], 1e-10 * (1 + std::fabs(G_cpu[e]))) << "G entry " << e;
  for (std::size_t e = 0; e < v.size(); ++e) ASSERT_NEAR(v[e], v_cpu[e], 1e-10 * (1 + std::fabs(v_cpu[e]))) << "v entry " << e;
}

// G and v from the emulated packing kernel (then the GEMMs done naively here and the emulated
// unpack) against the CPU backend's accumulation, plain and with privacy bounds.
void compare_normal_equations(bool bounded) {
  const int d = 9, r = 3, k = 2;
  const std::int64_t t = 70;
  const SyntheticData syn = ragged(50, t, d, r, k);
  const Dataset<double>& data = syn.data;
  Options o;
  o.rank = r;
  o.sparsity = k;
  cpu::CpuBackend<double> cpu(data.view(), o);
  cpu.set_U(testing::random_orthonormal(d, r, 51));
  cpu.task_step_all(k);
  PrivacyOptions bounds;
  bounds.clip_x = 2.5;
  bounds.clip_y = 0.8;
  bounds.clip_w = 1.2;
  bounds.max_samples = 20;
  std::vector<double> G_cpu, v_cpu;
  cpu.accumulate_normal_equations(G_cpu, v_cpu, bounded ? &bounds : nullptr);

  kernels::Bounds kb;
  if (bounded) {
    kb.enabled = true;
    kb.clip_x = bounds.clip_x;
    kb.clip_y = bounds.clip_y;
    kb.clip_w = bounds.clip_w;
    kb.max_samples = bounds.max_samples;
  }
  const int P = r * (r + 1) / 2, Q = d * (d + 1) / 2;
  std::vector<double> Wp(static_cast<std::size_t>(t) * P), Sp(static_cast<std::size_t>(t) * Q), Qv(static_cast<std::size_t>(t) * d),
      Wc(static_cast<std::size_t>(t) * r);
  std::int64_t max_rows = 0;
  for (std::int64_t i = 0; i < t; ++i) max_rows = std::max(max_rows, data.task_offsets[i + 1] - data.task_offsets[i]);
  if (bounded) max_rows = std::min<std::int64_t>(max_rows, bounds.max_samples);
  const std::size_t bytes = (2 * static_cast<std::size_t>(max_rows) + r + 1) * sizeof(double);
  emulation::launch(static_cast<unsigned>(t), 32, bytes, [&] {
    kernels::pack_chunk_kernel<double>(data.X.data(), data.y.data(), data.task_offsets.data(), 0, d, r, k, cpu.W().data(),
                                       cpu.B_index().data(), cpu.B_value().data(), kb, Wp.data(), Sp.data(), Qv.data(),
                                       Wc.data());
  });
  std::vector<double> G, v;
  gram_and_rhs(Wp, Sp, Qv, Wc, t, d, r, G, v);
  expect_same_system(G, v, G_cpu, v_cpu);
}

TEST(KernelEmulation, PackedGramsGiveTheCpusGAndV) { compare_normal_equations(false); }

// Under the prior: the joint [beta, U] system, w' = (1, w) and E[w w^T] = w w^T + V_i, packed by the
// emulated kernel against the CPU backend's accumulation.
TEST(KernelEmulation, PackedGramsUnderThePriorGiveTheCpusJointSystem) {
  const int d = 8, r = 3, k = 2;
  const std::int64_t t = 60;
  const SyntheticData syn = ragged(55, t, d, r, k);
  const Dataset<double>& data = syn.data;
  Options o;
  o.rank = r;
  o.sparsity = k;
  cpu::CpuBackend<double> cpu(data.view(), o);
  cpu.set_U(testing::random_orthonormal(d, r, 56));
  core::PriorState prior;
  prior.beta = testing::random_normal(static_cast<std::size_t>(d), 57);
  prior.Sigma = {1.5, 0.2, -0.1, 0.2, 0.9, 0.3, -0.1, 0.3, 0.6};
  prior.noise_variance = 0.05;
  prior.b_precision = 0.1;
  cpu.set_prior(&prior);
  cpu.task_step_all(k);
  std::vector<double> G_cpu, v_cpu;
  cpu.accumulate_normal_equations(G_cpu, v_cpu);
  // V per task, full r x r, from the CPU's packed copy.
  std::vector<double> V(static_cast<std::size_t>(t) * r * r);
  const int Pown = r * (r + 1) / 2;
  for (std::int64_t i = 0; i < t; ++i)
    for (int p = 0, pq = 0; p < r; ++p)
      for (int q = p; q < r; ++q, ++pq)
        V[static_cast<std::size_t>((i * r + p) * r + q)] = V[static_cast<std::size_t>((i * r + q) * r + p)] =
            cpu.V_packed()[static_cast<std::size_t>(i * Pown + pq)];
  const int ra = r + 1, P = ra * (ra + 1) / 2, Q = d * (d + 1) / 2;
  std::vector<double> Wp(static_cast<std::size_t>(t) * P), Sp(static_cast<std::size_t>(t) * Q), Qv(static_cast<std::size_t>(t) * d),
      Wc(static_cast<std::size_t>(t) * ra);
  std::int64_t max_rows = 0;
  for (std::int64_t i = 0; i < t; ++i) max_rows = std::max(max_rows, data.task_offsets[i + 1] - data.task_offsets[i]);
  const std::size_t bytes = (2 * static_cast<std::size_t>(max_rows) + r + 2) * sizeof(double);
  emulation::launch(static_cast<unsigned>(t), 32, bytes, [&] {
    kernels::pack_chunk_kernel<double>(data.X.data(), data.y.data(), data.task_offsets.data(), 0, d, r, k, cpu.W().data(),
                                       cpu.B_index().data(), cpu.B_value().data(), kernels::Bounds{}, Wp.data(), Sp.data(),
                                       Qv.data(), Wc.data(), V.data());
  });
  std::vector<double> G, v;
  gram_and_rhs(Wp, Sp, Qv, Wc, t, d, ra, G, v);
  expect_same_system(G, v, G_cpu, v_cpu);
}
TEST(KernelEmulation, BoundedContributionsGiveTheCpusGAndV) { compare_normal_equations(true); }

// The rows of the spectral moment: sum_j rows_j rows_j^T must equal the CPU backend's moment
// (unnormalised under bounds, divided by n without).
void compare_spectral_rows(bool bounded) {
  const int d = 7;
  const SyntheticData syn = ragged(70, 40, d, 2, 1);
  const Dataset<double>& data = syn.data;
  Options o;
  o.rank = 2;
  o.sparsity = 1;
  cpu::CpuBackend<double> cpu(data.view(), o);
  core::PrivateRelease release;
  release.bounds.clip_x = 2.0;
  release.bounds.clip_y = 0.9;
  release.bounds.max_samples = 12;
  const std::vector<double> M_cpu = cpu.spectral_moment(bounded ? &release : nullptr);
  kernels::Bounds kb;
  if (bounded) {
    kb.enabled = true;
    kb.clip_x = release.bounds.clip_x;
    kb.clip_y = release.bounds.clip_y;
    kb.max_samples = release.bounds.max_samples;
  }
  const std::int64_t n = data.n();
  std::vector<double> rows(static_cast<std::size_t>(n) * d);
  emulation::launch(static_cast<unsigned>(n), 32, 0, [&] {
    kernels::scaled_rows_kernel<double>(data.X.data(), data.y.data(), data.task_offsets.data(), data.t(), 0, n, d, kb,
                                        rows.data());
  });
  const double scale = bounded ? 1.0 : 1.0 / static_cast<double>(n);
  for (int a = 0; a < d; ++a)
    for (int b = 0; b < d; ++b) {
      double s = 0;
      for (std::int64_t j = 0; j < n; ++j) s += rows[static_cast<std::size_t>(j * d + a)] * rows[static_cast<std::size_t>(j * d + b)];
      EXPECT_NEAR(s * scale, M_cpu[static_cast<std::size_t>(a * d + b)], 1e-10 * (1 + std::fabs(M_cpu[static_cast<std::size_t>(a * d + b)])))
          << (bounded ? "bounded" : "plain") << " entry " << a << ", " << b;
    }
}

TEST(KernelEmulation, SpectralRowsGiveTheCpusMoment) {
  compare_spectral_rows(false);
  compare_spectral_rows(true);
}

// cg's passes: the emulated operator kernel (then the GEMM g^T W done here) against the CPU
// backend's apply_normal_operator, for float and double data (float: to float's precision); the right-hand side from the packing
// kernel without Wp and Sp (and W_hat from its Wm rows) against accumulate_rhs; the rows in double
// against data_moments. Tasks of up to 45 rows with 32 threads a block: the row tiles wrap.
template <typename T>
void compare_cg_passes(std::uint64_t seed) {
  const int d = 11, r = 3, k = 2;
  const std::int64_t t = 50;
  const SyntheticData syn = ragged(seed, t, d, r, k);
  Dataset<T> data;
  data.d = d;
  data.task_offsets = syn.data.task_offsets;
  data.X.assign(syn.data.X.begin(), syn.data.X.end());
  data.y.assign(syn.data.y.begin(), syn.data.y.end());
  Options o;
  o.rank = r;
  o.sparsity = k;
  cpu::CpuBackend<T> cpu(data.view(), o);
  cpu.set_U(testing::random_orthonormal(d, r, seed + 1));
  cpu.task_step_all(k);
  const char* precision = std::is_same_v<T, float> ? "float" : "double";

  const std::vector<double> x = testing::random_normal(static_cast<std::size_t>(d * r), seed + 2);
  std::vector<double> y_cpu;
  cpu.apply_normal_operator(x, y_cpu);
  std::vector<double> Mw(static_cast<std::size_t>(t) * d, -7.0), g(static_cast<std::size_t>(t) * d, -7.0);
  emulation::launch(static_cast<unsigned>(t), 32, 32 * sizeof(double), [&] {
    kernels::normal_operator_kernel<T>(data.X.data(), data.task_offsets.data(), 0, d, r, cpu.W().data(), x.data(), Mw.data(),
                                       g.data());
  });
  std::vector<double> y(static_cast<std::size_t>(d * r), 0.0);
  for (std::int64_t i = 0; i < t; ++i)
    for (int p = 0; p < r; ++p)
      for (int a = 0; a < d; ++a)
        y[static_cast<std::size_t>(a + d * p)] += g[static_cast<std::size_t>(i * d + a)] * cpu.W()[static_cast<std::size_t>(i * r + p)];
  // The CPU backend forms X_i (M w) and X_i^T (.) in the data's precision (float: as its direct
  // solve forms X_i^T X_i), the kernel in double: for float data they agree to float's precision,
  // relative to the product's largest entry.
  double largest = 0.0;
  for (double e : y_cpu) largest = std::max(largest, std::fabs(e));
  for (std::size_t e = 0; e < y.size(); ++e) {
    const double tolerance = std::is_same_v<T, float> ? 1e-5 * largest : 1e-10 * (1 + std::fabs(y_cpu[e]));
    EXPECT_NEAR(y[e], y_cpu[e], tolerance) << precision << " G x entry " << e;
  }

  std::vector<double> v_cpu, W_hat_cpu;
  cpu.accumulate_rhs(v_cpu, W_hat_cpu);
  std::vector<double> Qv(static_cast<std::size_t>(t) * d), Wc(static_cast<std::size_t>(t) * r), Wm(static_cast<std::size_t>(t) * r);
  std::int64_t max_rows = 0;
  for (std::int64_t i = 0; i < t; ++i) max_rows = std::max(max_rows, data.task_offsets[i + 1] - data.task_offsets[i]);
  emulation::launch(static_cast<unsigned>(t), 32, (2 * static_cast<std::size_t>(max_rows) + r + 2) * sizeof(double), [&] {
    kernels::pack_chunk_kernel<T>(data.X.data(), data.y.data(), data.task_offsets.data(), 0, d, r, k, cpu.W().data(),
                                  cpu.B_index().data(), cpu.B_value().data(), kernels::Bounds{}, nullptr, nullptr, Qv.data(),
                                  Wc.data(), nullptr, Wm.data());
  });
  std::vector<double> v(static_cast<std::size_t>(d * r), 0.0), W_hat(static_cast<std::size_t>(r * r), 0.0);
  for (std::int64_t i = 0; i < t; ++i)
    for (int p = 0; p < r; ++p) {
      for (int a = 0; a < d; ++a)
        v[static_cast<std::size_t>(a + d * p)] += Qv[static_cast<std::size_t>(i * d + a)] * Wc[static_cast<std::size_t>(i * r + p)];
      for (int q = 0; q < r; ++q)
        W_hat[static_cast<std::size_t>(p * r + q)] += Wm[static_cast<std::size_t>(i * r + p)] * Wc[static_cast<std::size_t>(i * r + q)];
    }
  for (std::size_t e = 0; e < v.size(); ++e) EXPECT_NEAR(v[e], v_cpu[e], 1e-10 * (1 + std::fabs(v_cpu[e]))) << precision << " v entry " << e;
  for (std::size_t e = 0; e < W_hat.size(); ++e)
    EXPECT_NEAR(W_hat[e], W_hat_cpu[e], 1e-10 * (1 + std::fabs(W_hat_cpu[e]))) << precision << " W_hat entry " << e;

  const core::DataMoments moments = cpu.data_moments();
  const std::int64_t n = data.n();
  std::vector<double> rows(static_cast<std::size_t>(n) * d, -7.0), y_rows(static_cast<std::size_t>(n), -7.0);
  emulation::launch(static_cast<unsigned>(n), 32, 0, [&] {
    kernels::rows_as_double_kernel<T>(data.X.data(), data.y.data(), 0, n, d, rows.data(), y_rows.data());
  });
  double yty = 0;
  for (std::int64_t j = 0; j < n; ++j) yty += y_rows[static_cast<std::size_t>(j)] * y_rows[static_cast<std::size_t>(j)];
  EXPECT_NEAR(yty, moments.yty, 1e-10 * moments.yty);
  for (int a = 0; a < d; ++a) {
    double xty = 0;
    for (std::int64_t j = 0; j < n; ++j) xty += rows[static_cast<std::size_t>(j * d + a)] * y_rows[static_cast<std::size_t>(j)];
    EXPECT_NEAR(xty, moments.Xty[static_cast<std::size_t>(a)], 1e-10 * (1 + std::fabs(xty)));
    for (int b = 0; b < d; ++b) {
      double s = 0;
      for (std::int64_t j = 0; j < n; ++j) s += rows[static_cast<std::size_t>(j * d + a)] * rows[static_cast<std::size_t>(j * d + b)];
      EXPECT_NEAR(s, moments.XtX[static_cast<std::size_t>(a * d + b)], 1e-10 * (1 + std::fabs(s))) << precision << " X^T X " << a << ", " << b;
    }
  }
}

TEST(KernelEmulation, CgPassesGiveTheCpusProductRightHandSideAndMoments) {
  compare_cg_passes<double>(80);
  compare_cg_passes<float>(81);
}

// cg's operator under the prior: the emulated kernel (a tile of 8 rows, so that tasks of up to 45
// rows wrap; zero-row tasks included) against X_i^T X_i M E_i formed here in double from its
// definition, E_i = w' w'^T + blockdiag(0, V_i), on random w, random symmetric positive definite V_i
// and a random iterate; float data to float's precision of the entries' scale.
template <typename T>
void compare_prior_operator(std::uint64_t seed) {
  const int d = 9, r = 3, rj = r + 1;
  const std::int64_t t = 40;
  const SyntheticData syn = ragged(seed, t, d, r, 1);
  std::vector<T> X(syn.data.X.begin(), syn.data.X.end());
  const std::vector<std::int64_t>& offsets = syn.data.task_offsets;
  const std::vector<double> W = testing::random_normal(static_cast<std::size_t>(t * r), seed + 1);
  std::vector<double> V(static_cast<std::size_t>(t * r * r));
  for (std::int64_t i = 0; i < t; ++i) {  // V_i = A A^T / r, A random
    const std::vector<double> A = testing::random_normal(static_cast<std::size_t>(r * r), seed + 100 + static_cast<std::uint64_t>(i));
    for (int p = 0; p < r; ++p)
      for (int q = 0; q < r; ++q) {
        double s = 0;
        for (int c = 0; c < r; ++c) s += A[static_cast<std::size_t>(p * r + c)] * A[static_cast<std::size_t>(q * r + c)];
        V[static_cast<std::size_t>((i * r + p) * r + q)] = s / r;
      }
  }
  const std::vector<double> M = testing::random_normal(static_cast<std::size_t>(d * rj), seed + 2);
  const int tile = 8;
  std::vector<double> out(static_cast<std::size_t>(t * d * rj), -7.0);
  emulation::launch(static_cast<unsigned>(t), 16, (rj * rj + 2 * tile * rj) * sizeof(double), [&] {
    kernels::prior_normal_operator_kernel<T>(X.data(), offsets.data(), 0, d, r, tile, W.data(), V.data(), M.data(), out.data());
  });
  for (std::int64_t i = 0; i < t; ++i) {
    std::vector<double> E(static_cast<std::size_t>(rj * rj));
    for (int p = 0; p < rj; ++p)
      for (int q = 0; q < rj; ++q) {
        const double wp = p == 0 ? 1.0 : W[static_cast<std::size_t>(i * r + p - 1)], wq = q == 0 ? 1.0 : W[static_cast<std::size_t>(i * r + q - 1)];
        E[static_cast<std::size_t>(p * rj + q)] = wp * wq + (p > 0 && q > 0 ? V[static_cast<std::size_t>((i * r + p - 1) * r + q - 1)] : 0.0);
      }
    // X_i^T X_i (d x d), then (X_i^T X_i) M E_i.
    std::vector<double> G(static_cast<std::size_t>(d * d), 0.0);
    for (std::int64_t j = offsets[static_cast<std::size_t>(i)]; j < offsets[static_cast<std::size_t>(i + 1)]; ++j)
      for (int a = 0; a < d; ++a)
        for (int b = 0; b < d; ++b)
          G[static_cast<std::size_t>(a * d + b)] += static_cast<double>(X[static_cast<std::size_t>(j * d + a)]) * static_cast<double>(X[static_cast<std::size_t>(j * d + b)]);
    double largest = 1e-300;
    std::vector<double> expected(static_cast<std::size_t>(d * rj), 0.0);
    for (int a = 0; a < d; ++a)
      for (int q = 0; q < rj; ++q) {
        double s = 0;
        for (int b = 0; b < d; ++b)
          for (int p = 0; p < rj; ++p) s += G[static_cast<std::size_t>(a * d + b)] * M[static_cast<std::size_t>(b + d * p)] * E[static_cast<std::size_t>(p * rj + q)];
        expected[static_cast<std::size_t>(a + d * q)] = s;
        largest = std::max(largest, std::fabs(s));
      }
    const double tolerance = (std::is_same_v<T, float> ? 1e-6 : 1e-12) * largest;
    for (std::size_t e = 0; e < expected.size(); ++e)
      ASSERT_NEAR(out[static_cast<std::size_t>(i * d * rj) + e], expected[e], tolerance) << "task " << i << " entry " << e;
  }
}

TEST(KernelEmulation, CgOperatorUnderThePriorMatchesItsDefinition) {
  compare_prior_operator<double>(90);
  compare_prior_operator<float>(91);
}

TEST(KernelEmulation, StoreUAndDiagonalHelpers) {
  const int d = 5, r = 3;
  const std::vector<double> colmajor = testing::random_normal(d * r, 61);
  std::vector<float> U(static_cast<std::size_t>(d) * r);
  emulation::launch(1, 32, 0, [&] {
    // store_U_kernel indexes by blockIdx.x * blockDim.x + threadIdx.x: one block of 32 covers 15 entries.
    kernels::store_U_kernel<float>(colmajor.data(), d, r, U.data());
  });
  for (int a = 0; a < d; ++a)
    for (int p = 0; p < r; ++p) EXPECT_EQ(U[static_cast<std::size_t>(a * r + p)], static_cast<float>(colmajor[static_cast<std::size_t>(a + d * p)]));
  std::vector<double> G(16, 1.0);
  emulation::launch(1, 32, 0, [&] { kernels::add_diagonal_kernel(G.data(), 4, 2.5); });
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) EXPECT_EQ(G[static_cast<std::size_t>(i * 4 + j)], i == j ? 3.5 : 1.0);
}

}  // namespace
}  // namespace lrsmeta
