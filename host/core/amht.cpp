// AMHT-LRS orchestration (DESIGN.md section 2): one copy of the algorithm, backend-agnostic.
#include <chrono>
#include <cmath>

#include "core/backend.hpp"
#include "core/noise.hpp"
#include "core/random.hpp"
#include "cpu/blas_lapack.hpp"
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
const char* to_string(Init v) { return v == Init::random ? "random" : "spectral"; }
const char* to_string(Device v) {
  switch (v) {
    case Device::cpu: return "cpu";
    case Device::cuda: return "cuda";
    case Device::automatic: return "auto";
  }
  return "?";
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
  throw Error("unknown initialisation '" + name + "' (expected random or spectral)");
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
  const std::int64_t entries = data.n * data.d;
  for (std::int64_t e = 0; e < entries; ++e)
    if (!std::isfinite(static_cast<double>(data.X[e])))
      throw Error("data: X has a non-finite value (NaN or Inf) at row " + std::to_string(e / data.d) +
                  ", column " + std::to_string(e % data.d));
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
  if (o.rank > d) fail("rank r = " + std::to_string(o.rank) + " exceeds the dimension d = " + std::to_string(d));
  if (o.sparsity > d) fail("sparsity k = " + std::to_string(o.sparsity) + " exceeds the dimension d = " + std::to_string(d));
  if (o.iterations < 0) fail("iterations = " + std::to_string(o.iterations) + " is negative");
  if (o.inner_iterations < 1) fail("inner iterations = " + std::to_string(o.inner_iterations) + " must be at least 1");
  if (o.warm_start_iterations < 0) fail("warm-start iterations = " + std::to_string(o.warm_start_iterations) + " is negative");
  if (!(o.ridge >= 0) || !std::isfinite(o.ridge)) fail("ridge must be finite and >= 0");
  if (!(o.task_ridge >= 0) || !std::isfinite(o.task_ridge)) fail("task ridge must be finite and >= 0");
  if (!(o.step_size >= 0) || !std::isfinite(o.step_size)) fail("step size must be finite and >= 0 (0: the variant's default)");
  if (!(o.tolerance >= 0) || !std::isfinite(o.tolerance)) fail("tolerance must be finite and >= 0");
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
  if (static_cast<std::int64_t>(o.rank) * d > 20000)
    fail("d * r = " + std::to_string(o.rank * d) + " unknowns in U: the dr x dr system would need " +
         std::to_string(static_cast<long long>(o.rank) * d * o.rank * d * 8 / (1 << 20)) + " MiB; at most 20000 are supported");
}

std::vector<double> Model::theta(std::int64_t task) const {
  if (task < 0 || task >= t) throw Error("model: task " + std::to_string(task) + " out of range [0, " + std::to_string(t) + ")");
  std::vector<double> th(static_cast<std::size_t>(d), 0.0);
  for (std::int64_t a = 0; a < d; ++a)
    for (std::int64_t p = 0; p < r; ++p) th[static_cast<std::size_t>(a)] += U[static_cast<std::size_t>(a * r + p)] * W[static_cast<std::size_t>(task * r + p)];
  for (std::int64_t s = 0; s < k; ++s) {
    const std::int32_t idx = B_index[static_cast<std::size_t>(task * k + s)];
    if (idx >= 0) th[static_cast<std::size_t>(idx)] += B_value[static_cast<std::size_t>(task * k + s)];
  }
  return th;
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
  if (U.size() != static_cast<std::size_t>(d * r)) fail("U has " + std::to_string(U.size()) + " entries, expected d x r = " + std::to_string(d * r));
  if (W.size() != static_cast<std::size_t>(t * r)) fail("W has " + std::to_string(W.size()) + " entries, expected t x r = " + std::to_string(t * r));
  if (B_index.size() != static_cast<std::size_t>(t * k) || B_value.size() != static_cast<std::size_t>(t * k))
    fail("B_index/B_value must have t x k = " + std::to_string(t * k) + " entries");
  for (double x : U) if (!std::isfinite(x)) fail("U has a non-finite value");
  for (double x : W) if (!std::isfinite(x)) fail("W has a non-finite value");
  for (double x : B_value) if (!std::isfinite(x)) fail("B_value has a non-finite value");
  for (std::int32_t idx : B_index) if (idx < -1 || idx >= d) fail("B_index has " + std::to_string(idx) + ", outside [-1, d)");
  if (!task_keys.empty() && task_keys.size() != static_cast<std::size_t>(t)) fail("task_keys must have t entries");
}

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

