// The trained model's own methods: each task's parameters, the population model, its checks.
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "core/checked_size.hpp"
#include "core/utf8.hpp"
#include "lrsmeta/lrsmeta.hpp"

namespace lrsmeta {

std::vector<double> Model::theta(std::int64_t task) const {
  if (task < 0 || task >= t) throw Error("model: task " + std::to_string(task) + " out of range [0, " + std::to_string(t) + ")");
  std::vector<double> th = beta.empty() ? std::vector<double>(static_cast<std::size_t>(d), 0.0) : beta;
  for (std::int64_t a = 0; a < d; ++a)
    for (std::int64_t p = 0; p < r; ++p) th[static_cast<std::size_t>(a)] += U[static_cast<std::size_t>(a * r + p)] * W[static_cast<std::size_t>(task * r + p)];
  for (std::int64_t s = 0; s < k; ++s) {
    const std::int32_t idx = B_index[static_cast<std::size_t>(task * k + s)];
    if (idx >= 0) th[static_cast<std::size_t>(idx)] += B_value[static_cast<std::size_t>(task * k + s)];
  }
  return th;
}

std::vector<double> Model::population_theta() const {
  if (has_prior()) return beta;
  std::vector<double> mean(static_cast<std::size_t>(d), 0.0);
  if (t == 0) return mean;
  std::vector<double> w_mean(static_cast<std::size_t>(r), 0.0);
  for (std::int64_t i = 0; i < t; ++i)
    for (std::int64_t p = 0; p < r; ++p) w_mean[static_cast<std::size_t>(p)] += W[static_cast<std::size_t>(i * r + p)];
  for (std::int64_t a = 0; a < d; ++a)
    for (std::int64_t p = 0; p < r; ++p) mean[static_cast<std::size_t>(a)] += U[static_cast<std::size_t>(a * r + p)] * w_mean[static_cast<std::size_t>(p)];
  for (std::size_t s = 0; s < B_index.size(); ++s)
    if (B_index[s] >= 0) mean[static_cast<std::size_t>(B_index[s])] += B_value[s];
  for (double& x : mean) x /= static_cast<double>(t);
  return mean;
}

std::vector<double> Model::theta_matrix() const {
  std::vector<double> all(static_cast<std::size_t>(t * d));
  for (std::int64_t i = 0; i < t; ++i) {
    const std::vector<double> th = theta(i);
    std::copy(th.begin(), th.end(), all.begin() + i * d);
  }
  return all;
}

void Model::validate() const {
  auto fail = [](const std::string& what) { throw Error("model: " + what); };
  if (d <= 0 || r < 0 || k < 0 || t < 0) fail("bad dimensions");
  if (r > d || k > d) fail("r or k exceeds d");
  // The sizes below come from a file's claims: computed with overflow checks.
  auto entries = [&](std::int64_t a, std::int64_t b, const char* what) {
    const std::optional<std::int64_t> p = core::checked_multiply(a, b);
    if (!p) fail(std::string(what) + " = " + std::to_string(a) + " x " + std::to_string(b) + " overflows a 64-bit count");
    return static_cast<std::size_t>(*p);
  };
  if (U.size() != entries(d, r, "d x r")) fail("U has " + std::to_string(U.size()) + " entries, expected d x r = " + std::to_string(d * r));
  if (W.size() != entries(t, r, "t x r")) fail("W has " + std::to_string(W.size()) + " entries, expected t x r = " + std::to_string(t * r));
  if (B_index.size() != entries(t, k, "t x k") || B_value.size() != entries(t, k, "t x k"))
    fail("B_index/B_value must have t x k = " + std::to_string(t * k) + " entries");
  for (double x : U) if (!std::isfinite(x)) fail("U has a non-finite value");
  for (double x : W) if (!std::isfinite(x)) fail("W has a non-finite value");
  for (double x : B_value) if (!std::isfinite(x)) fail("B_value has a non-finite value");
  for (std::int32_t idx : B_index) if (idx < -1 || idx >= d) fail("B_index has " + std::to_string(idx) + ", outside [-1, d)");
  if (!task_keys.empty() && task_keys.size() != static_cast<std::size_t>(t)) fail("task_keys must have t entries");
  // Keys and names are written to model.json, which holds UTF-8 only.
  for (std::size_t i = 0; i < task_keys.size(); ++i)
    if (core::utf8_error_offset(task_keys[i]) != std::string::npos) fail("the key of task " + std::to_string(i) + " is not valid UTF-8");
  for (std::size_t i = 0; i < feature_names.size(); ++i)
    if (core::utf8_error_offset(feature_names[i]) != std::string::npos) fail("feature name " + std::to_string(i) + " is not valid UTF-8");
  if (!beta.empty()) {
    if (beta.size() != static_cast<std::size_t>(d)) fail("beta must have d entries");
    if (Sigma.size() != static_cast<std::size_t>(r * r)) fail("Sigma must have r x r entries");
    for (double x : beta) if (!std::isfinite(x)) fail("beta has a non-finite value");
    for (double x : Sigma) if (!std::isfinite(x)) fail("Sigma has a non-finite value");
    if (!(noise_variance >= 0) || !std::isfinite(noise_variance)) fail("noise variance must be finite and >= 0");
    if (!(sparse_prior_variance >= 0) || !std::isfinite(sparse_prior_variance)) fail("sparse prior variance must be finite and >= 0");
    if (!(support_inclusion_probability >= 0 && support_inclusion_probability < 1))
      fail("support inclusion probability must be in [0, 1)");
  }
  if (!feature_scales.empty()) {
    if (feature_scales.size() != static_cast<std::size_t>(d)) fail("feature_scales must have d entries");
    for (double x : feature_scales)
      if (!(x > 0) || !std::isfinite(x)) fail("feature_scales must be positive and finite");
  }
}

}  // namespace lrsmeta
