// The data's moments over its rows on the device (row_moments.hpp).
#include "cuda/row_moments.hpp"

#include <algorithm>

namespace lrsmeta::cuda {

template <typename T>
core::DataMoments device_data_moments(const T* X, const T* y, std::int64_t n, int d, const Stream& stream, const CublasHandle& cublas) {
  const cudaStream_t s = stream.get();
  constexpr std::int64_t kRows = 4096;
  DeviceBuffer<double> rows(static_cast<std::size_t>(kRows) * d), y_rows(static_cast<std::size_t>(kRows)),
      XtX(static_cast<std::size_t>(d) * d), Xty(static_cast<std::size_t>(d));
  LRSMETA_CUDA_CHECK(cudaMemsetAsync(XtX.data(), 0, XtX.size() * sizeof(double), s));
  LRSMETA_CUDA_CHECK(cudaMemsetAsync(Xty.data(), 0, Xty.size() * sizeof(double), s));
  const double one = 1.0;
  double yty = 0.0;
  for (std::int64_t start = 0; start < n; start += kRows) {
    const std::int64_t count = std::min(kRows, n - start);
    kernels::launch_rows_as_double<T>(X, y, start, count, d, rows.data(), y_rows.data(), s);
    // Row-major rows (count x d) are column-major (d x count): XtX += rows_cm rows_cm^T, Xty += rows_cm y.
    LRSMETA_CUBLAS_CHECK(cublasDsyrk(cublas.get(), CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_N, d, static_cast<int>(count), &one,
                                     rows.data(), d, &one, XtX.data(), d));
    LRSMETA_CUBLAS_CHECK(cublasDgemv(cublas.get(), CUBLAS_OP_N, d, static_cast<int>(count), &one, rows.data(), d,
                                     y_rows.data(), 1, &one, Xty.data(), 1));
    double part = 0.0;  // host pointer mode: returns when the result is on the host
    LRSMETA_CUBLAS_CHECK(cublasDdot(cublas.get(), static_cast<int>(count), y_rows.data(), 1, y_rows.data(), 1, &part));
    yty += part;
  }
  core::DataMoments moments;
  copy_to_host(moments.XtX, XtX, stream);
  copy_to_host(moments.Xty, Xty, stream);
  for (int a = 0; a < d; ++a)
    for (int b = a + 1; b < d; ++b)  // column-major upper (a, b) at a + d b: mirror it
      moments.XtX[static_cast<std::size_t>(b) + static_cast<std::size_t>(d) * a] =
          moments.XtX[static_cast<std::size_t>(a) + static_cast<std::size_t>(d) * b];
  moments.yty = yty;
  moments.rows = n;
  return moments;
}

template <typename T>
std::vector<double> device_spectral_moment(const T* X, const T* y, const std::int64_t* offsets, std::int64_t t, std::int64_t n,
                                           int d, const kernels::Bounds& bounds, bool mean, const Stream& stream,
                                           const CublasHandle& cublas) {
  const cudaStream_t s = stream.get();
  constexpr std::int64_t kRows = 4096;
  DeviceBuffer<double> rows(static_cast<std::size_t>(kRows) * d), M(static_cast<std::size_t>(d) * d);
  LRSMETA_CUDA_CHECK(cudaMemsetAsync(M.data(), 0, M.size() * sizeof(double), s));
  const double one = 1.0;
  for (std::int64_t start = 0; start < n; start += kRows) {
    const std::int64_t count = std::min(kRows, n - start);
    kernels::launch_scaled_rows(X, y, offsets, t, start, count, d, bounds, rows.data(), s);
    // Row-major rows (count x d) are column-major (d x count): M += rows_cm rows_cm^T.
    LRSMETA_CUBLAS_CHECK(cublasDsyrk(cublas.get(), CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_N, d, static_cast<int>(count), &one,
                                     rows.data(), d, &one, M.data(), d));
  }
  std::vector<double> host(M.size());
  LRSMETA_CUDA_CHECK(cudaMemcpyAsync(host.data(), M.data(), host.size() * sizeof(double), cudaMemcpyDeviceToHost, s));
  stream.synchronize();
  const double scale = mean && n > 0 ? 1.0 / static_cast<double>(n) : 1.0;
  for (int a = 0; a < d; ++a)
    for (int b = a; b < d; ++b) {  // column-major upper: (a, b) at a + d b
      const double value = host[static_cast<std::size_t>(a) + static_cast<std::size_t>(d) * b] * scale;
      host[static_cast<std::size_t>(a) + static_cast<std::size_t>(d) * b] = value;
      host[static_cast<std::size_t>(b) + static_cast<std::size_t>(d) * a] = value;
    }
  return host;
}

template core::DataMoments device_data_moments(const float*, const float*, std::int64_t, int, const Stream&, const CublasHandle&);
template core::DataMoments device_data_moments(const double*, const double*, std::int64_t, int, const Stream&, const CublasHandle&);
template std::vector<double> device_spectral_moment(const float*, const float*, const std::int64_t*, std::int64_t, std::int64_t, int,
                                                    const kernels::Bounds&, bool, const Stream&, const CublasHandle&);
template std::vector<double> device_spectral_moment(const double*, const double*, const std::int64_t*, std::int64_t, std::int64_t, int,
                                                    const kernels::Bounds&, bool, const Stream&, const CublasHandle&);

}  // namespace lrsmeta::cuda
