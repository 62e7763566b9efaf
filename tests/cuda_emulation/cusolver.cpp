// The cuSOLVER (dense) calls lrsmeta makes, on the CPU: NVIDIA's argument rules
// (CUSOLVER_STATUS_INVALID_VALUE), workspace sizes from the *_bufferSize queries that the
// factorisations then require, devInfo written to device memory, the computation by LAPACK.
#include <cusolverDn.h>

#include <algorithm>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "cuda_emulation/state.hpp"

extern "C" {
void dpotrf_(const char* uplo, const int* n, double* A, const int* lda, int* info, std::size_t uplo_len);
void dpotrs_(const char* uplo, const int* n, const int* nrhs, const double* A, const int* lda, double* B, const int* ldb, int* info,
             std::size_t uplo_len);
void dgeqrf_(const int* m, const int* n, double* A, const int* lda, double* tau, double* work, const int* lwork, int* info);
void dorgqr_(const int* m, const int* n, const int* k, double* A, const int* lda, const double* tau, double* work, const int* lwork,
             int* info);
}

struct cusolverDnContext {
  cudaStream_t stream = nullptr;
};

namespace {

namespace emu = lrsmeta::cuda_emulation::detail;

std::set<cusolverDnContext*>& handles() {
  static auto* live = new std::set<cusolverDnContext*>;  // never destroyed: handles may outlive other statics
  return *live;
}

cusolverStatus_t begin(const char* call, cusolverDnHandle_t handle) {
  if (emu::fault(call)) return CUSOLVER_STATUS_EXECUTION_FAILED;
  if (!handles().count(handle)) {
    emu::report(std::string(call) + ": not a live cuSOLVER handle");
    return CUSOLVER_STATUS_NOT_INITIALIZED;
  }
  return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t invalid(const char* call, const std::string& why) {
  emu::report(std::string(call) + ": " + why + " (CUSOLVER_STATUS_INVALID_VALUE)");
  return CUSOLVER_STATUS_INVALID_VALUE;
}

bool device_doubles(const char* call, const char* what, const double* p, std::size_t count) {
  return emu::device_range(call, what, p, count * sizeof(double));
}

// Workspaces (in doubles): Cholesky's a fixed panel; QR's what LAPACK asks for.
int potrf_workspace(int n) { return std::max(1, 32 * n); }
int qr_workspace(int m, int n, int k, bool orgqr) {
  int lwork = -1, info = 0, lda = std::max(1, m);
  double query = 0.0;
  if (orgqr)
    dorgqr_(&m, &n, &k, nullptr, &lda, nullptr, &query, &lwork, &info);
  else
    dgeqrf_(&m, &n, nullptr, &lda, nullptr, &query, &lwork, &info);
  return std::max(1, static_cast<int>(query));
}

cusolverStatus_t check_workspace(const char* call, const double* work, int lwork, int needed) {
  if (lwork < needed)
    return invalid(call, "Lwork = " + std::to_string(lwork) + " is less than the " + std::to_string(needed) + " its bufferSize query returned");
  if (!device_doubles(call, "the workspace", work, static_cast<std::size_t>(lwork))) return CUSOLVER_STATUS_INVALID_VALUE;
  return CUSOLVER_STATUS_SUCCESS;
}

bool valid_fill(cublasFillMode_t fill) { return fill == CUBLAS_FILL_MODE_LOWER || fill == CUBLAS_FILL_MODE_UPPER; }

}  // namespace

extern "C" {

cusolverStatus_t cusolverDnCreate(cusolverDnHandle_t* handle) {
  std::lock_guard<std::recursive_mutex> guard(emu::lock());
  if (emu::fault("cusolverDnCreate")) return CUSOLVER_STATUS_NOT_INITIALIZED;
  if (!handle) return CUSOLVER_STATUS_INVALID_VALUE;
  *handle = new cusolverDnContext;
  handles().insert(*handle);
  return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t cusolverDnDestroy(cusolverDnHandle_t handle) {
  std::lock_guard<std::recursive_mutex> guard(emu::lock());
  if (!handles().erase(handle)) return emu::report("cusolverDnDestroy: not a live cuSOLVER handle"), CUSOLVER_STATUS_NOT_INITIALIZED;
  delete handle;
  return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t cusolverDnSetStream(cusolverDnHandle_t handle, cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> guard(emu::lock());
  if (const cusolverStatus_t s = begin("cusolverDnSetStream", handle); s != CUSOLVER_STATUS_SUCCESS) return s;
  if (!emu::stream_of(stream)) return invalid("cusolverDnSetStream", "not a live stream");
  handle->stream = stream;
  return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t cusolverDnDpotrf_bufferSize(cusolverDnHandle_t handle, cublasFillMode_t uplo, int n, double* A, int lda, int* Lwork) {
  constexpr const char* call = "cusolverDnDpotrf_bufferSize";
  std::lock_guard<std::recursive_mutex> guard(emu::lock());
  if (const cusolverStatus_t s = begin(call, handle); s != CUSOLVER_STATUS_SUCCESS) return s;
  if (!valid_fill(uplo) || n < 0 || lda < std::max(1, n)) return invalid(call, "uplo, n < 0 or lda < max(1, n)");
  if (!emu::host_pointer(call, "Lwork", Lwork)) return CUSOLVER_STATUS_INVALID_VALUE;
  (void)A;
  *Lwork = potrf_workspace(n);
  return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t cusolverDnDpotrf(cusolverDnHandle_t handle, cublasFillMode_t uplo, int n, double* A, int lda, double* Workspace,
                                  int Lwork, int* devInfo) {
  constexpr const char* call = "cusolverDnDpotrf";
  std::lock_guard<std::recursive_mutex> guard(emu::lock());
  if (const cusolverStatus_t s = begin(call, handle); s != CUSOLVER_STATUS_SUCCESS) return s;
  if (!valid_fill(uplo) || n < 0 || lda < std::max(1, n)) return invalid(call, "uplo, n < 0 or lda < max(1, n)");
  if (const cusolverStatus_t s = check_workspace(call, Workspace, Lwork, potrf_workspace(n)); s != CUSOLVER_STATUS_SUCCESS) return s;
  if (!device_doubles(call, "A", A, emu::matrix_span(n, n, lda)) || !emu::device_range(call, "devInfo", devInfo, sizeof(int)))
    return CUSOLVER_STATUS_INVALID_VALUE;
  int info = 0;
  const char fill = uplo == CUBLAS_FILL_MODE_LOWER ? 'L' : 'U';
  if (n > 0) dpotrf_(&fill, &n, A, &lda, &info, 1);
  *devInfo = info;
  return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t cusolverDnDpotrs(cusolverDnHandle_t handle, cublasFillMode_t uplo, int n, int nrhs, const double* A, int lda,
                                  double* B, int ldb, int* devInfo) {
  constexpr const char* call = "cusolverDnDpotrs";
  std::lock_guard<std::recursive_mutex> guard(emu::lock());
  if (const cusolverStatus_t s = begin(call, handle); s != CUSOLVER_STATUS_SUCCESS) return s;
  if (!valid_fill(uplo) || n < 0 || nrhs < 0 || lda < std::max(1, n) || ldb < std::max(1, n))
    return invalid(call, "uplo, n < 0, nrhs < 0, lda < max(1, n) or ldb < max(1, n)");
  if (!device_doubles(call, "A", A, emu::matrix_span(n, n, lda)) || !device_doubles(call, "B", B, emu::matrix_span(n, nrhs, ldb)) ||
      !emu::device_range(call, "devInfo", devInfo, sizeof(int)))
    return CUSOLVER_STATUS_INVALID_VALUE;
  int info = 0;
  const char fill = uplo == CUBLAS_FILL_MODE_LOWER ? 'L' : 'U';
  if (n > 0 && nrhs > 0) dpotrs_(&fill, &n, &nrhs, A, &lda, B, &ldb, &info, 1);
  *devInfo = info;
  return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t cusolverDnDgeqrf_bufferSize(cusolverDnHandle_t handle, int m, int n, double* A, int lda, int* lwork) {
  constexpr const char* call = "cusolverDnDgeqrf_bufferSize";
  std::lock_guard<std::recursive_mutex> guard(emu::lock());
  if (const cusolverStatus_t s = begin(call, handle); s != CUSOLVER_STATUS_SUCCESS) return s;
  if (m < 0 || n < 0 || lda < std::max(1, m)) return invalid(call, "m < 0, n < 0 or lda < max(1, m)");
  if (!emu::host_pointer(call, "lwork", lwork)) return CUSOLVER_STATUS_INVALID_VALUE;
  (void)A;
  *lwork = qr_workspace(m, n, 0, false);
  return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t cusolverDnDgeqrf(cusolverDnHandle_t handle, int m, int n, double* A, int lda, double* TAU, double* Workspace,
                                  int Lwork, int* devInfo) {
  constexpr const char* call = "cusolverDnDgeqrf";
  std::lock_guard<std::recursive_mutex> guard(emu::lock());
  if (const cusolverStatus_t s = begin(call, handle); s != CUSOLVER_STATUS_SUCCESS) return s;
  if (m < 0 || n < 0 || lda < std::max(1, m)) return invalid(call, "m < 0, n < 0 or lda < max(1, m)");
  if (const cusolverStatus_t s = check_workspace(call, Workspace, Lwork, qr_workspace(m, n, 0, false)); s != CUSOLVER_STATUS_SUCCESS)
    return s;
  if (!device_doubles(call, "A", A, emu::matrix_span(m, n, lda)) ||
      !device_doubles(call, "TAU", TAU, static_cast<std::size_t>(std::min(m, n))) ||
      !emu::device_range(call, "devInfo", devInfo, sizeof(int)))
    return CUSOLVER_STATUS_INVALID_VALUE;
  int info = 0;
  if (m > 0 && n > 0) dgeqrf_(&m, &n, A, &lda, TAU, Workspace, &Lwork, &info);
  *devInfo = info;
  return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t cusolverDnDorgqr_bufferSize(cusolverDnHandle_t handle, int m, int n, int k, const double* A, int lda,
                                             const double* tau, int* lwork) {
  constexpr const char* call = "cusolverDnDorgqr_bufferSize";
  std::lock_guard<std::recursive_mutex> guard(emu::lock());
  if (const cusolverStatus_t s = begin(call, handle); s != CUSOLVER_STATUS_SUCCESS) return s;
  if (m < 0 || n < 0 || n > m || k < 0 || k > n || lda < std::max(1, m))
    return invalid(call, "not m >= n >= k >= 0, or lda < max(1, m)");
  if (!emu::host_pointer(call, "lwork", lwork)) return CUSOLVER_STATUS_INVALID_VALUE;
  (void)A;
  (void)tau;
  *lwork = qr_workspace(m, n, k, true);
  return CUSOLVER_STATUS_SUCCESS;
}

cusolverStatus_t cusolverDnDorgqr(cusolverDnHandle_t handle, int m, int n, int k, double* A, int lda, const double* tau, double* work,
                                  int lwork, int* info) {
  constexpr const char* call = "cusolverDnDorgqr";
  std::lock_guard<std::recursive_mutex> guard(emu::lock());
  if (const cusolverStatus_t s = begin(call, handle); s != CUSOLVER_STATUS_SUCCESS) return s;
  if (m < 0 || n < 0 || n > m || k < 0 || k > n || lda < std::max(1, m))
    return invalid(call, "not m >= n >= k >= 0, or lda < max(1, m)");
  if (const cusolverStatus_t s = check_workspace(call, work, lwork, qr_workspace(m, n, k, true)); s != CUSOLVER_STATUS_SUCCESS)
    return s;
  if (!device_doubles(call, "A", A, emu::matrix_span(m, n, lda)) || !device_doubles(call, "tau", tau, static_cast<std::size_t>(k)) ||
      !emu::device_range(call, "info", info, sizeof(int)))
    return CUSOLVER_STATUS_INVALID_VALUE;
  int result = 0;
  if (n > 0) dorgqr_(&m, &n, &k, A, &lda, tau, work, &lwork, &result);
  *info = result;
  return CUSOLVER_STATUS_SUCCESS;
}

}  // extern "C"
