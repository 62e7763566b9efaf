// lrsmeta: personalised linear models for many data-starved tasks.
//
// Each task i has the linear model theta_i = U w_i + b_i, with U (d x r, orthonormal columns) shared
// by all tasks, w_i an r-vector and b_i a d-vector with at most k non-zeros. AMHT-LRS learns them by
// alternating minimisation with hard thresholding.
//
// This header is plain C++17: no CUDA type appears here, whatever backends the library was built with.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "lrsmeta/export.hpp"
#include "lrsmeta/version.hpp"

namespace lrsmeta {

// Every error the library reports is a lrsmeta::Error (or derived): the message names the problem.
class LRSMETA_API Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// In a fit over many processes (FitControl::communicator), an error every process throws together,
// with the message of the first process that failed ("rank R: ..."): the processes are in step, and
// a program may end normally (an Error of one process alone leaves the others waiting: end them all,
// as lrsmeta::mpi_abort does).
class LRSMETA_API CollectiveError : public Error {
 public:
  using Error::Error;
};

// A non-owning view of ragged task data: task i owns rows task_offsets[i] .. task_offsets[i+1]-1
// of X (n x d, row-major) and y (n). task_offsets has t + 1 entries, starts at 0, never decreases
// and ends at n. Tasks with zero rows are allowed. y may be null where only X is needed (predict).
template <typename T>
struct TaskDataView {
  const T* X = nullptr;
  const T* y = nullptr;
  const std::int64_t* task_offsets = nullptr;
  std::int64_t n = 0;  // rows
  std::int64_t d = 0;  // features
  std::int64_t t = 0;  // tasks

