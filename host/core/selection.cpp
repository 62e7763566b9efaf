// The choices made around the fit: on validation rows (r, k and the priors' settings compared by
// held-out error), or by the marginal likelihood of fits on all rows (the default with the prior).
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "core/communicator.hpp"
#include "core/distributed_backend.hpp"
#include "core/feature_scaling.hpp"
#include "core/fitting.hpp"
#include "core/prior.hpp"
#include "core/random.hpp"
#include "lrsmeta/io.hpp"
#include "lrsmeta/lrsmeta.hpp"

namespace lrsmeta {

namespace {

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

// Which rows of a task are held out: `fold` < 0, validation's (the last round(fraction m) of the
// shuffled rows, at least 1, from tasks with 3 rows or more); else fold `fold` of `folds` (every
// folds-th shuffled row from position `fold`, from tasks with 2 rows or more, so that each such row
// is held out in exactly one fold and every task keeps a row to fit).
struct HeldOutRows {
  double fraction = 0.2;
  int folds = 1, fold = -1;
  bool held(std::int64_t m, std::int64_t position) const {
    if (fold >= 0) return m >= 2 && position % folds == fold;
    const std::int64_t n = m >= 3 ? std::max<std::int64_t>(1, std::llround(fraction * static_cast<double>(m))) : 0;
    return position >= m - n;
  }
};

// The rows of `tasks` split into rows to fit and rows to validate on, after a seeded shuffle of
// each task's rows (the same for every fold).
template <typename T>
std::pair<Dataset<T>, Dataset<T>> split_rows(const TaskDataView<T>& data, const std::vector<std::int64_t>& tasks,
                                             const HeldOutRows& rule, std::uint64_t seed) {
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
    for (std::int64_t j = 0; j < m; ++j) {
      Dataset<T>& to = rule.held(m, j) ? held_out : fit_part;
      const std::int64_t row = order[static_cast<std::size_t>(j)];
      to.X.insert(to.X.end(), data.X + row * data.d, data.X + (row + 1) * data.d);
      to.y.push_back(data.y[row]);
    }
    fit_part.task_offsets.push_back(fit_part.n());
    held_out.task_offsets.push_back(held_out.n());
  }
  return {std::move(fit_part), std::move(held_out)};
}

}  // namespace

LeftToChoose left_to_choose(const Options& options) {
  LeftToChoose left;
  left.rank = !options.rank_candidates.empty();
  left.sparsity = !options.sparsity_candidates.empty();
  left.scale_auto = options.prior == Prior::automatic && (options.sparse_prior_scale < 0 || options.support_threshold < 0);
  left.shrinkage = options.prior == Prior::automatic && options.covariance_shrinkage < 0;
  left.ranks = left.rank ? options.rank_candidates : std::vector<int>{options.rank};
  left.sparsities = left.sparsity ? options.sparsity_candidates : std::vector<int>{options.sparsity};
  left.any_b = *std::max_element(left.sparsities.begin(), left.sparsities.end()) > 0;
  left.any_w = *std::max_element(left.ranks.begin(), left.ranks.end()) > 0;
  left.scale = options.sparse_prior_scale < 0;
  left.threshold = options.support_threshold < 0;
  return left;
}

