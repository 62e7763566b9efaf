// Features brought to a common scale inside the fit, and the model mapped back (feature_scaling.hpp).
#include "core/feature_scaling.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "linalg/blas_lapack.hpp"

namespace lrsmeta::core {

bool standardizes(const Options& options) {
  return options.standardize && options.prior == Prior::automatic && !options.privacy.enabled;
}

template <typename T>
ColumnSums column_sums(const TaskDataView<T>& data, Communicator* communicator) {
  const std::int64_t d = data.d;
  // Per column, over fixed blocks of rows (in parallel, added in block order: the same bits
  // whatever the threads): the sums of squares, of magnitudes and of values, and the count of
  // non-zeros; then the row count. One sum over the processes.
  // (At most 256 blocks, and at most 4 Mi partial sums for wide data.)
  const std::int64_t width = 4 * d;
  const std::int64_t blocks = std::max<std::int64_t>(1, std::min<std::int64_t>({data.n, 256, (std::int64_t{1} << 22) / std::max<std::int64_t>(1, width)}));
  std::vector<double> partial(static_cast<std::size_t>(blocks * width), 0.0);
#pragma omp parallel for schedule(static)
  for (std::int64_t b = 0; b < blocks; ++b) {
    double* squares = partial.data() + b * width;
    double* magnitudes = squares + d;
    double* nonzeros = magnitudes + d;
    double* values = nonzeros + d;
    for (std::int64_t j = data.n * b / blocks; j < data.n * (b + 1) / blocks; ++j) {
      const T* x = data.X + j * d;
      for (std::int64_t a = 0; a < d; ++a) {
        const double v = static_cast<double>(x[a]);
        squares[a] += v * v;
        magnitudes[a] += std::abs(v);
        nonzeros[a] += v != 0.0 ? 1.0 : 0.0;
        values[a] += v;
      }
    }
  }
  std::vector<double> sums(static_cast<std::size_t>(width + 1), 0.0);
  for (std::int64_t b = 0; b < blocks; ++b)
    for (std::int64_t a = 0; a < width; ++a) sums[static_cast<std::size_t>(a)] += partial[static_cast<std::size_t>(b * width + a)];
  sums[static_cast<std::size_t>(width)] = static_cast<double>(data.n);
  if (communicator && communicator->size() > 1) communicator->sum(sums.data(), sums.size());
  ColumnSums out;
  auto part = [&](std::int64_t p) {
    return std::vector<double>(sums.begin() + static_cast<std::ptrdiff_t>(p * d), sums.begin() + static_cast<std::ptrdiff_t>((p + 1) * d));
  };
  out.squares = part(0);
  out.magnitudes = part(1);
  out.nonzeros = part(2);
  out.values = part(3);
  out.rows = sums[static_cast<std::size_t>(width)];
  return out;
}
template ColumnSums column_sums(const TaskDataView<float>&, Communicator*);
template ColumnSums column_sums(const TaskDataView<double>&, Communicator*);

namespace {
// Whether every non-zero of column a has one magnitude (0/1, one-hot levels, the intercept).
bool is_indicator(const ColumnSums& s, std::size_t a) {
  return s.squares[a] * s.nonzeros[a] - s.magnitudes[a] * s.magnitudes[a] <= 1e-12 * s.magnitudes[a] * s.magnitudes[a];
}
}  // namespace

template <typename T>
std::int64_t constant_feature(const TaskDataView<T>& data, Communicator* communicator) {
  const ColumnSums s = column_sums(data, communicator);
  for (std::size_t a = 0; a < s.squares.size(); ++a)
    if (s.rows > 0 && s.nonzeros[a] == s.rows && is_indicator(s, a) && std::abs(s.values[a]) == s.magnitudes[a])
      return static_cast<std::int64_t>(a);
  return -1;
}
template std::int64_t constant_feature(const TaskDataView<float>&, Communicator*);
template std::int64_t constant_feature(const TaskDataView<double>&, Communicator*);

template <typename T>
std::vector<double> feature_scales(const TaskDataView<T>& data, Communicator* communicator) {
  const std::int64_t d = data.d;
  const ColumnSums sums = column_sums(data, communicator);
  const double rows = sums.rows;
  auto nearest_power_of_two = [](double v) { return std::ldexp(1.0, static_cast<int>(std::lround(std::log2(v)))); };
  std::vector<double> scales(static_cast<std::size_t>(d), 1.0);
  for (std::int64_t a = 0; a < d; ++a) {
    const std::size_t at = static_cast<std::size_t>(a);
    const double squares = sums.squares[at], magnitudes = sums.magnitudes[at], nonzeros = sums.nonzeros[at];
    if (!(nonzeros > 0) || !(rows > 0)) continue;  // a column of zeros
    // An indicator (every non-zero of one magnitude c: 0/1, one-hot levels, the intercept) is
    // brought to 0/1 by the power of two nearest c; any other column to a root mean square of 1/2.
    const double c = magnitudes / nonzeros;
    const bool indicator = is_indicator(sums, at);
    const double size = indicator ? c : 2.0 * std::sqrt(squares / rows);
    if (size > 0 && std::isfinite(size)) scales[static_cast<std::size_t>(a)] = nearest_power_of_two(size);
  }
  // One power of two for every column changes the fit only by rounding (every estimate scales
  // along), so the most common factor (of those most common, the nearest 1) is divided out: data
  // whose columns share a scale already is neither copied nor changed.
  double common = 1.0;
  int most = 0;
  for (double s : scales) {
    const int count = static_cast<int>(std::count(scales.begin(), scales.end(), s));
    if (count > most || (count == most && std::abs(std::log2(s)) < std::abs(std::log2(common)))) {
      most = count;
      common = s;
    }
  }
  for (double& s : scales) s /= common;
  return scales;
}
template std::vector<double> feature_scales(const TaskDataView<float>&, Communicator*);
template std::vector<double> feature_scales(const TaskDataView<double>&, Communicator*);

bool any_scaled(const std::vector<double>& scales) {
  for (double s : scales)
    if (s != 1.0) return true;
  return false;
}

template <typename T>
std::vector<T> scaled_features(const TaskDataView<T>& data, const std::vector<double>& scales) {
  const std::int64_t d = data.d;
  std::vector<T> X(static_cast<std::size_t>(data.n * d));
#pragma omp parallel for schedule(static)
  for (std::int64_t j = 0; j < data.n; ++j)
    for (std::int64_t a = 0; a < d; ++a)
      X[static_cast<std::size_t>(j * d + a)] = static_cast<T>(static_cast<double>(data.X[j * d + a]) / scales[static_cast<std::size_t>(a)]);
  return X;
}
template std::vector<float> scaled_features(const TaskDataView<float>&, const std::vector<double>&);
template std::vector<double> scaled_features(const TaskDataView<double>&, const std::vector<double>&);

namespace {

// theta_i -> D theta_i for every part of the model (D = diag(factor)): beta and b scale entry by
// entry; U's columns span D U, re-orthonormalised as D U = Q R with R's diagonal positive, so that
// U w_i -> Q (R w_i) and Sigma -> R Sigma R^T keep every theta_i exact.
void rescale(Model& model, const std::vector<double>& factor) {
  const std::int64_t d = model.d, r = model.r, k = model.k, t = model.t;
  for (std::int64_t a = 0; a < d && !model.beta.empty(); ++a) model.beta[static_cast<std::size_t>(a)] *= factor[static_cast<std::size_t>(a)];
  for (std::int64_t i = 0; i < t * k; ++i) {
    const std::int32_t q = model.B_index[static_cast<std::size_t>(i)];
    if (q >= 0) model.B_value[static_cast<std::size_t>(i)] *= factor[static_cast<std::size_t>(q)];
  }
  if (r == 0) return;
  // D U, column-major for LAPACK.
  std::vector<double> M(static_cast<std::size_t>(d * r)), Q;
  for (std::int64_t a = 0; a < d; ++a)
    for (std::int64_t j = 0; j < r; ++j)
      M[static_cast<std::size_t>(j * d + a)] = factor[static_cast<std::size_t>(a)] * model.U[static_cast<std::size_t>(a * r + j)];
  Q = M;
  linalg::qr_q_factor(static_cast<int>(d), static_cast<int>(r), Q.data());
  // R = Q^T (D U), upper triangular; a column of Q whose R diagonal is negative is flipped.
  std::vector<double> R(static_cast<std::size_t>(r * r), 0.0);
  for (std::int64_t i = 0; i < r; ++i)
    for (std::int64_t j = i; j < r; ++j) {
      double s = 0.0;
      for (std::int64_t a = 0; a < d; ++a) s += Q[static_cast<std::size_t>(i * d + a)] * M[static_cast<std::size_t>(j * d + a)];
      R[static_cast<std::size_t>(i * r + j)] = s;
    }
  for (std::int64_t i = 0; i < r; ++i)
    if (R[static_cast<std::size_t>(i * r + i)] < 0) {
      for (std::int64_t j = i; j < r; ++j) R[static_cast<std::size_t>(i * r + j)] = -R[static_cast<std::size_t>(i * r + j)];
      for (std::int64_t a = 0; a < d; ++a) Q[static_cast<std::size_t>(i * d + a)] = -Q[static_cast<std::size_t>(i * d + a)];
    }
  for (std::int64_t a = 0; a < d; ++a)
    for (std::int64_t j = 0; j < r; ++j) model.U[static_cast<std::size_t>(a * r + j)] = Q[static_cast<std::size_t>(j * d + a)];
  std::vector<double> w(static_cast<std::size_t>(r));
  for (std::int64_t i = 0; i < t; ++i) {
    double* wi = model.W.data() + i * r;
    for (std::int64_t a = 0; a < r; ++a) {
      double s = 0.0;
      for (std::int64_t b = a; b < r; ++b) s += R[static_cast<std::size_t>(a * r + b)] * wi[b];
      w[static_cast<std::size_t>(a)] = s;
    }
    std::copy(w.begin(), w.end(), wi);
  }
  if (model.Sigma.size() == static_cast<std::size_t>(r * r)) {
    std::vector<double> RS(static_cast<std::size_t>(r * r), 0.0), S(static_cast<std::size_t>(r * r), 0.0);
    for (std::int64_t a = 0; a < r; ++a)
      for (std::int64_t b = 0; b < r; ++b)
        for (std::int64_t c = a; c < r; ++c) RS[static_cast<std::size_t>(a * r + b)] += R[static_cast<std::size_t>(a * r + c)] * model.Sigma[static_cast<std::size_t>(c * r + b)];
    for (std::int64_t a = 0; a < r; ++a)
      for (std::int64_t b = 0; b < r; ++b)
        for (std::int64_t c = b; c < r; ++c) S[static_cast<std::size_t>(a * r + b)] += RS[static_cast<std::size_t>(a * r + c)] * R[static_cast<std::size_t>(b * r + c)];
    for (std::int64_t a = 0; a < r; ++a)  // exactly symmetric
      for (std::int64_t b = 0; b < a; ++b)
        S[static_cast<std::size_t>(a * r + b)] = S[static_cast<std::size_t>(b * r + a)] =
            0.5 * (S[static_cast<std::size_t>(a * r + b)] + S[static_cast<std::size_t>(b * r + a)]);
    model.Sigma = S;
  }
}

}  // namespace

void from_common_scale(Model& model, const std::vector<double>& scales) {
  std::vector<double> inverse(scales.size());
  for (std::size_t a = 0; a < scales.size(); ++a) inverse[a] = 1.0 / scales[a];
  rescale(model, inverse);
  model.feature_scales = scales;
}

void to_common_scale(Model& model) {
  if (model.feature_scales.empty()) return;
  rescale(model, model.feature_scales);
  model.feature_scales.clear();
}

}  // namespace lrsmeta::core
