// Kernels of the U step: packing each task's w w^T and X_i^T X_i for the chunked GEMM that forms G,
// the right-hand side pieces, unpacking G, cg's pass (each task's X_i^T X_i M w_i), the data's rows
// in double for its moments, and small helpers. The GEMMs and solves are cuBLAS and
// cuSOLVER calls made by the host side (host/cuda/cuda_backend.cpp).
// Without a GPU the kernels also compile as plain C++ and run on CPU fibers
// (tests/cuda_emulation/kernel_runtime.hpp): alone in tests/test_kernel_emulation.cpp
// (LRSMETA_EMULATE_KERNELS leaves out the launchers), and whole in the emulated CUDA build.
#ifndef LRSMETA_KERNELS_ON_CPU  // else tests/cuda_emulation/kernel_runtime.hpp defines these
#include <cuda_runtime.h>
#define LRSMETA_DYNAMIC_SHARED(name) extern __shared__ __align__(16) unsigned char name[]
#define LRSMETA_LAUNCH(kernel, grid, block, shared_bytes, stream) kernel<<<grid, block, shared_bytes, stream>>>
#endif

#include "cuda/cuda_utils.hpp"  // checked calls
#include "kernels/device_kernels.hpp"

namespace lrsmeta::kernels {
namespace {

constexpr int kThreadsPerBlock = 256;

// One block per task of the chunk. Under bounds, a task's rows are read through a per-row scale
// (row norm clipped to clip_x) and only its first max_samples rows count. With V (the prior's
// posterior covariances, t x r x r) the packing is for the joint [beta, U] system: w' = (1, w) and
// E[w' w'^T] = w' w'^T + blockdiag(0, V_i), so Wp and Wc have r + 1 columns.
template <typename T>
__global__ void pack_chunk_kernel(const T* X, const T* y, const std::int64_t* offsets, std::int64_t first, int d, int r_own,
                                  int k_slots, const double* W, const std::int32_t* B_index, const double* B_value,
                                  Bounds bounds, T* Wp, T* Sp, double* Q, double* Wc, const double* V = nullptr,
                                  double* Wm = nullptr) {
  LRSMETA_DYNAMIC_SHARED(shared_raw);
  const int l = blockIdx.x;
  const std::int64_t i = first + l;
  const std::int64_t row0 = offsets[i];
  int m = static_cast<int>(offsets[i + 1] - row0);
  if (bounds.enabled && m > bounds.max_samples) m = bounds.max_samples;
  // Shared: per-row scales (m), residuals (m), w (r), and one scalar.
  double* scale = reinterpret_cast<double*>(shared_raw);
  double* resid = scale + m;
  double* w = resid + m;
  const T* Xi = X + row0 * d;
  for (int j = threadIdx.x; j < m; j += blockDim.x) {
    double s = 1.0;
    if (bounds.enabled) {
      double n2 = 0;
      for (int c = 0; c < d; ++c) n2 += static_cast<double>(Xi[j * d + c]) * static_cast<double>(Xi[j * d + c]);
      const double norm = sqrt(n2);
      s = norm > bounds.clip_x ? bounds.clip_x / norm : 1.0;
    }
    scale[j] = s;
    double e = static_cast<double>(y[row0 + j]);
    for (int q = 0; q < k_slots; ++q) {
      const int idx = B_index[i * k_slots + q];
      if (idx >= 0) e -= s * static_cast<double>(Xi[j * d + idx]) * B_value[i * k_slots + q];
    }
    if (bounds.enabled) e = fmin(fmax(e, -bounds.clip_y), bounds.clip_y);
    resid[j] = e;
  }
  const int r = V ? r_own + 1 : r_own;  // columns of the packing
  if (threadIdx.x == 0) {
    double n2 = 0;
    for (int p = 0; p < r_own; ++p) n2 += W[i * r_own + p] * W[i * r_own + p];
    const double norm = sqrt(n2);
    const double ws = bounds.enabled && norm > bounds.clip_w ? bounds.clip_w / norm : 1.0;
    const int shift = V ? 1 : 0;
    if (V) w[0] = 1.0;
    for (int p = 0; p < r_own; ++p) w[p + shift] = W[i * r_own + p] * ws;
  }
  __syncthreads();
  for (int p = threadIdx.x; p < r; p += blockDim.x) Wc[static_cast<std::int64_t>(l) * r + p] = w[p];
  if (Wm)
    for (int p = threadIdx.x; p < r; p += blockDim.x) Wm[static_cast<std::int64_t>(l) * r + p] = m * w[p];
  const int P = Wp ? r * (r + 1) / 2 : 0;
  for (int e = threadIdx.x; e < P; e += blockDim.x) {
    int p = 0, rem = e;
    while (rem >= r - p) {
      rem -= r - p;
      ++p;
    }
    const int q = p + rem;
    const double covariance = V && p > 0 ? V[(i * r_own + (p - 1)) * r_own + (q - 1)] : 0.0;
    Wp[static_cast<std::int64_t>(l) * P + e] = static_cast<T>(w[p] * w[q] + covariance);
  }
  // Packed upper triangle of X_i^T X_i: entry (a, b), a <= b, at a d - a (a - 1) / 2 + (b - a).
  const std::int64_t Qn = Sp ? static_cast<std::int64_t>(d) * (d + 1) / 2 : 0;
  for (std::int64_t e = threadIdx.x; e < Qn; e += blockDim.x) {
    int a = 0;
    std::int64_t rem = e;
    while (rem >= d - a) {
      rem -= d - a;
      ++a;
    }
    const int b = a + static_cast<int>(rem);
    double s = 0;
    for (int j = 0; j < m; ++j)
      s += scale[j] * scale[j] * static_cast<double>(Xi[j * d + a]) * static_cast<double>(Xi[j * d + b]);
    Sp[static_cast<std::int64_t>(l) * Qn + e] = static_cast<T>(s);
  }
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    double s = 0;
    for (int j = 0; j < m; ++j) s += scale[j] * static_cast<double>(Xi[j * d + c]) * resid[j];
    Q[static_cast<std::int64_t>(l) * d + c] = s;
  }
}

// cg's pass (no prior: E_i = w_i w_i^T), one block per task of the chunk: g_l = X_i^T X_i (M w_i)
// with M the d x r column-major iterate. M w_i goes to Mw's row l, then the task's rows are read in
// tiles of blockDim rows: each thread takes one row's u_j = x_j . M w_i (into shared memory), then
// each thread adds sum_j u_j x_j over the tile to the entries of g_l it owns. The host sums
// g_l w_i^T over the tasks with one GEMM per chunk. Shared memory: blockDim doubles.
template <typename T>
__global__ void normal_operator_kernel(const T* X, const std::int64_t* offsets, std::int64_t first, int d, int r,
                                       const double* W, const double* M, double* Mw, double* g) {
  LRSMETA_DYNAMIC_SHARED(shared_raw);
  double* u = reinterpret_cast<double*>(shared_raw);
  const int l = blockIdx.x;
  const std::int64_t i = first + l;
  const std::int64_t row0 = offsets[i];
  const int m = static_cast<int>(offsets[i + 1] - row0);
  const T* Xi = X + row0 * d;
  const double* w = W + i * r;
  double* mw = Mw + static_cast<std::int64_t>(l) * d;
  double* gl = g + static_cast<std::int64_t>(l) * d;
  for (int a = threadIdx.x; a < d; a += blockDim.x) {
    double s = 0;
    for (int p = 0; p < r; ++p) s += M[a + static_cast<std::int64_t>(d) * p] * w[p];
    mw[a] = s;
    gl[a] = 0.0;
  }
  __syncthreads();
  for (int j0 = 0; j0 < m; j0 += blockDim.x) {
    const int tile = m - j0 < static_cast<int>(blockDim.x) ? m - j0 : static_cast<int>(blockDim.x);
    if (static_cast<int>(threadIdx.x) < tile) {
      const T* x = Xi + static_cast<std::int64_t>(j0 + threadIdx.x) * d;
      double s = 0;
      for (int a = 0; a < d; ++a) s += static_cast<double>(x[a]) * mw[a];
      u[threadIdx.x] = s;
    }
    __syncthreads();
    for (int a = threadIdx.x; a < d; a += blockDim.x) {
      double s = 0;
      for (int jj = 0; jj < tile; ++jj) s += u[jj] * static_cast<double>(Xi[static_cast<std::int64_t>(j0 + jj) * d + a]);
      gl[a] += s;
    }
    __syncthreads();
  }
}

// cg's pass under the prior, one block per task of the chunk: out_l (d x r', column-major, r' = r +
// 1) = X_i^T X_i M E_i, with M the d x r' column-major iterate ([beta, U~]) and E_i = E[w' w'^T] =
// w' w'^T + blockdiag(0, V_i), w' = (1, w_i). E_i goes to shared memory; the task's rows are read in
// tiles of `tile` rows (tile <= blockDim): one thread a row takes u_j = M^T x_j and z_j = E_i u_j,
// then each thread adds sum_j x_j z_j^T over the tile to the entries of out_l it owns. The host sums
// out_l over the tasks with one GEMV a chunk. Shared memory: r'^2 + 2 tile r' doubles.
template <typename T>
__global__ void prior_normal_operator_kernel(const T* X, const std::int64_t* offsets, std::int64_t first, int d, int r_own,
                                             int tile, const double* W, const double* V, const double* M, double* out) {
  LRSMETA_DYNAMIC_SHARED(shared_raw);
  const int r = r_own + 1;
  double* E = reinterpret_cast<double*>(shared_raw);  // r' x r', row-major
  double* u = E + r * r;                              // tile x r'
  double* z = u + tile * r;                           // tile x r'
  const int l = blockIdx.x;
  const std::int64_t i = first + l;
  const std::int64_t row0 = offsets[i];
  const int m = static_cast<int>(offsets[i + 1] - row0);
  const T* Xi = X + row0 * d;
  const double* w = W + i * r_own;
  const double* Vi = V + i * r_own * r_own;
  for (int e = threadIdx.x; e < r * r; e += blockDim.x) {
    const int p = e / r, c = e % r;
    const double wp = p == 0 ? 1.0 : w[p - 1], wc = c == 0 ? 1.0 : w[c - 1];
    E[e] = wp * wc + (p > 0 && c > 0 ? Vi[(p - 1) * r_own + (c - 1)] : 0.0);
  }
  const std::int64_t size = static_cast<std::int64_t>(d) * r;
  double* o = out + l * size;
  for (std::int64_t e = threadIdx.x; e < size; e += blockDim.x) o[e] = 0.0;
  __syncthreads();
  for (int j0 = 0; j0 < m; j0 += tile) {
    const int rows = m - j0 < tile ? m - j0 : tile;
    if (static_cast<int>(threadIdx.x) < rows) {
      const T* x = Xi + static_cast<std::int64_t>(j0 + threadIdx.x) * d;
      double* uj = u + threadIdx.x * r;
      double* zj = z + threadIdx.x * r;
      for (int p = 0; p < r; ++p) {
        double s = 0;
        for (int a = 0; a < d; ++a) s += static_cast<double>(x[a]) * M[a + static_cast<std::int64_t>(d) * p];
        uj[p] = s;
      }
      for (int c = 0; c < r; ++c) {
        double s = 0;
        for (int p = 0; p < r; ++p) s += uj[p] * E[p * r + c];
        zj[c] = s;
      }
    }
    __syncthreads();
    for (std::int64_t e = threadIdx.x; e < size; e += blockDim.x) {
      const int a = static_cast<int>(e % d), c = static_cast<int>(e / d);
      double s = 0;
      for (int jj = 0; jj < rows; ++jj) s += z[jj * r + c] * static_cast<double>(Xi[static_cast<std::int64_t>(j0 + jj) * d + a]);
      o[e] += s;
    }
    __syncthreads();
  }
}

// Rows first_row .. first_row + count - 1 of X and y in double (the data's moments: X^T X, X^T y).
template <typename T>
__global__ void rows_as_double_kernel(const T* X, const T* y, std::int64_t first_row, std::int64_t count, int d, double* rows,
                                      double* y_rows) {
  const std::int64_t j = blockIdx.x;
  if (j >= count) return;
  const T* x = X + (first_row + j) * d;
  for (int c = threadIdx.x; c < d; c += blockDim.x) rows[j * d + c] = static_cast<double>(x[c]);
  if (threadIdx.x == 0) y_rows[j] = static_cast<double>(y[first_row + j]);
}

__global__ void add_float_to_double_kernel(const float* chunk, double* M, std::size_t count) {
  for (std::size_t e = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; e < count;
       e += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    M[e] += static_cast<double>(chunk[e]);
}

// One thread per entry of M (row pq, column ab): writes the four mirrored entries of G.
__global__ void unpack_gram_kernel(const double* M, int d, int r, double* G) {
  const std::int64_t Qn = static_cast<std::int64_t>(d) * (d + 1) / 2;
  const std::int64_t P = static_cast<std::int64_t>(r) * (r + 1) / 2;
  const std::int64_t dr = static_cast<std::int64_t>(d) * r;
  for (std::int64_t e = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; e < P * Qn;
       e += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t pq = e / Qn, ab = e % Qn;
    int p = 0;
    std::int64_t rem = pq;
    while (rem >= r - p) {
      rem -= r - p;
      ++p;
    }
    const int qq = p + static_cast<int>(rem);
    int a = 0;
    std::int64_t rem2 = ab;
    while (rem2 >= d - a) {
      rem2 -= d - a;
      ++a;
    }
    const int b = a + static_cast<int>(rem2);
    const double value = M[e];
    const std::int64_t rows[2] = {a + static_cast<std::int64_t>(d) * p, b + static_cast<std::int64_t>(d) * p};
    const std::int64_t cols[2] = {b + static_cast<std::int64_t>(d) * qq, a + static_cast<std::int64_t>(d) * qq};
    for (int s = 0; s < 2; ++s) {
      G[rows[s] + dr * cols[s]] = value;
      G[cols[s] + dr * rows[s]] = value;
    }
  }
}

__global__ void add_diagonal_kernel(double* G, int n, double shift) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) G[static_cast<std::size_t>(i) * n + i] += shift;
}

