// Moments of the data over its rows, summed on the device in chunks of rows converted to double
// (one cuBLAS syrk a chunk): only d x d and d numbers come back.
#pragma once

#include <cstdint>
#include <vector>

#include "core/backend.hpp"
#include "cuda/cuda_utils.hpp"
#include "kernels/device_kernels.hpp"

namespace lrsmeta::cuda {

// X^T X, X^T y, y^T y and n (cg's preconditioner; n rows of d features, device pointers).
template <typename T>
core::DataMoments device_data_moments(const T* X, const T* y, std::int64_t n, int d, const Stream& stream, const CublasHandle& cublas);

// The spectral start's moment sum_j y_j^2 x_j x_j^T (d x d, column-major, full), each row bounded
// under `bounds` (a private release), divided by n where `mean` (no release: the noise is calibrated
// to the sum).
template <typename T>
std::vector<double> device_spectral_moment(const T* X, const T* y, const std::int64_t* offsets, std::int64_t t, std::int64_t n,
                                           int d, const kernels::Bounds& bounds, bool mean, const Stream& stream,
                                           const CublasHandle& cublas);

}  // namespace lrsmeta::cuda
