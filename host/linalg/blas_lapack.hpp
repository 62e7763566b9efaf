// The few BLAS/LAPACK routines lrsmeta calls on the host, with checked wrappers: dense linear
// algebra that the algorithm (host/core) and the CPU backend both use, so it belongs to neither.
// OpenBLAS provides both; the Fortran LAPACK symbols are declared here (with their hidden
// string-length arguments) so no LAPACKE is needed.
// Called outside a parallel region, a routine runs on one thread when its work is small (under
// about 1e8 flops): OpenBLAS's woken worker threads spin for a while after a threaded call, on the
// cores the task loops need next, and a small call gains nothing from them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lrsmeta::linalg {

// Row-major C = alpha * op(A) op(B) + beta * C (cblas_dgemm).
void gemm(bool trans_a, bool trans_b, int m, int n, int k, double alpha, const double* A, int lda,
          const double* B, int ldb, double beta, double* C, int ldc);

// Row-major C (m x n) = A (m x k) B (k x n), no transposes, leading dimensions = column counts.
void gemm_nn(int m, int n, int k, const double* A, const double* B, double* C);
void gemm_nn(int m, int n, int k, const float* A, const float* B, float* C);

// Row-major C (m x n) = A^T B for A (k x m), B (k x n) (beta = 0).
void gemm_tn(int m, int n, int k, const float* A, const float* B, float* C);
void gemm_tn(int m, int n, int k, const double* A, const double* B, double* C);
// Row-major C (m x n) = A B^T for A (m x k), B (n x k) (beta = 0).
void gemm_nt(int m, int n, int k, const float* A, const float* B, float* C);
void gemm_nt(int m, int n, int k, const double* A, const double* B, double* C);

// Row-major C (n x n, upper triangle) = alpha * A^T A + beta * C for A (k x n) (cblas_dsyrk).
void syrk_upper_ata(int n, int k, double alpha, const double* A, int lda, double beta, double* C, int ldc);

// Column-major Cholesky of the n x n matrix A (lower triangle used); returns LAPACK's info.
int potrf_lower(int n, double* A);
// Solve with the factor from potrf_lower; b has n entries. Throws on an error code.
void potrs_lower(int n, const double* L, double* b);
// Replace the column-major m x n matrix A (m >= n) by the Q factor of its QR decomposition.
void qr_q_factor(int m, int n, double* A);
// Eigenvectors of the k largest eigenvalues of the column-major n x n symmetric matrix A, as an
// n x k column-major matrix (columns in decreasing eigenvalue order).
std::vector<double> top_eigenvectors(int n, std::vector<double> A, int k);
// Every eigenvalue (ascending, into *values) and eigenvector (the n x n column-major result) of the
// column-major symmetric matrix A.
std::vector<double> symmetric_eigen(int n, std::vector<double> A, std::vector<double>* values);

// OpenBLAS threads: set for the lifetime of this guard, then restored. The task loops run their
// own OpenMP threads and call BLAS from inside them; BLAS must then stay single-threaded.
class BlasThreads {
 public:
  explicit BlasThreads(int threads);
  ~BlasThreads();
  BlasThreads(const BlasThreads&) = delete;
  BlasThreads& operator=(const BlasThreads&) = delete;

 private:
  int previous_;
};

// OpenBLAS built for many processors (DYNAMIC_ARCH, as Debian's) picks its kernels from the
// processor's model number; a model newer than the release (Debian 12's 0.3.21 and an Intel Xeon of
// family 6, model 207) falls back to the generic SSE3 kernels ("Prescott"). The CPU path then ran
// 2.2 times slower here (docs/building.md). The vector level of a kernel set or a processor:
// 0 SSE, 1 AVX, 2 AVX2 with FMA, 3 AVX-512 (F, BW, DQ, VL).
int blas_core_vector_level(const std::string& core);
int processor_vector_level();
// The warning for OpenBLAS configuration `config` (openblas_get_config()) running kernel set
// `core` on a processor of vector level `processor_level`: empty where the kernels match the
// processor, or where OPENBLAS_CORETYPE could not change them (a build without DYNAMIC_ARCH);
// else one line naming the setting that does.
std::string blas_kernel_warning(const std::string& config, const std::string& core, int processor_level);
// The same for the OpenBLAS this process runs; empty where OPENBLAS_CORETYPE is set (a choice made
// by hand).
std::string blas_kernel_warning();

}  // namespace lrsmeta::linalg