template <typename T>
__global__ void store_U_kernel(const double* U_colmajor, int d, int r, T* U_data) {
  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e < d * r) {
    const int a = e / r, p = e % r;
    U_data[e] = static_cast<T>(U_colmajor[a + static_cast<std::size_t>(d) * p]);
  }
}

template <typename T>
__global__ void scaled_rows_kernel(const T* X, const T* y, const std::int64_t* offsets, std::int64_t t,
                                   std::int64_t first_row, std::int64_t count, int d, Bounds bounds, double* rows) {
  const std::int64_t j = blockIdx.x;
  if (j >= count) return;
  const std::int64_t row = first_row + j;
  const T* x = X + row * d;
  __shared__ double factor;
  if (threadIdx.x == 0) {
    double yv = static_cast<double>(y[row]);
    double s = 1.0;
    if (bounds.enabled) {
      // The row's task: the last offset <= row (binary search).
      std::int64_t lo = 0, hi = t;
      while (hi - lo > 1) {
        const std::int64_t mid = (lo + hi) / 2;
        if (offsets[mid] <= row) lo = mid;
        else hi = mid;
      }
      double n2 = 0;
      for (int c = 0; c < d; ++c) n2 += static_cast<double>(x[c]) * static_cast<double>(x[c]);
      const double norm = sqrt(n2);
      s = norm > bounds.clip_x ? bounds.clip_x / norm : 1.0;
      yv = fmin(fmax(yv, -bounds.clip_y), bounds.clip_y);
      if (row - offsets[lo] >= bounds.max_samples) s = 0.0;
    }
    factor = fabs(yv) * s;
  }
  __syncthreads();
  for (int c = threadIdx.x; c < d; c += blockDim.x) rows[j * d + c] = factor * static_cast<double>(x[c]);
}

}  // namespace

