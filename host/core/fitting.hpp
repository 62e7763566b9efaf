// What the files of the fit share (host/core: fit.cpp, fit_loop.cpp, selection.cpp, resume.cpp,
// options.cpp): one fit with its settings fixed, the choices made around it, and resuming one.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "lrsmeta/io.hpp"
#include "lrsmeta/lrsmeta.hpp"

namespace lrsmeta {

// The b prior's settings in the fits on the fit rows that validation's candidates are evaluated
// from, and the start of their estimates (values validation chose most often in
// bench/noisy_synthetic and the MovieLens benchmark); the support threshold where it is not chosen
// on validation rows.
constexpr double kDefaultSparseScale = 0.1, kDefaultThreshold = 2.0, kDefaultShrinkage = 10.0;

// validate(data)'s checks of the sizes, pointers and task offsets, without its pass over the values
// (options.cpp): enough to read X safely.
template <typename T>
void validate_layout(const TaskDataView<T>& data, bool require_y);

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
  // Where not resuming: a neighbouring fit's last state (another r or k; core/warm_start.hpp) to
  // start from rather than from scratch. The fit then has no warm-start phase: b enters at once.
  const Checkpoint* start_from = nullptr;
  // The data's spectral moment (Backend::spectral_moment, not private), shared by the fits of one
  // choice: filled by the first that needs it (new columns of U, or a spectral start), read by the
  // others, so that the data is passed over once for it. Null: each fit computes its own.
  std::vector<double>* spectral_moment = nullptr;
  const Checkpoint* header = nullptr;  // what every checkpoint records besides the fit's state (data, asked options, choice)
  Communicator* communicator = nullptr;  // over many processes (data: this one's shard); null: one
  // The constant feature (core::constant_feature) where the caller found it already: a fit that
  // holds U then makes no pass over the data to find it.
  std::optional<std::int64_t> constant_feature;
  int candidate_index = -1;  // IterationInfo::candidate_index
  int fold = -1;             // IterationInfo::fold
  // Where this points to true once the fit ends (a candidate abandoned or stopped ahead: its state
  // is the checkpoint's, and only its score is read), the final task step is left out: the model
  // returned has the last iteration's tasks' parameters and log evidence.
  const bool* without_final_task_step = nullptr;
};

// Whether the gains of a log evidence trace still rise: its last three values, oldest first. A
// direction of U growing from a small variance gains little at first and more each iteration;
// neither a tolerance nor an abandonment judges a fit while its gains rise. A last gain under
// kEvidenceGainNoise of the evidence is a settled fit's jitter, not a rise: one restarted from its
// own end gained 1e-6 nats of 3164 a step, rising or falling with OpenBLAS's kernels
// (WarmStart.AFitStartedFromANeighboursStateReachesItsOwnOptimum); a growing direction gains
// nats.
constexpr double kEvidenceGainNoise = 1e-8;
inline bool evidence_gains_rising(double oldest, double previous, double last) {
  const double gain = last - previous;
  return gain > kEvidenceGainNoise * std::fabs(last) && gain > previous - oldest;
}

// How far past the last of three log evidences a fit that has `left` iterations to go is taken to
// reach, for abandoning a candidate (core/selection.cpp): EM's gains fall about geometrically once
// they fall, so the last gain g, shrinking by the ratio rho of the last two, adds g rho / (1 - rho);
// kEvidenceTailAllowance times that, and never more than g for every iteration left. 0 where the
// last gain is not positive.
constexpr double kEvidenceTailAllowance = 4.0;
inline double evidence_still_to_gain(double oldest, double previous, double last, int left) {
  const double gain = last - previous, before = previous - oldest;
  if (!(gain > 0.0) || left <= 0) return 0.0;
  const double linear = gain * static_cast<double>(left);
  if (!(before > gain)) return linear;  // not yet falling: no rate to go by
  const double rho = gain / before;
  return std::min(linear, kEvidenceTailAllowance * gain * rho / (1.0 - rho));
}

// BIC's count of the shared parameters a candidate of the choice by evidence estimates, beyond
// those every candidate does (beta, s2): U's span, Sigma and, with b, the b prior's
// (core/selection.cpp). Its score is its log marginal likelihood less half this times log t.
double estimated_shared_parameters(const SelectionCandidate& c, std::int64_t d, bool tau2_estimated);

// The fit with r, k and tau2 fixed (fit_loop.cpp). With `validation` (the held-out rows of the same
// tasks), the validation MSE of every b-prior scale candidate is returned in *candidate_mse, each
// from one more task-step pass with the fitted U, beta, Sigma and s2.
template <typename T>
Model fit_fixed(const TaskDataView<T>& data, const Options& fit_options, const FitRun& run,
                const TaskDataView<T>* validation = nullptr, std::vector<double>* candidate_mse = nullptr);

// Options as a fit runs them: private training takes no prior (options.cpp).
Options resolved(const Options& options, std::vector<std::string>* notes);
// The candidates of r and k for data of dimension d (options.cpp): r or k left to be chosen
// (Options::kAuto) without candidates gets the defaults for d (the one place "auto" is resolved);
// candidates above d cannot be fitted and are left out (an explicit r or k above d is still an
// error), and a list left empty becomes {0}.
void resolve_candidates(Options& options, std::int64_t d);

// What the options leave to be chosen (selection.cpp).
struct LeftToChoose {
  bool rank = false, sparsity = false;
  bool scale_auto = false;  // the b prior's scale or support threshold (chosen together, on the same passes)
  bool scale = false, threshold = false, shrinkage = false;
  std::vector<int> ranks, sparsities;  // the candidates, or the one given
  bool any_b = false, any_w = false;   // whether any candidate has b, or w
  // Whether a choice on validation rows has something to choose.
  bool on_validation_rows() const { return rank || sparsity || (scale_auto && any_b) || (shrinkage && any_w); }
};
LeftToChoose left_to_choose(const Options& options);
// The choice on validation rows: r, k and the priors' settings that `options` leaves to be chosen
// are chosen on held-out rows and set in it (where nothing is left, the b prior's defaults are
// set); notes and the report say how. From `run`: the caller's hooks (each fit's iterations are
// candidates'), checkpoints after each fit that ends (Checkpoint::held_out_fits, with run.header's
// data and options), and a resume's fits taken rather than fitted again (run.resume, made while
// choosing).
template <typename T>
SelectionReport choose_on_validation_rows(const TaskDataView<T>& data, Options& options, const FitRun& run,
                                          std::vector<std::string>& notes);
// The fit with what is "auto" estimated from all rows (Options::selection == evidence, with the
// prior): see selection.cpp.
template <typename T>
Model fit_by_evidence(const TaskDataView<T>& data, Options options, const FitRun& final_run, Checkpoint& header,
                      const std::vector<std::string>& notes);

// Whether checkpoint c may be resumed by a fit whose checkpoints would say `header`; throws naming
// what differs (resume.cpp).
void check_resume(const Checkpoint& c, const Checkpoint& header);
// The options a resumed fit runs with: those in effect when the checkpoint was made (after any
// choice), with this run's threads.
Options options_to_resume(const Checkpoint& c, const Options& asked);

}  // namespace lrsmeta