  std::int64_t task_size(std::int64_t i) const { return task_offsets[i + 1] - task_offsets[i]; }
};

// How each task's (w_i, b_i) is updated with U fixed. See docs/design.md section 2 and docs/model.md.
enum class Variant { pursuit, htp, iht };
// automatic ("auto"): spectral with the prior (measured: random starts left a noisy fit at 0.614 to
// 0.689 held-out RMSE by seed, the spectral start at 0.612), random otherwise (the paper's model,
// and private training, where a spectral start would cost one more release).
enum class Init { random, spectral, automatic };
enum class Device { cpu, cuda, automatic };
// The statistical model (docs/design.md section 6). automatic ("auto"): the empirical-Bayes model
// theta_i = beta + U w_i + b_i with w_i ~ N(0, Sigma), b_i's non-zeros ~ N(0, tau2) and noise
// variance s2, beta, Sigma and s2 estimated from all tasks; none: the paper's AMHT-LRS exactly.
enum class Prior { none, automatic };
// How the U step solves its normal equations (G + lambda I) vec(U~) = v, G of size (d r') x (d r')
// (r' = r, plus 1 for beta under the prior). direct: G formed and factored (Cholesky); memory and
// time grow as (d r')^2 and (d r')^3. cg: preconditioned conjugate gradients, G never formed: each
// step is one pass over the tasks. automatic ("auto"): the cheaper by a cost model (flops of forming
// and factoring G against passes over the data), and direct for private training (its noise goes
// on G).
enum class USolver { direct, cg, automatic };
// How the settings that least squares cannot fit are found (the b prior's variance, Sigma's
// shrinkage, r and k where they are "auto"). evidence (the default): estimated from all rows inside
// the fit, as a mixed-model program fits its variance components (docs/design.md section 10): tau2 and
// the supports' inclusion probability by EM, Sigma's shrinkage by marginal likelihood, r and k by
// the log marginal likelihood of each candidate's fit (less BIC's charge for U, Sigma and the b prior).
// validation: chosen on held-out rows of each task (Options::validation_fraction), then refitted
// on all rows. kfold: as validation, on K folds of each task's rows (Options::folds): every row
// of a task with 2 rows or more is held out once, at K times validation's cost, for small data where
// one held-out fifth is too few rows to choose on. Evidence needs no held-out rows and far fewer
// fits (docs/benchmarks.md: bench/noisy_synthetic, where its held-out error is also lower);
// docs/model.md and docs/benchmarks.md compare them on every benchmark, MovieLens included.
enum class Selection { evidence, validation, kfold };
// What U is, under the prior. learned: estimated from the data (the model's shared low-rank part).
// intercept: held at the axis of the constant feature (a column with the same non-zero value in
// every row), r = 1: a random intercept per task, w_i ~ N(0, Sigma), as lme4's (1 | g); nothing is
// learned about U, so nothing is charged for its span when candidates are compared. slopes: r = d,
// U held at the features' axes, Sigma diagonal with two variances, the constant feature's own and
// one shared by every other feature: a random intercept and random slopes, or per-task ridge towards
// beta with the intercept shrunk apart (Options::covariance_shrinkage does not apply). automatic
// ("auto"): learned; and where r is auto (Selection::evidence) and the data have a constant
// feature, the random intercept and (where r = d is a candidate) the slopes model are candidates
// too (docs/model.md).
enum class LowRankBasis { learned, intercept, slopes, automatic };

LRSMETA_API const char* to_string(Variant v);
LRSMETA_API const char* to_string(Init v);
LRSMETA_API const char* to_string(Device v);
LRSMETA_API const char* to_string(Prior v);
LRSMETA_API const char* to_string(USolver v);
LRSMETA_API const char* to_string(Selection v);
LRSMETA_API const char* to_string(LowRankBasis v);
// Parse a name ("pursuit", "htp", "iht"; "random", "spectral"; "cpu", "cuda", "auto"); throws Error.
LRSMETA_API Variant parse_variant(const std::string& name);
LRSMETA_API Init parse_init(const std::string& name);
LRSMETA_API Device parse_device(const std::string& name);
LRSMETA_API Prior parse_prior(const std::string& name);  // "auto" or "none"
LRSMETA_API USolver parse_u_solver(const std::string& name);  // "direct", "cg" or "auto"
LRSMETA_API Selection parse_selection(const std::string& name);  // "evidence", "validation" or "kfold"
LRSMETA_API LowRankBasis parse_low_rank_basis(const std::string& name);  // "learned", "intercept", "slopes" or "auto"

// User-level differential privacy (docs/design.md section 3, docs/model.md "Differential privacy"). Only U is
// released; each task's (w_i, b_i) stays with the task. Every task's contribution to G and v is
// bounded (rows of X_i scaled to norm <= clip_x, residuals clipped to |e| <= clip_y, ||w_i|| <=
// clip_w, its first max_samples rows only), then Gaussian noise is added to G (symmetric) and v.
// The bounds are settings, never computed from the data: that would leak it.
struct PrivacyOptions {
  bool enabled = false;
  double epsilon = 1.0;            // target (epsilon, delta) over the whole fit
  double delta = 1e-6;
  double clip_x = 1.0;             // C_x
  double clip_y = 1.0;             // C_y
  double clip_w = 1.0;             // C_w
  int max_samples = 50;            // m_max
  double noise_multiplier = -1.0;  // z (sigma = z * sensitivity); < 0: calibrated to (epsilon, delta)
  bool fixed_seed = false;         // reproducible noise from noise_seed: VOIDS the guarantee
  std::uint64_t noise_seed = 0;
};

// What a private fit spent, as recorded in the model.
struct PrivacyReport {
  bool enabled = false;
  double epsilon = 0.0;            // spent, at delta
  double delta = 0.0;
  double rho = 0.0;                // zCDP spent
  double noise_multiplier = 0.0;
  int releases = 0;                // Gaussian mechanisms applied
  double sensitivity_G = 0.0, sensitivity_v = 0.0;
  double sigma_G = 0.0, sigma_v = 0.0;
  double ridge = 0.0;              // added to the noisy G to keep it positive definite
  bool fixed_seed = false;         // true: the guarantee does not hold (the noise is reproducible)
};

struct Options {
  // The value of rank or sparsity that leaves it to be chosen ("auto"): fit() tries
  // rank_candidates (sparsity_candidates), or where that list is empty default_rank_candidates(d)
  // (default_sparsity_candidates(d)) for the data's d. (Not -1: a negative count is an error.)
  static constexpr int kAuto = std::numeric_limits<int>::min();
  int rank = 3;                   // r: columns of U; 0 = sparse only; kAuto: chosen
  int sparsity = 2;               // k: non-zeros per b_i; 0 = low-rank only; kAuto: chosen
  Variant variant = Variant::pursuit;
  int iterations = 100;           // L: outer iterations (U updates), at most: see relative_tolerance
  int inner_iterations = 3;       // task-step iterations per outer iteration (at most: htp and
                                  // pursuit stop once the support repeats)
  int warm_start_iterations = 5;  // first outer iterations run with k = 0 (b = 0)
  double ridge = 0.0;             // lambda added to the dr x dr system for U (absolute)
  double task_ridge = 1e-10;      // relative ridge on each per-task system (times its mean diagonal)
  double step_size = 0.0;         // iht/htp: eta = step_size / m_i; 0: the variant's default
                                  // (iht 0.5, htp 1.0)
  Init init = Init::automatic;
  std::uint64_t seed = 42;
  int threads = 0;                // 0: all cores (OpenMP default)
  double tolerance = 0.0;         // stop early when the change in U falls below this; 0: never
  // With the prior (auto): stop after the warm start once an iteration changes both the noise
  // variance s2 and the training loss by less than this, relatively (EM has converged). 0: never.
  // Noiseless data never stops this way (s2 keeps falling geometrically to rounding level).
  double relative_tolerance = 1e-6;
  Device device = Device::cpu;
  PrivacyOptions privacy;
  USolver u_solver = USolver::automatic;
  // cg: stop once ||v - (G + lambda I) x|| <= cg_tolerance ||v||, or after cg_max_steps steps.
  double cg_tolerance = 1e-10;
  // cg: also stop once the residual is this fraction of the warm start's. Each U step then only
  // has to follow the task step's last change, not solve to cg_tolerance: the fit's fixed points
  // are the same (a U step that takes any step moves a U that is not one) and on the benchmarks
  // the outer iterations were too (docs/benchmarks.md). 0: every U step solved to cg_tolerance.
  double cg_forcing = 0.1;
  int cg_max_steps = 300;

