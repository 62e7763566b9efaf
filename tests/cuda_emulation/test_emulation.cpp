// The CUDA emulation checked: each emulated cuBLAS and cuSOLVER call against a plain computation in
// double on random inputs; each check shown to catch its misuse (every one of these tests would
// pass a wrong call through without it); the backend's error paths under injected faults, naming
// the call and leaking nothing; NCCL with one rank.
#include <cublas_v2.h>
#include <cusolverDn.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/backend.hpp"
#include "core/communicator.hpp"
#include "core/u_solver.hpp"
#include "cuda/cuda_backend.hpp"
#include "cuda_emulation/emulation.hpp"
#include "kernels/device_kernels.hpp"
#include "lrsmeta/io.hpp"
#include "test_helpers.hpp"

namespace lrsmeta {
namespace {

namespace emu = cuda_emulation;

std::vector<double> random_values(std::size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  std::vector<double> v(n);
  for (double& x : v) x = normal(rng);
  return v;
}

// Device memory holding `host`, freed with the object.
template <typename T>
struct DeviceArray {
  explicit DeviceArray(const std::vector<T>& host) : count(host.size()) {
    EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&data), std::max<std::size_t>(count, 1) * sizeof(T)), cudaSuccess);
    if (count) EXPECT_EQ(cudaMemcpy(data, host.data(), count * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
  ~DeviceArray() { cudaFree(data); }
  std::vector<T> get() const {
    std::vector<T> out(count);
    EXPECT_EQ(cudaMemcpy(out.data(), data, count * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return out;
  }
  T* data = nullptr;
  std::size_t count;
};

bool reported(const std::string& text) {
  for (const std::string& line : emu::problems())
    if (line.find(text) != std::string::npos) return true;
  return false;
}

class Emulation : public ::testing::Test {
 protected:
  void SetUp() override {
    emu::clear_problems();
    emu::clear_faults();
    baseline_ = emu::live_allocations();
    ASSERT_EQ(cublasCreate(&blas_), CUBLAS_STATUS_SUCCESS);
    ASSERT_EQ(cusolverDnCreate(&solver_), CUSOLVER_STATUS_SUCCESS);
  }
  void TearDown() override {
    cublasDestroy(blas_);
    cusolverDnDestroy(solver_);
    emu::clear_faults();
    EXPECT_EQ(emu::live_allocations(), baseline_) << "device memory leaked";
  }
  cublasHandle_t blas_ = nullptr;
  cusolverDnHandle_t solver_ = nullptr;
  std::size_t baseline_ = 0;
};

// Column-major op(A)(i, j) of a matrix with leading dimension ld.
double at(const std::vector<double>& A, int ld, bool trans, int i, int j) {
  return trans ? A[static_cast<std::size_t>(j) + static_cast<std::size_t>(ld) * i] : A[static_cast<std::size_t>(i) + static_cast<std::size_t>(ld) * j];
}

TEST_F(Emulation, GemmMatchesALoopForEveryTransposeAndPaddedLeadingDimensions) {
  const int m = 7, n = 5, k = 4;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      const int lda = (ta ? k : m) + 3, ldb = (tb ? n : k) + 2, ldc = m + 1;
      const std::vector<double> A = random_values(static_cast<std::size_t>(lda) * (ta ? m : k), 1 + ta);
      const std::vector<double> B = random_values(static_cast<std::size_t>(ldb) * (tb ? k : n), 3 + tb);
      std::vector<double> C = random_values(static_cast<std::size_t>(ldc) * n, 5);
      DeviceArray<double> dA(A), dB(B), dC(C);
      const double alpha = 0.7, beta = -1.3;
      ASSERT_EQ(cublasDgemm(blas_, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k, &alpha, dA.data, lda,
                            dB.data, ldb, &beta, dC.data, ldc),
                CUBLAS_STATUS_SUCCESS);
      const std::vector<double> got = dC.get();
      for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) {
          double want = beta * C[static_cast<std::size_t>(i) + static_cast<std::size_t>(ldc) * j];
          for (int p = 0; p < k; ++p) want += alpha * at(A, lda, ta, i, p) * at(B, ldb, tb, p, j);
          EXPECT_NEAR(got[static_cast<std::size_t>(i) + static_cast<std::size_t>(ldc) * j], want, 1e-12 * (1 + std::fabs(want)));
        }
      // The padding rows of C are not written.
      for (int j = 0; j < n; ++j) EXPECT_EQ(got[static_cast<std::size_t>(m) + static_cast<std::size_t>(ldc) * j], C[static_cast<std::size_t>(m) + static_cast<std::size_t>(ldc) * j]);
    }
}

TEST_F(Emulation, SgemmGemvSyrkAndTheLevelOneCallsMatchLoops) {
  const int m = 6, n = 4;
  const std::vector<double> A = random_values(static_cast<std::size_t>(m) * n, 11), x = random_values(12, 12), y = random_values(12, 13);
  DeviceArray<double> dA(A), dx(x), dy(y);
  // Sgemm: C (m x m) = A A^T in float.
  std::vector<float> Af(A.begin(), A.end()), Cf(static_cast<std::size_t>(m) * m, 0.0f);
  DeviceArray<float> dAf(Af), dCf(Cf);
  const float onef = 1.0f, zerof = 0.0f;
  ASSERT_EQ(cublasSgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_T, m, m, n, &onef, dAf.data, m, dAf.data, m, &zerof, dCf.data, m), CUBLAS_STATUS_SUCCESS);
  const std::vector<float> Cg = dCf.get();
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < m; ++j) {
      double want = 0;
      for (int p = 0; p < n; ++p) want += A[i + m * p] * A[j + m * p];
      EXPECT_NEAR(Cg[i + m * j], want, 1e-5 * (1 + std::fabs(want)));
    }
  // Gemv, both ways, with strides: y(0:2:m) = A x(0:3:n) and y = A^T x.
  const double one = 1.0, zero = 0.0;
  ASSERT_EQ(cublasDgemv(blas_, CUBLAS_OP_N, m, n, &one, dA.data, m, dx.data, 3, &zero, dy.data, 2), CUBLAS_STATUS_SUCCESS);
  std::vector<double> got = dy.get();
  for (int i = 0; i < m; ++i) {
    double want = 0;
    for (int p = 0; p < n; ++p) want += A[i + m * p] * x[3 * p];
    EXPECT_NEAR(got[2 * i], want, 1e-12 * (1 + std::fabs(want)));
  }
  ASSERT_EQ(cublasDgemv(blas_, CUBLAS_OP_T, m, n, &one, dA.data, m, dx.data, 1, &zero, dy.data, 1), CUBLAS_STATUS_SUCCESS);
  got = dy.get();
  for (int j = 0; j < n; ++j) {
    double want = 0;
    for (int i = 0; i < m; ++i) want += A[i + m * j] * x[i];
    EXPECT_NEAR(got[j], want, 1e-12 * (1 + std::fabs(want)));
  }
  // Syrk: only the asked triangle is written.
  for (cublasFillMode_t fill : {CUBLAS_FILL_MODE_UPPER, CUBLAS_FILL_MODE_LOWER}) {
    const std::vector<double> C0 = random_values(static_cast<std::size_t>(m) * m, 14);
    DeviceArray<double> dC(C0);
    const double half = 0.5;
    ASSERT_EQ(cublasDsyrk(blas_, fill, CUBLAS_OP_N, m, n, &half, dA.data, m, &one, dC.data, m), CUBLAS_STATUS_SUCCESS);
    const std::vector<double> C = dC.get();
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < m; ++j) {
        const bool written = fill == CUBLAS_FILL_MODE_UPPER ? i <= j : i >= j;
        double want = C0[i + m * j];
        if (written)
          for (int p = 0; p < n; ++p) want += 0.5 * A[i + m * p] * A[j + m * p];
        EXPECT_NEAR(C[i + m * j], want, 1e-12 * (1 + std::fabs(want)));
      }
  }
  // Axpy (strided), dot, nrm2, asum, iamax (1-based).
  const double alpha = -2.5;
  ASSERT_EQ(cublasDaxpy(blas_, 4, &alpha, dx.data, 3, dy.data, 2), CUBLAS_STATUS_SUCCESS);
  const std::vector<double> y_before = got;
  got = dy.get();
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(got[2 * i], y_before[2 * i] + alpha * x[3 * i], 1e-12);
  double dot = 0, nrm = 0, asum = 0;
  int index = 0;
  ASSERT_EQ(cublasDdot(blas_, 12, dx.data, 1, dx.data, 1, &dot), CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cublasDnrm2(blas_, 12, dx.data, 1, &nrm), CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cublasDasum(blas_, 6, dx.data, 2, &asum), CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(cublasIdamax(blas_, 4, dx.data, 3, &index), CUBLAS_STATUS_SUCCESS);
  double want_dot = 0, want_asum = 0, best = -1;
  int want_index = 0;
  for (int i = 0; i < 12; ++i) want_dot += x[i] * x[i];
  for (int i = 0; i < 6; ++i) want_asum += std::fabs(x[2 * i]);
  for (int i = 0; i < 4; ++i)
    if (std::fabs(x[3 * i]) > best) best = std::fabs(x[3 * i]), want_index = i + 1;
  EXPECT_NEAR(dot, want_dot, 1e-12 * want_dot);
  EXPECT_NEAR(nrm, std::sqrt(want_dot), 1e-12 * nrm);
  EXPECT_NEAR(asum, want_asum, 1e-12 * want_asum);
  EXPECT_EQ(index, want_index);
  EXPECT_TRUE(emu::problems().empty());
}