#ifndef LRSMETA_EMULATE_KERNELS
template <typename T>
void launch_pack_chunk(const T* X, const T* y, const std::int64_t* offsets, std::int64_t first, std::int64_t count, int d,
                       int r, int k_slots, const double* W, const std::int32_t* B_index, const double* B_value,
                       Bounds bounds, T* Wp, T* Sp, double* Q, double* Wc, int max_rows, cudaStream_t stream,
                       const double* V, double* Wm) {
  if (count == 0) return;
  const std::size_t bytes = (2 * static_cast<std::size_t>(max_rows) + r + 2) * sizeof(double);
  auto* const kernel = &pack_chunk_kernel<T>;  // one specialisation, for the typed overload
  LRSMETA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  LRSMETA_LAUNCH(pack_chunk_kernel<T>, static_cast<unsigned>(count), kThreadsPerBlock, bytes, stream)(X, y, offsets, first, d, r, k_slots, W,
                                                                                 B_index, B_value, bounds, Wp, Sp, Q, Wc, V, Wm);
  cuda::check_launch("pack_chunk_kernel", __FILE__, __LINE__);
}
template void launch_pack_chunk<float>(const float*, const float*, const std::int64_t*, std::int64_t, std::int64_t, int,
                                       int, int, const double*, const std::int32_t*, const double*, Bounds, float*,
                                       float*, double*, double*, int, cudaStream_t, const double*, double*);