template <typename T>
std::unique_ptr<core::Backend> make_backend(const TaskDataView<T>& data, const Options& options) {
  switch (options.device) {
    case Device::cpu: return core::make_cpu_backend(data, options);
    case Device::cuda: return core::make_cuda_backend(data, options);
    case Device::automatic:
      return cuda_available() ? core::make_cuda_backend(data, options) : core::make_cpu_backend(data, options);
  }
  throw Error("unknown device");
}

}  // namespace

namespace core {
// Gaussian entries, then the Q factor of their QR.
std::vector<double> random_orthonormal_basis(std::int64_t d, std::int64_t r, std::uint64_t seed) {
  core::NormalGenerator gen(seed);
  std::vector<double> colmajor(static_cast<std::size_t>(d * r));
  for (double& x : colmajor) x = gen();
  cpu::qr_q_factor(static_cast<int>(d), static_cast<int>(r), colmajor.data());
  std::vector<double> U(colmajor.size());
  for (std::int64_t a = 0; a < d; ++a)
    for (std::int64_t p = 0; p < r; ++p) U[static_cast<std::size_t>(a * r + p)] = colmajor[static_cast<std::size_t>(p * d + a)];
  return U;
}
}  // namespace core

template <typename T>
Model fit(const TaskDataView<T>& data, const Options& options, const IterationCallback& callback) {
  validate(data, true);
  validate(options, data.d);
  const auto start = Clock::now();
  const std::int64_t d = data.d, r = options.rank, k = options.sparsity;
  std::unique_ptr<core::Backend> backend = make_backend(data, options);

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

  if (options.init == Init::spectral && r > 0) {
    std::vector<double> M = backend->spectral_moment(private_release);  // symmetric: row- and column-major agree
    if (private_release) {
      core::add_symmetric_noise(M.data(), static_cast<int>(d), release.sigma_spectral, *noise);
      ++report.releases;
    }
    const std::vector<double> E = cpu::top_eigenvectors(static_cast<int>(d), M, static_cast<int>(r));
    std::vector<double> U(static_cast<std::size_t>(d * r));
    for (std::int64_t a = 0; a < d; ++a)
      for (std::int64_t p = 0; p < r; ++p) U[static_cast<std::size_t>(a * r + p)] = E[static_cast<std::size_t>(p * d + a)];
    backend->set_U(U);
  } else {
    backend->set_U(core::random_orthonormal_basis(d, r, options.seed));
  }

  Model model;
  model.d = d;
  model.r = r;
  model.k = k;
  model.t = data.t;
  model.options = options;
  for (int it = 1; it <= options.iterations; ++it) {
    const int k_now = it <= options.warm_start_iterations ? 0 : static_cast<int>(k);
    const auto t0 = Clock::now();
    const core::TaskStepTotals totals = backend->task_step_all(k_now);
    const double task_seconds = seconds_since(t0);
    const auto t1 = Clock::now();
    const double change = backend->update_U(private_release);
    if (private_release && r > 0) report.releases += 2;
    IterationInfo info;
    info.iteration = it;
    info.training_loss = totals.rows > 0 ? totals.sse / static_cast<double>(totals.rows) : 0.0;
    info.u_change = change;
    info.u_step_seconds = seconds_since(t1);
    info.task_step_seconds = task_seconds;
    info.elapsed_seconds = seconds_since(start);
    info.sparsity_in_effect = k_now;
    model.history.push_back(info);
    const bool go_on = callback ? callback(info) : true;
    if (!go_on) break;
    if (options.tolerance > 0 && change < options.tolerance && it > options.warm_start_iterations) break;
  }
  // The final task step with the final U; full sparsity unless training never left the warm start.
  const bool warm_only = options.iterations <= options.warm_start_iterations && options.iterations > 0;
  backend->task_step_all(warm_only ? 0 : static_cast<int>(k));
  model.U = backend->get_U();
  backend->export_task_parameters(model);
  if (report.enabled) {
    // Spent: the releases actually made (an early stop spends less than planned).
    report.rho = report.releases == 0 ? 0.0
                 : report.noise_multiplier > 0 ? report.releases / (2.0 * report.noise_multiplier * report.noise_multiplier)
                                               : INFINITY;
    report.epsilon = std::isfinite(report.rho) ? privacy::zcdp_to_epsilon(report.rho, report.delta) : INFINITY;
  }
  model.privacy = report;
  return model;
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
  validate(o, data.d);
  std::unique_ptr<core::Backend> backend = make_backend(data, o);
  backend->set_U(model.U);
  backend->task_step_all(static_cast<int>(model.k));
  Model out;
  out.d = model.d;
  out.r = model.r;
  out.k = model.k;
  out.t = data.t;
  out.U = model.U;
  out.options = model.options;
  out.feature_names = model.feature_names;
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
