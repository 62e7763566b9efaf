// The CUDA backend: kernels against host references, CPU/GPU parity, exact recovery on the GPU.
// Built with the CUDA backend, where every test skips cleanly if no GPU is usable; and in the
// emulated CUDA build (test_cuda_emulated, tests/cuda_emulation), where none may skip.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>

#include "core/backend.hpp"
#include "cpu/cpu_backend.hpp"
#include "cuda/cuda_backend.hpp"
#include "core/small_dense.hpp"
#include "core/u_solver.hpp"
#include "linalg/blas_lapack.hpp"
#include "kernels/device_kernels.hpp"
#include "lrsmeta/io.hpp"
#include "test_helpers.hpp"
#ifdef LRSMETA_CUDA_EMULATION
#include "cuda_emulation/emulation.hpp"
#endif

namespace lrsmeta {
namespace {

#ifdef LRSMETA_CUDA_EMULATION
#define SKIP_WITHOUT_GPU() ASSERT_TRUE(cuda_available()) << "the emulated CUDA module did not load"
// The emulation runs a kernel's threads one after another on one core: fewer tasks there.
constexpr std::int64_t kRecoveryTasks = 300;
#else
constexpr std::int64_t kRecoveryTasks = 1000;
#define SKIP_WITHOUT_GPU() \
  if (!cuda_available()) GTEST_SKIP() << "no usable CUDA device"
#endif

template <typename T>
T* device_copy(const std::vector<T>& host) {
  void* p = nullptr;
  EXPECT_EQ(cudaMalloc(&p, std::max<std::size_t>(1, host.size()) * sizeof(T)), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(p, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  return static_cast<T*>(p);
}
template <typename T>
std::vector<T> host_copy(const T* device, std::size_t count) {
  std::vector<T> out(count);
  EXPECT_EQ(cudaMemcpy(out.data(), device, count * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
  return out;
}

TEST(CudaKernels, TopKMatchesNthElementIncludingTiesAndKEqualsD) {
  SKIP_WITHOUT_GPU();
  for (int n : {1, 7, 100}) {
    for (int k : {1, n / 2 + 1, n}) {
      const int rows = 300;
      std::vector<double> values = testing::random_normal(static_cast<std::size_t>(rows) * n, 17 + n + k);
      for (int e = 0; e < rows * n; e += 5) values[e] = std::round(values[e]);  // ties
      double* dv = device_copy(values);
      int* dout = nullptr;
      ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&dout), sizeof(int) * rows * k), cudaSuccess);
      kernels::launch_top_k_rows(dv, rows, n, k, dout, nullptr);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      const std::vector<int> got = host_copy(dout, static_cast<std::size_t>(rows) * k);
      for (int row = 0; row < rows; ++row) {
        const double* v = values.data() + static_cast<std::size_t>(row) * n;
        std::vector<int> idx(n);
        std::iota(idx.begin(), idx.end(), 0);
        auto before = [&](int a, int b) { return std::fabs(v[a]) > std::fabs(v[b]) || (std::fabs(v[a]) == std::fabs(v[b]) && a < b); };
        std::nth_element(idx.begin(), idx.begin() + (k - 1), idx.end(), before);
        idx.resize(k);
        std::sort(idx.begin(), idx.end(), before);
        ASSERT_EQ(std::vector<int>(got.begin() + static_cast<std::ptrdiff_t>(row) * k, got.begin() + static_cast<std::ptrdiff_t>(row + 1) * k), idx)
            << "row " << row << ", n = " << n << ", k = " << k;
      }
      cudaFree(dv);
      cudaFree(dout);
    }
  }
}

TEST(CudaKernels, BatchedSmallSolvesMatchLapack) {
  SKIP_WITHOUT_GPU();
  const int batch = 500, n = 25;
  std::vector<double> A(static_cast<std::size_t>(batch) * n * n), b = testing::random_normal(static_cast<std::size_t>(batch) * n, 5);
  for (int i = 0; i < batch; ++i) {
    const std::vector<double> B = testing::random_normal(static_cast<std::size_t>(n) * n, 100 + i);
    for (int r = 0; r < n; ++r)
      for (int c = 0; c < n; ++c) {
        double s = r == c ? 0.5 : 0.0;
        for (int p = 0; p < n; ++p) s += B[p * n + r] * B[p * n + c];
        A[static_cast<std::size_t>(i) * n * n + r * n + c] = s;
      }
  }
  double* dA = device_copy(A);
  double* db = device_copy(b);
  double* scratch = nullptr;
  ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&scratch), sizeof(double) * batch * n * n), cudaSuccess);
  kernels::launch_batched_ridge_solve(dA, db, batch, n, 0.0, scratch, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const std::vector<double> x = host_copy(db, b.size());
  for (int i = 0; i < batch; ++i) {
    std::vector<double> L(A.begin() + static_cast<std::ptrdiff_t>(i) * n * n, A.begin() + static_cast<std::ptrdiff_t>(i + 1) * n * n);
    std::vector<double> want(b.begin() + static_cast<std::ptrdiff_t>(i) * n, b.begin() + static_cast<std::ptrdiff_t>(i + 1) * n);
    ASSERT_EQ(linalg::potrf_lower(n, L.data()), 0);  // symmetric: row- and column-major agree
    linalg::potrs_lower(n, L.data(), want.data());
    for (int c = 0; c < n; ++c) EXPECT_NEAR(x[static_cast<std::size_t>(i) * n + c], want[c], 1e-9 * (1 + std::fabs(want[c])));
  }
  cudaFree(dA);
  cudaFree(db);
  cudaFree(scratch);
}

SyntheticData ragged_data(std::uint64_t seed) {
  SyntheticSpec s;
  s.tasks = 700;
  s.min_samples = 0;
  s.max_samples = 90;
  s.d = 30;
  s.r = 3;
  s.k = 2;
  s.noise = 0.05;
  s.seed = seed;
  return generate_synthetic(s);
}

// 150 noisy ragged tasks of 1 to 14 rows, d = 12, r = 2, k = 1: the default model's parity cases.
SyntheticData noisy_small_tasks(std::uint64_t seed) {
  SyntheticSpec s;
  s.tasks = 150;
  s.min_samples = 1;
  s.max_samples = 14;
  s.d = 12;
  s.r = 2;
  s.k = 1;
  s.noise = 0.1;
  s.seed = seed;
  return generate_synthetic(s);
}

TEST(CudaParity, OneOuterIterationMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  const SyntheticData syn = ragged_data(3);
  for (Variant v : {Variant::pursuit, Variant::htp, Variant::iht}) {
    Options o;
    o.rank = 3;
    o.sparsity = 2;
    o.variant = v;
    auto cpu = core::make_cpu_backend(syn.data.view(), o);
    auto gpu = core::make_cuda_backend(syn.data.view(), o);
    const std::vector<double> U0 = testing::random_orthonormal(30, 3, 9);
    cpu->set_U(U0);
    gpu->set_U(U0);
    // A warm-start step, a U step, then a sparse step, on both.
    const auto c1 = cpu->task_step_all(0), g1 = gpu->task_step_all(0);
    EXPECT_NEAR(g1.sse, c1.sse, 1e-9 * c1.sse);
    const double cc = core::direct_U_step(*cpu, o), gc = core::direct_U_step(*gpu, o);
    EXPECT_NEAR(gc, cc, 1e-8 * (1 + cc));
    // Not 1e-9: tasks with fewer rows than r have w set partly by the small task ridge alone, so
    // the two summation orders differ there by up to 5e-6 in w (a task of 1 or 2 rows, in the
    // emulated build), and U by about 2e-8.
    EXPECT_LT(testing::subspace_distance(cpu->get_U(), gpu->get_U(), 30, 3), 1e-7);
    cpu->task_step_all(2);
    gpu->task_step_all(2);
    Model mc, mg;
    mc.d = mg.d = 30;
    mc.r = mg.r = 3;
    mc.k = mg.k = 2;
    mc.t = mg.t = 700;
    mc.U = cpu->get_U();
    mg.U = gpu->get_U();
    cpu->export_task_parameters(mc);
    gpu->export_task_parameters(mg);
    // Supports agree except where two candidates tie to rounding; thetas agree to rounding.
    std::size_t same = 0;
    for (std::size_t e = 0; e < mc.B_index.size(); ++e) same += mc.B_index[e] == mg.B_index[e];
    EXPECT_GT(same, mc.B_index.size() * 99 / 100) << to_string(v);
    EXPECT_LT(relative_error(mg.theta_matrix(), mc.theta_matrix()), 1e-6) << to_string(v);
  }
}

TEST(CudaParity, WholeFitMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  const SyntheticData syn = ragged_data(4);
  Options o;
  o.rank = 3;
  o.sparsity = 2;
  o.iterations = 15;
  o.prior = Prior::none;  // the CUDA backend has no empirical-Bayes prior yet
  const Model cpu = fit(syn.data.view(), o);
  o.device = Device::cuda;
  const Model gpu = fit(syn.data.view(), o);
  EXPECT_LT(testing::subspace_distance(cpu.U, gpu.U, 30, 3), 1e-6);
  EXPECT_LT(relative_error(gpu.theta_matrix(), cpu.theta_matrix()), 1e-5);
  ASSERT_EQ(gpu.history.size(), cpu.history.size());
  EXPECT_NEAR(gpu.history.back().training_loss, cpu.history.back().training_loss, 1e-6 * cpu.history.back().training_loss);
}

TEST(CudaRecovery, Float32RecoversNoiselessData) {
  SKIP_WITHOUT_GPU();
  SyntheticSpec s;
  s.tasks = kRecoveryTasks;
  s.min_samples = s.max_samples = 60;
  s.d = 40;
  s.r = 3;
  s.k = 2;
  s.seed = 11;
  const SyntheticData syn = generate_synthetic(s);
  Dataset<float> f;
  f.d = 40;
  f.task_offsets = syn.data.task_offsets;
  f.X.assign(syn.data.X.begin(), syn.data.X.end());
  f.y.assign(syn.data.y.begin(), syn.data.y.end());
  Options o;
  o.rank = 3;
  o.sparsity = 2;
  o.device = Device::cuda;
  o.prior = Prior::none;
  for (Variant v : {Variant::pursuit, Variant::htp}) {
    o.variant = v;
    const Model m = fit(f.view(), o);
    EXPECT_LT(relative_error(m.theta_matrix(), syn.theta()), 1e-4) << to_string(v);
  }
  Dataset<double> d = syn.data;
  o.variant = Variant::pursuit;
  EXPECT_LT(relative_error(fit(d.view(), o).theta_matrix(), syn.theta()), 1e-8) << "double data";
}

TEST(CudaBackend, AutoPicksTheGpu) {
  SKIP_WITHOUT_GPU();
  const SyntheticData syn = ragged_data(5);
  Options o;
  o.rank = 3;
  o.sparsity = 2;
  o.iterations = 3;
  o.device = Device::automatic;
  o.prior = Prior::none;  // auto takes the CPU for the prior, which the GPU lacks
  EXPECT_NO_THROW(fit(syn.data.view(), o));
}

// cg's passes on the device against the CPU backend's from the same state (double data): G x, v,
// W_hat and the data's moments to rounding; then whole fits with cg on both.
TEST(CudaCg, PassesMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  const SyntheticData syn = ragged_data(7);
  Options o;
  o.rank = 3;
  o.sparsity = 2;
  o.prior = Prior::none;
  o.u_solver = USolver::cg;
  auto cpu = core::make_cpu_backend(syn.data.view(), o);
  auto gpu = core::make_cuda_backend(syn.data.view(), o);
  cpu->set_U(testing::random_orthonormal(30, 3, 10));
  cpu->task_step_all(2);
  Model state;
  state.d = 30;
  state.r = 3;
  state.k = 2;
  state.t = 700;
  cpu->export_task_parameters(state);
  gpu->import_task_parameters(state);
  const std::vector<double> x = testing::random_normal(90, 11);
  std::vector<double> yc, yg, vc, vg, Wc, Wg;
  cpu->apply_normal_operator(x, yc);
  gpu->apply_normal_operator(x, yg);
  EXPECT_LT(relative_error(yg, yc), 1e-12);
  cpu->accumulate_rhs(vc, Wc);
  gpu->accumulate_rhs(vg, Wg);
  EXPECT_LT(relative_error(vg, vc), 1e-12);
  EXPECT_LT(relative_error(Wg, Wc), 1e-12);
  const core::DataMoments mc = cpu->data_moments(), mg = gpu->data_moments();
  EXPECT_LT(relative_error(mg.XtX, mc.XtX), 1e-12);
  EXPECT_LT(relative_error(mg.Xty, mc.Xty), 1e-12);
  EXPECT_NEAR(mg.yty, mc.yty, 1e-12 * mc.yty);
  EXPECT_EQ(mg.rows, mc.rows);
}

TEST(CudaCg, WholeFitMatchesTheCpuAndTheDirectSolve) {
  SKIP_WITHOUT_GPU();
  const SyntheticData syn = ragged_data(8);
  Options o;
  o.rank = 3;
  o.sparsity = 2;
  o.iterations = 10;
  o.prior = Prior::none;
  o.u_solver = USolver::cg;
  o.cg_tolerance = 1e-13;
  o.cg_forcing = 0;  // every U step solved: comparable with the direct solve iteration by iteration
  const Model cpu = fit(syn.data.view(), o);
  o.device = Device::cuda;
  const Model gpu = fit(syn.data.view(), o);
  o.u_solver = USolver::direct;
  const Model gpu_direct = fit(syn.data.view(), o);
  EXPECT_LT(testing::subspace_distance(cpu.U, gpu.U, 30, 3), 1e-6);
  EXPECT_LT(relative_error(gpu.theta_matrix(), cpu.theta_matrix()), 1e-5);
  EXPECT_LT(relative_error(gpu.theta_matrix(), gpu_direct.theta_matrix()), 1e-5);
  for (const IterationInfo& h : gpu.history) EXPECT_GT(h.u_solver_steps, 0);
}

// cg's passes under the prior (w' = (1, w_i), E_i with V_i, beta's column first): the GPU's against
// the CPU's from the same U and prior, each after its own task step (which agree to rounding).
TEST(CudaCg, UnderThePriorPassesMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  const SyntheticData syn = ragged_data(9);
  Options o;
  o.rank = 3;
  o.sparsity = 2;
  o.u_solver = USolver::cg;
  auto cpu = core::make_cpu_backend(syn.data.view(), o);
  auto gpu = core::make_cuda_backend(syn.data.view(), o);
  const std::vector<double> U = testing::random_orthonormal(30, 3, 12);
  cpu->set_U(U);
  gpu->set_U(U);
  core::PriorState prior;
  prior.beta = testing::random_normal(30, 13);
  prior.Sigma = {1.0, 0.2, 0.0, 0.2, 0.8, 0.1, 0.0, 0.1, 0.5};
  prior.noise_variance = 0.3;
  prior.b_precision = 0.5;
  prior.beta_precision = 2.5;
  cpu->set_prior(&prior);
  gpu->set_prior(&prior);
  cpu->task_step_all(2);
  gpu->task_step_all(2);
  const std::vector<double> x = testing::random_normal(30 * 4, 14);
  std::vector<double> yc, yg, vc, vg, Wc, Wg;
  cpu->apply_normal_operator(x, yc);
  gpu->apply_normal_operator(x, yg);
  ASSERT_EQ(yg.size(), yc.size());
  EXPECT_LT(relative_error(yg, yc), 1e-9);
  cpu->accumulate_rhs(vc, Wc);
  gpu->accumulate_rhs(vg, Wg);
  ASSERT_EQ(Wg.size(), 16u);
  EXPECT_LT(relative_error(vg, vc), 1e-9);
  EXPECT_LT(relative_error(Wg, Wc), 1e-9);
}

// The default model with r and k given and the U step by cg, every step solved: the GPU's model is
// the CPU's, and the direct solve's.
TEST(CudaCg, TheDefaultModelByCgMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  const SyntheticData syn = noisy_small_tasks(15);
  Options o;
  o.rank = 2;
  o.sparsity = 1;
  o.iterations = 20;
  o.u_solver = USolver::cg;
  o.cg_tolerance = 1e-13;
  o.cg_forcing = 0;
  const Model cpu = fit(syn.data.view(), o);
  o.device = Device::cuda;
  const Model gpu = fit(syn.data.view(), o);
  o.u_solver = USolver::direct;
  const Model gpu_direct = fit(syn.data.view(), o);
  ASSERT_EQ(gpu.options.device, Device::cuda);
  EXPECT_LT(relative_error(gpu.theta_matrix(), cpu.theta_matrix()), 1e-6);
  EXPECT_LT(relative_error(gpu.beta, cpu.beta), 1e-6);
  EXPECT_LT(relative_error(gpu.theta_matrix(), gpu_direct.theta_matrix()), 1e-5);
  EXPECT_EQ(gpu.history.size(), cpu.history.size());
  for (const IterationInfo& h : gpu.history) EXPECT_GT(h.u_solver_steps, 0);
}

// The default model (the empirical-Bayes prior, its settings estimated) with r and k given, on
// noisy ragged data: the GPU's model is the CPU's (task steps in whitened coordinates, the kernel's
// mapping back, the M-step's sums by cuBLAS, the joint [beta, U] solve on the device).
TEST(CudaPrior, TheDefaultModelWithRAndKGivenMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  const SyntheticData syn = noisy_small_tasks(12);
  Options o;
  o.rank = 2;
  o.sparsity = 1;
  o.iterations = 25;
  o.u_solver = USolver::direct;
  const Model cpu = fit(syn.data.view(), o);
  o.device = Device::cuda;
  const Model gpu = fit(syn.data.view(), o);
  ASSERT_FALSE(cpu.beta.empty());
  ASSERT_EQ(gpu.options.device, Device::cuda);
  EXPECT_LT(relative_error(gpu.theta_matrix(), cpu.theta_matrix()), 1e-6);
  EXPECT_LT(relative_error(gpu.beta, cpu.beta), 1e-6);
  EXPECT_LT(relative_error(gpu.Sigma, cpu.Sigma), 1e-6);
  EXPECT_NEAR(gpu.noise_variance, cpu.noise_variance, 1e-6 * cpu.noise_variance);
  EXPECT_EQ(gpu.history.size(), cpu.history.size());
  // float32 data: the same to float's precision (the GPU forms G from float chunks).
  Dataset<float> f;
  f.d = syn.data.d;
  f.task_offsets = syn.data.task_offsets;
  f.X.assign(syn.data.X.begin(), syn.data.X.end());
  f.y.assign(syn.data.y.begin(), syn.data.y.end());
  o.device = Device::cpu;
  const Model cpu_float = fit(f.view(), o);
  o.device = Device::cuda;
  const Model gpu_float = fit(f.view(), o);
  EXPECT_LT(relative_error(gpu_float.theta_matrix(), cpu_float.theta_matrix()), 1e-4);
  EXPECT_LT(relative_error(gpu_float.beta, cpu_float.beta), 1e-4);
}

// The random intercept and the slopes model (U held: the U step solves for beta and U's held
// directions' weights, from the G and v the device accumulates) match the CPU's.
TEST(CudaPrior, TheModelsThatHoldUMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  SyntheticData syn = noisy_small_tasks(21);
  for (std::int64_t j = 0; j < syn.data.n(); ++j) syn.data.X[static_cast<std::size_t>(j * syn.data.d + 3)] = 1.0;
  Options o;
  o.rank = 1;
  o.sparsity = 1;
  o.low_rank_basis = LowRankBasis::intercept;
  o.iterations = 25;
  const Model cpu = fit(syn.data.view(), o);
  o.device = Device::cuda;
  const Model gpu = fit(syn.data.view(), o);
  ASSERT_EQ(gpu.options.device, Device::cuda);
  for (std::int64_t a = 0; a < syn.data.d; ++a) EXPECT_EQ(std::abs(gpu.U[static_cast<std::size_t>(a)]), a == 3 ? 1.0 : 0.0);
  EXPECT_LT(relative_error(gpu.theta_matrix(), cpu.theta_matrix()), 1e-6);
  EXPECT_LT(relative_error(gpu.beta, cpu.beta), 1e-6);
  EXPECT_NEAR(gpu.Sigma[0], cpu.Sigma[0], 1e-6 * cpu.Sigma[0]);
  EXPECT_EQ(gpu.history.size(), cpu.history.size());
  // The slopes model (r = d, U held at the features' axes, Sigma with two variances).
  o.rank = static_cast<int>(syn.data.d);
  o.low_rank_basis = LowRankBasis::slopes;
  o.device = Device::cpu;
  const Model cpu_slopes = fit(syn.data.view(), o);
  o.device = Device::cuda;
  const Model gpu_slopes = fit(syn.data.view(), o);
  EXPECT_LT(relative_error(gpu_slopes.theta_matrix(), cpu_slopes.theta_matrix()), 1e-6);
  EXPECT_LT(relative_error(gpu_slopes.Sigma, cpu_slopes.Sigma), 1e-6);
  EXPECT_EQ(gpu_slopes.history.size(), cpu_slopes.history.size());
}

// A checkpoint of the default model written on one device resumes on the other, to the model
// the first device trains straight through (within the two devices' rounding).
TEST(CudaPrior, ACheckpointWrittenOnOneDeviceResumesOnTheOther) {
  SKIP_WITHOUT_GPU();
  SyntheticSpec s;
  s.tasks = 120;
  s.min_samples = 2;
  s.max_samples = 14;
  s.d = 10;
  s.r = 2;
  s.k = 1;
  s.noise = 0.2;
  s.seed = 13;
  const SyntheticData syn = generate_synthetic(s);
  Options o;
  o.rank = 2;
  o.sparsity = 1;
  o.iterations = 8;
  o.relative_tolerance = 0.0;  // all eight run
  o.u_solver = USolver::direct;
  for (Device first : {Device::cpu, Device::cuda}) {
    const Device second = first == Device::cpu ? Device::cuda : Device::cpu;
    const std::string dir = (std::filesystem::temp_directory_path() / ("lrsmeta_cuda_ckpt_" + std::to_string(::getpid()))).string();
    std::filesystem::remove_all(dir);
    o.device = first;
    const Model straight = fit(syn.data.view(), o);
    FitControl control;
    int seen = 0;
    control.on_iteration = [&](const IterationInfo&) { return ++seen > 0; };
    control.stop = [&] { return seen >= 4; };
    control.checkpoint = [&](const Checkpoint& c) { save_checkpoint(c, dir); };
    EXPECT_THROW(fit(syn.data.view(), o, control), Stopped);
    const Checkpoint saved = load_checkpoint(dir);
    ASSERT_EQ(saved.iteration, 4);
    o.device = second;
    FitControl resume;
    resume.resume = &saved;
    const Model resumed = fit(syn.data.view(), o, resume);
    std::filesystem::remove_all(dir);
    ASSERT_EQ(resumed.history.size(), straight.history.size());
    EXPECT_LT(relative_error(resumed.theta_matrix(), straight.theta_matrix()), 1e-6) << to_string(first) << " first";
    EXPECT_LT(relative_error(resumed.beta, straight.beta), 1e-6) << to_string(first) << " first";
  }
}

TEST(CudaBackend, WithoutAGpuTheErrorSaysSo) {
#ifdef LRSMETA_CUDA_EMULATION
  cuda_emulation::fail_call("cudaGetDeviceCount", 1);  // as on a machine without a driver
#else
  if (cuda_available()) GTEST_SKIP() << "a GPU is present";
#endif
  const SyntheticData syn = ragged_data(6);
  Options o;
  o.rank = 3;
  o.sparsity = 2;
  o.device = Device::cuda;
  o.prior = Prior::none;
  try {
    fit(syn.data.view(), o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no usable CUDA device"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lrsmeta
