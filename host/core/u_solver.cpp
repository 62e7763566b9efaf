#include "core/u_solver.hpp"

#include <algorithm>
#include <cstdio>

#include "core/backend.hpp"
#include "lrsmeta/io.hpp"

namespace lrsmeta::core {

namespace {
// Steps a warm-started cg takes per U step, for the cost model (measured in bench/RESULTS.md).
constexpr double kCgStepsEstimate = 15.0;
}  // namespace

USolverChoice choose_u_solver(std::int64_t n, std::int64_t t, std::int64_t d, int r, int value_bytes, const Options& o, bool on_gpu) {
  USolverChoice choice;
  if (o.u_solver != USolver::automatic) {
    choice.solver = o.u_solver;
    return choice;
  }
  const bool prior = o.prior == Prior::automatic && !o.privacy.enabled;
  const double rr = static_cast<double>(r + (prior ? 1 : 0)), dd = static_cast<double>(d), unknowns = dd * rr;
  if (o.privacy.enabled) {
    choice.why = "direct (private training: its noise goes on G)";
    return choice;
  }
  if (on_gpu) {
    choice.why = "direct (the CUDA backend's U step)";
    return choice;
  }
  if (rr == 0) return choice;
  char text[300];
  if (unknowns > static_cast<double>(kDirectUnknownsLimit)) {
    std::snprintf(text, sizeof text, "cg (%.0f unknowns: above the %lld a direct solve takes)", unknowns,
                  static_cast<long long>(kDirectUnknownsLimit));
    choice.solver = USolver::cg;
    choice.why = text;
    return choice;
  }
  std::string source;
  const double g_bytes = 2.0 * unknowns * unknowns * 8.0, available = available_memory_bytes(&source);
  if (g_bytes > available / 2) {
    std::snprintf(text, sizeof text, "cg (a direct solve's G would need %s, more than half of the %s of %s)",
                  format_bytes(g_bytes).c_str(), format_bytes(available).c_str(), source.c_str());
    choice.solver = USolver::cg;
    choice.why = text;
    return choice;
  }
  const double P = rr * (rr + 1) / 2, Q = dd * (dd + 1) / 2;
  const double direct = static_cast<double>(n) * dd * (dd + 1) + static_cast<double>(t) * 2.0 * P * Q + unknowns * unknowns * unknowns / 3.0;
  // One operator pass: with the prior X_i M and X_i^T (.) per task (4 n d r'); without, E_i is rank
  // one and a pass is two matrix-vector products per task (4 n d) plus the w's (4 t d r).
  const double flops = prior ? 4.0 * static_cast<double>(n) * dd * rr : 4.0 * static_cast<double>(n) * dd + 4.0 * static_cast<double>(t) * dd * rr;
  // Measured on the 2-core development machine (bench/RESULTS.md), against G's GEMM at about 1e11
  // flops/s: a pass without the prior at d = 100 (2.4e8 flops, 160 MB of float32 X) took about
  // 15 ms, the time of 1.5e9 flops of GEMM (memory-bound); with the prior (r' = 11: 1.8e9 flops)
  // about 85 ms, 8.5e9 (its per-row products run at about a fifth of GEMM's rate).
  const double bytes = static_cast<double>(n) * dd * static_cast<double>(value_bytes);
  const double cg = kCgStepsEstimate * std::max(flops * (prior ? 5.0 : 1.0), 10.0 * bytes);
  choice.solver = cg < direct ? USolver::cg : USolver::direct;
  std::snprintf(text, sizeof text, "%s (cost model: about %.2g flops per U step to form and factor G, %.2g for %.0f cg steps)",
                cg < direct ? "cg" : "direct", direct, cg, kCgStepsEstimate);
  choice.why = text;
  return choice;
}

}  // namespace lrsmeta::core
