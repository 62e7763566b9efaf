// A task that its incoming support trapped (tests/data/trapped_task: one of the quickstart's, 40
// rows, d = 100, with the fitted U, beta, Sigma, s2, tau2, pi and support threshold, and the
// support it came in with), as the task steps' tests read it. The CPU's step ends with support
// {0, 8, 80} (test_prior), and the kernel's must too (test_kernel_emulation).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/task_step_rules.hpp"
#include "lrsmeta/io.hpp"
#include "test_helpers.hpp"

namespace lrsmeta::testing {

struct TrappedTask {
  std::vector<double> X, y, U, beta, Sigma, precision;  // precision: s2 Sigma^-1
  int m = 0, d = 0, r = 0, k = 0;
  std::vector<std::int32_t> incoming;  // the support it came in with
  core::TaskPrior prior;               // pointers into this object: keep it alive

  explicit TrappedTask(const std::string& folder) {
    std::vector<std::int64_t> shape;
    X = read_npy_as<double>(folder + "X.npy", &shape);
    m = static_cast<int>(shape[0]);
    d = static_cast<int>(shape[1]);
    y = read_npy_as<double>(folder + "y.npy", &shape);
    U = read_npy_as<double>(folder + "U.npy", &shape);
    r = static_cast<int>(shape[1]);
    beta = read_npy_as<double>(folder + "beta.npy", &shape);
    Sigma = read_npy_as<double>(folder + "Sigma.npy", &shape);
    // s2, tau2, pi, the support threshold, then the incoming support.
    const std::vector<double> file = read_npy_as<double>(folder + "settings.npy", &shape);
    k = static_cast<int>(file.size()) - 4;
    const double s2 = file[0], tau2 = file[1], pi = file[2];
    precision.assign(static_cast<std::size_t>(r) * r, 0.0);
    for (int c = 0; c < r; ++c) {
      std::vector<double> e(static_cast<std::size_t>(r), 0.0);
      e[static_cast<std::size_t>(c)] = 1.0;
      const std::vector<double> col = solve_dense(Sigma, e);
      for (int a = 0; a < r; ++a) precision[static_cast<std::size_t>(a * r + c)] = s2 * col[static_cast<std::size_t>(a)];
    }
    prior.beta = beta.data();
    prior.w_precision = precision.data();
    prior.w_covariance = Sigma.data();
    prior.b_precision = s2 / tau2;
    prior.noise_variance = s2;
    prior.support_threshold = file[3];
    prior.log_inclusion = std::log(pi);
    prior.log_exclusion = std::log(1 - pi);
    prior.log_support_mass = detail::support_prior_log_mass(d, k, prior.log_inclusion, prior.log_exclusion);
    for (int q = 0; q < k; ++q) incoming.push_back(static_cast<std::int32_t>(file[static_cast<std::size_t>(4 + q)]));
  }
  TrappedTask(const TrappedTask&) = delete;
  TrappedTask& operator=(const TrappedTask&) = delete;
};

}  // namespace lrsmeta::testing
