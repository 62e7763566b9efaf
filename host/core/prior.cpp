#include "core/prior.hpp"

#include <algorithm>
#include <cmath>

#include "core/small_dense.hpp"

namespace lrsmeta::core {

namespace {

// The global ridge fit from the moments alone: beta = (X^T X + lambda I)^-1 X^T y (the Cholesky
// with relative_ridge on top, as detail::ridge_cholesky takes it), its residual sum of squares
// y^T y - 2 beta^T X^T y + beta^T X^T X beta, and, where asked, tr((X^T X + lambda I)^-1).
struct RidgeFit {
  bool ok = false;
  std::vector<double> beta;
  double rss = 0.0, trace_inverse = 0.0;
};
RidgeFit ridge_fit(const DataMoments& m, int d, double lambda, double relative_ridge, bool with_trace) {
  RidgeFit f;
  std::vector<double> A = m.XtX, L(A.size());
  for (int a = 0; a < d; ++a) A[static_cast<std::size_t>(a) * d + a] += lambda;
  if (!detail::ridge_cholesky(A.data(), d, relative_ridge, L.data())) return f;
  f.ok = true;
  f.beta = m.Xty;
  detail::cholesky_solve(L.data(), d, f.beta.data());
  double quad = 0.0, lin = 0.0;
  for (int a = 0; a < d; ++a) {
    lin += f.beta[static_cast<std::size_t>(a)] * m.Xty[static_cast<std::size_t>(a)];
    double s = 0.0;
    for (int b = 0; b < d; ++b) s += m.XtX[static_cast<std::size_t>(a) * d + b] * f.beta[static_cast<std::size_t>(b)];
    quad += f.beta[static_cast<std::size_t>(a)] * s;
  }
  f.rss = m.yty - 2.0 * lin + quad;
  if (with_trace)
    for (int c = 0; c < d; ++c) {
      std::vector<double> e(static_cast<std::size_t>(d), 0.0);
      e[static_cast<std::size_t>(c)] = 1.0;
      detail::cholesky_solve(L.data(), d, e.data());
      f.trace_inverse += e[static_cast<std::size_t>(c)];
    }
  return f;
}

}  // namespace

PriorState initial_prior(const DataMoments& m, int d, int r, double* coefficient_scale) {
  PriorState p;
  p.beta.assign(static_cast<std::size_t>(d), 0.0);
  const double n = static_cast<double>(m.rows);
  double trace = 0.0;
  for (int a = 0; a < d; ++a) trace += m.XtX[static_cast<std::size_t>(a) * d + a];
  const double mean_diagonal = n > 0 && trace > 0 ? trace / (n * d) : 1.0;
  double residual_variance = n > 0 ? m.yty / n : 1.0;
  if (n > 0 && trace > 0) {
    // Global least squares, with a relative ridge of 1e-8 for collinear or constant columns.
    RidgeFit global = ridge_fit(m, d, 1e-8 * mean_diagonal * n, 1e-12, false);
    if (global.ok) {
      p.beta = std::move(global.beta);
      residual_variance = global.rss / n;
    }
  }
  // beta's prior variance: from the ridge penalty that generalised cross-validation picks for the
  // global fit (GCV(lambda) = n RSS / (n - df)^2, from the moments alone), as tau_beta^2 =
  // s2_ridge / lambda. Rare binary features (a genre seen twice) otherwise get wild coefficients.
  if (n > d && trace > 0) {
    double best = INFINITY;
    for (double relative : {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0}) {
      const double lambda = relative * trace / d;
      const RidgeFit f = ridge_fit(m, d, lambda, 0.0, true);
      if (!f.ok) continue;
      const double df = d - lambda * f.trace_inverse;
      const double rss = std::max(f.rss, 0.0);
      const double gcv = n * rss / ((n - df) * (n - df));
      if (gcv < best) {
        best = gcv;
        p.beta_variance = rss / (n - df) / lambda;
      }
    }
  }
  // A floor relative to the target's scale: noiseless data that a global linear model fits exactly.
  const double floor = std::max(1e-12 * (n > 0 ? m.yty / n : 1.0), 1e-300);
  residual_variance = std::max(residual_variance, floor);
  *coefficient_scale = residual_variance / mean_diagonal;
  p.noise_variance = 0.5 * residual_variance;
  p.Sigma.assign(static_cast<std::size_t>(r) * r, 0.0);
  for (int q = 0; q < r; ++q) p.Sigma[static_cast<std::size_t>(q) * r + q] = *coefficient_scale / r;
  return p;
}

void shrink_covariance(std::vector<double>& Sigma, int r, double f) {
  if (!(f > 0) || r == 0) return;
  double mean_variance = 0.0;
  for (int a = 0; a < r; ++a) mean_variance += Sigma[static_cast<std::size_t>(a) * r + a];
  mean_variance /= r;
  for (int a = 0; a < r; ++a)
    for (int b = 0; b < r; ++b) {
      double& s = Sigma[static_cast<std::size_t>(a) * r + b];
      s = (s + (a == b ? f * mean_variance : 0.0)) / (1.0 + f);
    }
}

void keep_intercept_apart(std::vector<double>& Sigma, const std::vector<double>& u, int r) {
  if (r < 2 || u.size() != static_cast<std::size_t>(r) || Sigma.size() != static_cast<std::size_t>(r) * r) return;
  double own = 0.0, trace = 0.0;
  for (int a = 0; a < r; ++a) {
    trace += Sigma[static_cast<std::size_t>(a) * r + a];
    for (int b = 0; b < r; ++b) own += u[static_cast<std::size_t>(a)] * Sigma[static_cast<std::size_t>(a) * r + b] * u[static_cast<std::size_t>(b)];
  }
  const double shared = std::max(0.0, trace - own) / (r - 1);
  for (int a = 0; a < r; ++a)
    for (int b = 0; b < r; ++b) {
      const double P = u[static_cast<std::size_t>(a)] * u[static_cast<std::size_t>(b)];
      Sigma[static_cast<std::size_t>(a) * r + b] = own * P + shared * ((a == b ? 1.0 : 0.0) - P);
    }
}

void unshrink_covariance(std::vector<double>& Sigma, int r, double f) {
  if (!(f > 0) || r == 0) return;
  double mean_variance = 0.0;  // shrinking keeps the trace
  for (int a = 0; a < r; ++a) mean_variance += Sigma[static_cast<std::size_t>(a) * r + a];
  mean_variance /= r;
  for (int a = 0; a < r; ++a)
    for (int b = 0; b < r; ++b) {
      double& s = Sigma[static_cast<std::size_t>(a) * r + b];
      s = s * (1.0 + f) - (a == b ? f * mean_variance : 0.0);
    }
}

void refresh_precisions(PriorState& p, double tau2) {
  p.b_precision = tau2 > 0 ? p.noise_variance / tau2 : 0.0;
  p.beta_precision = p.beta_variance > 0 ? p.noise_variance / p.beta_variance : 0.0;
}

std::vector<double> update_hyperparameters(PriorState& p, const TaskStepTotals& totals, std::int64_t tasks) {
  std::vector<double> mu(totals.w_sum.size(), 0.0);
  if (!totals.w_second_moment.empty() && tasks > 0) {
    const int r = static_cast<int>(mu.size());
    for (int q = 0; q < r; ++q) mu[static_cast<std::size_t>(q)] = totals.w_sum[static_cast<std::size_t>(q)] / static_cast<double>(tasks);
    p.Sigma = totals.w_second_moment;
    for (int a = 0; a < r; ++a)
      for (int b = 0; b < r; ++b)
        p.Sigma[static_cast<std::size_t>(a) * r + b] =
            p.Sigma[static_cast<std::size_t>(a) * r + b] / static_cast<double>(tasks) - mu[static_cast<std::size_t>(a)] * mu[static_cast<std::size_t>(b)];
  }
  // The b's are chosen per task (their support by the data), so they are counted as fitted
  // parameters, as in an unbiased residual variance: without this, tasks with no more rows than
  // r + k fit their rows exactly and EM drives s2 to 0 (then nothing is shrunk).
  const double rows_left = static_cast<double>(totals.rows) - totals.effective_params_b;
  if (totals.rows > 0 && rows_left >= 0.05 * static_cast<double>(totals.rows)) {
    const double w_params = totals.effective_params - totals.effective_params_b;
    p.noise_variance = std::max(0.0, (totals.sse + p.noise_variance * w_params) / rows_left);
  }
  return mu;
}

void carry_to_new_basis(PriorState& p, const std::vector<double>& R, const std::vector<double>& U,
                        const std::vector<double>& mu, int d, int r) {
  if (r == 0 || R.size() != static_cast<std::size_t>(r) * r) return;
  if (mu.size() == static_cast<std::size_t>(r) && U.size() == static_cast<std::size_t>(d) * r) {
    std::vector<double> Rmu(static_cast<std::size_t>(r), 0.0);
    for (int a = 0; a < r; ++a)
      for (int c = 0; c < r; ++c) Rmu[static_cast<std::size_t>(a)] += R[static_cast<std::size_t>(a) * r + c] * mu[static_cast<std::size_t>(c)];
    for (int a = 0; a < d; ++a)
      for (int q = 0; q < r; ++q) p.beta[static_cast<std::size_t>(a)] += U[static_cast<std::size_t>(a) * r + q] * Rmu[static_cast<std::size_t>(q)];
  }
  std::vector<double> RS(static_cast<std::size_t>(r) * r, 0.0), out(RS.size(), 0.0);
  for (int a = 0; a < r; ++a)
    for (int b = 0; b < r; ++b)
      for (int c = 0; c < r; ++c) RS[static_cast<std::size_t>(a) * r + b] += R[static_cast<std::size_t>(a) * r + c] * p.Sigma[static_cast<std::size_t>(c) * r + b];
  for (int a = 0; a < r; ++a)
    for (int b = 0; b < r; ++b)
      for (int c = 0; c < r; ++c) out[static_cast<std::size_t>(a) * r + b] += RS[static_cast<std::size_t>(a) * r + c] * R[static_cast<std::size_t>(b) * r + c];
  for (int a = 0; a < r; ++a)  // exactly symmetric
    for (int b = 0; b < a; ++b) {
      const double s = 0.5 * (out[static_cast<std::size_t>(a) * r + b] + out[static_cast<std::size_t>(b) * r + a]);
      out[static_cast<std::size_t>(a) * r + b] = out[static_cast<std::size_t>(b) * r + a] = s;
    }
  p.Sigma = std::move(out);
}

}  // namespace lrsmeta::core