template void launch_pack_chunk<double>(const double*, const double*, const std::int64_t*, std::int64_t, std::int64_t,
                                        int, int, int, const double*, const std::int32_t*, const double*, Bounds,
                                        double*, double*, double*, double*, int, cudaStream_t, const double*, double*);

template <typename T>
void launch_normal_operator(const T* X, const std::int64_t* offsets, std::int64_t first, std::int64_t count, int d, int r,
                            const double* W, const double* M, double* Mw, double* g, cudaStream_t stream) {
  if (count == 0) return;
  constexpr int kThreads = 128;
  LRSMETA_LAUNCH(normal_operator_kernel<T>, static_cast<unsigned>(count), kThreads, kThreads * sizeof(double), stream)(X, offsets, first, d, r,
                                                                                                     W, M, Mw, g);
  cuda::check_launch("normal_operator_kernel", __FILE__, __LINE__);
}
template void launch_normal_operator<float>(const float*, const std::int64_t*, std::int64_t, std::int64_t, int, int,
                                            const double*, const double*, double*, double*, cudaStream_t);
template void launch_normal_operator<double>(const double*, const std::int64_t*, std::int64_t, std::int64_t, int, int,
                                             const double*, const double*, double*, double*, cudaStream_t);

std::size_t prior_normal_operator_shared_bytes(int r, int* tile) {
  const std::size_t rj = static_cast<std::size_t>(r) + 1;
  int rows = kPriorOperatorThreads;
  while (rows > 1 && (rj * rj + 2 * rows * rj) * sizeof(double) > kPriorOperatorSharedLimit) rows /= 2;
  if (tile) *tile = rows;
  const std::size_t bytes = (rj * rj + 2 * rows * rj) * sizeof(double);
  return bytes > kPriorOperatorSharedLimit ? 0 : bytes;
}

