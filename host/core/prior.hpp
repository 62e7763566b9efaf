// The empirical-Bayes model of docs/design.md section 6: its starting point and its hyperparameter
// updates (the M-step of EM for Sigma and s2), from the sums the backends return. Backend-agnostic.
#pragma once

#include <cstdint>
#include <vector>

#include "core/backend.hpp"

namespace lrsmeta::core {

// The prior before the first task step, from the data's moments: beta by the global least-squares
// fit, s2 = half its residual variance, Sigma isotropic at the scale of that residual variance per
// coefficient spread over r directions (a weak prior that EM then adjusts). Returns the prior and,
// in *coefficient_scale, the variance one coefficient would need to explain the residual variance
// alone (the unit of the b prior's variance tau2).
PriorState initial_prior(const DataMoments& moments, int d, int r, double* coefficient_scale);

// Sigma <- (Sigma + f (tr Sigma / r) I) / (1 + f): towards isotropic, trace kept (f <= 0: as is).
// The fit applies it once Sigma is in the new basis (after carry_to_new_basis), so that the task
// steps use the shrunk Sigma.
void shrink_covariance(std::vector<double>& Sigma, int r, double f);
// A shrinkage f that makes Sigma isotropic to within 1e-6 of it: the full-rank model's isotropic
// variant (per-task ridge towards beta), one variance rather than r (r + 1) / 2.
constexpr double kIsotropicShrinkage = 1e6;
// LowRankBasis::slopes' M-step: Sigma (r x r, row-major, in w's coordinates) -> s0 P + s1 (I - P),
// P = u u^T (u: the constant feature's direction, unit), s0 = u^T Sigma u and s1 = tr((I - P) Sigma)
// / (r - 1): the maximum-likelihood Sigma of that form given the same second moments.
void keep_intercept_apart(std::vector<double>& Sigma, const std::vector<double>& u, int r);
// The inverse of shrink_covariance: the estimate before shrinking by f.
void unshrink_covariance(std::vector<double>& Sigma, int r, double f);

// b_precision = s2 / tau2 (0 when tau2 <= 0: no b prior); beta_precision = s2 / tau_beta^2.
void refresh_precisions(PriorState& prior, double tau2);

// The M-step, parameter-expanded for w's mean (w_i ~ N(mu, Sigma), mu then folded into beta):
// mu = (1/t) sum_i w_i, Sigma = (1/t) sum_i E[w_i w_i^T] - mu mu^T, s2 = (1/n) sum_i E||y_i -
// A_i x_i||^2 = (sse + s2_old * effective parameters) / n (the b's counted as fitted). Returns mu.
// Without the expansion, beta moves by a sliver per iteration where tasks are large: each task's
// w already explains its own mean, so the regression that updates beta sees almost nothing left.
std::vector<double> update_hyperparameters(PriorState& prior, const TaskStepTotals& totals, std::int64_t tasks);

// After U~ = Q R (the new U = Q): the tasks' coordinates become R w, so Sigma <- R Sigma R^T, and
// w's mean mu moves into the population model: beta <- beta + U~ mu = beta + U (R mu).
void carry_to_new_basis(PriorState& prior, const std::vector<double>& R, const std::vector<double>& U,
                        const std::vector<double>& mu, int d, int r);

}  // namespace lrsmeta::core
