// fit(): the checks, the memory plan, the choice of r, k and the priors' settings (selection.cpp)
// and the final fit (fit_loop.cpp), in one process or over many, from scratch or resumed.
#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "core/backend.hpp"
#include "core/communicator.hpp"
#include "core/distributed_backend.hpp"
#include "core/feature_scaling.hpp"
#include "core/fingerprint.hpp"
#include "core/fitting.hpp"
#include "core/u_solver.hpp"
#include "lrsmeta/io.hpp"
#include "lrsmeta/lrsmeta.hpp"

namespace lrsmeta {

namespace {

// Rank candidates whose fit on all tasks would not fit in memory are left out, with a note: the
// plan of a choice on validation rows would otherwise be that of its largest candidate (at t = 1e6
// and r = 32 with the prior, 4.2 GB of per-task posterior covariances alone), and a default run
// that would fit at the rank it ends up choosing would be refused.
template <typename T>
void drop_ranks_that_cannot_fit(const TaskDataView<T>& data, Options& options, std::vector<std::string>& notes, double copy_bytes) {
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
    const bool on_validation_rows = o.selection != Selection::evidence || o.prior == Prior::none;
    const double needs = core::plan_host_memory(data, o, on_validation_rows).total() + copy_bytes;
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
void refuse_if_too_big(const TaskDataView<T>& data, const Options& options, bool selecting, double copy_bytes) {
  {
    core::MemoryPlan plan = core::plan_host_memory(data, options, selecting);
    if (copy_bytes > 0) plan.parts.push_back({"the features at a common scale (a copy of X)", copy_bytes});
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

// A fit over many processes: each checks its shard and the options, and all stop with the first
// failing process's message (before any of them waits on the others in the fit itself).
template <typename T>
Model fit_distributed(const TaskDataView<T>& data, const Options& asked, const FitControl& control, Checkpoint& header,
                      double copy_bytes) {
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
      Options requested = asked;
      resolve_candidates(requested, data.d);
      const bool estimated = asked.selection == Selection::evidence && asked.prior == Prior::automatic && !asked.privacy.enabled;
      const bool candidates = !requested.rank_candidates.empty() || !requested.sparsity_candidates.empty();
      if (!estimated && (candidates || (asked.prior == Prior::automatic && !asked.privacy.enabled &&
                                        (asked.sparse_prior_scale < 0 || asked.support_threshold < 0 || asked.covariance_shrinkage < 0))))
        throw Error("options: a fit over many processes does not choose on validation rows: use --select evidence (r, k and the "
                    "priors' settings estimated from all rows) or, with the prior, give r and k (--rank, --sparsity), "
                    "--sparse-prior-scale, --support-threshold and --covariance-shrinkage (or --prior none)");
      validate(requested, data.d);
      Options in_effect = resolved(requested, &notes);
      if (!estimated) {
        in_effect.rank_candidates.clear();
        in_effect.sparsity_candidates.clear();
      }
      validate(in_effect, data.d);
      // (Candidates that would not fit in memory are not dropped here, as one process does: each
      // process holds a shard, and all must try the same candidates.)
      refuse_if_too_big(data, in_effect, false, copy_bytes);
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

// GCC 12 reports the copy of Options' default candidate lists (their initializer lists' constant
// arrays), inlined into this function, as maybe reading uninitialised memory: a false positive.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
// The fit of the features as the caller gives them (copy_bytes: the copy of X at a common scale that
// fit() holds meanwhile, counted in the memory plan).
template <typename T>
Model fit_as_given(const TaskDataView<T>& data, const Options& asked, const FitControl& control, double copy_bytes) {
  // What every checkpoint says about the data and the options asked, and what a resume checks.
  Checkpoint header;
  if (control.communicator && control.communicator->size() > 1) return fit_distributed(data, asked, control, header, copy_bytes);
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
    refuse_if_too_big(data, options, false, copy_bytes);
    Model model = fit_fixed(data, options, final_run);
    model.selection = c->model.selection;
    model.notes.insert(model.notes.begin(), c->model.notes.begin(), c->model.notes.end());  // with the U step's choice
    return model;
  }
  Options requested = asked;
  resolve_candidates(requested, data.d);
  validate(requested, data.d);
  std::vector<std::string> notes;
  Options options = resolved(requested, &notes);
  drop_ranks_that_cannot_fit(data, options, notes, copy_bytes);
  const bool by_evidence = options.selection == Selection::evidence && options.prior == Prior::automatic;
  if (const Checkpoint* c = control.resume; c && c->choosing && (c->model.selection.method == Selection::evidence) != by_evidence)
    throw Error(std::string("resume: the checkpoint was made while choosing ") +
                (by_evidence ? "on held-out rows" : "by marginal likelihood") + ", and this fit chooses " +
                (by_evidence ? "by marginal likelihood" : "on held-out rows"));
  if (by_evidence) {
    refuse_if_too_big(data, options, false, copy_bytes);
    return fit_by_evidence(data, options, final_run, header, notes);
  }
  const LeftToChoose left = left_to_choose(options);
  if ((left.rank || left.sparsity) && options.selection == Selection::evidence)
    notes.push_back("prior none has no marginal likelihood to compare ranks or sparsities by: they were chosen on validation rows");
  refuse_if_too_big(data, options, left.on_validation_rows(), copy_bytes);
  const SelectionReport selection = choose_on_validation_rows(data, options, final_run, notes);
  final_run.resume = nullptr;  // (a resume of the choice: the final fit starts afresh)
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
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// The features at a common scale where the options ask for it and some column needs it
// (core/feature_scaling.hpp), the model mapped back; else the features as given. Only the layout is
// checked here (a non-finite value leaves its column's factor 1, and the fit's own checks name it):
// data that fails goes to the fit as given, whose checks say what is wrong (over many processes,
// all together).
template <typename T>
Model fit(const TaskDataView<T>& data, const Options& asked, const FitControl& control) {
  if (!core::standardizes(asked)) return fit_as_given(data, asked, control, 0.0);
  Communicator* comm = control.communicator && control.communicator->size() > 1 ? control.communicator : nullptr;
  std::int64_t bad = 0;
  try {
    validate_layout(data, true);
  } catch (const std::exception&) {
    bad = 1;
  }
  if (comm) comm->sum(&bad, 1);
  if (bad) return fit_as_given(data, asked, control, 0.0);
  const std::vector<double> scales = core::feature_scales(data, comm);
  if (!core::any_scaled(scales)) return fit_as_given(data, asked, control, 0.0);
  const double copy_bytes = static_cast<double>(data.n) * static_cast<double>(data.d) * sizeof(T);
  std::string source;
  const double available = core::available_memory_bytes(&source);
  if (copy_bytes > available)
    throw Error("memory: bringing the features to a common scale needs a copy of X (" + format_bytes(copy_bytes) + "), more than the " +
                format_bytes(available) + " of " + source + "; give the features a common scale beforehand, or turn the scaling off "
                "(--no-standardize, standardize=False)");
  const core::ScaledFeatures<T> scaled(data, scales);
  Model model = fit_as_given(scaled.view, asked, control, copy_bytes);
  core::from_common_scale(model, scales);
  int changed = 0;
  for (double s : scales) changed += s != 1.0 ? 1 : 0;
  model.notes.push_back(std::to_string(changed) + " of the " + std::to_string(data.d) +
                        " features were divided by a power of two inside the fit, to bring them to a common scale (model.json's "
                        "feature_scales); the model is of the features as given");
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

}  // namespace lrsmeta
