// The prior's settings estimated from all rows, inside the fit (docs/design.md section 10): the b prior's
// variance tau2 by EM, and the shrinkage of Sigma towards isotropic as the weight of an
// inverse-Wishart prior that maximises the marginal likelihood. Nothing is held out; both come from
// sums over tasks that the task steps return anyway, so they run over many processes unchanged.
#pragma once

#include <cstdint>
#include <vector>

#include "core/backend.hpp"

namespace lrsmeta::core {

// tau2's EM update: the mean of E[b_q^2] = b_q^2 + Var(b_q | y_i) over every non-zero of every task
// (the variance of the non-zeros that the tasks' supports hold). `previous` where no task has one.
double estimate_sparse_prior_variance(const TaskStepTotals& totals, double previous);

// pi's EM update: the share of the (task, feature) pairs that the tasks' supports hold, at least
// 0.5 / (t d) (an empty support everywhere would otherwise be absorbing) and at most 0.5.
double estimate_inclusion_probability(const TaskStepTotals& totals, std::int64_t tasks, std::int64_t d);

// The log marginal likelihood, up to a constant in f, of t Gaussian vectors with scatter matrix
// T = t S (S: r x r, row-major, their second moment about the mean) under Sigma ~ inverse-Wishart
// with nu = f t + r + 1 degrees of freedom and scale Psi = f t s I, s = tr(S) / r. The prior's mean
// is s I, and the posterior mean of Sigma is (S + f s I) / (1 + f), what shrink_covariance forms.
// Takes T's eigenvalues (from S's: t times them).
double shrinkage_log_marginal(const std::vector<double>& S_eigenvalues, double mean_variance, std::int64_t tasks, double f);

// The f > 0 that maximises shrinkage_log_marginal for S (a grid over log f from 1e-6 to 1e6, then a
// golden-section refinement); 0 where S carries nothing to shrink (r = 0, no tasks, S = 0).
double estimate_covariance_shrinkage(const std::vector<double>& S, int r, std::int64_t tasks);

}  // namespace lrsmeta::core
