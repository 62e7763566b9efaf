#include "linalg/blas_lapack.hpp"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <optional>
#include <string>

#include "lrsmeta/lrsmeta.hpp"

extern "C" {
// Fortran LAPACK (from OpenBLAS). The trailing size_t arguments are the hidden lengths of the
// character arguments that gfortran-built LAPACK expects.
void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info, std::size_t);
void dpotrs_(const char* uplo, const int* n, const int* nrhs, const double* a, const int* lda,
             double* b, const int* ldb, int* info, std::size_t);
void dgeqrf_(const int* m, const int* n, double* a, const int* lda, double* tau, double* work,
             const int* lwork, int* info);
void dorgqr_(const int* m, const int* n, const int* k, double* a, const int* lda, const double* tau,
             double* work, const int* lwork, int* info);
void dsyevr_(const char* jobz, const char* range, const char* uplo, const int* n, double* a,
             const int* lda, const double* vl, const double* vu, const int* il, const int* iu,
             const double* abstol, int* m, double* w, double* z, const int* ldz, int* isuppz,
             double* work, const int* lwork, int* iwork, const int* liwork, int* info, std::size_t,
             std::size_t, std::size_t);
}

namespace lrsmeta::linalg {
namespace {
void check_info(int info, const char* routine) {
  if (info != 0) throw Error(std::string("LAPACK ") + routine + " failed with info " + std::to_string(info));
}

// A call of fewer flops than this runs on one thread. OpenBLAS threads some kernels at any size
// (dsyevr's dsymv at n = 10), and a threaded call wakes its worker threads, which then spin
// (sched_yield) for a while after it: through the task loop that follows, on cores the loop's own
// threads need. Measured at t = 20000, d = 100, r = 10 on 2 cores: the cg preconditioner's 11 x 11
// eigenproblem, threaded, made the next iteration's task step 10 to 20% slower. Above this
// size a call is long enough for its threads to pay.
constexpr double kThreadedFlops = 1e8;

class ThreadsForSize {
 public:
  // Inside the task loops' parallel regions BLAS is single-threaded already (BlasThreads there),
  // and the thread count is global: it is left alone.
  explicit ThreadsForSize(double flops) {
    if (flops < kThreadedFlops && !omp_in_parallel()) one_.emplace(1);
  }

 private:
  std::optional<BlasThreads> one_;
};
}  // namespace

void gemm(bool trans_a, bool trans_b, int m, int n, int k, double alpha, const double* A, int lda,
          const double* B, int ldb, double beta, double* C, int ldc) {
  const ThreadsForSize threads(2.0 * m * n * k);
  cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm_nn(int m, int n, int k, const double* A, const double* B, double* C) {
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0, A, k, B, n, 0.0, C, n);
}
void gemm_nn(int m, int n, int k, const float* A, const float* B, float* C) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, A, k, B, n, 0.0f, C, n);
}

void gemm_tn(int m, int n, int k, const double* A, const double* B, double* C) {
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, n, k, 1.0, A, m, B, n, 0.0, C, n);
}
void gemm_nt(int m, int n, int k, const float* A, const float* B, float* C) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, A, k, B, k, 0.0f, C, n);
}
void gemm_nt(int m, int n, int k, const double* A, const double* B, double* C) {
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0, A, k, B, k, 0.0, C, n);
}

void gemm_tn(int m, int n, int k, const float* A, const float* B, float* C) {
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, n, k, 1.0f, A, m, B, n, 0.0f, C, n);
}

void syrk_upper_ata(int n, int k, double alpha, const double* A, int lda, double beta, double* C, int ldc) {
  const ThreadsForSize threads(1.0 * n * n * k);
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, n, k, alpha, A, lda, beta, C, ldc);
}

int potrf_lower(int n, double* A) {
  const ThreadsForSize threads(n * (n / 3.0) * n);
  int info = 0;
  dpotrf_("L", &n, A, &n, &info, 1);
  if (info < 0) check_info(info, "dpotrf");
  return info;
}

void potrs_lower(int n, const double* L, double* b) {
  const ThreadsForSize threads(2.0 * n * n);
  int info = 0;
  const int nrhs = 1;
  dpotrs_("L", &n, &nrhs, L, &n, b, &n, &info, 1);
  check_info(info, "dpotrs");
}

void qr_q_factor(int m, int n, double* A) {
  if (n == 0) return;
  const ThreadsForSize threads(4.0 * m * n * n);
  std::vector<double> tau(static_cast<std::size_t>(n));
  int info = 0, lwork = -1;
  double query = 0;
  dgeqrf_(&m, &n, A, &m, tau.data(), &query, &lwork, &info);
  check_info(info, "dgeqrf (workspace query)");
  lwork = std::max(1, static_cast<int>(query));
  std::vector<double> work(static_cast<std::size_t>(lwork));
  dgeqrf_(&m, &n, A, &m, tau.data(), work.data(), &lwork, &info);
  check_info(info, "dgeqrf");
  lwork = -1;
  dorgqr_(&m, &n, &n, A, &m, tau.data(), &query, &lwork, &info);
  check_info(info, "dorgqr (workspace query)");
  lwork = std::max(1, static_cast<int>(query));
  work.assign(static_cast<std::size_t>(lwork), 0.0);
  dorgqr_(&m, &n, &n, A, &m, tau.data(), work.data(), &lwork, &info);
  check_info(info, "dorgqr");
}