  // The statistical model. Private training always uses Prior::none: the prior's hyperparameters
  // are statistics of all tasks that the privacy accountant does not pay for.
  Prior prior = Prior::automatic;
  // beta's own prior N(0, tau_beta^2 I), tau_beta^2 from the ridge penalty that generalised
  // cross-validation picks for the global linear fit (it vanishes with the noise, like the other
  // priors). false: beta unpenalised, as in the classical linear mixed model.
  bool population_prior = true;
  // Over-relaxed EM for s2 and Sigma (core/em_acceleration.hpp): where the M-step keeps moving them
  // the same way, its step is stretched, up to 16 times. The fixed point is EM's; false: EM's own
  // steps (slower where a variance is poorly determined).
  bool em_acceleration = true;
  // How what is "auto" below is found: estimated from all rows (evidence, the default) or chosen
  // on held-out rows (validation).
  Selection selection = Selection::evidence;
  // What U is: learned, the constant feature's axis held fixed (a random intercept), or auto (see
  // LowRankBasis).
  LowRankBasis low_rank_basis = LowRankBasis::automatic;
  // With the prior (not private): each feature is divided inside the fit by a power of two (an
  // indicator to 0/1, any other column to about twice its root mean square: Gelman's rule), and
  // the model mapped back to the features as given (Model::feature_scales), so that the prior,
  // which treats every feature alike, does not depend on the features' units. X is copied where
  // the columns do not share a scale already. docs/model.md.
  bool standardize = true;
  // Prior variance tau2 of b_i's non-zeros, as a multiple of the data's coefficient scale (the
  // variance one coefficient would need to explain the residual variance of the global linear fit
  // alone). < 0 (the default): estimated by EM (the mean of E[b_q^2] over the tasks' non-zeros),
  // or with Selection::validation chosen among sparse_prior_scale_candidates on validation rows.
  double sparse_prior_scale = -1.0;
  std::vector<double> sparse_prior_scale_candidates{0.01, 0.03, 0.1, 0.3, 1.0, 3.0};
  // A non-zero of b_i is kept only where its posterior mean exceeds c posterior variances
  // (b_q^2 > c Var(b_q | data)): tasks too small to identify their support keep fewer non-zeros.
  // < 0 (the default): 2 (measured: 0 to 4 give the same fits under Selection::evidence, where the
  // supports' prior already keeps weak non-zeros out); with Selection::validation chosen among
  // support_threshold_candidates, jointly with the scale above (every pair costs one task-step
  // pass, no refit).
  double support_threshold = -1.0;
  std::vector<double> support_threshold_candidates{0.0, 2.0, 4.0, 8.0};
  // Shrinkage f of Sigma towards isotropic: each EM update takes Sigma = (S + f (tr S / r) I) /
  // (1 + f), S the maximum-likelihood estimate (an inverse-Wishart-like prior worth f tasks per
  // task). 0 is the plain mixed model; large f approaches per-task ridge shrunk to the population
  // model, which tasks of a handful of rows can need (MovieLens with 5 ratings per user). < 0 (the
  // default): at every M-step the f that maximises the marginal likelihood of the tasks' w under an
  // inverse-Wishart prior with mean (tr S / r) I and f t pseudo-tasks; with Selection::validation
  // chosen among covariance_shrinkage_candidates on validation rows (one task-step pass each).
  double covariance_shrinkage = -1.0;
  std::vector<double> covariance_shrinkage_candidates{0.0, 1.0, 10.0, 100.0};
  // Non-empty (`--rank auto`, `--sparsity auto`): rank and sparsity are then ignored. Validation:
  // both chosen on validation rows, then refitted on all rows with the choice. Evidence: each
  // candidate fitted on all rows and scored by its log marginal likelihood less half its number of
  // shared parameters (U's span, r (d - r), Sigma, r (r + 1) / 2, and with k > 0 the b prior's
  // inclusion probability and, unless given, variance) times log t;
  // r searched upwards with the middle k, then r = d where it is a candidate (with Sigma's
  // shrinkage estimated, and with Sigma isotropic, or where a feature is constant the slopes
  // model), then the random intercept where a feature is constant (LowRankBasis), then k for each
  // of the three best models so far, each search until two
  // candidates in a row do not improve; a larger candidate must score a nat more than a smaller
  // one; the chosen candidate's fit continues to the asked tolerance.
  std::vector<int> rank_candidates;
  std::vector<int> sparsity_candidates;
  // Share of each task's rows held out for validation when something is chosen on validation rows
  // (tasks with fewer than 3 rows keep all their rows for fitting).
  double validation_fraction = 0.2;
  // Selection::kfold: K, the folds of each task's rows (2 to 100).
  int folds = 5;
  // With more tasks than this, the choice on validation rows is made on this many tasks drawn at
  // random (seeded), and only the final fit sees every task: the split's copy of the rows and the
  // candidates' fits stay bounded. 0: every task.
  std::int64_t selection_tasks = 50000;
  // When r or k is chosen: the smallest model (r + 2k) whose validation error is within this
  // relative margin of the best one is taken.
  double selection_tolerance = 0.005;
};

// The default candidates of `--rank auto` and `--sparsity auto` for data of dimension d (ranks:
// 0, 1, 2, 3, 5, 8, ... up to d, and d itself where d <= 32: the full-rank model).
LRSMETA_API std::vector<int> default_rank_candidates(std::int64_t d);
LRSMETA_API std::vector<int> default_sparsity_candidates(std::int64_t d);

// What the per-iteration callback sees. training_loss is the mean squared training residual after
// the task step of that iteration; u_change is ||(I - U_old U_old^T) U_new||_F.
struct IterationInfo {
  int iteration = 0;              // 1-based
  double training_loss = 0.0;
  double u_change = 0.0;
  double elapsed_seconds = 0.0;   // since fit started
  int sparsity_in_effect = 0;     // 0 during warm start
  // With the cg U solver (no private release) the U step's first pass over the data (its
  // right-hand side and its warm start's product) runs inside the task step, task by task, and is
  // counted in task_step_seconds.
  double task_step_seconds = 0.0;
  double u_step_seconds = 0.0;
  double noise_variance = 0.0;    // the prior's s2 after this iteration (0 without a prior)
  int u_solver_steps = 0;         // cg: steps taken by this iteration's U step (0: direct)
  double u_solver_residual = 0.0; // cg: its final relative residual ||v - A x|| / ||v||
  // With the prior: the model's log marginal likelihood at this iteration's task step, sum_i log
  // p(y_i | U, beta, Sigma, s2, tau2, S_i) (w_i and b_i integrated out; 0 without a prior).
  double log_evidence = 0.0;
  double covariance_shrinkage = 0.0;  // the prior's f after this iteration (0 without a prior or U)
  // The fit this iteration belongs to: its rank, its iteration cap, and whether it is one of the
  // candidates compared while choosing (by marginal likelihood, or on validation rows) rather than
  // the fit that becomes the model.
  int rank = 0;
  int max_iterations = 0;
  bool candidate = false;
  // Where r and k are chosen by marginal likelihood: the candidate's position in the selection
  // report's candidates (one stopped ahead and continued later keeps its position). On held-out
  // rows: the setting's place among those fitted (the same for each of its folds). -1 otherwise.
  int candidate_index = -1;
  // Selection::kfold: the fold this candidate's fit holds out (0 to K - 1); -1 otherwise.
  int fold = -1;
};
// Return false to stop training after this iteration (a final task step still runs).
using IterationCallback = std::function<bool(const IterationInfo&)>;

// What was estimated or chosen, and how every candidate scored: by its log marginal likelihood
// (Selection::evidence, fits on all rows) or its validation error (Selection::validation).
struct SelectionCandidate {
  int rank = 0, sparsity = 0;
  double sparse_prior_scale = 0.0;  // 0 where k = 0 (no b to shrink)
  double support_threshold = 0.0;
  double covariance_shrinkage = 0.0;
  double validation_mse = 0.0;      // validation: the score (NaN under evidence)
  bool refitted = false;  // scored after its own fit on the fit rows (else: one task-step pass
                          // from the fit of the defaults, a screen)
  // evidence: the fit's log marginal likelihood (where abandoned or ahead, its last iteration's),
  // its estimated tau2 and outer iterations (NaN, 0 and 0 under validation).
  double log_evidence = 0.0;
  // evidence: the criterion compared, higher is better: log_evidence less half the shared
  // parameters the candidate estimates (U's span, Sigma, the b prior's) times log t, BIC's charge
  // (NaN under validation).
  double score = std::numeric_limits<double>::quiet_NaN();
  double sparse_prior_variance = 0.0;
  int iterations = 0;
  // evidence: stopped before its tolerance because it could not catch the best candidate so far
  // (its score, with what it was extrapolated still to gain, fell short).
  bool abandoned = false;
  // evidence: stopped before its tolerance because it was ahead of the best candidate so far even
  // at the most that one could still gain, and was itself nearly settled (the first candidate:
  // once past its settling iterations). A later comparison that its remaining gain could decide
  // continues it first, which clears this.
  bool ahead = false;
  // evidence, where abandoned or ahead: the log evidence it was extrapolated to reach, which decides
  // whether its model is among those whose k is searched (NaN otherwise).
  double reach_log_evidence = std::numeric_limits<double>::quiet_NaN();
  // evidence: U learned, or held (the random-intercept and the slopes candidates: see LowRankBasis).
  LowRankBasis low_rank_basis = LowRankBasis::learned;
};
struct SelectionReport {
  bool performed = false;
  Selection method = Selection::validation;  // how it was found
  bool rank_auto = false, sparsity_auto = false, sparse_prior_scale_auto = false, support_threshold_auto = false;
  bool covariance_shrinkage_auto = false;
  std::int64_t tasks = 0;  // the tasks the choice was made on (all, or Options::selection_tasks of them)
  // validation: the rows fitted and held out. kfold: the tasks' rows, and those held out in some
  // fold (each once; a task with one row is never held out).
  std::int64_t fit_rows = 0, validation_rows = 0;
  int folds = 0;  // kfold: K; validation: 1; evidence: 0
  std::vector<SelectionCandidate> candidates;  // in the order they were tried
  SelectionCandidate chosen;
};

// How the columns of a CSV table became the feature vector: decided when training, recorded in the
// model, and applied again to the CSV given to predict, eval and adapt.
struct FeatureColumn {
  std::string name;                 // the CSV column
  std::vector<std::string> levels;  // empty: a numeric column, one feature; else a text column,
                                    // one-hot: one feature "name=level" per level
};
struct FeatureEncoding {
  bool present = false;             // false: the data came as arrays (nothing to re-apply)
  bool intercept = false;           // a constant feature "(intercept)" comes first
  std::vector<FeatureColumn> columns;
  std::vector<std::string> ignored;  // "column: why" for each column not used
  std::vector<std::string> notes;    // how a used column was read where it could have been read otherwise
  // The CSV's target and task columns at training: predict, eval and adapt default to them.
  std::string target, task;
};

// A trained model. Stored in double whatever the precision of the data it was trained on.
struct Model {
  std::int64_t d = 0, r = 0, k = 0, t = 0;
  std::vector<double> U;              // d x r, row-major, orthonormal columns
  std::vector<double> W;              // t x r, row-major
  std::vector<std::int32_t> B_index;  // t x k: feature index of each non-zero, -1 for an unused slot
  std::vector<double> B_value;        // t x k
  Options options;                    // the settings it was trained with
  std::vector<IterationInfo> history;
  PrivacyReport privacy;                   // privacy spent (enabled = false for a plain fit)
  std::vector<std::string> task_keys;      // optional: names of the tasks (e.g. CSV task column)
  std::vector<std::string> feature_names;  // optional
  FeatureEncoding encoding;                // CSV input: how to build the features again
  // The empirical-Bayes prior (options.prior == auto; empty / 0 for the paper's model): theta_i =
  // beta + U w_i + b_i. A task with no rows, or a new one, predicts with beta.
  std::vector<double> beta;           // d
  std::vector<double> Sigma;          // r x r, row-major: covariance of w_i
  double noise_variance = 0.0;        // s2
  double sparse_prior_variance = 0.0; // tau2 of b_i's non-zeros
  double support_threshold = 0.0;     // c: b_q kept where b_q^2 > c Var(b_q | data)
  double covariance_shrinkage = 0.0;  // f: Sigma shrunk towards isotropic (see Options)
  // pi: the prior probability that a feature is in a task's support (estimated under
  // Selection::evidence; 0: no prior over supports).
  double support_inclusion_probability = 0.0;
  // The final task step's log marginal likelihood sum_i log p(y_i | ...) (with the prior; 0 without).
  double log_evidence = 0.0;
  SelectionReport selection;
  // Options::standardize: the power of two each feature was divided by inside the fit (d entries;
  // empty where none was). The model is of the features as given; tau2, pi and the support
  // threshold are those of the scaled features, and adapt scales new tasks' features the same way.
  std::vector<double> feature_scales;
  std::vector<std::string> notes;     // what the fit decided that a user should know
  // False when training reached Options::iterations while a tolerance was in effect and not met
  // (a note then says by how much it still changed, and what to do).
  bool converged = true;

