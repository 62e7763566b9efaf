// AMHT-LRS orchestration (docs/design.md section 2): one copy of the algorithm, backend-agnostic.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>

#include "core/checked_size.hpp"
#include "core/utf8.hpp"
#include "core/backend.hpp"
#include "core/fingerprint.hpp"
#include "core/noise.hpp"
#include "core/prior.hpp"
#include "core/communicator.hpp"
#include "core/distributed_backend.hpp"
#include "core/estimation.hpp"
#include "core/u_solver.hpp"
#include "core/random.hpp"
#include "linalg/blas_lapack.hpp"
#include "lrsmeta/io.hpp"
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
const char* to_string(Selection v) { return v == Selection::evidence ? "evidence" : "validation"; }
Selection parse_selection(const std::string& name) {
  if (name == "evidence") return Selection::evidence;
  if (name == "validation") return Selection::validation;
  throw Error("unknown selection '" + name + "' (expected evidence or validation)");
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
void validate(const TaskDataView<T>& data, bool require_y) {
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
  if (o.rank < 0) fail("rank r = " + std::to_string(o.rank) + " is negative");
  if (o.sparsity < 0) fail("sparsity k = " + std::to_string(o.sparsity) + " is negative");
  // (With candidates, r or k itself is not used.)
  if (o.rank > d && o.rank_candidates.empty())
    fail("rank r = " + std::to_string(o.rank) + " exceeds the dimension d = " + std::to_string(d));
  if (o.sparsity > d && o.sparsity_candidates.empty())
    fail("sparsity k = " + std::to_string(o.sparsity) + " exceeds the dimension d = " + std::to_string(d));
  if (o.iterations < 0) fail("iterations = " + std::to_string(o.iterations) + " is negative");
  if (o.inner_iterations < 1) fail("inner iterations = " + std::to_string(o.inner_iterations) + " must be at least 1");
  if (o.warm_start_iterations < 0) fail("warm-start iterations = " + std::to_string(o.warm_start_iterations) + " is negative");
  if (!(o.ridge >= 0) || !std::isfinite(o.ridge)) fail("ridge must be finite and >= 0");
  if (!(o.task_ridge >= 0) || !std::isfinite(o.task_ridge)) fail("task ridge must be finite and >= 0");
  if (!(o.step_size >= 0) || !std::isfinite(o.step_size)) fail("step size must be finite and >= 0 (0: the variant's default)");
  if (!(o.tolerance >= 0) || !std::isfinite(o.tolerance)) fail("tolerance must be finite and >= 0");
  if (!(o.relative_tolerance >= 0) || !std::isfinite(o.relative_tolerance)) fail("relative tolerance must be finite and >= 0");
  if (o.threads < 0) fail("threads = " + std::to_string(o.threads) + " is negative");
  const PrivacyOptions& p = o.privacy;
  if (p.enabled) {
    if (!(p.epsilon > 0) || !std::isfinite(p.epsilon)) fail("privacy: epsilon must be finite and > 0");
    if (!(p.delta > 0 && p.delta < 1)) fail("privacy: delta must be in (0, 1)");
    for (double c : {p.clip_x, p.clip_y, p.clip_w})
      if (!(c > 0) || !std::isfinite(c)) fail("privacy: the bounds clip_x, clip_y, clip_w must be finite and > 0");
    if (p.max_samples < 1) fail("privacy: max_samples must be at least 1");
    if (!std::isfinite(p.noise_multiplier)) fail("privacy: noise multiplier must be finite");
    if (o.iterations < 1) fail("privacy: needs at least one outer iteration");
  }
  if (!std::isfinite(o.support_threshold)) fail("support threshold must be finite (>= 0, or < 0 for auto)");
  if (o.support_threshold_candidates.empty()) fail("no support threshold candidates");
  for (double c : o.support_threshold_candidates)
    if (!(c >= 0) || !std::isfinite(c)) fail("support threshold candidates must be finite and >= 0");
  if (!std::isfinite(o.sparse_prior_scale) || o.sparse_prior_scale == 0)
    fail("sparse prior scale must be > 0, or < 0 for auto (chosen on validation rows)");
  if (o.sparse_prior_scale_candidates.empty()) fail("no sparse prior scale candidates");
  for (double c : o.sparse_prior_scale_candidates)
    if (!(c > 0) || !std::isfinite(c)) fail("sparse prior scale candidates must be finite and > 0");
  if (!std::isfinite(o.covariance_shrinkage)) fail("covariance shrinkage must be finite (>= 0, or < 0 for auto)");
  if (o.covariance_shrinkage_candidates.empty()) fail("no covariance shrinkage candidates");
  for (double c : o.covariance_shrinkage_candidates)
    if (!(c >= 0) || !std::isfinite(c)) fail("covariance shrinkage candidates must be finite and >= 0");
  if (!(o.selection_tolerance >= 0) || !std::isfinite(o.selection_tolerance)) fail("selection tolerance must be finite and >= 0");
  if (!(o.validation_fraction > 0 && o.validation_fraction <= 0.5))
    fail("validation fraction must be in (0, 0.5]");
  if (o.selection_tasks < 0) fail("selection tasks = " + std::to_string(o.selection_tasks) + " is negative (0: every task)");
  for (int r : o.rank_candidates)
    if (r < 0 || r > d) fail("rank candidate " + std::to_string(r) + " is outside [0, d = " + std::to_string(d) + "]");
  for (int k : o.sparsity_candidates)
    if (k < 0 || k > d) fail("sparsity candidate " + std::to_string(k) + " is outside [0, d = " + std::to_string(d) + "]");
  if (p.enabled && (!o.rank_candidates.empty() || !o.sparsity_candidates.empty()))
    fail("privacy: rank and sparsity cannot be chosen on validation rows of private data (give them as numbers)");
  int max_rank = o.rank_candidates.empty() ? o.rank : 0;
  for (int r : o.rank_candidates) max_rank = std::max(max_rank, r);
  if (!(o.cg_tolerance > 0) || !std::isfinite(o.cg_tolerance)) fail("cg tolerance must be finite and > 0");
  if (!(o.cg_forcing >= 0 && o.cg_forcing < 1)) fail("cg forcing must be in [0, 1)");
  if (o.cg_max_steps < 1) fail("cg max steps = " + std::to_string(o.cg_max_steps) + " must be at least 1");
  if (p.enabled && o.u_solver == USolver::cg)
    fail("privacy: the private U step adds its noise to G, which cg never forms: use --u-solver direct (or auto)");
  // With the prior, beta is solved together with U: one more block of d unknowns.
  const std::int64_t unknowns = static_cast<std::int64_t>(max_rank + (o.prior == Prior::automatic && !p.enabled ? 1 : 0)) * d;
  const bool direct = o.u_solver == USolver::direct || (o.u_solver == USolver::automatic && p.enabled);
  if (direct && unknowns > core::kDirectUnknownsLimit)
    fail(std::to_string(unknowns) + " unknowns in the U step (d = " + std::to_string(d) + ", r = " + std::to_string(max_rank) +
         (o.prior == Prior::automatic ? ", plus beta" : "") + "): a direct solve's G would need " +
         std::to_string(unknowns * unknowns * 8 / (1 << 20)) + " MiB; it takes at most " + std::to_string(core::kDirectUnknownsLimit) +
         (p.enabled ? "" : " (--u-solver cg has no such limit)"));
}

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
}

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

namespace core {
// Gaussian entries, then the Q factor of their QR.
std::vector<double> random_orthonormal_basis(std::int64_t d, std::int64_t r, std::uint64_t seed) {
  core::NormalGenerator gen(seed);
  std::vector<double> colmajor(static_cast<std::size_t>(d * r));
  for (double& x : colmajor) x = gen();
  linalg::qr_q_factor(static_cast<int>(d), static_cast<int>(r), colmajor.data());
  std::vector<double> U(colmajor.size());
  for (std::int64_t a = 0; a < d; ++a)
    for (std::int64_t p = 0; p < r; ++p) U[static_cast<std::size_t>(a * r + p)] = colmajor[static_cast<std::size_t>(p * d + a)];
  return U;
}
}  // namespace core