TEST_F(Emulation, CholeskyAndQrMatchTheirDefinitions) {
  const int n = 9;
  const std::vector<double> B = random_values(static_cast<std::size_t>(n) * n, 21);
  std::vector<double> A(static_cast<std::size_t>(n) * n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      double s = i == j ? 1.0 : 0.0;
      for (int p = 0; p < n; ++p) s += B[i + n * p] * B[j + n * p];
      A[i + n * j] = s;
    }
  const std::vector<double> b = random_values(n, 22);
  DeviceArray<double> dA(A), db(b);
  DeviceArray<int> info(std::vector<int>(1, -7));
  int lwork = 0;
  ASSERT_EQ(cusolverDnDpotrf_bufferSize(solver_, CUBLAS_FILL_MODE_LOWER, n, dA.data, n, &lwork), CUSOLVER_STATUS_SUCCESS);
  DeviceArray<double> work(std::vector<double>(static_cast<std::size_t>(lwork)));
  ASSERT_EQ(cusolverDnDpotrf(solver_, CUBLAS_FILL_MODE_LOWER, n, dA.data, n, work.data, lwork, info.data), CUSOLVER_STATUS_SUCCESS);
  EXPECT_EQ(info.get()[0], 0);
  ASSERT_EQ(cusolverDnDpotrs(solver_, CUBLAS_FILL_MODE_LOWER, n, 1, dA.data, n, db.data, n, info.data), CUSOLVER_STATUS_SUCCESS);
  const std::vector<double> x = db.get();
  for (int i = 0; i < n; ++i) {  // A x = b
    double s = 0;
    for (int j = 0; j < n; ++j) s += A[i + n * j] * x[j];
    EXPECT_NEAR(s, b[i], 1e-10 * (1 + std::fabs(b[i])));
  }
  // An indefinite matrix: devInfo says which minor failed.
  std::vector<double> bad = A;
  bad[3 + n * 3] = -100.0;
  DeviceArray<double> dbad(bad);
  ASSERT_EQ(cusolverDnDpotrf(solver_, CUBLAS_FILL_MODE_LOWER, n, dbad.data, n, work.data, lwork, info.data), CUSOLVER_STATUS_SUCCESS);
  EXPECT_GT(info.get()[0], 0);

  // QR of a tall matrix: Q orthonormal and Q (Q^T M) = M.
  const int rows = 12, cols = 4;
  const std::vector<double> M = random_values(static_cast<std::size_t>(rows) * cols, 23);
  DeviceArray<double> dM(M), tau{std::vector<double>(cols)};
  int lq = 0, lo = 0;
  ASSERT_EQ(cusolverDnDgeqrf_bufferSize(solver_, rows, cols, dM.data, rows, &lq), CUSOLVER_STATUS_SUCCESS);
  ASSERT_EQ(cusolverDnDorgqr_bufferSize(solver_, rows, cols, cols, dM.data, rows, tau.data, &lo), CUSOLVER_STATUS_SUCCESS);
  DeviceArray<double> qwork(std::vector<double>(static_cast<std::size_t>(std::max(lq, lo))));
  ASSERT_EQ(cusolverDnDgeqrf(solver_, rows, cols, dM.data, rows, tau.data, qwork.data, std::max(lq, lo), info.data), CUSOLVER_STATUS_SUCCESS);
  ASSERT_EQ(cusolverDnDorgqr(solver_, rows, cols, cols, dM.data, rows, tau.data, qwork.data, std::max(lq, lo), info.data),
            CUSOLVER_STATUS_SUCCESS);
  const std::vector<double> Q = dM.get();
  for (int p = 0; p < cols; ++p)
    for (int q = 0; q < cols; ++q) {
      double s = 0;
      for (int i = 0; i < rows; ++i) s += Q[i + rows * p] * Q[i + rows * q];
      EXPECT_NEAR(s, p == q ? 1.0 : 0.0, 1e-12);
    }
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) {
      double s = 0;
      for (int p = 0; p < cols; ++p) {
        double r = 0;
        for (int l = 0; l < rows; ++l) r += Q[l + rows * p] * M[l + rows * j];
        s += Q[i + rows * p] * r;
      }
      EXPECT_NEAR(s, M[i + rows * j], 1e-12 * 10);
    }
  EXPECT_TRUE(emu::problems().empty());
}

