// The options' names, their checks, and the defaults a fit fills in (lrsmeta.hpp's Options).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/checked_size.hpp"
#include "core/fitting.hpp"
#include "core/option_fields.hpp"
#include "core/u_solver.hpp"
#include "core/utf8.hpp"
#include "lrsmeta/lrsmeta.hpp"
#include "lrsmeta/privacy.hpp"

namespace lrsmeta {

const char* to_string(Variant v) {
  switch (v) {
    case Variant::pursuit: return "pursuit";
    case Variant::htp: return "htp";
    case Variant::iht: return "iht";
  }
  return "?";
}
const char* to_string(Init v) { return v == Init::random ? "random" : v == Init::spectral ? "spectral" : "auto"; }
const char* to_string(Device v) {
  switch (v) {
    case Device::cpu: return "cpu";
    case Device::cuda: return "cuda";
    case Device::automatic: return "auto";
  }
  return "?";
}
const char* to_string(Prior v) { return v == Prior::none ? "none" : "auto"; }
const char* to_string(USolver v) { return v == USolver::direct ? "direct" : v == USolver::cg ? "cg" : "auto"; }
const char* to_string(Selection v) {
  return v == Selection::evidence ? "evidence" : v == Selection::validation ? "validation" : "kfold";
}
const char* to_string(LowRankBasis v) {
  switch (v) {
    case LowRankBasis::learned: return "learned";
    case LowRankBasis::intercept: return "intercept";
    case LowRankBasis::slopes: return "slopes";
    case LowRankBasis::automatic: return "auto";
  }
  return "?";
}
LowRankBasis parse_low_rank_basis(const std::string& name) {
  if (name == "learned") return LowRankBasis::learned;
  if (name == "intercept") return LowRankBasis::intercept;
  if (name == "slopes") return LowRankBasis::slopes;
  if (name == "auto") return LowRankBasis::automatic;
  throw Error("unknown low-rank basis '" + name + "' (expected learned, intercept, slopes or auto)");
}
Selection parse_selection(const std::string& name) {
  if (name == "evidence") return Selection::evidence;
  if (name == "validation") return Selection::validation;
  if (name == "kfold") return Selection::kfold;
  throw Error("unknown selection '" + name + "' (expected evidence, validation or kfold)");
}
USolver parse_u_solver(const std::string& name) {
  if (name == "direct") return USolver::direct;
  if (name == "cg") return USolver::cg;
  if (name == "auto") return USolver::automatic;
  throw Error("unknown U solver '" + name + "' (expected direct, cg or auto)");
}
Prior parse_prior(const std::string& name) {
  if (name == "auto") return Prior::automatic;
  if (name == "none") return Prior::none;
  throw Error("unknown prior '" + name + "' (expected auto or none)");
}
Variant parse_variant(const std::string& name) {
  if (name == "pursuit") return Variant::pursuit;
  if (name == "htp") return Variant::htp;
  if (name == "iht") return Variant::iht;
  throw Error("unknown task-step variant '" + name + "' (expected pursuit, htp or iht)");
}
Init parse_init(const std::string& name) {
  if (name == "random") return Init::random;
  if (name == "spectral") return Init::spectral;
  if (name == "auto") return Init::automatic;
  throw Error("unknown initialisation '" + name + "' (expected random, spectral or auto)");
}
Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::cpu;
  if (name == "cuda") return Device::cuda;
  if (name == "auto") return Device::automatic;
  throw Error("unknown device '" + name + "' (expected cpu, cuda or auto)");
}

template <typename T>
void validate_layout(const TaskDataView<T>& data, bool require_y) {
  if (data.n < 0 || data.d < 0 || data.t < 0)
    throw Error("data: negative size (n = " + std::to_string(data.n) + ", d = " + std::to_string(data.d) +
                ", t = " + std::to_string(data.t) + ")");
  if (data.d == 0) throw Error("data: no features (d = 0)");
  if (data.t == 0) throw Error("data: no tasks (t = 0)");
  if (data.d > (1 << 30)) throw Error("data: d = " + std::to_string(data.d) + " is too large");
  if (data.task_offsets == nullptr) throw Error("data: task_offsets is null");
  if (data.n > 0 && data.X == nullptr) throw Error("data: X is null");
  if (require_y && data.n > 0 && data.y == nullptr) throw Error("data: y is null");
  if (data.task_offsets[0] != 0)
    throw Error("data: task_offsets[0] is " + std::to_string(data.task_offsets[0]) + ", must be 0");
  for (std::int64_t i = 0; i < data.t; ++i)
    if (data.task_offsets[i + 1] < data.task_offsets[i])
      throw Error("data: task_offsets decrease at task " + std::to_string(i) + " (" +
                  std::to_string(data.task_offsets[i]) + " then " + std::to_string(data.task_offsets[i + 1]) + ")");
  if (data.task_offsets[data.t] != data.n)
    throw Error("data: task_offsets end at " + std::to_string(data.task_offsets[data.t]) + " but there are " +
                std::to_string(data.n) + " rows");
  for (std::int64_t i = 0; i < data.t; ++i)
    if (data.task_size(i) > (std::int64_t{1} << 31) - 1)
      throw Error("data: task " + std::to_string(i) + " has more than 2^31 rows");
}
template void validate_layout(const TaskDataView<float>&, bool);
template void validate_layout(const TaskDataView<double>&, bool);