namespace {

// The b prior's settings in the fits on the fit rows that validation's candidates are evaluated
// from, and the start of their estimates (values validation chose most often in
// bench/noisy_synthetic and the MovieLens benchmark); the support threshold where it is not chosen
// on validation rows.
constexpr double kDefaultSparseScale = 0.1, kDefaultThreshold = 2.0, kDefaultShrinkage = 10.0;

// How one fit_fixed runs: the caller's hooks, and for the final fit its checkpoints.
struct FitRun {
  IterationCallback on_iteration;
  std::function<bool()> stop;
  bool final_fit = false;  // false: a fit of the choice on validation rows (Stopped says so)
  std::function<void(const Checkpoint&)> checkpoint;
  int checkpoint_every = 1;
  bool checkpoint_at_start = false;
  bool checkpoint_at_end = false;  // also after the last outer iteration, however the fit ends
  const Checkpoint* resume = nullptr;
  const Checkpoint* header = nullptr;  // what every checkpoint records besides the fit's state (data, asked options, choice)
  Communicator* communicator = nullptr;  // over many processes (data: this one's shard); null: one
};

// The fit with r, k and tau2 fixed. With `validation` (the held-out rows of the same tasks), the
// validation MSE of every b-prior scale candidate is returned in *candidate_mse, each from one more
// task-step pass with the fitted U, beta, Sigma and s2.
template <typename T>
Model fit_fixed(const TaskDataView<T>& data, const Options& fit_options, const FitRun& run,
                const TaskDataView<T>* validation = nullptr, std::vector<double>* candidate_mse = nullptr) {
  const auto start = Clock::now();
  core::SingleProcess alone;
  Communicator& comm = run.communicator ? *run.communicator : alone;
  // The whole fit's sizes (this process holds a shard of the tasks when there are many).
  std::int64_t sizes[2] = {data.n, data.t};
  comm.sum(sizes, 2);
  const std::int64_t n_all = sizes[0], t_all = sizes[1];
  // auto's U solver, decided for this fit's r and data (by rank 0: every process must use the same).
  Options options = fit_options;
  const bool on_gpu = device_for(options) == Device::cuda;
  core::USolverChoice u_solver =
      core::choose_u_solver(n_all, t_all, data.d, options.rank, static_cast<int>(sizeof(T)), options, on_gpu);
  if (core::rank0_says(comm, u_solver.solver == USolver::cg) != (u_solver.solver == USolver::cg)) {
    u_solver.solver = u_solver.solver == USolver::cg ? USolver::direct : USolver::cg;
    u_solver.why = std::string(to_string(u_solver.solver)) + " (rank 0's choice)";
  }
  options.u_solver = u_solver.solver;
  const bool solves_for_something = options.rank + (options.prior == Prior::automatic ? 1 : 0) > 0;
  const std::string u_note = !u_solver.why.empty() && solves_for_something ? "U step: " + u_solver.why : std::string();
  const Checkpoint* resume = run.resume;
  const std::int64_t d = data.d, r = options.rank, k = options.sparsity;
  std::unique_ptr<core::Backend> backend = core::make_backend(data, options);
  if (comm.size() > 1) backend = core::make_distributed_backend(std::move(backend), comm, data.n);
  core::UStep u_step(*backend, options, comm);

  // Private training: calibrate the noise to (epsilon, delta) over every release the fit may make.
  const PrivacyOptions& po = options.privacy;
  const bool private_spectral = po.enabled && options.init == Init::spectral && r > 0;
  std::unique_ptr<core::GaussianNoise> noise;
  core::PrivateRelease release;
  const core::PrivateRelease* private_release = nullptr;
  PrivacyReport report;
  if (po.enabled) {
    const int planned = privacy::releases(static_cast<int>(r > 0 ? options.iterations : 0), private_spectral);
    // Calibrated z is rounded up by a relative 1e-12 so that rounding never reports more spent
    // than the target.
    const double z = po.noise_multiplier >= 0 ? po.noise_multiplier
                                              : privacy::noise_multiplier(po.epsilon, po.delta, planned) * (1.0 + 1e-12);
    noise = std::make_unique<core::GaussianNoise>(po);
    release.bounds = po;
    // z = 0 (noise off, for experiments) gives no noise whatever the bounds.
    auto sigma = [z](double sensitivity) {
      if (z == 0.0) return 0.0;
      if (!std::isfinite(sensitivity))
        throw Error("options: privacy: the bounds are too large (the sensitivity overflows)");
      return z * sensitivity;
    };
    release.sigma_G = sigma(privacy::sensitivity_G(po));
    release.sigma_v = sigma(privacy::sensitivity_v(po));
    release.sigma_spectral = sigma(privacy::sensitivity_spectral(po));
    // About the spectral norm of the symmetric noise (2 sigma sqrt(dr)): keeps the noisy G positive
    // definite. It depends on the bounds only, never on the data.
    release.ridge = 2.0 * release.sigma_G * std::sqrt(static_cast<double>(d * r));
    release.noise = noise.get();
    private_release = &release;
    report.enabled = true;
    report.delta = po.delta;
    report.noise_multiplier = z;
    report.sensitivity_G = privacy::sensitivity_G(po);
    report.sensitivity_v = privacy::sensitivity_v(po);
    report.sigma_G = release.sigma_G;
    report.sigma_v = release.sigma_v;
    report.ridge = release.ridge;
    report.fixed_seed = po.fixed_seed;
  }

  if (resume) {
    if (resume->model.r != r || resume->model.k != k || resume->model.d != d || resume->model.t != data.t)
      throw Error("resume: the checkpoint's model (d = " + std::to_string(resume->model.d) + ", r = " + std::to_string(resume->model.r) +
                  ", k = " + std::to_string(resume->model.k) + ", t = " + std::to_string(resume->model.t) + ") does not match this fit");
    backend->set_U(resume->model.U);
    backend->import_task_parameters(resume->model);
    if (noise) noise->restore(resume->noise_state);
    report.releases = resume->model.privacy.releases;
  } else if (options.init == Init::spectral && r > 0) {
    std::vector<double> M = backend->spectral_moment(private_release);  // symmetric: row- and column-major agree
    // Rank 0 draws the noise (once) and takes the eigenvectors; every process gets its U.
    std::vector<double> U(static_cast<std::size_t>(d * r));
    if (comm.rank() == 0) {
      if (private_release) core::add_symmetric_noise(M.data(), static_cast<int>(d), release.sigma_spectral, *noise);
      const std::vector<double> E = linalg::top_eigenvectors(static_cast<int>(d), M, static_cast<int>(r));
      for (std::int64_t a = 0; a < d; ++a)
        for (std::int64_t p = 0; p < r; ++p) U[static_cast<std::size_t>(a * r + p)] = E[static_cast<std::size_t>(p * d + a)];
    }
    core::broadcast(comm, U);
    if (private_release) ++report.releases;
    backend->set_U(U);
  } else {
    backend->set_U(core::random_orthonormal_basis(d, r, options.seed));
  }

  // The empirical-Bayes prior (never under privacy: fit() resolves the options so).
  const bool use_prior = options.prior == Prior::automatic;
  // What the fit estimates from all rows (negative settings): tau2 by EM, Sigma's shrinkage by
  // marginal likelihood (host/core/estimation.hpp).
  const bool estimate_tau2 = use_prior && options.sparse_prior_scale < 0;
  const bool estimate_shrinkage = use_prior && options.covariance_shrinkage < 0 && r > 0;
  // Under Selection::evidence the supports have a prior too (inclusion probability pi, by EM), so
  // that k is an upper bound: each task pays for choosing among many supports.
  const bool estimate_inclusion = use_prior && options.selection == Selection::evidence && k > 0;
  core::PriorState prior;
  double coefficient_scale = 1.0, tau2 = 0.0;
  if (use_prior && resume) {
    if (!resume->model.has_prior()) throw Error("resume: the checkpoint has no prior, this fit uses one");
    prior.beta = resume->model.beta;
    prior.Sigma = resume->model.Sigma;
    prior.noise_variance = resume->noise_variance;
    prior.b_precision = resume->b_precision;
    prior.beta_variance = resume->beta_variance;
    prior.beta_precision = resume->beta_precision;
    prior.support_threshold = resume->support_threshold;
    prior.covariance_shrinkage = resume->covariance_shrinkage;
    prior.inclusion_probability = resume->inclusion_probability;
    coefficient_scale = resume->coefficient_scale;
    tau2 = resume->sparse_prior_variance;
  } else if (use_prior) {
    prior = core::initial_prior(backend->data_moments(), static_cast<int>(d), static_cast<int>(r), &coefficient_scale);
    tau2 = (estimate_tau2 ? kDefaultSparseScale : options.sparse_prior_scale) * coefficient_scale;
    prior.support_threshold = options.support_threshold < 0 ? kDefaultThreshold : options.support_threshold;
    prior.covariance_shrinkage = std::max(0.0, options.covariance_shrinkage);
    prior.inclusion_probability = estimate_inclusion ? std::min(0.5, static_cast<double>(k) / static_cast<double>(d)) : 0.0;
    if (!options.population_prior) prior.beta_variance = 0.0;
  }
  auto apply_prior = [&](int k_now) {
    if (!use_prior) return;
    core::refresh_precisions(prior, k_now > 0 ? tau2 : 0.0);
    backend->set_prior(&prior);
  };

  Model model;
  model.d = d;
  model.r = r;
  model.k = k;
  model.t = data.t;
  model.options = options;
  const double elapsed_before = resume ? resume->elapsed_seconds : 0.0;

  // The state after `it` outer iterations, handed to the caller.
  auto write_checkpoint = [&](int it) {
    Checkpoint c = *run.header;
    c.model.d = d;
    c.model.r = r;
    c.model.k = k;
    c.model.t = data.t;
    c.model.options = options;  // resolved (the U solver auto chose here is kept on a resume elsewhere)
    if (!u_note.empty()) c.model.notes.push_back(u_note);
    c.model.history = model.history;
    c.model.U = backend->get_U();
    c.model.W.resize(static_cast<std::size_t>(data.t * r));
    c.model.B_index.resize(static_cast<std::size_t>(data.t * k));
    c.model.B_value.resize(static_cast<std::size_t>(data.t * k));
    backend->export_task_parameters(c.model);
    if (use_prior) {
      c.model.beta = prior.beta;
      c.model.Sigma = prior.Sigma;
      c.model.noise_variance = c.noise_variance = prior.noise_variance;
      c.model.sparse_prior_variance = c.sparse_prior_variance = tau2;
      c.model.support_threshold = c.support_threshold = prior.support_threshold;
      c.model.covariance_shrinkage = c.covariance_shrinkage = prior.covariance_shrinkage;
      c.model.support_inclusion_probability = c.inclusion_probability = prior.inclusion_probability;
      c.b_precision = prior.b_precision;
      c.beta_variance = prior.beta_variance;
      c.beta_precision = prior.beta_precision;
      c.coefficient_scale = coefficient_scale;
    }
    c.model.privacy = report;
    c.noise_state = noise ? noise->state() : std::string();
    c.iteration = it;
    c.elapsed_seconds = elapsed_before + seconds_since(start);
    run.checkpoint(c);
  };
  // Whether the history says training is over (a tolerance met): checked after every iteration, and
  // on a resume before the first, so that a resumed fit stops where the uninterrupted one did.
  auto converged = [&]() {
    if (model.history.empty()) return false;
    const IterationInfo& info = model.history.back();
    const int it = info.iteration;
    if (options.tolerance > 0 && info.u_change < options.tolerance && it > options.warm_start_iterations) return true;
    if (use_prior && options.relative_tolerance > 0 && it > options.warm_start_iterations + 1 && model.history.size() >= 2) {
      const IterationInfo& before = model.history[model.history.size() - 2];
      auto relative = [](double now, double then) { return std::fabs(now - then) / std::max(std::fabs(then), 1e-300); };
      if (relative(info.noise_variance, before.noise_variance) < options.relative_tolerance &&
          relative(info.training_loss, before.training_loss) < options.relative_tolerance)
        return true;
      // A cycle of two states (a task's support flipping back and forth) is as converged as it gets.
      if (model.history.size() >= 3) {
        const IterationInfo& two_before = model.history[model.history.size() - 3];
        if (relative(info.noise_variance, two_before.noise_variance) < options.relative_tolerance &&
            relative(info.training_loss, two_before.training_loss) < options.relative_tolerance)
          return true;
      }
    }
    return false;
  };
  int first_iteration = 1;
  if (resume) {
    model.history = resume->model.history;
    first_iteration = converged() ? options.iterations + 1 : resume->iteration + 1;
  } else if (run.checkpoint && run.checkpoint_at_start) {
    write_checkpoint(0);
  }
  for (int it = first_iteration; it <= options.iterations; ++it) {
    const int k_now = it <= options.warm_start_iterations ? 0 : static_cast<int>(k);
    const auto t0 = Clock::now();
    apply_prior(k_now);
    const core::PriorState* prior_now = use_prior ? &prior : nullptr;
    // cg's start (v, W_hat and the warm start's residual) comes with the task step: its time is
    // counted in the task step's.
    std::optional<core::UStepStart> u_start;
    if (!private_release && u_step.starts_in_task_step(prior_now)) u_start = u_step.start_request(prior_now);
    const core::TaskStepTotals totals = u_start ? backend->task_step_all_with_u_start(k_now, *u_start) : backend->task_step_all(k_now);
    const double task_seconds = seconds_since(t0);
    const auto t1 = Clock::now();
    std::vector<double> w_mean;
    if (use_prior) w_mean = core::update_hyperparameters(prior, totals, t_all);
    if (estimate_tau2 && k_now > 0) tau2 = core::estimate_sparse_prior_variance(totals, tau2);
    if (estimate_inclusion && k_now > 0) prior.inclusion_probability = core::estimate_inclusion_probability(totals, t_all, d);
    const double change = u_start ? u_step.run_from_start(std::move(*u_start), prior_now) : u_step.run(private_release, prior_now);
    if (use_prior) {
      prior.beta = backend->beta();
      core::carry_to_new_basis(prior, backend->last_R(), backend->get_U(), w_mean, static_cast<int>(d), static_cast<int>(r));
      if (estimate_shrinkage) prior.covariance_shrinkage = core::estimate_covariance_shrinkage(prior.Sigma, static_cast<int>(r), t_all);
      core::shrink_covariance(prior.Sigma, static_cast<int>(r), prior.covariance_shrinkage);
    }
    if (private_release && r > 0) report.releases += 2;
    IterationInfo info;
    info.iteration = it;
    info.training_loss = totals.rows > 0 ? totals.sse / static_cast<double>(totals.rows) : 0.0;
    info.u_change = change;
    info.u_step_seconds = seconds_since(t1);
    info.task_step_seconds = task_seconds;
    info.elapsed_seconds = elapsed_before + seconds_since(start);
    info.sparsity_in_effect = k_now;
    info.noise_variance = use_prior ? prior.noise_variance : 0.0;
    info.log_evidence = use_prior ? totals.log_evidence : 0.0;
    const core::SolverReport solve = u_step.last();
    info.u_solver_steps = solve.steps;
    info.u_solver_residual = solve.residual;
    model.history.push_back(info);
    // The caller's two decisions, taken by all processes together (one sum): any that ends or stops
    // ends or stops them all.
    std::int64_t decisions[2] = {run.on_iteration && !run.on_iteration(info) ? 1 : 0, run.stop && run.stop() ? 1 : 0};
    comm.sum(decisions, 2);
    const bool go_on = decisions[0] == 0, stop = decisions[1] > 0;
    const bool ends = !go_on || stop || it == options.iterations || converged();
    if (run.checkpoint && (it % run.checkpoint_every == 0 || !go_on || stop || (run.checkpoint_at_end && ends))) write_checkpoint(it);
    if (stop)
      throw Stopped(run.final_fit ? "fit: stopped after outer iteration " + std::to_string(it)
                                  : std::string(options.selection == Selection::validation
                                                    ? "fit: stopped during the choice on validation rows"
                                                    : "fit: stopped during the choice of r and k by marginal likelihood"),
                    run.final_fit ? it : 0);
    if (ends) break;
  }
  // The final task step with the final U; full sparsity unless training never left the warm start.
  const bool warm_only = options.iterations <= options.warm_start_iterations && options.iterations > 0;
  const int k_final = warm_only ? 0 : static_cast<int>(k);
  // With a prior over supports, the model's b is averaged over each task's supports (its final step
  // only: the EM steps' statistics are of the posterior mode).
  prior.average_supports = use_prior && prior.inclusion_probability > 0;
  apply_prior(k_final);
  const core::TaskStepTotals final_totals = backend->task_step_all(k_final);
  model.U = backend->get_U();
  backend->export_task_parameters(model);
  if (use_prior) {
    model.beta = prior.beta;
    model.Sigma = prior.Sigma;
    model.noise_variance = prior.noise_variance;
    model.sparse_prior_variance = k_final > 0 ? tau2 : 0.0;
    model.support_threshold = k_final > 0 ? prior.support_threshold : 0.0;
    model.covariance_shrinkage = r > 0 ? prior.covariance_shrinkage : 0.0;
    model.log_evidence = final_totals.log_evidence;
    model.support_inclusion_probability = k_final > 0 ? prior.inclusion_probability : 0.0;
  }
  if (report.enabled) {
    // Spent: the releases actually made (an early stop spends less than planned).
    report.rho = report.releases == 0 ? 0.0
                 : report.noise_multiplier > 0 ? report.releases / (2.0 * report.noise_multiplier * report.noise_multiplier)
                                               : INFINITY;
    report.epsilon = std::isfinite(report.rho) ? privacy::zcdp_to_epsilon(report.rho, report.delta) : INFINITY;
  }
  model.privacy = report;
  if (!u_note.empty()) model.notes.push_back(u_note);
  // The iteration cap reached with a tolerance in effect and not met: say so, with the last change.
  const bool tolerance_in_effect = options.tolerance > 0 || (use_prior && options.relative_tolerance > 0);
  if (tolerance_in_effect && !model.history.empty() && model.history.back().iteration == options.iterations &&
      options.iterations > options.warm_start_iterations + 1 && !converged()) {
    const IterationInfo& last = model.history.back();
    const IterationInfo& before = model.history[model.history.size() - 2];
    char text[400];
    std::snprintf(text, sizeof text,
                  "not converged: the %d iterations ran out while the fit still changed (last iteration: training loss by "
                  "%.2e relative, U by %.2e; tolerances: relative %.1e, U %.1e); raise the iterations (--iterations) or "
                  "loosen the tolerance (--relative-tolerance)",
                  options.iterations, std::fabs(last.training_loss - before.training_loss) / std::max(std::fabs(before.training_loss), 1e-300),
                  last.u_change, options.relative_tolerance, options.tolerance);
    model.notes.push_back(text);
    model.converged = false;
  }

  if (validation && candidate_mse) {
    // Each candidate (tau2 scale, support threshold) from the same state: one task-step pass,
    // then the held-out rows. In the order scale-major, threshold-minor.
    candidate_mse->clear();
    // One screen: the fit's tasks stepped once more under `screened` (the fit's prior with one
    // setting changed), scored on the held-out rows.
    auto screen = [&](const core::PriorState& screened) {
      Model candidate = model;
      backend->import_task_parameters(model);
      backend->set_prior(&screened);
      backend->task_step_all(k_final);
      backend->export_task_parameters(candidate);
      return evaluate(candidate, *validation).mse;
    };
    const bool shrink_b = use_prior && k_final > 0;
    const std::vector<double> scales = shrink_b ? options.sparse_prior_scale_candidates : std::vector<double>{options.sparse_prior_scale};
    const std::vector<double> thresholds = shrink_b ? options.support_threshold_candidates : std::vector<double>{options.support_threshold};
    for (double scale : scales)
      for (double threshold : thresholds) {
        if (!shrink_b) {
          candidate_mse->push_back(evaluate(model, *validation).mse);
          continue;
        }
        core::PriorState screened = prior;
        screened.support_threshold = threshold;
        core::refresh_precisions(screened, scale * coefficient_scale);
        candidate_mse->push_back(screen(screened));
      }
    // Then each other shrinkage f of Sigma with the fit's b prior: Sigma before its shrinkage,
    // shrunk by f.
    if (use_prior && r > 0)
      for (double f : options.covariance_shrinkage_candidates) {
        if (f == prior.covariance_shrinkage) continue;
        core::PriorState screened = prior;
        core::unshrink_covariance(screened.Sigma, static_cast<int>(r), prior.covariance_shrinkage);
        core::shrink_covariance(screened.Sigma, static_cast<int>(r), f);
        screened.support_threshold = options.support_threshold;
        core::refresh_precisions(screened, k_final > 0 ? tau2 : 0.0);
        candidate_mse->push_back(screen(screened));
      }
  }
  return model;
}

// The tasks the choice on validation rows is made on: all, or `most` drawn at random (seeded), in
// their order in the data.
std::vector<std::int64_t> selection_task_subset(std::int64_t t, std::int64_t most, std::uint64_t seed) {
  std::vector<std::int64_t> tasks(static_cast<std::size_t>(t));
  for (std::int64_t i = 0; i < t; ++i) tasks[static_cast<std::size_t>(i)] = i;
  if (most <= 0 || t <= most) return tasks;
  core::NormalGenerator gen(seed * 0xd1b54a32d192ed03ULL + 0x2545f4914f6cdd1dULL);
  for (std::int64_t j = 0; j < most; ++j)  // a partial Fisher-Yates shuffle: the first `most` are the draw
    std::swap(tasks[static_cast<std::size_t>(j)], tasks[static_cast<std::size_t>(j) + gen.below(static_cast<std::uint64_t>(t - j))]);
  tasks.resize(static_cast<std::size_t>(most));
  std::sort(tasks.begin(), tasks.end());
  return tasks;
}

// The rows of `tasks` split into rows to fit and rows to validate on: a seeded shuffle per task,
// the last round(fraction m_i) rows (at least 1) held out from tasks with 3 rows or more.
template <typename T>
std::pair<Dataset<T>, Dataset<T>> split_for_validation(const TaskDataView<T>& data, const std::vector<std::int64_t>& tasks,
                                                       double fraction, std::uint64_t seed) {
  Dataset<T> fit_part, held_out;
  fit_part.d = held_out.d = data.d;
  fit_part.task_offsets.assign(1, 0);
  held_out.task_offsets.assign(1, 0);
  std::vector<std::int64_t> order;
  for (const std::int64_t i : tasks) {
    const std::int64_t m = data.task_size(i), row0 = data.task_offsets[i];
    order.resize(static_cast<std::size_t>(m));
    for (std::int64_t j = 0; j < m; ++j) order[static_cast<std::size_t>(j)] = row0 + j;
    core::NormalGenerator gen(seed * 0x9e3779b97f4a7c15ULL + static_cast<std::uint64_t>(i) + 1);
    for (std::int64_t j = m; j > 1; --j) std::swap(order[static_cast<std::size_t>(j - 1)], order[gen.below(static_cast<std::uint64_t>(j))]);
    const std::int64_t n_val = m >= 3 ? std::max<std::int64_t>(1, std::llround(fraction * static_cast<double>(m))) : 0;
    for (std::int64_t j = 0; j < m; ++j) {
      Dataset<T>& to = j < m - n_val ? fit_part : held_out;
      const std::int64_t row = order[static_cast<std::size_t>(j)];
      to.X.insert(to.X.end(), data.X + row * data.d, data.X + (row + 1) * data.d);
      to.y.push_back(data.y[row]);
    }
    fit_part.task_offsets.push_back(fit_part.n());
    held_out.task_offsets.push_back(held_out.n());
  }
  return {std::move(fit_part), std::move(held_out)};
}

// Options as a fit runs them: private training takes no prior.
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


// Rank candidates whose fit on all tasks would not fit in memory are left out, with a note: the
// plan of a choice on validation rows would otherwise be that of its largest candidate (at t = 1e6
// and r = 32 with the prior, 4.2 GB of per-task posterior covariances alone), and a default run
// that would fit at the rank it ends up choosing would be refused.
template <typename T>
void drop_ranks_that_cannot_fit(const TaskDataView<T>& data, Options& options, std::vector<std::string>& notes) {
  if (options.rank_candidates.size() < 2) return;
  std::string source;
  const double available = core::available_memory_bytes(&source);
  std::vector<int> kept;
  int first_dropped = -1;
  double first_dropped_needs = 0.0;
  for (int r : options.rank_candidates) {
    Options o = options;
    o.rank = r;
    o.rank_candidates.clear();
    const bool on_validation_rows = o.selection == Selection::validation || o.prior == Prior::none;
    const double needs = core::plan_host_memory(data, o, on_validation_rows).total();
    if (needs <= available) {
      kept.push_back(r);
    } else if (first_dropped < 0 || r < first_dropped) {
      first_dropped = r;
      first_dropped_needs = needs;
    }
  }
  if (kept.empty() || first_dropped < 0) return;  // nothing fits (refused next, with the numbers) or everything does
  notes.push_back("rank candidates from r = " + std::to_string(first_dropped) + " up were not tried: at r = " + std::to_string(first_dropped) +
                  " the fit would need about " + format_bytes(first_dropped_needs) + ", more than the " + format_bytes(available) +
                  " of " + source);
  options.rank_candidates = kept;
}

// Refuse before any work a CPU fit that cannot fit in memory, with the numbers and the way out.
template <typename T>
void refuse_if_too_big(const TaskDataView<T>& data, const Options& options, bool selecting) {
  {
    const core::MemoryPlan plan = core::plan_host_memory(data, options, selecting);
    std::string source;
    const double available = core::available_memory_bytes(&source);
    if (plan.total() > available) {
      const std::string numbers = "about " + format_bytes(plan.total()) + ", but " + source + " is " + format_bytes(available);
      std::vector<std::string> ways;
      if (std::is_same_v<T, double>) ways.push_back("float data (--precision float, or a float32 X.npy)");
      if (options.threads != 1) ways.push_back("fewer threads (--threads)");
      const int largest_rank = options.rank_candidates.empty()
                                   ? options.rank
                                   : *std::max_element(options.rank_candidates.begin(), options.rank_candidates.end());
      if (!options.privacy.enabled &&
          core::choose_u_solver(data.n, data.t, data.d, largest_rank, static_cast<int>(sizeof(T)), options, false).solver == USolver::direct)
        ways.push_back("--u-solver cg (the U step without G, here of " +
                       std::to_string(data.d * (largest_rank + (options.prior == Prior::automatic ? 1 : 0))) + " unknowns)");
      if (selecting)
        ways.push_back("a smaller --selection-tasks, or no choice on validation rows, which copies the rows of the tasks it "
                       "is made on (r and k as numbers, --sparse-prior-scale, --support-threshold and --covariance-shrinkage given)");
      ways.push_back("a machine or a cgroup with more memory");
      std::string way_text;
      for (std::size_t w = 0; w < ways.size(); ++w) way_text += (w == 0 ? "" : w + 1 == ways.size() ? " or " : ", ") + ways[w];
      throw Error(std::string("memory: this fit needs ") + numbers + " (" + plan.describe() + "); it would need less with " +
                  way_text);
    }
  }
}

}  // namespace

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