TEST_F(Emulation, AWrongLeadingDimensionIsRefused) {
  DeviceArray<double> A(random_values(20, 31)), C(random_values(16, 32));
  const double one = 1.0;
  // lda < rows: the documented CUBLAS_STATUS_INVALID_VALUE.
  EXPECT_EQ(cublasDgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 5, &one, A.data, 3, A.data, 5, &one, C.data, 4), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_TRUE(reported("lda = 3 < max(1, 4)"));
  // A legal lda that reads past the allocation (the matrix is 4 x 5 with lda 4: 20 doubles).
  emu::clear_problems();
  EXPECT_EQ(cublasDgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 5, &one, A.data, 5, A.data, 5, &one, C.data, 4), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_TRUE(reported("spans")) << "a span past the allocation must be caught";
  // A stride past the end.
  emu::clear_problems();
  EXPECT_EQ(cublasDaxpy(blas_, 10, &one, A.data, 3, C.data, 1), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_TRUE(reported("cublasDaxpy_v2: x"));
  // cuSOLVER: lda < n, and a workspace smaller than its query.
  int lwork = 0;
  EXPECT_EQ(cusolverDnDpotrf_bufferSize(solver_, CUBLAS_FILL_MODE_LOWER, 4, C.data, 3, &lwork), CUSOLVER_STATUS_INVALID_VALUE);
  ASSERT_EQ(cusolverDnDpotrf_bufferSize(solver_, CUBLAS_FILL_MODE_LOWER, 4, C.data, 4, &lwork), CUSOLVER_STATUS_SUCCESS);
  DeviceArray<int> info(std::vector<int>(1, 0));
  EXPECT_EQ(cusolverDnDpotrf(solver_, CUBLAS_FILL_MODE_LOWER, 4, C.data, 4, A.data, lwork - 1, info.data), CUSOLVER_STATUS_INVALID_VALUE);
  EXPECT_TRUE(reported("bufferSize"));
}

TEST_F(Emulation, HostAndDevicePointersAreTold) {
  std::vector<double> host(8, 1.0), back(8, 0.0);
  DeviceArray<double> device(host);
  // A host pointer where the device one belongs, and the reverse; a direction that does not match.
  EXPECT_EQ(cudaMemcpy(back.data(), host.data(), 64, cudaMemcpyHostToDevice), cudaErrorInvalidValue);
  EXPECT_TRUE(reported("the destination") && reported("is not device memory"));
  emu::clear_problems();
  EXPECT_EQ(cudaMemcpy(device.data, device.data, 64, cudaMemcpyDeviceToHost), cudaErrorInvalidValue);
  EXPECT_TRUE(reported("is device memory where host memory belongs"));
  // A copy past the end of an allocation.
  emu::clear_problems();
  std::vector<double> more(9, 0.0);
  EXPECT_EQ(cudaMemcpy(more.data(), device.data, 72, cudaMemcpyDeviceToHost), cudaErrorInvalidValue);
  EXPECT_TRUE(reported("spans 72 bytes"));
  // cuBLAS's scalars are host memory in its default pointer mode.
  emu::clear_problems();
  EXPECT_EQ(cublasDaxpy(blas_, 8, device.data, device.data, 1, device.data, 1), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_TRUE(reported("alpha"));
  // A freed pointer is no longer device memory, and cannot be freed twice.
  void* p = nullptr;
  ASSERT_EQ(cudaMalloc(&p, 16), cudaSuccess);
  ASSERT_EQ(cudaFree(p), cudaSuccess);
  EXPECT_EQ(cudaMemsetAsync(p, 0, 16, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(cudaFree(p), cudaErrorInvalidValue);
  cudaGetLastError();
}

TEST_F(Emulation, AHostReadBeforeTheStreamIsSynchronisedSeesNoData) {
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  DeviceArray<double> device(std::vector<double>{1.0, 2.0, 3.0});
  std::vector<double> host(3, 0.0);
  ASSERT_EQ(cudaMemcpyAsync(host.data(), device.data, 24, cudaMemcpyDeviceToHost, stream), cudaSuccess);
  EXPECT_TRUE(std::isnan(host[0]) && std::isnan(host[2])) << "the copy must not have arrived before the synchronisation";
  // A synchronous copy on the legacy stream does not wait for a non-blocking stream.
  std::vector<double> other(3, 0.0);
  ASSERT_EQ(cudaMemcpy(other.data(), device.data, 24, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_TRUE(std::isnan(host[1]));
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  EXPECT_EQ(host, (std::vector<double>{1.0, 2.0, 3.0}));
  ASSERT_EQ(cudaStreamDestroy(stream), cudaSuccess);
  EXPECT_EQ(cudaStreamSynchronize(stream), cudaErrorInvalidResourceHandle);
  cudaGetLastError();
}

TEST_F(Emulation, LaunchesPastTheLimitsOfSm90AreRefused) {
  std::vector<double> host(4, 0.0);
  DeviceArray<double> values(random_values(4 * 8, 41));
  DeviceArray<int> out(std::vector<int>(4 * 2, 0));
  // The real launchers: a host pointer as a kernel argument is an illegal address, reported by
  // the launcher as an lrsmeta::Error naming the kernel.
  try {
    kernels::launch_top_k_rows(host.data(), 4, 8, 2, out.data, nullptr);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the launch of top_k_rows_kernel failed with cudaErrorIllegalAddress"), std::string::npos) << e.what();
  }
  kernels::launch_top_k_rows(values.data, 4, 8, 2, out.data, nullptr);  // and with device memory, it runs
  // The limits, through the hook every emulated launch takes.
  const void* key = &host;  // any function identity
  EXPECT_FALSE(emu::accept_launch("k", key, 1, 1025, 0, nullptr));
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  EXPECT_FALSE(emu::accept_launch("k", key, 0, 32, 0, nullptr));
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  EXPECT_TRUE(emu::accept_launch("k", key, 1, 1024, 48 * 1024, nullptr));
  EXPECT_FALSE(emu::accept_launch("k", key, 1, 32, 48 * 1024 + 1, nullptr)) << "above 48 KiB needs the attribute";
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
  ASSERT_EQ(cudaFuncSetAttribute(key, cudaFuncAttributeMaxDynamicSharedMemorySize, 200 * 1024), cudaSuccess);
  EXPECT_TRUE(emu::accept_launch("k", key, 1, 32, 200 * 1024, nullptr));
  EXPECT_EQ(cudaFuncSetAttribute(key, cudaFuncAttributeMaxDynamicSharedMemorySize, 228 * 1024), cudaErrorInvalidValue);
  EXPECT_TRUE(reported("227 KiB"));
  cudaGetLastError();
}

SyntheticData small_data(std::uint64_t seed) {
  SyntheticSpec s;
  s.tasks = 60;
  s.min_samples = 2;
  s.max_samples = 30;
  s.d = 12;
  s.r = 2;
  s.k = 1;
  s.noise = 0.05;
  s.seed = seed;
  return generate_synthetic(s);
}

// A fit on the emulated backend with the nth call of `call` failing: an lrsmeta::Error naming it.
std::string failure_of(const std::string& call, int nth, USolver solver = USolver::direct) {
  const SyntheticData syn = small_data(3);
  Options o;
  o.rank = 2;
  o.sparsity = 1;
  o.iterations = 3;
  o.prior = Prior::none;
  o.u_solver = solver;
  o.device = Device::cuda;
  emu::fail_call(call, nth);
  try {
    fit(syn.data.view(), o);
  } catch (const Error& e) {
    emu::clear_faults();
    return e.what();
  }
  emu::clear_faults();
  return "no error";
}

TEST_F(Emulation, InjectedFaultsBecomeErrorsNamingTheCallAndLeakNothing) {
  for (int nth : {1, 5, 12}) EXPECT_NE(failure_of("cudaMalloc", nth).find("cudaMalloc"), std::string::npos) << nth;
  EXPECT_NE(failure_of("cudaMemcpyAsync", 4).find("cudaMemcpyAsync"), std::string::npos);
  EXPECT_NE(failure_of("cublasDgemm_v2", 2).find("cublasDgemm"), std::string::npos);
  EXPECT_NE(failure_of("cublasDasum_v2", 1).find("cublasDasum"), std::string::npos);
  EXPECT_NE(failure_of("cusolverDnDpotrf", 1).find("cusolverDnDpotrf"), std::string::npos);
  EXPECT_NE(failure_of("cusolverDnDgeqrf", 1).find("cusolverDnDgeqrf"), std::string::npos);
  EXPECT_NE(failure_of("launch:task_step_kernel", 2).find("the launch of task_step_kernel"), std::string::npos);
  EXPECT_NE(failure_of("launch:normal_operator_kernel", 1, USolver::cg).find("the launch of normal_operator_kernel"), std::string::npos);
  EXPECT_NE(failure_of("cudaStreamCreateWithFlags", 1).find("cudaStreamCreateWithFlags"), std::string::npos);
  // TearDown checks that every failed fit freed its device memory.
}

// A failed runtime call is also CUDA's last error: a later, healthy fit must not report it as its
// own launch's failure (it did, before LRSMETA_CUDA_CHECK cleared it).
TEST_F(Emulation, AFitAfterAFailedOneRuns) {
  EXPECT_NE(failure_of("cudaMalloc", 3).find("cudaMalloc"), std::string::npos);
  EXPECT_EQ(failure_of("no such call", 1), "no error");
}

TEST_F(Emulation, TheDeviceMemoryPlanRefusesAFitThatDoesNotFit) {
  const SyntheticData syn = small_data(4);
  Options o;
  o.rank = 2;
  o.sparsity = 1;
  o.prior = Prior::none;
  const std::size_t whole = emu::device_memory();
  emu::set_device_memory(std::size_t{64} << 10);  // 64 KiB: the data alone need more
  try {
    core::make_cuda_backend(syn.data.view(), o);
    emu::set_device_memory(whole);
    FAIL() << "no error";
  } catch (const Error& e) {
    emu::set_device_memory(whole);
    EXPECT_NE(std::string(e.what()).find("of device memory"), std::string::npos) << e.what();
  }
  EXPECT_EQ(emu::live_allocations(), baseline_) << "the refusal came after an allocation";
}

#ifdef LRSMETA_HAVE_NCCL
// One process joining NCCL (one rank): the sums over GPUs are then in place, and the same.
TEST_F(Emulation, NcclWithOneRankLeavesTheSumsUnchanged) {
  const SyntheticData syn = small_data(5);
  Options o;
  o.rank = 2;
  o.sparsity = 1;
  o.prior = Prior::none;
  auto plain = core::make_cuda_backend(syn.data.view(), o);
  auto joined = core::make_cuda_backend(syn.data.view(), o);
  core::SingleProcess alone;
  joined->sum_in_place_over(alone);
  const std::vector<double> U0 = testing::random_orthonormal(12, 2, 6);
  for (auto* b : {plain.get(), joined.get()}) {
    b->set_U(U0);
    b->task_step_all(1);
  }
  std::vector<double> G1, v1, G2, v2;
  plain->accumulate_normal_equations(G1, v1, nullptr);
  joined->accumulate_normal_equations(G2, v2, nullptr);
  EXPECT_EQ(G1, G2);
  EXPECT_EQ(v1, v2);
  plain->accumulate_rhs(v1, G1);
  joined->accumulate_rhs(v2, G2);
  EXPECT_EQ(v1, v2);
  EXPECT_EQ(G1, G2);
  EXPECT_TRUE(emu::problems().empty());
}
#endif

}  // namespace
}  // namespace lrsmeta