  bool has_prior() const { return !beta.empty(); }
  // theta_i = beta + U w_i + b_i as a dense d-vector.
  LRSMETA_API std::vector<double> theta(std::int64_t task) const;
  // All theta as a t x d row-major matrix.
  LRSMETA_API std::vector<double> theta_matrix() const;
  // The parameters of a task the model has not seen: beta with the prior (w and b have prior mean
  // zero); without it, the mean of the fitted tasks' theta (zero when t = 0).
  LRSMETA_API std::vector<double> population_theta() const;
  // Throws Error when the arrays do not match the dimensions or hold NaN/Inf or bad indices.
  LRSMETA_API void validate() const;
};

// Thrown by fit when FitControl::stop asked it to stop (the fit is abandoned; the last checkpoint
// written, where one was configured, is where a resume goes on from).
class LRSMETA_API Stopped : public Error {
 public:
  Stopped(const std::string& what, int iteration) : Error(what), iteration_(iteration) {}
  // The outer iteration of the final fit after which it stopped; 0 during a choice (the last
  // checkpoint, if any, is of the choice).
  int iteration() const { return iteration_; }

 private:
  int iteration_;
};

// One fit of a choice on held-out rows (Selection::validation or kfold) that has ended: its setting,
// the fold it held out (-1: validation's one split) and the held-out mean squared error of each
// setting scored from it (its own first where no b prior's pair comes first; see SelectionReport).
struct HeldOutFit {
  int rank = 0, sparsity = 0;
  double sparse_prior_scale = 0.0, support_threshold = 0.0, covariance_shrinkage = 0.0;
  int fold = -1;
  std::vector<double> mse;
};

// The state of a fit between two outer iterations of its final fit, or of a choice of its settings:
// everything it needs to go on. Resuming from it gives the model the uninterrupted fit would
// have given, bit for bit with the same thread count (private training without a fixed noise seed
// draws fresh noise after the resume: its noise is never replayable).
struct Checkpoint {
  // U, every task's (w, b), and with the prior beta and Sigma, as they are after `iteration` outer
  // iterations; the options in effect (r, k and the priors' settings as chosen); the history so
  // far; the selection report and notes; the privacy releases made so far.
  Model model;
  Options asked;                  // the options fit was called with (a resume must ask the same)
  int iteration = 0;              // outer iterations done (0: the choice is made, none run yet)
  // True: made while r, k or the priors' settings were being chosen. By evidence, `model` is the
  // best candidate so far (its fit at the candidates' tolerance, `iteration` its iterations) and
  // model.selection every candidate scored; a resume scores only the candidates not yet scored. On
  // held-out rows (model.selection.method validation or kfold), `model` holds no fit (r = k = 0,
  // iteration 0) and held_out_fits every fit of the choice that has ended, in order; a resume takes
  // their errors rather than fitting them again.
  bool choosing = false;
  std::vector<HeldOutFit> held_out_fits;
  double elapsed_seconds = 0.0;   // of the final fit, up to this point
  // The data it was made on: a resume on other data is refused.
  std::int64_t n = 0, d = 0, t = 0;
  int value_bytes = 0;            // 4: float, 8: double
  std::uint64_t data_fingerprint = 0;  // over many processes: of their shards' fingerprints, in rank order
  int processes = 1;                   // the processes that made it (a resume must have as many)
  // The prior's working state beyond model.beta and model.Sigma.
  double noise_variance = 0.0, b_precision = 0.0, beta_variance = 0.0, beta_precision = 0.0;
  double support_threshold = 0.0, covariance_shrinkage = 0.0, coefficient_scale = 0.0, sparse_prior_variance = 0.0;
  double inclusion_probability = 0.0;
  std::string noise_state;        // private training with a fixed noise seed: its generator's state
};

// The processes of a fit over many processes (each holding a shard of the tasks, in task order:
// rank 0 the first tasks), and the collective operations the library needs among them. Every
// process calls each operation in the same order. lrsmeta/mpi.hpp makes one over MPI; this interface
// carries no MPI type. A fit without one runs in this process alone.
class LRSMETA_API Communicator {
 public:
  virtual ~Communicator();
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // In place: the sum over the processes, the same bits on every process (summed in an order
  // fixed for a given number of processes).
  virtual void sum(double* values, std::size_t count) = 0;
  virtual void sum(std::int64_t* values, std::size_t count) = 0;
  // In place: root's values on every process.
  virtual void broadcast(double* values, std::size_t count, int root) = 0;
  virtual void broadcast(std::string& text, int root) = 0;
  // Rank 0 gets every process's bytes in rank order, its own first, through `sink` (called with
  // pieces of bounded size, so that nothing need be held whole); the others send theirs.
  virtual void stream_to_root(const char* bytes, std::size_t count,
                              const std::function<void(int rank, const char* piece, std::size_t size)>& sink) = 0;
  // Each process says whether it failed (an empty message: it did not); if any did, every process
  // gets the message of the lowest-ranked one that did ("rank R: ..."), else the empty string.
  virtual std::string first_error(const std::string& message) = 0;
};

// How a caller follows and steers a fit beyond the per-iteration callback.
struct FitControl {
  // After each outer iteration of every fit: the final fit's, and the candidates' while choosing
  // (IterationInfo::candidate says which).
  IterationCallback on_iteration;
  // Called with the state after every `checkpoint_every` outer iterations of the final fit, when
  // on_iteration or stop ends it early, after each candidate of a choice by evidence and each fit
  // of a choice on held-out rows (Checkpoint::choosing), and once before the first iteration when
  // r, k or the priors were chosen on held-out rows (so that a resume skips the choice). Null: no
  // checkpoints.
  std::function<void(const Checkpoint&)> checkpoint;
  int checkpoint_every = 1;
  // Non-null: continue this checkpoint instead of starting (the data and options must be the ones
  // it was made with; threads may differ, at the cost of bit-for-bit equality).
  const Checkpoint* resume = nullptr;
  // Polled after every outer iteration of every fit (the choice on validation rows included):
  // returning true abandons the fit with Stopped, after writing a checkpoint where one is due.
  std::function<bool()> stop;
  // Non-null: this process fits its shard of the tasks (`data` holds only those) together with the
  // communicator's other processes, which call fit at the same time with the same options. G, v and
  // every statistic are summed over them; rank 0 solves the U step (and draws any privacy noise)
  // and sends U to all. The model returned holds U, the prior and the history of the whole fit and
  // the (w, b) of this process's tasks (save it with save_model(model, path, communicator)). r, k
  // and the priors must be given (no choice on validation rows). Checkpoints hold this process's tasks
  // (save them with save_checkpoint(checkpoint, dir, communicator); resume from
  // load_checkpoint_tasks with the same number of processes).
  Communicator* communicator = nullptr;
};

// Train. Validates the data (shapes, offsets, NaN/Inf) and options first; throws Error on bad input.
template <typename T>
LRSMETA_API Model fit(const TaskDataView<T>& data, const Options& options,
                      const IterationCallback& callback = {});
template <typename T>
LRSMETA_API Model fit(const TaskDataView<T>& data, const Options& options, const FitControl& control);

// New tasks at deployment: U fixed, one task step per task on its samples. The result shares
// the model's U and has one (w, b) per task of `data`. options: variant, inner iterations, ridges,
// threads (rank and sparsity come from the model).
template <typename T>
LRSMETA_API Model adapt(const Model& model, const TaskDataView<T>& data, const Options& options);

// Prediction <x, U w_i + b_i> for every row of data (y is ignored); data.t must equal model.t.
template <typename T>
LRSMETA_API std::vector<double> predict(const Model& model, const TaskDataView<T>& data);

struct Evaluation {
  std::vector<double> task_mse;  // per task; NaN for a task with no rows
  double mse = 0.0;              // over all rows
  std::int64_t rows = 0;
};
template <typename T>
LRSMETA_API Evaluation evaluate(const Model& model, const TaskDataView<T>& data);

// ||(I - U U^T) V||_F for two d x r (row-major) bases with orthonormal columns: 0 when they span
// the same subspace, sqrt(r) at most.
LRSMETA_API double subspace_distance(const std::vector<double>& U, const std::vector<double>& V, std::int64_t d,
                                     std::int64_t r);

// ||A - B||_F / ||B||_F for two equally sized arrays.
LRSMETA_API double relative_error(const std::vector<double>& a, const std::vector<double>& b);

// Check a data view; throws Error naming the first problem. require_y: y must be present.
template <typename T>
LRSMETA_API void validate(const TaskDataView<T>& data, bool require_y = true);
// Check options against data dimensions; throws Error naming the first problem.
LRSMETA_API void validate(const Options& options, std::int64_t d);

// Whether a usable GPU is present and this library's CUDA module (liblrsmeta_cuda.so, installed
// beside liblrsmeta.so where the library was built with the CUDA toolkit) loads.
LRSMETA_API bool cuda_available();
// The device a fit with these options runs on, cpu or cuda. auto: the GPU where cuda_available()
// and the model is one the CUDA backend implements (prior none), else the CPU.
LRSMETA_API Device device_for(const Options& options);
// Empty, or one line saying that OpenBLAS runs kernels below this processor's vector instructions
// (a processor newer than its release) and which OPENBLAS_CORETYPE to set before starting: the CPU
// path is then about half as fast as it could be.
LRSMETA_API std::string blas_kernel_warning();

}  // namespace lrsmeta