// The fit with what is "auto" estimated from all rows (Options::selection == evidence, with the
// prior): tau2, the supports' inclusion probability and Sigma's shrinkage inside the fit
// (fit_fixed), and r and k compared by each fit's log marginal likelihood, less half the number of
// shared parameters (U's span and Sigma) times log t, BIC's charge for what is estimated rather than
// integrated out (without it, extra columns of U, fitted to the noise, always add a little
// evidence). r is searched upwards with a middle k, then k with that r; along each, the search
// stops after two candidates in a row that do not improve. A candidate is fitted to a looser
// tolerance (kCandidateTolerance); the chosen one then continues from its state to the asked
// tolerance: that fit is the model, nothing is refitted from scratch.
constexpr double kCandidateTolerance = 1e-4;
constexpr int kCandidateIterations = 40;
// Sigma's shrinkage of the isotropic variant of the full-rank model: Sigma = (tr S / r) I to
// within 1e-6 of it.
constexpr double kIsotropicShrinkage = 1e6;
// The margin in log marginal likelihood (nats) by which a larger candidate must beat a smaller one.
constexpr double kEvidenceMargin = 1.0;

template <typename T>
Model fit_by_evidence(const TaskDataView<T>& data, Options options, const FitRun& final_run, Checkpoint& header,
                      const std::vector<std::string>& notes) {
  SelectionReport selection;
  selection.method = Selection::evidence;
  const bool choose_rank = !options.rank_candidates.empty(), choose_sparsity = !options.sparsity_candidates.empty();
  auto sorted_unique = [](std::vector<int> v) {
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    return v;
  };
  const std::vector<int> ranks = sorted_unique(choose_rank ? options.rank_candidates : std::vector<int>{options.rank});
  const std::vector<int> sparsities = sorted_unique(choose_sparsity ? options.sparsity_candidates : std::vector<int>{options.sparsity});
  options.rank_candidates.clear();
  options.sparsity_candidates.clear();
  selection.rank_auto = choose_rank;
  selection.sparsity_auto = choose_sparsity;
  selection.sparse_prior_scale_auto = options.sparse_prior_scale < 0 && sparsities.back() > 0;
  selection.support_threshold_auto = false;
  selection.covariance_shrinkage_auto = options.covariance_shrinkage < 0;
  selection.performed = choose_rank || choose_sparsity || selection.sparse_prior_scale_auto || selection.covariance_shrinkage_auto;
  // Over many processes `data` is this one's shard: the counts are the whole data's.
  std::int64_t counts[2] = {data.t, data.n};
  if (final_run.communicator) final_run.communicator->sum(counts, 2);
  const std::int64_t t_all = counts[0];
  selection.tasks = t_all;
  selection.fit_rows = counts[1];
  selection.validation_rows = 0;
  header.model.notes = notes;
  auto candidate_of = [&](const Model& m) {
    SelectionCandidate c;
    c.rank = static_cast<int>(m.r);
    c.sparsity = static_cast<int>(m.k);
    c.support_threshold = m.support_threshold;
    c.covariance_shrinkage = m.covariance_shrinkage;
    c.sparse_prior_variance = m.sparse_prior_variance;
    c.validation_mse = std::nan("");
    c.refitted = true;
    c.log_evidence = m.log_evidence;
    c.iterations = static_cast<int>(m.history.size());
    return c;
  };
  // The shared parameters a rank estimates: U's span (a point of the Grassmannian, r (d - r)
  // numbers: a rotation within the span is Sigma's) and Sigma, whose r (r + 1) / 2 entries count
  // as 1 + (r (r + 1) / 2 - 1) / (1 + f) under a shrinkage f worth f t tasks (isotropic: one
  // variance). At r = d the span is everything and only Sigma is left: the mixed model, or with a
  // large f per-task ridge towards beta.
  auto score = [&](const SelectionCandidate& c) {
    const double d = static_cast<double>(data.d), r = c.rank;
    const double sigma = r > 0 ? 1.0 + (r * (r + 1) / 2 - 1.0) / (1.0 + c.covariance_shrinkage) : 0.0;
    const double shared = r * (d - r) + sigma;
    return c.log_evidence - 0.5 * shared * std::log(std::max<double>(2.0, static_cast<double>(t_all)));
  };
  // Whether candidate c is preferred to `than`: between models of the same size (numbers per task,
  // r + 2k) the higher score; otherwise the larger one only where it scores more than
  // kEvidenceMargin higher. A log Bayes factor of a nat or so is no evidence either way (Jeffreys:
  // "barely worth mentioning"), and the smaller model is cheaper to store and to use (MovieLens
  // with 5 ratings: k = 1, 3 and 5 within 0.02 of each other).
  auto better = [&](const SelectionCandidate& c, const SelectionCandidate& than) {
    const int size = c.rank + 2 * c.sparsity, than_size = than.rank + 2 * than.sparsity;
    if (size == than_size) return score(c) > score(than);
    return size > than_size ? score(c) > score(than) + kEvidenceMargin : score(c) > score(than) - kEvidenceMargin;
  };
  if (!choose_rank && !choose_sparsity) {  // one fit: only the priors' settings are estimated
    options.rank = ranks.front();
    options.sparsity = sparsities.front();
    validate(options, data.d);
    header.model.selection = selection;
    Model model = fit_fixed(data, options, final_run);
    selection.chosen = candidate_of(model);
    if (selection.performed) selection.candidates.push_back(selection.chosen);
    model.selection = selection;
    model.notes.insert(model.notes.begin(), notes.begin(), notes.end());
    return model;
  }
  // The best candidate so far and its last state, to continue it from (only its state is kept:
  // one copy of the per-task parameters, whatever the number of candidates).
  std::optional<SelectionCandidate> leader;
  std::optional<Checkpoint> leader_state;
  // A resume of a checkpoint made while choosing: the candidates it had scored (the search below
  // meets them again in the same order and does not refit them) and its leader's state.
  if (final_run.resume && final_run.resume->choosing) {
    selection.candidates = final_run.resume->model.selection.candidates;
    leader = final_run.resume->model.selection.chosen;
    leader_state = *final_run.resume;
    leader_state->choosing = false;
    leader_state->model.selection = SelectionReport();
  }
  // After each candidate: where checkpoints are asked for, the leader's state with every candidate
  // scored so far, so that a stop during the next costs only that one.
  auto checkpoint_choice = [&]() {
    if (!final_run.checkpoint || !leader_state) return;
    Checkpoint c = *leader_state;
    c.choosing = true;
    c.model.selection = selection;
    c.model.selection.chosen = *leader;
    final_run.checkpoint(c);
  };
  // Sigma's shrinkage of a candidate: options.covariance_shrinkage (estimated where negative), or
  // for the isotropic variant of the full-rank model kIsotropicShrinkage.
  auto try_candidate = [&](int r, int k, double shrinkage) -> SelectionCandidate {
    const bool isotropic = shrinkage == kIsotropicShrinkage;
    for (const SelectionCandidate& x : selection.candidates)
      if (x.rank == r && x.sparsity == k && (x.covariance_shrinkage == kIsotropicShrinkage) == isotropic) return x;
    Options o = options;
    o.rank = r;
    o.sparsity = k;
    o.covariance_shrinkage = shrinkage;
    o.relative_tolerance = std::max(options.relative_tolerance, kCandidateTolerance);
    o.iterations = std::min(options.iterations, kCandidateIterations);
    validate(o, data.d);
    std::optional<Checkpoint> last;
    FitRun run;
    run.on_iteration = final_run.on_iteration;
    run.stop = final_run.stop;
    run.checkpoint = [&last](const Checkpoint& c) { last = c; };
    run.checkpoint_every = std::numeric_limits<int>::max();
    run.checkpoint_at_end = true;
    run.header = &header;
    run.communicator = final_run.communicator;
    const SelectionCandidate c = candidate_of(fit_fixed(data, o, run));
    selection.candidates.push_back(c);
    // The leader: the best candidate so far (a larger one must beat a smaller one by the margin).
    if (!leader || better(c, *leader)) {
      leader = c;
      leader_state = std::move(last);
    }
    checkpoint_choice();
    return c;
  };
  auto search = [&](const std::vector<int>& values, auto&& candidate_at) {
    std::optional<SelectionCandidate> best;
    int worse = 0;
    for (int v : values) {
      const SelectionCandidate c = candidate_at(v);
      if (!best || better(c, *best)) {
        best = c;
        worse = 0;
      } else if (++worse >= 2) {
        break;
      }
    }
    return *best;
  };
  const int k_middle = sparsities[sparsities.size() / 2];
  const double asked_shrinkage = options.covariance_shrinkage;
  SelectionCandidate by_rank = search(ranks, [&](int r) { return try_candidate(r, k_middle, asked_shrinkage); });
  // The full-rank model (r = d: the mixed model, or with Sigma isotropic per-task ridge towards
  // beta) is scored wherever it is a candidate: it charges nothing for U's span, so the search
  // upwards from small ranks, which stops where larger spans stop paying, says nothing of it. Where
  // Sigma's shrinkage is estimated, its isotropic variant (one variance, not d (d + 1) / 2) is
  // scored too: the shrinkage that maximises the marginal likelihood of the tasks' w (as if they
  // were observed) is near 0 even where tasks have a handful of rows each (MovieLens with 5
  // ratings: 2e-6), and the full covariance then costs more than it explains.
  if (ranks.size() > 1 && ranks.back() == data.d) {
    const SelectionCandidate full = try_candidate(ranks.back(), k_middle, asked_shrinkage);
    if (better(full, by_rank)) by_rank = full;
    if (asked_shrinkage < 0) {
      const SelectionCandidate ridge = try_candidate(ranks.back(), k_middle, kIsotropicShrinkage);
      if (better(ridge, by_rank)) by_rank = ridge;
    }
  }
  const double by_rank_shrinkage = by_rank.covariance_shrinkage == kIsotropicShrinkage ? kIsotropicShrinkage : asked_shrinkage;
  search(sparsities, [&](int k) { return try_candidate(by_rank.rank, k, by_rank_shrinkage); });
  // The chosen candidate (the leader: the best of every candidate either search tried) continues
  // from its last state to the asked tolerance.
  options.rank = leader->rank;
  options.sparsity = leader->sparsity;
  if (leader->covariance_shrinkage == kIsotropicShrinkage) options.covariance_shrinkage = kIsotropicShrinkage;
  validate(options, data.d);
  selection.chosen = *leader;
  header.model.selection = selection;
  FitRun run = final_run;
  run.resume = &*leader_state;
  run.checkpoint_at_start = false;
  Model model = fit_fixed(data, options, run);
  selection.chosen = candidate_of(model);
  model.selection = selection;
  model.notes.insert(model.notes.begin(), notes.begin(), notes.end());
  return model;
}

