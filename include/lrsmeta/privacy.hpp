// Differential privacy for AMHT-LRS (billboard model, user-level): the accountant.
//
// Each outer iteration releases the sums G and v through the Gaussian mechanism. A Gaussian
// mechanism with L2 sensitivity S and noise standard deviation sigma satisfies rho-zCDP with
// rho = S^2 / (2 sigma^2) (Bun and Steinke, 2016, Prop. 1.6); zCDP composes by adding rho
// (Lemma 1.7); rho-zCDP implies (rho + 2 sqrt(rho ln(1/delta)), delta)-DP (Prop. 1.3).
#pragma once

#include "lrsmeta/lrsmeta.hpp"

namespace lrsmeta::privacy {

// rho of one Gaussian mechanism.
LRSMETA_API double gaussian_zcdp(double sensitivity, double sigma);
// epsilon of rho-zCDP at the given delta.
LRSMETA_API double zcdp_to_epsilon(double rho, double delta);
// The largest rho whose epsilon at delta is the given epsilon (inverse of zcdp_to_epsilon).
LRSMETA_API double epsilon_to_zcdp(double epsilon, double delta);
// Noise multiplier z (sigma = z * sensitivity) such that `releases` Gaussian mechanisms spend
// exactly (epsilon, delta): releases / (2 z^2) = epsilon_to_zcdp(epsilon, delta).
LRSMETA_API double noise_multiplier(double epsilon, double delta, int releases);
// Mechanisms released by a private fit of `outer_iterations` iterations: G and v per iteration,
// plus one for a privatised spectral start.
LRSMETA_API int releases(int outer_iterations, bool private_spectral_start);
// Sensitivities of one task's contribution under the bounds (docs/design.md section 3).
LRSMETA_API double sensitivity_G(const PrivacyOptions& p);  // m_max C_x^2 C_w^2
LRSMETA_API double sensitivity_v(const PrivacyOptions& p);  // m_max C_x C_y C_w
LRSMETA_API double sensitivity_spectral(const PrivacyOptions& p);  // m_max C_x^2 C_y^2

}  // namespace lrsmeta::privacy