template <typename T>
void launch_prior_normal_operator(const T* X, const std::int64_t* offsets, std::int64_t first, std::int64_t count, int d, int r,
                                  const double* W, const double* V, const double* M, double* out, cudaStream_t stream) {
  if (count == 0) return;
  int tile = 0;
  const std::size_t bytes = prior_normal_operator_shared_bytes(r, &tile);
  if (bytes == 0)
    throw Error("CUDA backend: cg's U step under the prior takes r up to about 75 on the GPU (r = " + std::to_string(r) +
                "); use --u-solver direct, or --device cpu");
  auto* const kernel = &prior_normal_operator_kernel<T>;
  LRSMETA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  LRSMETA_LAUNCH(prior_normal_operator_kernel<T>, static_cast<unsigned>(count), kPriorOperatorThreads, bytes, stream)(
      X, offsets, first, d, r, tile, W, V, M, out);
  cuda::check_launch("prior_normal_operator_kernel", __FILE__, __LINE__);
}
template void launch_prior_normal_operator<float>(const float*, const std::int64_t*, std::int64_t, std::int64_t, int, int,
                                                  const double*, const double*, const double*, double*, cudaStream_t);
template void launch_prior_normal_operator<double>(const double*, const std::int64_t*, std::int64_t, std::int64_t, int, int,
                                                   const double*, const double*, const double*, double*, cudaStream_t);