// Candidates of r and k above d cannot be fitted: they are left out (an explicit r or k above d
// is still an error), and a list left empty becomes {0}.
void drop_candidates_above(Options& options, std::int64_t d) {
  for (std::vector<int>* c : {&options.rank_candidates, &options.sparsity_candidates}) {
    if (c->empty()) continue;
    c->erase(std::remove_if(c->begin(), c->end(), [&](int v) { return v > d; }), c->end());
    if (c->empty()) c->push_back(0);
  }
}

// Whether checkpoint c may be resumed by a fit whose checkpoints would say `header` (its data, the
// options asked, the number of processes); throws naming what differs.
void check_resume(const Checkpoint& c, const Checkpoint& h) {
  auto dims = [](const Checkpoint& x) {
    return "n = " + std::to_string(x.n) + ", d = " + std::to_string(x.d) + ", t = " + std::to_string(x.t) + ", " +
           (x.value_bytes == 4 ? "float" : "double");
  };
  if (c.n != h.n || c.d != h.d || c.t != h.t || c.value_bytes != h.value_bytes)
    throw Error("resume: the checkpoint was made on other data (" + dims(c) + "); this data has " + dims(h));
  if (c.processes != h.processes)
    throw Error("resume: the checkpoint was made by " + std::to_string(c.processes) + " process(es); resume it with as many (this run has " +
                std::to_string(h.processes) + ")");
  if (c.data_fingerprint != h.data_fingerprint)
    throw Error("resume: the checkpoint was made on other data (same sizes, different contents: its fingerprint differs)");
  Options theirs = c.asked, ours = h.asked;
  theirs.threads = ours.threads = 0;  // threads may differ (the result then differs by rounding)
  const std::vector<std::string> differences = option_differences(theirs, ours);
  if (!differences.empty()) {
    std::string text;
    for (const std::string& x : differences) text += (text.empty() ? "" : "; ") + x;
    throw Error("resume: the checkpoint was made with other options (checkpoint against this run: " + text + ")");
  }
}