template <typename T>
void validate(const TaskDataView<T>& data, bool require_y) {
  validate_layout(data, require_y);
  // One parallel pass over X (it can be many GB, mapped from disk), reporting the first bad entry.
  const std::optional<std::int64_t> checked_entries = core::checked_multiply(data.n, data.d);
  if (!checked_entries) throw Error("data: n x d = " + std::to_string(data.n) + " x " + std::to_string(data.d) + " overflows a 64-bit count");
  const std::int64_t entries = *checked_entries;
  std::int64_t first_bad = entries;
#pragma omp parallel for schedule(static) reduction(min : first_bad)
  for (std::int64_t e = 0; e < entries; ++e)
    if (!std::isfinite(static_cast<double>(data.X[e])) && e < first_bad) first_bad = e;
  if (first_bad < entries)
    throw Error("data: X has a non-finite value (NaN or Inf) at row " + std::to_string(first_bad / data.d) +
                ", column " + std::to_string(first_bad % data.d));
  if (data.y != nullptr)
    for (std::int64_t j = 0; j < data.n; ++j)
      if (!std::isfinite(static_cast<double>(data.y[j])))
        throw Error("data: y has a non-finite value (NaN or Inf) at row " + std::to_string(j));
}
template void validate(const TaskDataView<float>&, bool);
template void validate(const TaskDataView<double>&, bool);

