// The cuBLAS calls lrsmeta makes, on the CPU: NVIDIA's argument rules (sizes, op flags, leading
// dimensions and increments; CUBLAS_STATUS_INVALID_VALUE where the documentation says so), every
// device operand's span checked against its allocation, the computation by OpenBLAS. Pointer mode
// is cuBLAS's default, host: scalars and results are host memory, and a call returning a scalar
// waits for its stream.
#include <cblas.h>
#include <cublas_v2.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <set>
#include <string>

#include "cuda_emulation/state.hpp"

struct cublasContext {
  cudaStream_t stream = nullptr;
};

namespace {

namespace emu = lrsmeta::cuda_emulation::detail;

std::set<cublasContext*>& handles() {
  static auto* live = new std::set<cublasContext*>;  // never destroyed: handles may outlive other statics
  return *live;
}

// The start of every call: a due fault, then the handle. CUBLAS_STATUS_SUCCESS: go on.
cublasStatus_t begin(const char* call, cublasHandle_t handle) {
  if (emu::fault(call)) return CUBLAS_STATUS_EXECUTION_FAILED;
  if (!handles().count(handle)) {
    emu::report(std::string(call) + ": not a live cuBLAS handle");
    return CUBLAS_STATUS_NOT_INITIALIZED;
  }
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t invalid(const char* call, const std::string& why) {
  emu::report(std::string(call) + ": " + why + " (CUBLAS_STATUS_INVALID_VALUE)");
  return CUBLAS_STATUS_INVALID_VALUE;
}

bool valid_op(cublasOperation_t op) { return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C; }
bool valid_fill(cublasFillMode_t fill) { return fill == CUBLAS_FILL_MODE_LOWER || fill == CUBLAS_FILL_MODE_UPPER; }
CBLAS_TRANSPOSE cblas_op(cublasOperation_t op) { return op == CUBLAS_OP_N ? CblasNoTrans : CblasTrans; }

template <typename T>
bool device_matrix(const char* call, const char* what, const T* p, long long rows, long long cols, long long ld) {
  return emu::device_range(call, what, p, emu::matrix_span(rows, cols, ld) * sizeof(T));
}
template <typename T>
bool device_vector(const char* call, const char* what, const T* p, long long n, long long increment) {
  return emu::device_range(call, what, p, emu::vector_span(n, increment) * sizeof(T));
}

// A routine returning a scalar to the host: it returns once the result is there, after the work
// queued on its stream before it.
void wait_for(cublasHandle_t handle) {
  if (CUstream_st* s = emu::stream_of(handle->stream)) emu::synchronise(s);
}

template <typename T, typename Gemm>
cublasStatus_t gemm(const char* call, cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                    const T* alpha, const T* A, int lda, const T* B, int ldb, const T* beta, T* C, int ldc, Gemm blas) {
  std::lock_guard<std::recursive_mutex> guard(emu::lock());
  if (const cublasStatus_t s = begin(call, handle); s != CUBLAS_STATUS_SUCCESS) return s;
  if (!valid_op(ta) || !valid_op(tb)) return invalid(call, "an operation flag is not N, T or C");
  if (m < 0 || n < 0 || k < 0) return invalid(call, "m, n or k is negative");
  const int a_rows = ta == CUBLAS_OP_N ? m : k, a_cols = ta == CUBLAS_OP_N ? k : m;
  const int b_rows = tb == CUBLAS_OP_N ? k : n, b_cols = tb == CUBLAS_OP_N ? n : k;
  if (lda < std::max(1, a_rows)) return invalid(call, "lda = " + std::to_string(lda) + " < max(1, " + std::to_string(a_rows) + ")");
  if (ldb < std::max(1, b_rows)) return invalid(call, "ldb = " + std::to_string(ldb) + " < max(1, " + std::to_string(b_rows) + ")");
  if (ldc < std::max(1, m)) return invalid(call, "ldc = " + std::to_string(ldc) + " < max(1, " + std::to_string(m) + ")");
  if (!emu::host_pointer(call, "alpha", alpha) || !emu::host_pointer(call, "beta", beta)) return CUBLAS_STATUS_INVALID_VALUE;
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  const bool reads_ab = k > 0 && *alpha != T(0);
  if ((reads_ab && (!device_matrix(call, "A", A, a_rows, a_cols, lda) || !device_matrix(call, "B", B, b_rows, b_cols, ldb))) ||
      !device_matrix(call, "C", C, m, n, ldc))
    return CUBLAS_STATUS_INVALID_VALUE;
  blas(CblasColMajor, cblas_op(ta), cblas_op(tb), m, n, k, *alpha, A, lda, B, ldb, *beta, C, ldc);
  return CUBLAS_STATUS_SUCCESS;
}

// BLAS's reductions of one vector to a host result: n <= 0 or incx <= 0 gives 0.
template <typename Result, typename Reduce>
cublasStatus_t reduction(const char* call, cublasHandle_t handle, int n, const double* x, int incx, Result* result, Reduce reduce) {
  std::lock_guard<std::recursive_mutex> guard(emu::lock());
  if (const cublasStatus_t s = begin(call, handle); s != CUBLAS_STATUS_SUCCESS) return s;
  if (!emu::host_pointer(call, "the result", result)) return CUBLAS_STATUS_INVALID_VALUE;
  wait_for(handle);
  *result = Result(0);
  if (n <= 0 || incx <= 0) return CUBLAS_STATUS_SUCCESS;
  if (!device_vector(call, "x", x, n, incx)) return CUBLAS_STATUS_INVALID_VALUE;
  *result = reduce();
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

extern "C" {

cublasStatus_t cublasCreate_v2(cublasHandle_t* handle) {
  std::lock_guard<std::recursive_mutex> guard(emu::lock());
  if (emu::fault("cublasCreate_v2")) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
  *handle = new cublasContext;
  handles().insert(*handle);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
  std::lock_guard<std::recursive_mutex> guard(emu::lock());
  if (!handles().erase(handle)) return emu::report("cublasDestroy_v2: not a live cuBLAS handle"), CUBLAS_STATUS_NOT_INITIALIZED;
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> guard(emu::lock());
  if (const cublasStatus_t s = begin("cublasSetStream_v2", handle); s != CUBLAS_STATUS_SUCCESS) return s;
  if (!emu::stream_of(stream)) return invalid("cublasSetStream_v2", "not a live stream");
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}

const char* cublasGetStatusName(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    default: return "CUBLAS_STATUS_INTERNAL_ERROR";
  }
}

cublasStatus_t cublasDgemm_v2(cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                              const double* alpha, const double* A, int lda, const double* B, int ldb, const double* beta,
                              double* C, int ldc) {
  return gemm("cublasDgemm_v2", handle, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, cblas_dgemm);
}

cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                              const float* alpha, const float* A, int lda, const float* B, int ldb, const float* beta, float* C,
                              int ldc) {
  return gemm("cublasSgemm_v2", handle, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, cblas_sgemm);
}

cublasStatus_t cublasDgemv_v2(cublasHandle_t handle, cublasOperation_t trans, int m, int n, const double* alpha,
                              const double* A, int lda, const double* x, int incx, const double* beta, double* y, int incy) {
  constexpr const char* call = "cublasDgemv_v2";
  std::lock_guard<std::recursive_mutex> guard(emu::lock());
  if (const cublasStatus_t s = begin(call, handle); s != CUBLAS_STATUS_SUCCESS) return s;
  if (!valid_op(trans)) return invalid(call, "the operation flag is not N, T or C");
  if (m < 0 || n < 0) return invalid(call, "m or n is negative");
  if (lda < std::max(1, m)) return invalid(call, "lda = " + std::to_string(lda) + " < max(1, " + std::to_string(m) + ")");
  if (incx == 0 || incy == 0) return invalid(call, "an increment is 0");
  if (!emu::host_pointer(call, "alpha", alpha) || !emu::host_pointer(call, "beta", beta)) return CUBLAS_STATUS_INVALID_VALUE;
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  const int x_len = trans == CUBLAS_OP_N ? n : m, y_len = trans == CUBLAS_OP_N ? m : n;
  if (!device_matrix(call, "A", A, m, n, lda) || !device_vector(call, "x", x, x_len, incx) || !device_vector(call, "y", y, y_len, incy))
    return CUBLAS_STATUS_INVALID_VALUE;
  cblas_dgemv(CblasColMajor, cblas_op(trans), m, n, *alpha, A, lda, x, incx, *beta, y, incy);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDsyrk_v2(cublasHandle_t handle, cublasFillMode_t uplo, cublasOperation_t trans, int n, int k,
                              const double* alpha, const double* A, int lda, const double* beta, double* C, int ldc) {
  constexpr const char* call = "cublasDsyrk_v2";
  std::lock_guard<std::recursive_mutex> guard(emu::lock());
  if (const cublasStatus_t s = begin(call, handle); s != CUBLAS_STATUS_SUCCESS) return s;
  if (!valid_fill(uplo)) return invalid(call, "the fill mode is neither lower nor upper");
  if (trans != CUBLAS_OP_N && trans != CUBLAS_OP_T) return invalid(call, "the operation flag is not N or T");
  if (n < 0 || k < 0) return invalid(call, "n or k is negative");
  const int a_rows = trans == CUBLAS_OP_N ? n : k, a_cols = trans == CUBLAS_OP_N ? k : n;
  if (lda < std::max(1, a_rows)) return invalid(call, "lda = " + std::to_string(lda) + " < max(1, " + std::to_string(a_rows) + ")");
  if (ldc < std::max(1, n)) return invalid(call, "ldc = " + std::to_string(ldc) + " < max(1, " + std::to_string(n) + ")");
  if (!emu::host_pointer(call, "alpha", alpha) || !emu::host_pointer(call, "beta", beta)) return CUBLAS_STATUS_INVALID_VALUE;
  if (n == 0) return CUBLAS_STATUS_SUCCESS;
  if ((k > 0 && !device_matrix(call, "A", A, a_rows, a_cols, lda)) || !device_matrix(call, "C", C, n, n, ldc))
    return CUBLAS_STATUS_INVALID_VALUE;
  // Only the `uplo` triangle of C is written; the other keeps whatever it held.
  cblas_dsyrk(CblasColMajor, uplo == CUBLAS_FILL_MODE_UPPER ? CblasUpper : CblasLower, cblas_op(trans), n, k, *alpha, A, lda, *beta,
              C, ldc);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDaxpy_v2(cublasHandle_t handle, int n, const double* alpha, const double* x, int incx, double* y, int incy) {
  constexpr const char* call = "cublasDaxpy_v2";
  std::lock_guard<std::recursive_mutex> guard(emu::lock());
  if (const cublasStatus_t s = begin(call, handle); s != CUBLAS_STATUS_SUCCESS) return s;
  if (!emu::host_pointer(call, "alpha", alpha)) return CUBLAS_STATUS_INVALID_VALUE;
  if (n <= 0) return CUBLAS_STATUS_SUCCESS;
  if (!device_vector(call, "x", x, n, incx) || !device_vector(call, "y", y, n, incy)) return CUBLAS_STATUS_INVALID_VALUE;
  cblas_daxpy(n, *alpha, x, incx, y, incy);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDdot_v2(cublasHandle_t handle, int n, const double* x, int incx, const double* y, int incy, double* result) {
  constexpr const char* call = "cublasDdot_v2";
  std::lock_guard<std::recursive_mutex> guard(emu::lock());
  if (const cublasStatus_t s = begin(call, handle); s != CUBLAS_STATUS_SUCCESS) return s;
  if (!emu::host_pointer(call, "the result", result)) return CUBLAS_STATUS_INVALID_VALUE;
  wait_for(handle);
  *result = 0.0;
  if (n <= 0) return CUBLAS_STATUS_SUCCESS;
  if (!device_vector(call, "x", x, n, incx) || !device_vector(call, "y", y, n, incy)) return CUBLAS_STATUS_INVALID_VALUE;
  *result = cblas_ddot(n, x, incx, y, incy);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDnrm2_v2(cublasHandle_t handle, int n, const double* x, int incx, double* result) {
  return reduction("cublasDnrm2_v2", handle, n, x, incx, result, [&] { return cblas_dnrm2(n, x, incx); });
}

cublasStatus_t cublasDasum_v2(cublasHandle_t handle, int n, const double* x, int incx, double* result) {
  return reduction("cublasDasum_v2", handle, n, x, incx, result, [&] { return cblas_dasum(n, x, incx); });
}

// 1-based, the first of equal magnitudes.
cublasStatus_t cublasIdamax_v2(cublasHandle_t handle, int n, const double* x, int incx, int* result) {
  return reduction("cublasIdamax_v2", handle, n, x, incx, result, [&] {
    double best = -1.0;
    int index = 0;
    for (int i = 0; i < n; ++i) {
      const double magnitude = std::fabs(x[static_cast<long long>(i) * incx]);
      if (magnitude > best) {
        best = magnitude;
        index = i + 1;
      }
    }
    return index;
  });
}

}  // extern "C"