// The options a resumed fit runs with: those in effect when the checkpoint was made (after any
// choice), with this run's threads.
Options options_to_resume(const Checkpoint& c, const Options& asked) {
  Options options = c.model.options;
  options.threads = asked.threads;
  return options;
}

// A fit over many processes: each checks its shard and the options, and all stop with the first
// failing process's message (before any of them waits on the others in the fit itself).
template <typename T>
Model fit_distributed(const TaskDataView<T>& data, const Options& asked, const FitControl& control, Checkpoint& header) {
  Communicator& comm = *control.communicator;
  std::string failure;
  std::vector<std::string> notes;
  // Each process's checks; the options in effect where they pass (the asked ones where not: unused).
  const Options options = [&]() -> Options {
    try {
      if (data.t == 0)
        throw Error("data: this process's shard has no tasks (more processes than tasks, or than rows to balance: use fewer)");
      validate(data, true);
      if (control.checkpoint && control.checkpoint_every < 1)
        throw Error("options: checkpoints every " + std::to_string(control.checkpoint_every) + " iterations: must be at least 1");
      // What evidence estimates or chooses comes from sums over tasks (each candidate's log marginal
      // likelihood too), so it runs over processes; a choice on validation rows does not.
      const bool estimated = asked.selection == Selection::evidence && asked.prior == Prior::automatic && !asked.privacy.enabled;
      const bool candidates = !asked.rank_candidates.empty() || !asked.sparsity_candidates.empty();
      if (!estimated && (candidates || (asked.prior == Prior::automatic && !asked.privacy.enabled &&
                                        (asked.sparse_prior_scale < 0 || asked.support_threshold < 0 || asked.covariance_shrinkage < 0))))
        throw Error("options: a fit over many processes does not choose on validation rows: use --select evidence (r, k and the "
                    "priors' settings estimated from all rows) or, with the prior, give r and k (--rank, --sparsity), "
                    "--sparse-prior-scale, --support-threshold and --covariance-shrinkage (or --prior none)");
      Options requested = asked;
      drop_candidates_above(requested, data.d);
      validate(requested, data.d);
      Options in_effect = resolved(requested, &notes);
      if (!estimated) {
        in_effect.rank_candidates.clear();
        in_effect.sparsity_candidates.clear();
      }
      validate(in_effect, data.d);
      // (Candidates that would not fit in memory are not dropped here, as one process does: each
      // process holds a shard, and all must try the same candidates.)
      refuse_if_too_big(data, in_effect, false);
      return in_effect;
    } catch (const std::exception& e) {
      failure = e.what();
      return asked;
    }
  }();
  std::string first = comm.first_error(failure);
  if (!first.empty()) throw CollectiveError(first);
  FitRun run;
  run.on_iteration = control.on_iteration;
  run.stop = control.stop;
  run.final_fit = true;
  run.communicator = &comm;
  run.checkpoint = control.checkpoint;
  run.checkpoint_every = control.checkpoint_every;
  run.resume = control.resume;
  if (control.checkpoint || control.resume) core::fill_distributed_checkpoint_header(header, data, asked, comm);
  run.header = &header;
  if (const Checkpoint* c = control.resume) {
    try {
      check_resume(*c, header);
      if (!c->choosing) validate(options_to_resume(*c, asked), data.d);
    } catch (const std::exception& e) {
      failure = e.what();
    }
    first = comm.first_error(failure);
    if (!first.empty()) throw CollectiveError(first);
  }
  if (const Checkpoint* c = control.resume; c && !c->choosing) {  // (made while choosing: the choice goes on below)
    Model model = fit_fixed(data, options_to_resume(*c, asked), run);
    model.notes.insert(model.notes.begin(), c->model.notes.begin(), c->model.notes.end());
    return model;
  }
  if (options.selection == Selection::evidence && options.prior == Prior::automatic) return fit_by_evidence(data, options, run, header, notes);
  Model model = fit_fixed(data, options, run);
  model.notes.insert(model.notes.begin(), notes.begin(), notes.end());
  return model;
}

