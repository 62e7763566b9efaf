// The fit with r, k and the priors' settings fixed (docs/design.md section 2): the outer iterations
// of task steps and U steps, the prior's EM updates, privacy's releases and checkpoints. One copy of
// the algorithm, for every backend.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>

#include "core/backend.hpp"
#include "core/communicator.hpp"
#include "core/distributed_backend.hpp"
#include "core/em_acceleration.hpp"
#include "core/estimation.hpp"
#include "core/feature_scaling.hpp"
#include "core/fingerprint.hpp"
#include "core/fitting.hpp"
#include "core/noise.hpp"
#include "core/prior.hpp"
#include "core/random.hpp"
#include "core/u_solver.hpp"
#include "core/warm_start.hpp"
#include "linalg/blas_lapack.hpp"
#include "lrsmeta/io.hpp"
#include "lrsmeta/lrsmeta.hpp"
#include "lrsmeta/privacy.hpp"

namespace lrsmeta {

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

template <typename T>
Model fit_fixed(const TaskDataView<T>& data, const Options& fit_options, const FitRun& run,
                const TaskDataView<T>* validation, std::vector<double>* candidate_mse) {
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

  // U held (LowRankBasis intercept or slopes): at the constant feature's axis, or the features'.
  const bool holds_u = options.prior == Prior::automatic &&
                       (options.low_rank_basis == LowRankBasis::intercept || options.low_rank_basis == LowRankBasis::slopes);
  const std::int64_t constant = !holds_u ? -1 : run.constant_feature ? *run.constant_feature : core::constant_feature(data, &comm);
  if (holds_u && constant < 0)
    throw Error(std::string("data: low-rank basis ") + to_string(options.low_rank_basis) +
                " needs a constant feature (the same non-zero value in every row), and no column of X is one: add a column of ones");
  u_step.set_held_axis(constant);
  // The data's spectral moment, from the run's cache where it has one.
  auto spectral_moment = [&]() {
    if (!run.spectral_moment) return backend->spectral_moment(nullptr);
    if (run.spectral_moment->empty()) *run.spectral_moment = backend->spectral_moment(nullptr);
    return *run.spectral_moment;
  };
  // A neighbouring fit's state to start from (not on a resume): U, Sigma and the tasks' (w, b) in
  // this fit's shape; new columns of U from the data's moment (spectral initialisation) or drawn.
  const Checkpoint* start_from = resume ? nullptr : run.start_from;
  std::optional<core::NeighbourState> neighbour;
  if (start_from) {
    const Model& from = start_from->model;
    if (!from.has_prior() || options.prior != Prior::automatic)
      throw Error("warm start: only a fit with the prior starts from another's state");
    if (from.d != d || from.t != data.t) throw Error("warm start: the neighbouring fit is of other data");
    const int added = static_cast<int>(std::max<std::int64_t>(0, r - from.r));
    std::vector<double> columns;
    if (added > 0 && !holds_u) {
      const std::vector<double> M = options.init == Init::spectral ? spectral_moment() : std::vector<double>();
      if (comm.rank() == 0)
        columns = core::directions_off_span(M, from.U, static_cast<int>(d), static_cast<int>(from.r), added, options.seed);
      else
        columns.assign(static_cast<std::size_t>(d * added), 0.0);
      core::broadcast(comm, columns);
    }
    // A fit that holds U keeps a neighbour's basis where it is its own, else takes the neighbour's
    // U w_i and spread in its held coordinates.
    if (holds_u && (from.r != r || from.options.low_rank_basis != options.low_rank_basis))
      neighbour = core::state_in_held_basis(*start_from, options.low_rank_basis, constant, static_cast<int>(r), static_cast<int>(k));
    else
      neighbour = core::state_from_neighbour(*start_from, static_cast<int>(r), static_cast<int>(k), columns, holds_u);
  }
  if (resume) {
    if (resume->model.r != r || resume->model.k != k || resume->model.d != d || resume->model.t != data.t)
      throw Error("resume: the checkpoint's model (d = " + std::to_string(resume->model.d) + ", r = " + std::to_string(resume->model.r) +
                  ", k = " + std::to_string(resume->model.k) + ", t = " + std::to_string(resume->model.t) + ") does not match this fit");
    backend->set_U(resume->model.U);
    backend->import_task_parameters(resume->model);
    if (noise) noise->restore(resume->noise_state);
    report.releases = resume->model.privacy.releases;
  } else if (neighbour) {
    backend->set_U(neighbour->U);
    backend->import_task_parameters(neighbour->task_parameters);
  } else if (holds_u) {
    // U is the constant feature's axis (intercept) or the features' axes (slopes), held there by
    // every U step.
    backend->set_U(core::held_basis(options.low_rank_basis, constant, static_cast<int>(d), static_cast<int>(r)));
  } else if (options.init == Init::spectral && r > 0) {
    // Symmetric: row- and column-major agree.
    std::vector<double> M = private_release ? backend->spectral_moment(private_release) : spectral_moment();
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
  const bool slopes = use_prior && options.low_rank_basis == LowRankBasis::slopes;  // Sigma: two variances
  const bool estimate_shrinkage = use_prior && options.covariance_shrinkage < 0 && r > 0 && !slopes;
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
  } else if (use_prior && neighbour) {
    // The neighbour's prior; what it did not estimate (its k or r was 0) starts as from scratch.
    const Checkpoint& from = *start_from;
    prior.beta = from.model.beta;
    prior.Sigma = neighbour->Sigma;
    prior.noise_variance = from.noise_variance;
    prior.beta_variance = from.beta_variance;
    prior.beta_precision = from.beta_precision;
    coefficient_scale = from.coefficient_scale;
    const bool had_b = from.model.k > 0 && from.sparse_prior_variance > 0;
    tau2 = estimate_tau2 && had_b ? from.sparse_prior_variance
                                  : (estimate_tau2 ? kDefaultSparseScale : options.sparse_prior_scale) * coefficient_scale;
    prior.support_threshold = options.support_threshold < 0 ? (had_b ? from.support_threshold : kDefaultThreshold) : options.support_threshold;
    prior.covariance_shrinkage = slopes ? 0.0
                                 : estimate_shrinkage && from.model.r > 0 ? from.covariance_shrinkage
                                                                          : std::max(0.0, options.covariance_shrinkage);
    // Sigma isotropic (the full-rank model's isotropic variant): in its form from the first task
    // step (the neighbour's mean variance), so that the first iteration's evidence is of this
    // model and its gains from there are EM's (from the neighbour's Sigma the first step fell by
    // 15,000 nats on the noisy benchmark, and the candidate could not be judged before its fourth).
    if (!holds_u && r > 0 && prior.covariance_shrinkage >= core::kIsotropicShrinkage)
      core::shrink_covariance(prior.Sigma, static_cast<int>(r), prior.covariance_shrinkage);
    prior.inclusion_probability = !estimate_inclusion ? 0.0
                                  : had_b && from.inclusion_probability > 0 ? from.inclusion_probability
                                                                            : std::min(0.5, static_cast<double>(k) / static_cast<double>(d));
  } else if (use_prior) {
    prior = core::initial_prior(backend->data_moments(), static_cast<int>(d), static_cast<int>(r), &coefficient_scale);
    tau2 = (estimate_tau2 ? kDefaultSparseScale : options.sparse_prior_scale) * coefficient_scale;
    prior.support_threshold = options.support_threshold < 0 ? kDefaultThreshold : options.support_threshold;
    prior.covariance_shrinkage = slopes ? 0.0 : std::max(0.0, options.covariance_shrinkage);
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
  // The warm-start phase (b held at 0 while U settles): none for a fit started from a neighbour's
  // state, whose U has settled, nor for a fit without b; a resume continues where its history says
  // b entered.
  int warm_phase_end = start_from || k == 0 ? 0 : options.warm_start_iterations;
  if (resume)
    for (const IterationInfo& info : resume->model.history)
      if (info.sparsity_in_effect > 0) {
        warm_phase_end = std::min(warm_phase_end, info.iteration - 1);
        break;
      }
  // Whether the history says training is over (a tolerance met): checked after every iteration, and
  // on a resume before the first, so that a resumed fit stops where the uninterrupted one did.
  auto converged = [&]() {
    if (model.history.empty()) return false;
    const IterationInfo& info = model.history.back();
    const int it = info.iteration;
    // Started from a neighbour's state (new directions of U growing): no tolerance is met while
    // the gains still rise.
    if (start_from && use_prior) {
      const std::size_t h = model.history.size();
      if (h < 3 || evidence_gains_rising(model.history[h - 3].log_evidence, model.history[h - 2].log_evidence,
                                         model.history[h - 1].log_evidence))
        return false;
    }
    if (options.tolerance > 0 && info.u_change < options.tolerance && it > warm_phase_end) return true;
    if (use_prior && options.relative_tolerance > 0 && it > warm_phase_end + 1 && model.history.size() >= 2) {
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
    const int k_now = it <= warm_phase_end ? 0 : static_cast<int>(k);
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
    // Where the M-step starts from, for over-relaxing it (core/em_acceleration.hpp).
    const bool accelerate = use_prior && options.em_acceleration && holds_u;
    const std::vector<double> Sigma_before = accelerate ? prior.Sigma : std::vector<double>();
    const std::vector<double> U_before = accelerate && r > 0 ? backend->get_U() : std::vector<double>();
    const double s2_before = prior.noise_variance;
    std::vector<double> w_mean;
    if (use_prior) w_mean = core::update_hyperparameters(prior, totals, t_all);
    if (estimate_tau2 && k_now > 0) tau2 = core::estimate_sparse_prior_variance(totals, tau2);
    if (estimate_inclusion && k_now > 0) prior.inclusion_probability = core::estimate_inclusion_probability(totals, t_all, d);
    const double change = u_start ? u_step.run_from_start(std::move(*u_start), prior_now) : u_step.run(private_release, prior_now);
    if (use_prior) {
      prior.beta = u_step.beta();
      const std::vector<double> U = backend->get_U();
      core::carry_to_new_basis(prior, u_step.last_R(), U, w_mean, static_cast<int>(d), static_cast<int>(r));
      if (estimate_shrinkage) prior.covariance_shrinkage = core::estimate_covariance_shrinkage(prior.Sigma, static_cast<int>(r), t_all);
      // The constant feature's direction in w's coordinates, which the slopes model keeps apart.
      const std::vector<double> u = slopes ? std::vector<double>(U.begin() + constant * r, U.begin() + (constant + 1) * r) : std::vector<double>();
      if (slopes) core::keep_intercept_apart(prior.Sigma, u, static_cast<int>(r));
      else core::shrink_covariance(prior.Sigma, static_cast<int>(r), prior.covariance_shrinkage);
      if (accelerate) {
        const double eta = core::overrelaxation_factor(model.history, k_now, totals.log_evidence, s2_before, prior.noise_variance);
        if (eta > 1.0 && s2_before > 0 && prior.noise_variance > 0) {
          prior.noise_variance = s2_before * std::pow(prior.noise_variance / s2_before, eta);
          if (r > 0 && Sigma_before.size() == prior.Sigma.size()) {
            const std::vector<double> from = core::covariance_in_basis(Sigma_before, U_before, U, static_cast<int>(d), static_cast<int>(r));
            prior.Sigma = core::covariance_geodesic(from, prior.Sigma, static_cast<int>(r), eta);
            // The geodesic between two such matrices stays one; kept exactly so.
            if (slopes) core::keep_intercept_apart(prior.Sigma, u, static_cast<int>(r));
          }
        }
      }
    }
    if (private_release && r > 0) report.releases += 2;
    IterationInfo info;
    info.iteration = it;
    info.rank = static_cast<int>(r);
    info.max_iterations = options.iterations;
    info.candidate = !run.final_fit;
    info.candidate_index = run.candidate_index;
    info.fold = run.fold;
    info.training_loss = totals.rows > 0 ? totals.sse / static_cast<double>(totals.rows) : 0.0;
    info.u_change = change;
    info.u_step_seconds = seconds_since(t1);
    info.task_step_seconds = task_seconds;
    info.elapsed_seconds = elapsed_before + seconds_since(start);
    info.sparsity_in_effect = k_now;
    info.noise_variance = use_prior ? prior.noise_variance : 0.0;
    info.log_evidence = use_prior ? totals.log_evidence : 0.0;
    info.covariance_shrinkage = use_prior && r > 0 ? prior.covariance_shrinkage : 0.0;
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
                                  : std::string(options.selection == Selection::kfold ? "fit: stopped during the choice on folds of each task's rows"
                                                : options.selection == Selection::validation || options.prior == Prior::none
                                                    ? "fit: stopped during the choice on validation rows"
                                                    : "fit: stopped during the choice of r and k by marginal likelihood"),
                    run.final_fit ? it : 0);
    if (ends) break;
  }
  // The final task step with the final U; full sparsity unless training never left the warm start.
  const bool warm_only = options.iterations <= warm_phase_end && options.iterations > 0;
  const int k_final = warm_only ? 0 : static_cast<int>(k);
  // With a prior over supports, the model's b is averaged over each task's supports (its final step
  // only: the EM steps' statistics are of the posterior mode).
  prior.average_supports = use_prior && prior.inclusion_probability > 0;
  const bool final_step = !(run.without_final_task_step && *run.without_final_task_step) || model.history.empty();
  core::TaskStepTotals final_totals;
  if (final_step) {
    apply_prior(k_final);
    final_totals = backend->task_step_all(k_final);
  } else {
    final_totals.log_evidence = model.history.back().log_evidence;
  }
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
      options.iterations > warm_phase_end + 1 && !converged()) {
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
template Model fit_fixed(const TaskDataView<float>&, const Options&, const FitRun&, const TaskDataView<float>*, std::vector<double>*);
template Model fit_fixed(const TaskDataView<double>&, const Options&, const FitRun&, const TaskDataView<double>*, std::vector<double>*);

}  // namespace lrsmeta
