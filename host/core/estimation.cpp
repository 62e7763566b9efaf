#include "core/estimation.hpp"

#include <algorithm>
#include <cmath>

#include "linalg/blas_lapack.hpp"

namespace lrsmeta::core {

double estimate_sparse_prior_variance(const TaskStepTotals& totals, double previous) {
  if (totals.b_count <= 0 || !(totals.b_square_sum > 0) || !std::isfinite(totals.b_square_sum)) return previous;
  return totals.b_square_sum / static_cast<double>(totals.b_count);
}

double estimate_inclusion_probability(const TaskStepTotals& totals, std::int64_t tasks, std::int64_t d) {
  const double pairs = static_cast<double>(tasks) * static_cast<double>(d);
  if (!(pairs > 0)) return 0.0;
  return std::clamp(static_cast<double>(totals.b_count) / pairs, 0.5 / pairs, 0.5);
}

namespace {

// log of the multivariate gamma function Gamma_r(a), without its constant r (r - 1) / 4 log(pi).
double log_multivariate_gamma(int r, double a) {
  double s = 0.0;
  for (int j = 0; j < r; ++j) s += std::lgamma(a - 0.5 * j);
  return s;
}

}  // namespace

// p(W | nu, Psi) = pi^(-t r / 2) Gamma_r((nu + t) / 2) / Gamma_r(nu / 2) |Psi|^(nu / 2) |Psi + T|^(-(nu + t) / 2),
// the normal-inverse-Wishart marginal with the mean known (here: taken out by the parameter expansion).
double shrinkage_log_marginal(const std::vector<double>& S_eigenvalues, double mean_variance, std::int64_t tasks, double f) {
  const int r = static_cast<int>(S_eigenvalues.size());
  const double t = static_cast<double>(tasks);
  const double nu = f * t + r + 1.0, c = f * t * mean_variance;
  double log_det_posterior = 0.0;
  for (double lambda : S_eigenvalues) log_det_posterior += std::log(c + t * std::max(lambda, 0.0));
  return log_multivariate_gamma(r, 0.5 * (nu + t)) - log_multivariate_gamma(r, 0.5 * nu) + 0.5 * nu * r * std::log(c) -
         0.5 * (nu + t) * log_det_posterior;
}

double estimate_covariance_shrinkage(const std::vector<double>& S, int r, std::int64_t tasks) {
  if (r <= 0 || tasks <= 0 || S.size() != static_cast<std::size_t>(r) * r) return 0.0;
  double trace = 0.0;
  for (int a = 0; a < r; ++a) trace += S[static_cast<std::size_t>(a) * r + a];
  const double mean_variance = trace / r;
  if (!(mean_variance > 0) || !std::isfinite(mean_variance)) return 0.0;
  std::vector<double> eigenvalues;
  linalg::symmetric_eigen(r, S, &eigenvalues);  // symmetric: row- and column-major agree
  auto objective = [&](double log_f) { return shrinkage_log_marginal(eigenvalues, mean_variance, tasks, std::exp(log_f)); };
  // A grid over log f, then golden-section search in the bracket around its best point.
  constexpr double kLow = -6.0 * 2.302585092994046, kHigh = 6.0 * 2.302585092994046;
  constexpr int kGrid = 49;
  int best = 0;
  double best_value = -INFINITY;
  for (int g = 0; g < kGrid; ++g) {
    const double value = objective(kLow + (kHigh - kLow) * g / (kGrid - 1));
    if (value > best_value) {
      best_value = value;
      best = g;
    }
  }
  const double step = (kHigh - kLow) / (kGrid - 1);
  double a = kLow + step * std::max(best - 1, 0), b = kLow + step * std::min(best + 1, kGrid - 1);
  const double ratio = 0.6180339887498949;
  double x1 = b - ratio * (b - a), x2 = a + ratio * (b - a), f1 = objective(x1), f2 = objective(x2);
  for (int it = 0; it < 40; ++it) {
    if (f1 >= f2) {
      b = x2;
      x2 = x1;
      f2 = f1;
      x1 = b - ratio * (b - a);
      f1 = objective(x1);
    } else {
      a = x1;
      x1 = x2;
      f1 = f2;
      x2 = a + ratio * (b - a);
      f2 = objective(x2);
    }
  }
  const double log_f = f1 >= f2 ? x1 : x2;
  return std::exp(std::max(f1, f2) >= best_value ? log_f : kLow + step * best);
}

}  // namespace lrsmeta::core