template <typename T>
Model fit(const TaskDataView<T>& data, const Options& asked, const FitControl& control) {
  // What every checkpoint says about the data and the options asked, and what a resume checks.
  Checkpoint header;
  if (control.communicator && control.communicator->size() > 1) return fit_distributed(data, asked, control, header);
  validate(data, true);
  if (control.checkpoint && control.checkpoint_every < 1)
    throw Error("options: checkpoints every " + std::to_string(control.checkpoint_every) + " iterations: must be at least 1");
  FitRun final_run;
  final_run.on_iteration = control.on_iteration;
  final_run.stop = control.stop;
  final_run.final_fit = true;
  final_run.checkpoint = control.checkpoint;
  final_run.checkpoint_every = control.checkpoint_every;
  final_run.resume = control.resume;
  final_run.header = &header;
  if (control.checkpoint || control.resume) {
    Checkpoint& h = header;
    h.asked = asked;
    h.n = data.n;
    h.d = data.d;
    h.t = data.t;
    h.value_bytes = static_cast<int>(sizeof(T));
    h.data_fingerprint = core::data_fingerprint(data);
  }
  if (const Checkpoint* c = control.resume) check_resume(*c, header);
  if (const Checkpoint* c = control.resume; c && !c->choosing) {  // (made while choosing: the choice goes on below)
    const Options options = options_to_resume(*c, asked);
    validate(options, data.d);
    refuse_if_too_big(data, options, false);
    Model model = fit_fixed(data, options, final_run);
    model.selection = c->model.selection;
    model.notes.insert(model.notes.begin(), c->model.notes.begin(), c->model.notes.end());  // with the U step's choice
    return model;
  }
  Options requested = asked;
  drop_candidates_above(requested, data.d);
  validate(requested, data.d);
  std::vector<std::string> notes;
  Options options = resolved(requested, &notes);
  drop_ranks_that_cannot_fit(data, options, notes);
  const bool choose_rank = !options.rank_candidates.empty();
  const bool choose_sparsity = !options.sparsity_candidates.empty();
  // The b prior's scale and support threshold are chosen together, on the same passes.
  const bool scale_auto = options.prior == Prior::automatic && (options.sparse_prior_scale < 0 || options.support_threshold < 0);
  const bool choose_shrinkage = options.prior == Prior::automatic && options.covariance_shrinkage < 0;
  const std::vector<int> ranks = choose_rank ? options.rank_candidates : std::vector<int>{options.rank};
  const std::vector<int> sparsities = choose_sparsity ? options.sparsity_candidates : std::vector<int>{options.sparsity};
  const bool any_b = *std::max_element(sparsities.begin(), sparsities.end()) > 0;
  const bool choose_scale = options.sparse_prior_scale < 0, choose_threshold = options.support_threshold < 0;
  auto set_b_defaults = [&](Options& o) {
    if (choose_scale) o.sparse_prior_scale = kDefaultSparseScale;
    if (choose_threshold) o.support_threshold = kDefaultThreshold;
  };

  SelectionReport selection;
  const bool any_w = *std::max_element(ranks.begin(), ranks.end()) > 0;
  if (options.selection == Selection::evidence && options.prior == Prior::automatic) {
    refuse_if_too_big(data, options, false);
    return fit_by_evidence(data, options, final_run, header, notes);
  }
  if ((choose_rank || choose_sparsity) && options.selection == Selection::evidence)
    notes.push_back("prior none has no marginal likelihood to compare ranks or sparsities by: they were chosen on validation rows");
  const bool selecting = choose_rank || choose_sparsity || (scale_auto && any_b) || (choose_shrinkage && any_w);
  refuse_if_too_big(data, options, selecting);
  if (selecting) {
    const std::vector<std::int64_t> tasks = selection_task_subset(data.t, options.selection_tasks, options.seed);
    auto [fit_part, held_out] = split_for_validation(data, tasks, options.validation_fraction, options.seed);
    selection.performed = true;
    selection.method = Selection::validation;
    selection.tasks = static_cast<std::int64_t>(tasks.size());
    selection.rank_auto = choose_rank;
    selection.sparsity_auto = choose_sparsity;
    selection.sparse_prior_scale_auto = scale_auto && choose_scale;
    selection.support_threshold_auto = scale_auto && choose_threshold;
    selection.covariance_shrinkage_auto = choose_shrinkage;
    selection.fit_rows = fit_part.n();
    selection.validation_rows = held_out.n();
    if (held_out.n() == 0) {
      notes.push_back("no task has 3 or more rows: nothing to validate on; r = " + std::to_string(ranks.front()) +
                      ", k = " + std::to_string(sparsities.front()) + " and the b prior's default scale are used");
      selection.performed = false;
      options.rank = ranks.front();
      options.sparsity = sparsities.front();
      if (scale_auto) set_b_defaults(options);
      if (choose_shrinkage) options.covariance_shrinkage = kDefaultShrinkage;
    } else {
      const TaskDataView<T> fit_view = fit_part.view(), held_view = held_out.view();
      FitRun selection_run;
      selection_run.stop = control.stop;
      // One candidate (r, k): a fit on the fit rows, then each tau2 scale on the held-out rows.
      std::vector<SelectionCandidate> finalists;  // the best of each (r, k) tried
      auto try_candidate = [&](int r, int k) {
        Options o = options;
        o.rank = r;
        o.sparsity = k;
        o.rank_candidates.clear();
        o.sparsity_candidates.clear();
        if (scale_auto) {
          set_b_defaults(o);
          o.sparse_prior_scale_candidates = choose_scale ? options.sparse_prior_scale_candidates : std::vector<double>{options.sparse_prior_scale};
          o.support_threshold_candidates = choose_threshold ? options.support_threshold_candidates : std::vector<double>{options.support_threshold};
        }
        if (choose_shrinkage) o.covariance_shrinkage = kDefaultShrinkage;
        else o.covariance_shrinkage_candidates.clear();
        // The shrinkages screened after the b prior's pairs: those other than the fit's own.
        std::vector<double> other_shrinkages;
        if (o.prior == Prior::automatic && r > 0)
          for (double f : o.covariance_shrinkage_candidates)
            if (f != o.covariance_shrinkage) other_shrinkages.push_back(f);
        std::vector<double> mse;
        fit_fixed(fit_view, o, selection_run, &held_view, &mse);
        const bool pairs = o.prior == Prior::automatic && k > 0;
        const std::size_t n_thresholds = pairs ? o.support_threshold_candidates.size() : 1;
        SelectionCandidate best;
        best.validation_mse = INFINITY;
        // The fit's own setting (the defaults) is the incumbent: another must beat it clearly. On
        // ties (noiseless data: every candidate at rounding level) a tiny tau2 would be chosen,
        // and a refit from scratch with it can stall with b shrunk to nothing.
        const std::size_t n_pairs = mse.size() - other_shrinkages.size();
        std::size_t incumbent = 0;
        for (std::size_t c = 0; c < n_pairs && pairs; ++c)
          if (o.sparse_prior_scale_candidates[c / n_thresholds] == o.sparse_prior_scale &&
              o.support_threshold_candidates[c % n_thresholds] == o.support_threshold)
            incumbent = c;
        std::vector<SelectionCandidate> challengers;
        for (std::size_t step = 0; step < mse.size(); ++step) {
          const std::size_t c = step == 0 ? incumbent : (step <= incumbent ? step - 1 : step);
          SelectionCandidate cand;
          cand.rank = r;
          cand.sparsity = k;
          const bool shrinkage_screen = c >= n_pairs;  // the fit's b prior, another shrinkage
          const std::size_t pair = shrinkage_screen ? incumbent : c;
          cand.sparse_prior_scale = pairs ? o.sparse_prior_scale_candidates[pair / n_thresholds] : 0.0;
          cand.support_threshold = pairs ? o.support_threshold_candidates[pair % n_thresholds] : 0.0;
          cand.covariance_shrinkage = shrinkage_screen ? other_shrinkages[c - n_pairs] : (r > 0 ? o.covariance_shrinkage : 0.0);
          cand.validation_mse = mse[c];
          selection.candidates.push_back(cand);
          if (step == 0) best = cand;
          else if (cand.validation_mse < best.validation_mse * (1.0 - 1e-6)) challengers.push_back(cand);
        }
        // A pass from the incumbent's fit is a cheap screen, not the verdict: a setting far from
        // it can score well there and end elsewhere once refitted (measured: 0.223 screened, a
        // test RMSE 0.69 refitted, against 0.61). The two best challengers are refitted on the fit
        // rows and judged by that fit's validation error.
        std::sort(challengers.begin(), challengers.end(),
                  [](const SelectionCandidate& x, const SelectionCandidate& y) { return x.validation_mse < y.validation_mse; });
        if (challengers.size() > 2) challengers.resize(2);
        for (SelectionCandidate cand : challengers) {
          Options f = o;
          f.sparse_prior_scale = cand.sparse_prior_scale;
          f.support_threshold = cand.support_threshold;
          f.sparse_prior_scale_candidates = {cand.sparse_prior_scale};
          f.support_threshold_candidates = {cand.support_threshold};
          f.covariance_shrinkage = cand.covariance_shrinkage;
          f.covariance_shrinkage_candidates.clear();
          std::vector<double> refit_mse;
          fit_fixed(fit_view, f, selection_run, &held_view, &refit_mse);
          cand.validation_mse = refit_mse.at(0);
          cand.refitted = true;
          selection.candidates.push_back(cand);
          if (cand.validation_mse < best.validation_mse * (1.0 - 1e-6)) best = cand;
        }
        finalists.push_back(best);
        return best;
      };
      // Coordinate search: r first (with the smallest k candidate when k is chosen too), then k;
      // along each, stop after two candidates in a row that do not improve on the best.
      auto search = [&](const std::vector<int>& values, auto&& candidate_at) {
        std::vector<int> sorted = values;
        std::sort(sorted.begin(), sorted.end());
        sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
        SelectionCandidate best;
        best.validation_mse = INFINITY;
        int worse = 0;
        for (int v : sorted) {
          const SelectionCandidate c = candidate_at(v);
          if (c.validation_mse < best.validation_mse) {
            best = c;
            worse = 0;
          } else if (++worse >= 2) {
            break;
          }
        }
        return best;
      };
      // r is searched with a middle k (with k = 0, U's extra columns would stand in for b and r
      // would come out large), then k with that r.
      std::vector<int> k_sorted = sparsities;
      std::sort(k_sorted.begin(), k_sorted.end());
      const int k_middle = choose_sparsity ? k_sorted[k_sorted.size() / 2] : sparsities.front();
      SelectionCandidate best = search(ranks, [&](int r) { return try_candidate(r, k_middle); });
      // The full-rank model with the smallest k (at k = 0 the mixed model; shrunk, per-task ridge
      // towards the population model: the classical baselines) is always tried when it is a
      // candidate: the searches along r and k can stop before it.
      const int k_smallest = k_sorted.front();
      const bool full_rank_tried = [&] {
        for (const SelectionCandidate& c : finalists)
          if (c.rank == data.d && c.sparsity == k_smallest) return true;
        return false;
      }();
      if (choose_rank && std::find(ranks.begin(), ranks.end(), static_cast<int>(data.d)) != ranks.end() && !full_rank_tried) {
        const SelectionCandidate full = try_candidate(static_cast<int>(data.d), k_smallest);
        if (full.validation_mse < best.validation_mse) best = full;
      }
      if (choose_sparsity) {
        const SelectionCandidate first = best;
        const SelectionCandidate by_k = search(sparsities, [&](int k) {
          if (k == first.sparsity) return first;  // tried already
          return try_candidate(first.rank, k);
        });
        if (by_k.validation_mse < best.validation_mse) best = by_k;
      }
      // Parsimony: the smallest model (r + 2k numbers per task) within selection_tolerance of the
      // best validation error; differences that small are within the validation rows' noise.
      if (choose_rank || choose_sparsity)
        for (const SelectionCandidate& c : finalists) {
          const bool close = c.validation_mse <= best.validation_mse * (1.0 + options.selection_tolerance);
          const int size = c.rank + 2 * c.sparsity, best_size = best.rank + 2 * best.sparsity;
          if (close && (size < best_size || (size == best_size && c.validation_mse < best.validation_mse))) best = c;
        }
      selection.chosen = best;
      options.rank = best.rank;
      options.sparsity = best.sparsity;
      if (scale_auto) {
        set_b_defaults(options);
        if (best.sparsity > 0) {
          options.sparse_prior_scale = best.sparse_prior_scale;
          options.support_threshold = best.support_threshold;
        }
      }
      if (choose_shrinkage) options.covariance_shrinkage = best.covariance_shrinkage;
    }
  } else if (scale_auto) {
    set_b_defaults(options);  // k = 0: no b to shrink
  }
  options.rank_candidates.clear();
  options.sparsity_candidates.clear();
  validate(options, data.d);
  header.model.selection = selection;
  header.model.notes = notes;
  final_run.checkpoint_at_start = selection.performed;
  Model model = fit_fixed(data, options, final_run);
  model.selection = selection;
  model.notes.insert(model.notes.begin(), notes.begin(), notes.end());
  return model;
}
template Model fit(const TaskDataView<float>&, const Options&, const FitControl&);
template Model fit(const TaskDataView<double>&, const Options&, const FitControl&);