void validate(const Options& o, std::int64_t d) {
  auto fail = [](const std::string& what) { throw Error("options: " + what); };
  if (o.rank < 0 && o.rank != Options::kAuto) fail("rank r = " + std::to_string(o.rank) + " is negative");
  if (o.sparsity < 0 && o.sparsity != Options::kAuto) fail("sparsity k = " + std::to_string(o.sparsity) + " is negative");
  // (With candidates, r or k itself is not used.)
  if (o.rank > d && o.rank_candidates.empty())
    fail("rank r = " + std::to_string(o.rank) + " exceeds the dimension d = " + std::to_string(d));
  if (o.sparsity > d && o.sparsity_candidates.empty())
    fail("sparsity k = " + std::to_string(o.sparsity) + " exceeds the dimension d = " + std::to_string(d));
  core::check_ranges(o);  // every option's range, from the options table
  const PrivacyOptions& p = o.privacy;
  if (p.enabled && o.iterations < 1) fail("privacy: needs at least one outer iteration");
  if (o.support_threshold_candidates.empty()) fail("no support threshold candidates");
  for (double c : o.support_threshold_candidates)
    if (!(c >= 0) || !std::isfinite(c)) fail("support threshold candidates must be finite and >= 0");
  if (o.sparse_prior_scale_candidates.empty()) fail("no sparse prior scale candidates");
  for (double c : o.sparse_prior_scale_candidates)
    if (!(c > 0) || !std::isfinite(c)) fail("sparse prior scale candidates must be finite and > 0");
  if (o.covariance_shrinkage_candidates.empty()) fail("no covariance shrinkage candidates");
  for (double c : o.covariance_shrinkage_candidates)
    if (!(c >= 0) || !std::isfinite(c)) fail("covariance shrinkage candidates must be finite and >= 0");
  for (int r : o.rank_candidates)
    if (r < 0 || r > d) fail("rank candidate " + std::to_string(r) + " is outside [0, d = " + std::to_string(d) + "]");
  for (int k : o.sparsity_candidates)
    if (k < 0 || k > d) fail("sparsity candidate " + std::to_string(k) + " is outside [0, d = " + std::to_string(d) + "]");
  if (p.enabled && (!o.rank_candidates.empty() || !o.sparsity_candidates.empty()))
    fail("privacy: rank and sparsity cannot be chosen on validation rows of private data (give them as numbers)");
  int max_rank = o.rank_candidates.empty() ? o.rank : 0;
  for (int r : o.rank_candidates) max_rank = std::max(max_rank, r);
  if (o.low_rank_basis == LowRankBasis::intercept || o.low_rank_basis == LowRankBasis::slopes) {
    const std::string name = to_string(o.low_rank_basis);
    const bool intercept = o.low_rank_basis == LowRankBasis::intercept;
    const int held_rank = intercept ? 1 : static_cast<int>(d);
    if (o.prior != Prior::automatic || p.enabled) fail("low-rank basis " + name + " needs the prior (prior auto, without privacy)");
    if (!o.rank_candidates.empty() || (o.rank != held_rank && o.rank != Options::kAuto))
      fail("low-rank basis " + name + " holds U at " + (intercept ? "one column (r = 1)" : "the features' axes (r = d = " + std::to_string(d) + ")") +
           ", but rank r = " + (o.rank_candidates.empty() ? std::to_string(o.rank) : std::string("auto")) +
           " was given: give rank " + std::to_string(held_rank));
    if (o.u_solver == USolver::cg) fail("low-rank basis " + name + " solves for beta directly: use --u-solver direct (or auto)");
  }
  if (p.enabled && o.u_solver == USolver::cg)
    fail("privacy: the private U step adds its noise to G, which cg never forms: use --u-solver direct (or auto)");
  // With the prior, beta is solved together with U: one more block of d unknowns.
  const std::int64_t unknowns = static_cast<std::int64_t>(max_rank + (o.prior == Prior::automatic && !p.enabled ? 1 : 0)) * d;
  const bool direct = o.u_solver == USolver::direct || (o.u_solver == USolver::automatic && (p.enabled || o.low_rank_basis == LowRankBasis::intercept || o.low_rank_basis == LowRankBasis::slopes));
  if (direct && unknowns > core::kDirectUnknownsLimit)
    fail(std::to_string(unknowns) + " unknowns in the U step (d = " + std::to_string(d) + ", r = " + std::to_string(max_rank) +
         (o.prior == Prior::automatic ? ", plus beta" : "") + "): a direct solve's G would need " +
         std::to_string(unknowns * unknowns * 8 / (1 << 20)) + " MiB; it takes at most " + std::to_string(core::kDirectUnknownsLimit) +
         (p.enabled ? "" : " (--u-solver cg has no such limit)"));
}

std::vector<int> default_rank_candidates(std::int64_t d) {
  std::vector<int> out;
  for (int r : {0, 1, 2, 3, 5, 8, 12, 16, 24, 32})
    if (r <= d) out.push_back(r);
  if (d <= 32 && out.back() != d) out.push_back(static_cast<int>(d));  // the full-rank model (see fit)
  return out;
}
std::vector<int> default_sparsity_candidates(std::int64_t d) {
  std::vector<int> out;
  for (int k : {0, 1, 2, 3, 5})
    if (k <= d) out.push_back(k);
  return out;
}


Options resolved(const Options& options, std::vector<std::string>* notes) {
  Options o = options;
  if (o.init == Init::automatic)
    o.init = o.prior == Prior::automatic && !o.privacy.enabled ? Init::spectral : Init::random;
  if (o.privacy.enabled && o.prior == Prior::automatic) {
    o.prior = Prior::none;
    if (notes)
      notes->push_back("private training uses prior none: the empirical-Bayes prior's statistics (beta, Sigma, s2) "
                       "would be releases the privacy accountant does not pay for");
  }
  return o;
}

void resolve_candidates(Options& options, std::int64_t d) {
  if (options.rank == Options::kAuto && options.rank_candidates.empty()) {  // U held: its rank is the basis's
    if (options.low_rank_basis == LowRankBasis::intercept) options.rank = 1;
    if (options.low_rank_basis == LowRankBasis::slopes) options.rank = static_cast<int>(d);
  }
  if (options.rank == Options::kAuto && options.rank_candidates.empty()) options.rank_candidates = default_rank_candidates(d);
  if (options.sparsity == Options::kAuto && options.sparsity_candidates.empty())
    options.sparsity_candidates = default_sparsity_candidates(d);
  for (std::vector<int>* c : {&options.rank_candidates, &options.sparsity_candidates}) {
    if (c->empty()) continue;
    c->erase(std::remove_if(c->begin(), c->end(), [&](int v) { return v > d; }), c->end());
    if (c->empty()) c->push_back(0);
  }
}

}  // namespace lrsmeta
