// Features brought to a common scale inside the fit, and the model mapped back (Options::standardize).
//
// The prior's settings treat every feature alike (b's non-zeros share one variance tau2, Sigma is
// shrunk towards isotropic, beta has one ridge), so a feature's unit matters: a column in dollars
// next to one in thousands of dollars would be treated very differently. Each column is divided by
// a power of two: an indicator (every non-zero of one magnitude c: 0/1, one-hot levels, the
// intercept) by the one nearest c, so that it is 0/1 however rare; any other column by the one
// nearest twice its root mean square (no centring: the intercept is a feature like the others), so
// that its root mean square is within a factor sqrt(2) of 1/2. That is Gelman's rule (continuous
// inputs in units of two standard deviations, comparable with a 0/1 input: "Scaling regression
// inputs by dividing by two standard deviations", Statistics in Medicine 27, 2008); on MovieLens,
// unit root mean square instead (the movie-mean column doubled) cost 0.004 to 0.009 of test RMSE in
// every regime. Only the columns' relative scales matter (one power of two for all changes the fit
// by rounding only), so the most common factor is divided out: data whose columns share a scale
// already is neither copied nor changed. Powers of two change no digit of the data: a copy with
// columns multiplied by powers of two is fitted to the same numbers up to one power of two for all.
#pragma once

#include <cstdint>
#include <vector>

#include "lrsmeta/lrsmeta.hpp"

namespace lrsmeta::core {

// Whether a fit with these options works on features at a common scale: the default model (the prior),
// not private training (the scales are statistics of the data that the accountant does not pay
// for) and not the paper's model (--prior none: its algorithm as published).
bool standardizes(const Options& options);

// Per column, over all rows of every process: the sums of squares, of magnitudes and of values, and
// the count of non-zeros; and the row count.
struct ColumnSums {
  std::vector<double> squares, magnitudes, nonzeros, values;
  double rows = 0.0;
};
template <typename T>
ColumnSums column_sums(const TaskDataView<T>& data, Communicator* communicator);

// The first constant feature (one non-zero value in every row of every process: the intercept), or
// -1 where there is none. LowRankBasis::intercept holds U at its axis.
template <typename T>
std::int64_t constant_feature(const TaskDataView<T>& data, Communicator* communicator);

// The factor of each column, a power of two, from sums over all rows of every process: nearest the
// magnitude of an indicator's non-zeros, else nearest the root mean square (1 for a column of zeros).
template <typename T>
std::vector<double> feature_scales(const TaskDataView<T>& data, Communicator* communicator);

// Whether any factor differs from 1 (else the data is used as it is).
bool any_scaled(const std::vector<double>& scales);

// X (n x d, row-major) with each column divided by its factor.
template <typename T>
std::vector<T> scaled_features(const TaskDataView<T>& data, const std::vector<double>& scales);

// The data the fit sees: the scaled copy of X, with data's y and task offsets.
template <typename T>
struct ScaledFeatures {
  std::vector<T> X;
  TaskDataView<T> view;
  ScaledFeatures(const TaskDataView<T>& data, const std::vector<double>& scales) : X(scaled_features(data, scales)), view(data) {
    view.X = X.data();
  }
  ScaledFeatures(const ScaledFeatures&) = delete;  // view points into X
  ScaledFeatures& operator=(const ScaledFeatures&) = delete;
};

// A model fitted to the scaled features, as a model of the features as given: theta_i is divided
// by the factors, U re-orthonormalised (D^-1 U = Q R: U = Q, w_i = R w_i, Sigma = R Sigma R^T), and
// the factors recorded in model.feature_scales. to_common_scale is its inverse (for adapt).
void from_common_scale(Model& model, const std::vector<double>& scales);
void to_common_scale(Model& model);

}  // namespace lrsmeta::core