template <typename T>
Model fit(const TaskDataView<T>& data, const Options& options, const IterationCallback& callback) {
  FitControl control;
  control.on_iteration = callback;
  return fit(data, options, control);
}
template Model fit(const TaskDataView<float>&, const Options&, const IterationCallback&);
template Model fit(const TaskDataView<double>&, const Options&, const IterationCallback&);

template <typename T>
Model adapt(const Model& model, const TaskDataView<T>& data, const Options& options) {
  model.validate();
  validate(data, true);
  if (data.d != model.d)
    throw Error("adapt: the data has d = " + std::to_string(data.d) + " features, the model d = " + std::to_string(model.d));
  Options o = options;
  o.rank = static_cast<int>(model.r);
  o.sparsity = static_cast<int>(model.k);
  o.rank_candidates.clear();
  o.sparsity_candidates.clear();
  validate(o, data.d);
  std::unique_ptr<core::Backend> backend = core::make_backend(data, o);
  backend->set_U(model.U);
  core::PriorState prior;
  if (model.has_prior()) {  // the new tasks' posterior modes under the trained model's prior
    prior.beta = model.beta;
    prior.Sigma = model.Sigma;
    prior.noise_variance = model.noise_variance;
    prior.support_threshold = model.support_threshold;
    prior.inclusion_probability = model.support_inclusion_probability;
    prior.average_supports = prior.inclusion_probability > 0;
    core::refresh_precisions(prior, model.sparse_prior_variance);
    backend->set_prior(&prior);
  }
  backend->task_step_all(static_cast<int>(model.k));
  // The trained model's shared parts (U, the prior, the features, the options) with the new
  // tasks' own; what belongs to the training run (its tasks, history, choice) does not carry over.
  Model out = model;
  out.t = data.t;
  out.task_keys.clear();
  out.history.clear();
  out.selection = SelectionReport{};
  out.notes.clear();
  out.privacy = PrivacyReport{};
  backend->export_task_parameters(out);
  return out;
}
template Model adapt(const Model&, const TaskDataView<float>&, const Options&);
template Model adapt(const Model&, const TaskDataView<double>&, const Options&);