template <typename T>
SelectionReport choose_on_validation_rows(const TaskDataView<T>& data, Options& options, const FitRun& run,
                                          std::vector<std::string>& notes) {
  const LeftToChoose left = left_to_choose(options);
  const bool choose_rank = left.rank, choose_sparsity = left.sparsity, scale_auto = left.scale_auto;
  const bool choose_shrinkage = left.shrinkage, choose_scale = left.scale, choose_threshold = left.threshold;
  const std::vector<int>& ranks = left.ranks;
  const std::vector<int>& sparsities = left.sparsities;
  const bool selecting = left.on_validation_rows();
  auto set_b_defaults = [&](Options& o) {
    if (choose_scale) o.sparse_prior_scale = kDefaultSparseScale;
    if (choose_threshold) o.support_threshold = kDefaultThreshold;
  };
  SelectionReport selection;
  if (selecting) {
    const std::vector<std::int64_t> tasks = selection_task_subset(data.t, options.selection_tasks, options.seed);
    // The splits: one (validation), or K folds, each copied from the data when it is fitted (one
    // copy of the rows at a time, as for validation).
    const bool by_folds = options.selection == Selection::kfold;
    std::vector<HeldOutRows> splits;
    for (int f = 0; f < (by_folds ? options.folds : 1); ++f) {
      HeldOutRows rule;
      rule.fraction = options.validation_fraction;
      if (by_folds) rule.folds = options.folds, rule.fold = f;
      splits.push_back(rule);
    }
    std::int64_t rows = 0, held_rows = 0;
    std::vector<std::int64_t> split_held(splits.size(), 0);  // each split's held-out rows
    for (const std::int64_t i : tasks) {
      rows += data.task_size(i);
      for (std::size_t f = 0; f < splits.size(); ++f)
        for (std::int64_t j = 0; j < data.task_size(i); ++j) split_held[f] += splits[f].held(data.task_size(i), j) ? 1 : 0;
    }
    for (const std::int64_t h : split_held) held_rows += h;
    selection.performed = true;
    selection.method = by_folds ? Selection::kfold : Selection::validation;
    selection.folds = static_cast<int>(splits.size());
    selection.tasks = static_cast<std::int64_t>(tasks.size());
    selection.rank_auto = choose_rank;
    selection.sparsity_auto = choose_sparsity;
    selection.sparse_prior_scale_auto = scale_auto && choose_scale;
    selection.support_threshold_auto = scale_auto && choose_threshold;
    selection.covariance_shrinkage_auto = choose_shrinkage;
    selection.fit_rows = by_folds ? rows : rows - held_rows;
    selection.validation_rows = held_rows;
    if (held_rows == 0) {
      notes.push_back(std::string(by_folds ? "no task has 2 or more rows" : "no task has 3 or more rows") +
                      ": nothing to validate on; r = " + std::to_string(ranks.front()) +
                      ", k = " + std::to_string(sparsities.front()) + " and the b prior's default scale are used");
      selection.performed = false;
      options.rank = ranks.front();
      options.sparsity = sparsities.front();
      if (scale_auto) set_b_defaults(options);
      if (choose_shrinkage) options.covariance_shrinkage = kDefaultShrinkage;
    } else {
      // Every fit of the choice that has ended, in order: a resume's (taken, not fitted again: the
      // search meets them in the same order), then this run's, each checkpointed as it ends.
      std::vector<HeldOutFit> fits_ended;
      if (run.resume && run.resume->choosing) fits_ended = run.resume->held_out_fits;
      std::size_t fits_met = 0;
      auto checkpoint_choice = [&]() {
        if (!run.checkpoint || !run.header) return;
        Checkpoint c = *run.header;
        c.choosing = true;
        c.iteration = 0;
        c.model = Model();  // no fit of all rows yet
        c.model.d = data.d;
        c.model.t = data.t;
        c.model.options = options;
        c.model.selection = selection;
        c.model.notes = notes;
        c.held_out_fits = fits_ended;
        run.checkpoint(c);
      };
      FitRun selection_run;
      selection_run.stop = run.stop;
      selection_run.on_iteration = run.on_iteration;
      // Each setting's held-out mean squared error (the fit's own, then those screened from it),
      // pooled over the splits' held-out rows.
      using Parts = std::pair<Dataset<T>, Dataset<T>>;
      std::optional<Parts> only_split;  // validation's one split, copied once it is fitted
      int settings_fitted = 0;
      auto held_out_mse = [&](const Options& o) {
        selection_run.candidate_index = settings_fitted++;
        std::vector<double> pooled;
        for (std::size_t f = 0; f < splits.size(); ++f) {
          if (split_held[f] == 0) continue;
          HeldOutFit fit;
          fit.rank = o.rank;
          fit.sparsity = o.sparsity;
          fit.sparse_prior_scale = o.sparse_prior_scale;
          fit.support_threshold = o.support_threshold;
          fit.covariance_shrinkage = o.covariance_shrinkage;
          fit.fold = by_folds ? static_cast<int>(f) : -1;
          if (fits_met < fits_ended.size()) {
            const HeldOutFit& done = fits_ended[fits_met];
            if (done.rank != fit.rank || done.sparsity != fit.sparsity || done.fold != fit.fold ||
                done.sparse_prior_scale != fit.sparse_prior_scale || done.support_threshold != fit.support_threshold ||
                done.covariance_shrinkage != fit.covariance_shrinkage || (!pooled.empty() && done.mse.size() != pooled.size()))
              throw Error("resume: the checkpoint's fit " + std::to_string(fits_met + 1) + " on held-out rows (r = " +
                          std::to_string(done.rank) + ", k = " + std::to_string(done.sparsity) + ", fold " + std::to_string(done.fold) +
                          ") is not the one this choice makes there (r = " + std::to_string(fit.rank) + ", k = " +
                          std::to_string(fit.sparsity) + ", fold " + std::to_string(fit.fold) + ")");
            fit.mse = done.mse;
          } else {
            std::optional<Parts> fold;
            if (by_folds) fold = split_rows(data, tasks, splits[f], options.seed);
            else if (!only_split) only_split = split_rows(data, tasks, splits[f], options.seed);
            const auto& [fit_part, held_out] = by_folds ? *fold : *only_split;
            const TaskDataView<T> held_view = held_out.view();
            selection_run.fold = fit.fold;
            fit_fixed(fit_part.view(), o, selection_run, &held_view, &fit.mse);
            fits_ended.push_back(fit);
            checkpoint_choice();
          }
          ++fits_met;
          pooled.resize(fit.mse.size(), 0.0);
          for (std::size_t c = 0; c < fit.mse.size(); ++c) pooled[c] += fit.mse[c] * static_cast<double>(split_held[f]);
        }
        for (double& v : pooled) v /= static_cast<double>(held_rows);
        return pooled;
      };
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
        const std::vector<double> mse = held_out_mse(o);
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
          cand.validation_mse = held_out_mse(f).at(0);
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
  return selection;
}
template SelectionReport choose_on_validation_rows(const TaskDataView<float>&, Options&, const FitRun&, std::vector<std::string>&);
template SelectionReport choose_on_validation_rows(const TaskDataView<double>&, Options&, const FitRun&, std::vector<std::string>&);

// The fit with what is "auto" estimated from all rows (Options::selection == evidence, with the
// prior): tau2, the supports' inclusion probability and Sigma's shrinkage inside the fit
// (fit_fixed), and r and k compared by each fit's log marginal likelihood, less half the number of
// shared parameters (U's span, Sigma, the b prior's) times log t, BIC's charge for what is
// estimated rather than integrated out (without it, extra columns of U, fitted to the noise,
// always add a little evidence). r is searched upwards with a middle k, then k with the best few
// models; along each, the search stops after two candidates in a row that do not improve. A
// candidate is fitted to a looser tolerance (kCandidateTolerance), from the best candidate's state
// where it can (core/warm_start.hpp); the chosen one then continues from its state to the asked
// tolerance: that fit is the model, nothing is refitted from scratch.
constexpr double kCandidateTolerance = 1e-4;
constexpr int kCandidateIterations = 40;
using core::kIsotropicShrinkage;  // the full-rank model's isotropic variant
// Iterations after the warm start before a candidate's fit may end early: b's entry moves the
// evidence by thousands of nats over a few iterations (bench/noisy_synthetic). A candidate started
// from the leader's state, which has b from its first iteration, may be abandoned after two: where
// it cannot catch the leader even by the generous tail. Ending because it is settled, or ahead,
// waits for the third: from its first three iterations lme4's sleepstudy's r = 1 with k = 1 looked
// settled 0.9 nats short of where it ended.
constexpr int kSettlingIterations = 3;
constexpr int kAbandonAfterFromLeader = 2;
// The margin in log marginal likelihood (nats) by which a larger candidate must beat a smaller one.
constexpr double kEvidenceMargin = 1.0;
// A candidate's fit ends once what it would still gain (evidence_still_to_gain) is below this: its
// score is then known to a quarter of the margin, and the chosen one continues to the asked
// tolerance anyway. (EM on a variance the data say little about creeps on for tens of iterations
// at a hundredth of a nat each: the slopes model on InstEval with 5 ratings a student.)
constexpr double kCandidateEvidenceTolerance = 0.25 * kEvidenceMargin;
// The shared parameters a rank estimates: U's span (a point of the Grassmannian, r (d - r)
// numbers: a rotation within the span is Sigma's) and Sigma, whose r (r + 1) / 2 entries count as
// 1 + (r (r + 1) / 2 - 1) / (1 + f) under a shrinkage f worth f t tasks (isotropic: one variance).
// At r = d the span is everything and only Sigma is left: the mixed model, or with a large f
// per-task ridge towards beta. The random intercept (U held at the constant feature's axis)
// estimates no span, only its variance; the slopes model two variances. A candidate with b (k > 0)
// also estimates the b prior: the supports' inclusion probability, and tau2 unless it is given.
double estimated_shared_parameters(const SelectionCandidate& c, std::int64_t d, bool tau2_estimated) {
  const double r = c.rank;
  const double sigma = c.low_rank_basis == LowRankBasis::slopes ? 2.0
                       : r > 0 ? 1.0 + (r * (r + 1) / 2 - 1.0) / (1.0 + c.covariance_shrinkage)
                               : 0.0;
  const double span = c.low_rank_basis == LowRankBasis::intercept ? 0.0 : r * (static_cast<double>(d) - r);
  const double b_prior = c.sparsity > 0 ? (tau2_estimated ? 2.0 : 1.0) : 0.0;
  return span + sigma + b_prior;
}

// What a candidate's fit would still gain (evidence_still_to_gain) after the log evidences in
// `trace`, with `left` iterations to its cap; NaN while it has fewer than three or its gains still
// rise, when nothing judges it.
inline double still_to_gain(const std::vector<double>& trace, int left) {
  const std::size_t j = trace.size();
  if (j < 3 || evidence_gains_rising(trace[j - 3], trace[j - 2], trace[j - 1])) return std::nan("");
  return evidence_still_to_gain(trace[j - 3], trace[j - 2], trace[j - 1], left);
}
// The models of the rank search whose k is searched: the best by score, at most kFinalists of them,
// within kFinalistMargin nats of the best (a log Bayes factor of 3, twice it 6: where "strong"
// evidence starts on Kass and Raftery's scale, JASA 90, 1995).
constexpr std::size_t kFinalists = 3;
constexpr double kFinalistMargin = 3.0;

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
  const bool tau2_estimated = options.sparse_prior_scale < 0;
  auto score = [&](const SelectionCandidate& c) {
    return c.log_evidence - 0.5 * estimated_shared_parameters(c, data.d, tau2_estimated) *
                                std::log(std::max<double>(2.0, static_cast<double>(t_all)));
  };
  // A fit as a candidate, with its score (kept for the report: the comparisons below score what
  // they compare, which may be a candidate's extrapolated reach).
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
    c.low_rank_basis = m.options.low_rank_basis == LowRankBasis::automatic ? LowRankBasis::learned : m.options.low_rank_basis;
    c.score = score(c);
    return c;
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
  // The model a candidate fits apart from its k: its rank, U's basis and Sigma's form (the isotropic
  // variant or not).
  auto same_model = [](const SelectionCandidate& a, const SelectionCandidate& b) {
    return a.rank == b.rank && a.low_rank_basis == b.low_rank_basis &&
           (a.covariance_shrinkage == kIsotropicShrinkage) == (b.covariance_shrinkage == kIsotropicShrinkage);
  };
  // Where the candidate of c's model and k is among those tried: its place in selection.candidates.
  auto record_of = [&](const SelectionCandidate& c) -> std::optional<std::size_t> {
    for (std::size_t i = 0; i < selection.candidates.size(); ++i)
      if (selection.candidates[i].sparsity == c.sparsity && same_model(selection.candidates[i], c)) return i;
    return std::nullopt;
  };
  // The data's spectral moment, computed by the first candidate that needs it (FitRun).
  std::vector<double> spectral_moment;
  // The constant feature, found once for every candidate that holds U (-1: none, or not looked for).
  const bool holds_u = options.low_rank_basis == LowRankBasis::intercept || options.low_rank_basis == LowRankBasis::slopes;
  const std::int64_t constant_axis = (options.low_rank_basis == LowRankBasis::automatic && choose_rank) || holds_u
                                         ? core::constant_feature(data, final_run.communicator)
                                         : -1;
  // Sigma's shrinkage of a candidate: options.covariance_shrinkage (estimated where negative), or
  // for the isotropic variant of the full-rank model kIsotropicShrinkage. basis: U learned or held
  // (LowRankBasis).
  const double asked_shrinkage = options.covariance_shrinkage;
  auto candidate_options = [&](int r, int k, double shrinkage, LowRankBasis basis) {
    Options o = options;
    o.rank = r;
    o.sparsity = k;
    o.covariance_shrinkage = shrinkage;
    o.low_rank_basis = basis;
    o.relative_tolerance = std::max(options.relative_tolerance, kCandidateTolerance);
    o.iterations = std::min(options.iterations, kCandidateIterations);
    validate(o, data.d);
    return o;
  };
  auto candidate_run = [&](std::optional<Checkpoint>& last) {
    FitRun run;
    run.stop = final_run.stop;
    run.checkpoint = [&last](const Checkpoint& c) { last = c; };
    run.checkpoint_every = std::numeric_limits<int>::max();
    run.checkpoint_at_end = true;
    run.header = &header;
    run.communicator = final_run.communicator;
    if (constant_axis >= 0) run.constant_feature = constant_axis;
    run.spectral_moment = &spectral_moment;
    return run;
  };
  // The leader as it may still turn out: where it stopped ahead (SelectionCandidate::ahead), with
  // the most it could still gain, its last gain for every iteration left to its cap (what it would
  // gain if its gains stopped falling: the geometric tail that abandons a candidate is a guess, and
  // here a wrong guess would choose). Else the leader itself.
  auto leader_ceiling = [&]() {
    SelectionCandidate high = *leader;
    const std::vector<IterationInfo>& h = leader_state->model.history;
    if (!leader->ahead || h.size() < 2) return high;
    const double gain = std::max(0.0, h.back().log_evidence - h[h.size() - 2].log_evidence);
    high.log_evidence += gain * std::max(0, std::min(options.iterations, kCandidateIterations) - h.back().iteration);
    return high;
  };
  // Continues the leader, stopped ahead, to where what it would still gain is under
  // kCandidateEvidenceTolerance (or its tolerance or cap), from its last state: a comparison that its
  // remaining gain could decide needs its score.
  auto settle_leader = [&]() {
    const double shrinkage = leader->covariance_shrinkage == kIsotropicShrinkage ? kIsotropicShrinkage : asked_shrinkage;
    const Options o = candidate_options(leader->rank, leader->sparsity, shrinkage, leader->low_rank_basis);
    std::optional<Checkpoint> last;
    FitRun run = candidate_run(last);
    run.resume = &*leader_state;
    const std::size_t index = *record_of(*leader);
    run.candidate_index = static_cast<int>(index);
    std::vector<double> trace;
    for (const IterationInfo& info : leader_state->model.history) trace.push_back(info.log_evidence);
    run.on_iteration = [&](const IterationInfo& it) {
      const bool go_on = !final_run.on_iteration || final_run.on_iteration(it);
      trace.push_back(it.log_evidence);
      return go_on && !(still_to_gain(trace, o.iterations - it.iteration) < kCandidateEvidenceTolerance);
    };
    const SelectionCandidate c = candidate_of(fit_fixed(data, o, run));
    selection.candidates[index] = c;
    leader = c;
    leader_state = std::move(last);
  };
  auto try_candidate = [&](int r, int k, double shrinkage, LowRankBasis basis) -> SelectionCandidate {
    SelectionCandidate shape;  // what the candidate is, before its fit
    shape.rank = r;
    shape.sparsity = k;
    shape.covariance_shrinkage = shrinkage;
    shape.low_rank_basis = basis;
    if (const std::optional<std::size_t> known = record_of(shape)) return selection.candidates[*known];
    const Options o = candidate_options(r, k, shrinkage, basis);
    std::optional<Checkpoint> last;
    FitRun run = candidate_run(last);
    run.candidate_index = static_cast<int>(selection.candidates.size());
    // The candidate starts from the leader's state (core/warm_start.hpp): U and the priors there are
    // nearer its own than a start from scratch, and a few iterations settle them. A candidate that
    // holds U takes the leader's U w_i and spread in its held coordinates where the leader is of
    // another basis or rank, but not from a leader without them (r = 0): started with both its
    // variances small and the leader's b, the slopes model stayed where b explains the tasks
    // (sleepstudy with all rows: -50.90 nats after 40 iterations at k = 1 from r = 0's state,
    // -47.31 after 9 from scratch).
    const bool held = basis == LowRankBasis::intercept || basis == LowRankBasis::slopes;
    if (leader_state && (!held || leader->rank > 0)) run.start_from = &*leader_state;
    const int settling = (run.start_from ? 0 : o.warm_start_iterations) + kSettlingIterations;
    const int abandon_after = run.start_from ? kAbandonAfterFromLeader : settling;
    const std::optional<SelectionCandidate> leader_high = leader ? std::optional<SelectionCandidate>(leader_ceiling()) : std::nullopt;
    // Once past the warm start's jumps, a candidate ends early either way:
    // - abandoned, where its score with what it would still gain (evidence_still_to_gain: a
    //   generous geometric tail) is not better than the leader's score so far. An extrapolation,
    //   not a bound: measured on bench/noisy_synthetic, MovieLens and lme4's data sets, the choices
    //   stayed the same (docs/model.md);
    // - ahead, where its score so far is better than the most the leader could reach
    //   (leader_ceiling) and what it would still gain is under a tenth of its lead: it becomes the
    //   leader unsettled, and is continued only where a later comparison needs it (settle_leader).
    //   Each rank of bench/noisy_synthetic below the true one beats the one before by thousands of
    //   nats and so no longer runs to its tolerance. The first candidate has no leader: it stops
    //   once past its settling iterations.
    bool abandoned = false, ahead = false, ended_early = false;
    run.without_final_task_step = &ended_early;
    double reach_evidence = std::nan("");
    std::vector<double> evidence_trace;
    run.on_iteration = [&](const IterationInfo& it) {
      const bool go_on = !final_run.on_iteration || final_run.on_iteration(it);
      evidence_trace.push_back(it.log_evidence);
      const double still = still_to_gain(evidence_trace, o.iterations - it.iteration);
      if (!go_on || it.iteration <= abandon_after || std::isnan(still)) return go_on;
      const bool settled = it.iteration > settling;
      if (settled && still < kCandidateEvidenceTolerance) return false;  // scored closely enough
      SelectionCandidate now = shape;
      now.covariance_shrinkage = it.covariance_shrinkage;
      now.log_evidence = it.log_evidence;
      SelectionCandidate reach = now;
      reach.log_evidence += still;
      if (!leader) ahead = settled;
      else if (!better(reach, *leader)) abandoned = true;
      else if (settled && better(now, *leader_high) && still < 0.1 * (score(now) - score(*leader_high))) ahead = true;
      ended_early = abandoned || ahead;
      if (ended_early) reach_evidence = reach.log_evidence;
      return !ended_early;
    };
    SelectionCandidate c = candidate_of(fit_fixed(data, o, run));
    c.abandoned = abandoned;
    c.ahead = ahead;
    c.reach_log_evidence = reach_evidence;
    selection.candidates.push_back(c);
    // The leader: the best candidate so far (a larger one must beat a smaller one by the margin).
    // Against a leader that stopped ahead, a candidate that ended between its score so far and the
    // most it could reach decides nothing: the leader is continued first.
    if (leader && leader->ahead && !abandoned && !ahead && better(c, *leader) && !better(c, *leader_high)) settle_leader();
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
  // U's basis of the searches: the one asked for where it holds U (r is then its rank, only k is
  // searched), else learned.
  const LowRankBasis learned = LowRankBasis::learned, searched = holds_u ? options.low_rank_basis : learned;
  search(ranks, [&](int r) { return try_candidate(r, k_middle, asked_shrinkage, searched); });
  // The full-rank model (r = d: the mixed model, or with Sigma isotropic per-task ridge towards
  // beta) is scored wherever it is a candidate: it charges nothing for U's span, so the search
  // upwards from small ranks, which stops where larger spans stop paying, says nothing of it. Where
  // Sigma's shrinkage is estimated, its isotropic variant (one variance, not d (d + 1) / 2) is
  // scored too: the shrinkage that maximises the marginal likelihood of the tasks' w (as if they
  // were observed) is near 0 even where tasks have a handful of rows each (MovieLens with 5
  // ratings: 2e-6), and the full covariance then costs more than it explains.
  // Where the data have a constant feature, the models that hold U there (LowRankBasis): the
  // random intercept, lme4's (1 | g), and in place of the isotropic variant the slopes model
  // (Sigma isotropic but for the intercept's own variance). Learning U's direction from tasks of a
  // handful of rows fits noise (MovieLens with 5 ratings: the learned r = 1 weighs rare genres,
  // 0.9797 test RMSE against 0.9727 held at the intercept), and a held U's span is not charged for.
  // The slopes model goes first: where it leads, the learned full-rank fit starts from its state,
  // every direction at a variance the data support, rather than from a small rank's with the new
  // directions small and growing about 1.4 times a step (InstEval with all ratings: abandoned
  // after 4 iterations instead of 12). (Every candidate tried joins selection.candidates and may
  // become the leader: the k search below starts from those scores.)
  const bool constant = options.low_rank_basis == LowRankBasis::automatic && choose_rank && constant_axis >= 0;
  if (ranks.size() > 1 && ranks.back() == data.d) {
    if (constant) try_candidate(ranks.back(), k_middle, asked_shrinkage, LowRankBasis::slopes);
    try_candidate(ranks.back(), k_middle, asked_shrinkage, learned);
    if (!constant && asked_shrinkage < 0) try_candidate(ranks.back(), k_middle, kIsotropicShrinkage, learned);
  }
  if (constant && std::count(ranks.begin(), ranks.end(), 1) > 0) try_candidate(1, k_middle, asked_shrinkage, LowRankBasis::intercept);
  // k is searched for the rank search's best kFinalists models (rank, basis and Sigma's form), by
  // score, that score within kFinalistMargin of the best, not for its winner alone: the ranks are
  // compared at the middle k, and a model that is best at another k can lose there (sleepstudy, 18
  // subjects: at k = 1 the sparse-only r = 0 wins, and the slopes model, best of all at k = 0 but
  // 0.7 nats behind at k = 1, was never fitted at k = 0). Models further behind are not searched:
  // on bench/noisy_synthetic the next ranks are 170 nats behind, and their searches would add a
  // quarter to the default's time.
  std::vector<SelectionCandidate> finalists;
  for (const SelectionCandidate& c : selection.candidates)
    if (std::none_of(finalists.begin(), finalists.end(), [&](const SelectionCandidate& f) { return same_model(f, c); }))
      finalists.push_back(c);
  // An abandoned candidate counts with the score it was extrapolated to reach: it stopped short of
  // its own (lme4's sleepstudy with U learned: r = 2 started from r = 1's state was abandoned 2.2
  // nats short, where its model with k = 0 was the best of all).
  auto could_score = [&](const SelectionCandidate& c) {
    if (!(c.abandoned || c.ahead) || !(c.reach_log_evidence > c.log_evidence)) return score(c);
    SelectionCandidate reached = c;
    reached.log_evidence = c.reach_log_evidence;
    return score(reached);
  };
  std::stable_sort(finalists.begin(), finalists.end(),
                   [&](const SelectionCandidate& a, const SelectionCandidate& b) { return could_score(a) > could_score(b); });
  if (finalists.size() > kFinalists) finalists.resize(kFinalists);
  double best_score = -INFINITY;
  for (const SelectionCandidate& f : finalists) best_score = std::max(best_score, score(f));
  while (finalists.size() > 1 && could_score(finalists.back()) < best_score - kFinalistMargin) finalists.pop_back();
  for (const SelectionCandidate& f : finalists) {
    const double shrinkage = f.covariance_shrinkage == kIsotropicShrinkage ? kIsotropicShrinkage : asked_shrinkage;
    search(sparsities, [&](int k) { return try_candidate(f.rank, k, shrinkage, f.low_rank_basis); });
  }
  // The chosen candidate (the leader: the best of every candidate either search tried) continues
  // from its last state to the asked tolerance.
  options.rank = leader->rank;
  options.sparsity = leader->sparsity;
  if (leader->covariance_shrinkage == kIsotropicShrinkage) options.covariance_shrinkage = kIsotropicShrinkage;
  options.low_rank_basis = leader->low_rank_basis;
  validate(options, data.d);
  selection.chosen = *leader;
  header.model.selection = selection;
  FitRun run = final_run;
  if (constant_axis >= 0) run.constant_feature = constant_axis;
  run.resume = &*leader_state;
  run.checkpoint_at_start = false;
  Model model = fit_fixed(data, options, run);
  selection.chosen = candidate_of(model);
  model.selection = selection;
  model.notes.insert(model.notes.begin(), notes.begin(), notes.end());
  return model;
}
template Model fit_by_evidence(const TaskDataView<float>&, Options, const FitRun&, Checkpoint&, const std::vector<std::string>&);
template Model fit_by_evidence(const TaskDataView<double>&, Options, const FitRun&, Checkpoint&, const std::vector<std::string>&);

}  // namespace lrsmeta
