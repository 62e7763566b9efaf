// Over-relaxed EM for the variance components (s2 and Sigma). EM moves them by a share of the way
// each iteration, and where the data say little about a variance (slopes seen by a handful of rows
// per task, a variance heading for 0) that share is small: InstEval's slopes model took 100
// iterations to meet the tolerance, its evidence still rising by a nat every ten. Where the M-step
// keeps moving them the same way, the step is stretched, eta times EM's own along the same curve
// (s2 on a log scale, Sigma along the geodesic of positive definite matrices), eta growing
// geometrically with the run of steps that went the same way and raised the evidence, and back to
// EM's own step (eta = 1) as soon as one did not: over-relaxed bound optimisation (Salakhutdinov and
// Roweis, ICML 2003), with the direction of s2 as the signal that the slow mode is being followed.
// Everything is computed from the history and the state every process holds alike, so a resumed fit
// and every process take the same steps.
#pragma once

#include <cstdint>
#include <vector>

#include "lrsmeta/lrsmeta.hpp"

namespace lrsmeta::core {

// Steps that must have gone the same way before EM's step is stretched (a short run is as likely
// the noise of the supports changing as a slow mode), the growth of eta per further step, its cap
// (InstEval's slopes model reached its maximum in 20 iterations capped at 16, 35 capped at 8;
// docs/model.md).
constexpr int kOverrelaxationDelay = 2;
constexpr double kOverrelaxationGrowth = 1.5;
constexpr double kOverrelaxationLimit = 16.0;

// eta for this iteration's M-step: history (this fit's iterations so far), the sparsity in effect
// now (a change of it starts a new run), this iteration's log evidence (of the state before the
// M-step) and s2 before and after EM's own M-step. A step goes "the same way" when s2 moves in the
// direction it moved in the iteration before, and counts only where the evidence rose.
double overrelaxation_factor(const std::vector<IterationInfo>& history, int sparsity_in_effect, double log_evidence,
                             double s2_before, double s2_proposed);

// A^{1/2} (A^{-1/2} B A^{-1/2})^eta A^{1/2}: the point at eta along the geodesic from A (eta = 0)
// to B (eta = 1) of the positive definite r x r matrices (row-major, symmetric); eta > 1 goes on
// past B. A's eigenvalues are floored at 1e-12 of its largest.
std::vector<double> covariance_geodesic(const std::vector<double>& A, const std::vector<double>& B, int r, double eta);

// Sigma_before (r x r, in the coordinates of U_before, d x r row-major) in the coordinates of U
// (T Sigma_before T^T, T = U^T U_before): where the M-step started from, seen from the basis it
// ended in (the identity map where U is held).
std::vector<double> covariance_in_basis(const std::vector<double>& Sigma_before, const std::vector<double>& U_before,
                                        const std::vector<double>& U, int d, int r);

}  // namespace lrsmeta::core