namespace {
// Eigenpairs il..iu (1-based, ascending) of the column-major symmetric n x n A by dsyevr: the
// eigenvalues into *values, the eigenvectors (n x (iu - il + 1), column-major) returned.
std::vector<double> eigenpairs(int n, std::vector<double>& A, int il, int iu, std::vector<double>* values) {
  const ThreadsForSize threads(10.0 * n * n * n);
  const int count = iu - il + 1;
  std::vector<double> Z(static_cast<std::size_t>(n) * count);
  values->assign(static_cast<std::size_t>(n), 0.0);
  std::vector<int> isuppz(2 * static_cast<std::size_t>(count));
  const char* range = count == n ? "A" : "I";
  const double vl = 0, vu = 0, abstol = 0;
  int found = 0, info = 0, lwork = -1, liwork = -1, iwork_query = 0;
  double work_query = 0;
  dsyevr_("V", range, "L", &n, A.data(), &n, &vl, &vu, &il, &iu, &abstol, &found, values->data(), Z.data(),
          &n, isuppz.data(), &work_query, &lwork, &iwork_query, &liwork, &info, 1, 1, 1);
  check_info(info, "dsyevr (workspace query)");
  lwork = std::max(1, static_cast<int>(work_query));
  liwork = std::max(1, iwork_query);
  std::vector<double> work(static_cast<std::size_t>(lwork));
  std::vector<int> iwork(static_cast<std::size_t>(liwork));
  dsyevr_("V", range, "L", &n, A.data(), &n, &vl, &vu, &il, &iu, &abstol, &found, values->data(), Z.data(),
          &n, isuppz.data(), work.data(), &lwork, iwork.data(), &liwork, &info, 1, 1, 1);
  check_info(info, "dsyevr");
  if (found != count) throw Error("LAPACK dsyevr found " + std::to_string(found) + " eigenpairs, expected " + std::to_string(count));
  values->resize(static_cast<std::size_t>(count));
  return Z;
}
}  // namespace

std::vector<double> top_eigenvectors(int n, std::vector<double> A, int k) {
  if (k == 0) return {};
  std::vector<double> values;
  const std::vector<double> Z = eigenpairs(n, A, n - k + 1, n, &values);
  // Ascending -> descending eigenvalue order.
  std::vector<double> out(static_cast<std::size_t>(n) * k);
  for (int c = 0; c < k; ++c)
    std::copy_n(Z.data() + static_cast<std::size_t>(k - 1 - c) * n, n, out.data() + static_cast<std::size_t>(c) * n);
  return out;
}

std::vector<double> symmetric_eigen(int n, std::vector<double> A, std::vector<double>* values) {
  if (n == 0) {
    values->clear();
    return {};
  }
  return eigenpairs(n, A, 1, n, values);
}

int blas_core_vector_level(const std::string& core) {
  std::string name;
  for (char c : core) name += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* n : {"skylakex", "cooperlake", "sapphirerapids"})
    if (name == n) return 3;
  for (const char* n : {"haswell", "zen", "excavator"})
    if (name == n) return 2;
  for (const char* n : {"sandybridge", "bulldozer", "piledriver", "steamroller"})
    if (name == n) return 1;
  return 0;
}

int processor_vector_level() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl"))
    return 3;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 2;
  if (__builtin_cpu_supports("avx")) return 1;
#endif
  return 0;
}

std::string blas_kernel_warning(const std::string& config, const std::string& core, int processor_level) {
  if (config.find("DYNAMIC_ARCH") == std::string::npos) return {};
  const int core_level = blas_core_vector_level(core);
  if (processor_level < 2 || core_level >= processor_level) return {};
  const char* wanted = processor_level == 3 ? "SkylakeX" : "Haswell";
  const char* what = processor_level == 3 ? "AVX-512" : "AVX2";
  // "OpenBLAS 0.3.21 DYNAMIC_ARCH ...": the release is the configuration's first two words.
  const std::string release = config.substr(0, config.find(' ', config.find(' ') + 1));
  return release + " runs its " + core + " kernels on a processor with " + what + ": set OPENBLAS_CORETYPE=" +
         wanted + " in the environment before starting; the CPU path ran 2.2 times faster so on one such machine (docs/building.md)";
}

std::string blas_kernel_warning() {
  if (std::getenv("OPENBLAS_CORETYPE")) return {};  // the kernels were chosen by hand
  const char* config = openblas_get_config();
  const char* core = openblas_get_corename();
  return blas_kernel_warning(config ? config : "", core ? core : "", processor_vector_level());
}

BlasThreads::BlasThreads(int threads) : previous_(openblas_get_num_threads()) {
  openblas_set_num_threads(threads);
}
BlasThreads::~BlasThreads() { openblas_set_num_threads(previous_); }

}  // namespace lrsmeta::linalg

namespace lrsmeta {
std::string blas_kernel_warning() { return linalg::blas_kernel_warning(); }
}  // namespace lrsmeta