template <typename T>
void launch_rows_as_double(const T* X, const T* y, std::int64_t first_row, std::int64_t count, int d, double* rows,
                           double* y_rows, cudaStream_t stream) {
  if (count == 0) return;
  LRSMETA_LAUNCH(rows_as_double_kernel<T>, static_cast<unsigned>(count), 128, 0, stream)(X, y, first_row, count, d, rows, y_rows);
  cuda::check_launch("rows_as_double_kernel", __FILE__, __LINE__);
}
template void launch_rows_as_double<float>(const float*, const float*, std::int64_t, std::int64_t, int, double*, double*,
                                           cudaStream_t);
template void launch_rows_as_double<double>(const double*, const double*, std::int64_t, std::int64_t, int, double*, double*,
                                            cudaStream_t);

void launch_add_float_to_double(const float* chunk, double* M, std::size_t count, cudaStream_t stream) {
  if (count == 0) return;
  const unsigned blocks = static_cast<unsigned>((count + kThreadsPerBlock - 1) / kThreadsPerBlock < 4096 ? (count + kThreadsPerBlock - 1) / kThreadsPerBlock : 4096);
  LRSMETA_LAUNCH(add_float_to_double_kernel, blocks, kThreadsPerBlock, 0, stream)(chunk, M, count);
  cuda::check_launch("add_float_to_double_kernel", __FILE__, __LINE__);
}

void launch_unpack_gram(const double* M, int d, int r, double* G, cudaStream_t stream) {
  const std::size_t entries = static_cast<std::size_t>(r) * (r + 1) / 2 * (static_cast<std::size_t>(d) * (d + 1) / 2);
  if (entries == 0) return;
  const unsigned blocks = static_cast<unsigned>((entries + kThreadsPerBlock - 1) / kThreadsPerBlock < 4096 ? (entries + kThreadsPerBlock - 1) / kThreadsPerBlock : 4096);
  LRSMETA_LAUNCH(unpack_gram_kernel, blocks, kThreadsPerBlock, 0, stream)(M, d, r, G);
  cuda::check_launch("unpack_gram_kernel", __FILE__, __LINE__);
}

void launch_add_diagonal(double* G, int n, double shift, cudaStream_t stream) {
  if (n == 0) return;
  LRSMETA_LAUNCH(add_diagonal_kernel, (n + kThreadsPerBlock - 1) / kThreadsPerBlock, kThreadsPerBlock, 0, stream)(G, n, shift);
  cuda::check_launch("add_diagonal_kernel", __FILE__, __LINE__);
}

template <typename T>
void launch_store_U(const double* U_colmajor, int d, int r, T* U_data, cudaStream_t stream) {
  if (d * r == 0) return;
  LRSMETA_LAUNCH(store_U_kernel<T>, (d * r + kThreadsPerBlock - 1) / kThreadsPerBlock, kThreadsPerBlock, 0, stream)(U_colmajor, d, r, U_data);
  cuda::check_launch("store_U_kernel", __FILE__, __LINE__);
}
template void launch_store_U<float>(const double*, int, int, float*, cudaStream_t);
template void launch_store_U<double>(const double*, int, int, double*, cudaStream_t);

template <typename T>
void launch_scaled_rows(const T* X, const T* y, const std::int64_t* offsets, std::int64_t t, std::int64_t first_row,
                        std::int64_t count, int d, Bounds bounds, double* rows, cudaStream_t stream) {
  if (count == 0) return;
  LRSMETA_LAUNCH(scaled_rows_kernel<T>, static_cast<unsigned>(count), 128, 0, stream)(X, y, offsets, t, first_row, count, d, bounds, rows);
  cuda::check_launch("scaled_rows_kernel", __FILE__, __LINE__);
}
template void launch_scaled_rows<float>(const float*, const float*, const std::int64_t*, std::int64_t, std::int64_t,
                                        std::int64_t, int, Bounds, double*, cudaStream_t);
template void launch_scaled_rows<double>(const double*, const double*, const std::int64_t*, std::int64_t, std::int64_t,
                                         std::int64_t, int, Bounds, double*, cudaStream_t);

#endif  // LRSMETA_EMULATE_KERNELS

}  // namespace lrsmeta::kernels