template <typename T>
std::vector<double> predict(const Model& model, const TaskDataView<T>& data) {
  model.validate();
  validate(data, false);
  if (data.d != model.d)
    throw Error("predict: the data has d = " + std::to_string(data.d) + " features, the model d = " + std::to_string(model.d));
  if (data.t != model.t)
    throw Error("predict: the data has " + std::to_string(data.t) + " tasks, the model " + std::to_string(model.t) +
                " (use adapt for new tasks)");
  std::vector<double> out(static_cast<std::size_t>(data.n));
#pragma omp parallel for schedule(dynamic, 64)
  for (std::int64_t i = 0; i < data.t; ++i) {
    if (data.task_size(i) == 0) continue;
    const std::vector<double> th = model.theta(i);
    for (std::int64_t j = data.task_offsets[i]; j < data.task_offsets[i + 1]; ++j) {
      double s = 0;
      for (std::int64_t a = 0; a < data.d; ++a) s += static_cast<double>(data.X[j * data.d + a]) * th[static_cast<std::size_t>(a)];
      out[static_cast<std::size_t>(j)] = s;
    }
  }
  return out;
}
template std::vector<double> predict(const Model&, const TaskDataView<float>&);
template std::vector<double> predict(const Model&, const TaskDataView<double>&);

template <typename T>
Evaluation evaluate(const Model& model, const TaskDataView<T>& data) {
  if (data.y == nullptr && data.n > 0) throw Error("evaluate: the data has no targets y");
  const std::vector<double> pred = predict(model, data);
  Evaluation ev;
  ev.task_mse.assign(static_cast<std::size_t>(data.t), std::nan(""));
  double total = 0;
  for (std::int64_t i = 0; i < data.t; ++i) {
    const std::int64_t m = data.task_size(i);
    if (m == 0) continue;
    double s = 0;
    for (std::int64_t j = data.task_offsets[i]; j < data.task_offsets[i + 1]; ++j) {
      const double e = static_cast<double>(data.y[j]) - pred[static_cast<std::size_t>(j)];
      s += e * e;
    }
    total += s;
    ev.task_mse[static_cast<std::size_t>(i)] = s / static_cast<double>(m);
  }
  ev.rows = data.n;
  ev.mse = data.n > 0 ? total / static_cast<double>(data.n) : std::nan("");
  return ev;
}
template Evaluation evaluate(const Model&, const TaskDataView<float>&);
template Evaluation evaluate(const Model&, const TaskDataView<double>&);

}  // namespace lrsmeta
