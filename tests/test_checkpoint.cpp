// Checkpoints and resume: a fit stopped after 3 of 6 outer iterations and resumed from its
// checkpoint on disk gives the model of 6 straight iterations, bit for bit (same thread count);
// damaged checkpoints and resumes on other data or options are refused.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>

#include <omp.h>

#include "core/fingerprint.hpp"
#include "lrsmeta/io.hpp"
#include "lrsmeta/lrsmeta.hpp"
#include "lrsmeta/option_table.hpp"

namespace fs = std::filesystem;

namespace lrsmeta {
namespace {

SyntheticData noisy_data(std::uint64_t seed) {
  SyntheticSpec spec;
  spec.tasks = 300;
  spec.min_samples = 6;
  spec.max_samples = 14;
  spec.d = 12;
  spec.r = 2;
  spec.k = 1;
  spec.noise = 0.3;
  spec.seed = seed;
  return generate_synthetic(spec);
}

Options six_iterations(Prior prior) {
  Options o;
  o.rank = 2;
  o.sparsity = 1;
  o.prior = prior;
  o.iterations = 6;
  o.warm_start_iterations = 2;
  o.relative_tolerance = 0.0;  // all six run
  o.sparse_prior_scale = 0.3;
  o.support_threshold = 2.0;
  o.covariance_shrinkage = 1.0;
  o.threads = 2;
  o.seed = 5;
  return o;
}

// A fresh folder per test, removed afterwards.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) : path(fs::temp_directory_path() / ("lrsmeta_ckpt_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string str() const { return path.string(); }
};

// A fit stopped once `stop_at` outer iterations are done (its checkpoints written to a folder
// named after `name`), then resumed from the last one written; *saved: that checkpoint.
Model stopped_and_resumed(const TaskDataView<double>& data, const Options& o, std::size_t stop_at, const std::string& name,
                          Checkpoint* saved = nullptr) {
  TempDir dir(name + "_" + std::to_string(stop_at));
  std::size_t seen = 0;
  FitControl control;
  control.on_iteration = [&](const IterationInfo&) { return ++seen > 0; };
  control.stop = [&] { return seen >= stop_at; };
  control.checkpoint = [&](const Checkpoint& c) { save_checkpoint(c, dir.str()); };
  EXPECT_THROW(fit(data, o, control), Stopped);
  const Checkpoint loaded = load_checkpoint(dir.str());
  if (saved) *saved = loaded;
  FitControl resume;
  resume.resume = &loaded;
  return fit(data, o, resume);
}

void expect_same_model(const Model& a, const Model& b) {
  EXPECT_EQ(a.U, b.U);
  EXPECT_EQ(a.W, b.W);
  EXPECT_EQ(a.B_index, b.B_index);
  EXPECT_EQ(a.B_value, b.B_value);
  EXPECT_EQ(a.beta, b.beta);
  EXPECT_EQ(a.Sigma, b.Sigma);
  EXPECT_EQ(a.noise_variance, b.noise_variance);
  EXPECT_EQ(a.sparse_prior_variance, b.sparse_prior_variance);
  EXPECT_EQ(a.privacy.releases, b.privacy.releases);
  EXPECT_EQ(a.privacy.epsilon, b.privacy.epsilon);
  ASSERT_EQ(a.history.size(), b.history.size());
  for (std::size_t i = 0; i < a.history.size(); ++i) {
    EXPECT_EQ(a.history[i].iteration, b.history[i].iteration);
    EXPECT_EQ(a.history[i].training_loss, b.history[i].training_loss) << "iteration " << i + 1;
    EXPECT_EQ(a.history[i].u_change, b.history[i].u_change) << "iteration " << i + 1;
    EXPECT_EQ(a.history[i].noise_variance, b.history[i].noise_variance);
  }
}

// Fit, stopped (as by a signal) after `stop_after` iterations with a checkpoint every iteration;
// then resumed from what is on disk. Returns the resumed model.
Model stop_and_resume(const TaskDataView<double>& data, const Options& o, int stop_after, const std::string& dir) {
  FitControl control;
  int seen = 0;
  control.on_iteration = [&](const IterationInfo&) {
    ++seen;
    return true;
  };
  control.stop = [&] { return seen >= stop_after; };
  control.checkpoint = [&](const Checkpoint& c) { save_checkpoint(c, dir); };
  EXPECT_THROW(fit(data, o, control), Stopped);
  const Checkpoint saved = load_checkpoint(dir);
  EXPECT_EQ(saved.iteration, stop_after);
  FitControl resume;
  resume.resume = &saved;
  resume.checkpoint = control.checkpoint;
  return fit(data, o, resume);
}

TEST(Checkpoint, ResumeAfterThreeOfSixEqualsSixStraightWithThePrior) {
  const SyntheticData s = noisy_data(1);
  const Options o = six_iterations(Prior::automatic);
  const Model straight = fit(s.data.view(), o);
  ASSERT_EQ(straight.history.size(), 6u);
  TempDir dir("prior");
  const Model resumed = stop_and_resume(s.data.view(), o, 3, dir.str());
  expect_same_model(straight, resumed);
  // After the resumed fit, its checkpoints went on: the newest is of iteration 6, and only it is kept.
  EXPECT_EQ(load_checkpoint(dir.str()).iteration, 6);
  int folders = 0;
  for (const auto& e : fs::directory_iterator(dir.path)) folders += e.is_directory();
  EXPECT_EQ(folders, 1);
}

// The priors' settings estimated from all rows (tau2, the supports' inclusion probability, Sigma's
// shrinkage) are part of the state: a resume continues their estimates where they were.
TEST(Checkpoint, ResumeEqualsStraightWithTheSettingsEstimated) {
  const SyntheticData s = noisy_data(2);
  Options o = six_iterations(Prior::automatic);
  o.selection = Selection::evidence;
  o.sparse_prior_scale = -1.0;
  o.covariance_shrinkage = -1.0;
  const Model straight = fit(s.data.view(), o);
  ASSERT_EQ(straight.history.size(), 6u);
  EXPECT_GT(straight.support_inclusion_probability, 0.0);
  TempDir dir("estimated");
  const Model resumed = stop_and_resume(s.data.view(), o, 4, dir.str());
  expect_same_model(straight, resumed);
  EXPECT_EQ(straight.support_inclusion_probability, resumed.support_inclusion_probability);
  EXPECT_EQ(straight.covariance_shrinkage, resumed.covariance_shrinkage);
  EXPECT_EQ(straight.log_evidence, resumed.log_evidence);
}

// Features brought to a common scale inside the fit: the checkpoints hold the fit at that scale, and a
// resume (which scales the same data by the same factors) gives the same model, mapped back alike.
TEST(Checkpoint, ResumeEqualsStraightWithTheFeaturesBroughtToACommonScale) {
  SyntheticData s = noisy_data(3);
  for (std::size_t j = 0; j < s.data.X.size(); ++j) s.data.X[j] *= j % static_cast<std::size_t>(s.data.d) % 3 == 0 ? 256.0 : 1.0 / 32.0;
  const Options o = six_iterations(Prior::automatic);
  const Model straight = fit(s.data.view(), o);
  ASSERT_EQ(straight.feature_scales.size(), static_cast<std::size_t>(s.data.d));
  TempDir dir("scaled");
  const Model resumed = stop_and_resume(s.data.view(), o, 3, dir.str());
  expect_same_model(straight, resumed);
  EXPECT_EQ(straight.feature_scales, resumed.feature_scales);
}

TEST(Checkpoint, ResumeEqualsStraightWithoutThePriorAndInFloat) {
  const SyntheticData s = noisy_data(2);
  Dataset<float> f;
  f.d = s.data.d;
  f.task_offsets = s.data.task_offsets;
  f.X.assign(s.data.X.begin(), s.data.X.end());
  f.y.assign(s.data.y.begin(), s.data.y.end());
  Options o = six_iterations(Prior::none);
  o.variant = Variant::htp;
  const Model straight = fit(f.view(), o);
  TempDir dir("none");
  FitControl control;
  int seen = 0;
  control.on_iteration = [&](const IterationInfo&) { return ++seen < 4; };  // the caller's own early stop
  control.checkpoint = [&](const Checkpoint& c) { save_checkpoint(c, dir.str()); };
  control.checkpoint_every = 100;  // only the stop writes one
  const Model stopped = fit(f.view(), o, control);
  EXPECT_EQ(stopped.history.size(), 4u);
  const Checkpoint saved = load_checkpoint(dir.str());
  ASSERT_EQ(saved.iteration, 4);
  EXPECT_EQ(saved.value_bytes, 4);
  FitControl resume;
  resume.resume = &saved;
  expect_same_model(straight, fit(f.view(), o, resume));
}

TEST(Checkpoint, PrivateTrainingWithAFixedSeedResumesTheSameNoise) {
  const SyntheticData s = noisy_data(3);
  Options o = six_iterations(Prior::none);
  o.privacy.enabled = true;
  o.privacy.epsilon = 50.0;
  o.privacy.delta = 1e-5;
  o.privacy.fixed_seed = true;
  o.privacy.noise_seed = 99;
  o.init = Init::spectral;  // one more release, before the loop
  const Model straight = fit(s.data.view(), o);
  TempDir dir("private");
  const Model resumed = stop_and_resume(s.data.view(), o, 3, dir.str());
  expect_same_model(straight, resumed);
  EXPECT_EQ(resumed.privacy.releases, 1 + 2 * 6);
}

TEST(Checkpoint, AResumeStopsWhereTheStraightFitConverged) {
  const SyntheticData s = noisy_data(4);
  Options o = six_iterations(Prior::automatic);
  o.iterations = 60;
  o.relative_tolerance = 1e-3;
  const Model straight = fit(s.data.view(), o);
  ASSERT_LT(straight.history.size(), 60u) << "the tolerance should end this fit early";
  TempDir dir("converged");
  FitControl control;
  control.checkpoint = [&](const Checkpoint& c) { save_checkpoint(c, dir.str()); };
  fit(s.data.view(), o, control);
  const Checkpoint last = load_checkpoint(dir.str());
  EXPECT_EQ(static_cast<std::size_t>(last.iteration), straight.history.size());
  FitControl resume;
  resume.resume = &last;
  expect_same_model(straight, fit(s.data.view(), o, resume));
}

TEST(Checkpoint, TheChoiceOnValidationRowsIsCheckpointedBeforeTheFinalFit) {
  const SyntheticData s = noisy_data(5);
  Options o = six_iterations(Prior::automatic);
  o.selection = Selection::validation;
  o.rank_candidates = {1, 2};
  o.sparsity_candidates = {0, 1};
  o.sparse_prior_scale = -1.0;
  o.covariance_shrinkage = -1.0;
  const Model straight = fit(s.data.view(), o);
  ASSERT_TRUE(straight.selection.performed);
  TempDir dir("selection");
  // Stopped after the final fit's first iteration (the fits of the choice are candidates').
  int final_iterations = 0;
  FitControl control;
  control.on_iteration = [&](const IterationInfo& info) { return (final_iterations += info.candidate ? 0 : 1) >= 0; };
  control.stop = [&] { return final_iterations >= 1; };
  control.checkpoint = [&](const Checkpoint& c) { save_checkpoint(c, dir.str()); };
  EXPECT_THROW(fit(s.data.view(), o, control), Stopped);
  const Checkpoint stopped = load_checkpoint(dir.str());
  EXPECT_FALSE(stopped.choosing);
  EXPECT_EQ(stopped.iteration, 1);
  FitControl go_on;
  go_on.resume = &stopped;
  const Model resumed = fit(s.data.view(), o, go_on);
  expect_same_model(straight, resumed);
  EXPECT_EQ(resumed.selection.candidates.size(), straight.selection.candidates.size());
  EXPECT_EQ(resumed.selection.chosen.rank, straight.selection.chosen.rank);
  EXPECT_EQ(resumed.options.sparse_prior_scale, straight.options.sparse_prior_scale);
  // The checkpoint of iteration 0: the choice made, nothing fitted yet; a resume from it skips the
  // choice and still ends with the same model.
  FitControl first;
  std::unique_ptr<Checkpoint> at_start;
  first.checkpoint = [&](const Checkpoint& c) {
    if (c.iteration == 0) at_start = std::make_unique<Checkpoint>(c);
  };
  fit(s.data.view(), o, first);
  ASSERT_TRUE(at_start);
  save_checkpoint(*at_start, dir.str());
  const Checkpoint loaded = load_checkpoint(dir.str());
  EXPECT_EQ(loaded.iteration, 0);
  FitControl resume;
  resume.resume = &loaded;
  expect_same_model(straight, fit(s.data.view(), o, resume));
}

// Evidence's choice of r and k is checkpointed after each candidate (the best one's state and
// every score): a stop inside the third candidate resumes, fits only the candidates not yet
// scored, and ends with the uninterrupted model.
TEST(Checkpoint, AStopWhileChoosingRAndKByEvidenceResumesWithoutRefittingTheCandidatesScored) {
  const SyntheticData s = noisy_data(7);
  Options o = six_iterations(Prior::automatic);
  o.selection = Selection::evidence;
  o.rank_candidates = {0, 1, 2, 3};
  o.sparsity_candidates = {0, 1, 2};
  o.sparse_prior_scale = -1.0;
  o.support_threshold = -1.0;
  o.covariance_shrinkage = -1.0;
  o.iterations = 30;
  o.relative_tolerance = 1e-6;
  int total = 0;
  FitControl counting;
  counting.on_iteration = [&](const IterationInfo&) { return ++total > 0; };
  const Model straight = fit(s.data.view(), o, counting);
  ASSERT_GE(straight.selection.candidates.size(), 4u);
  const int first = straight.selection.candidates[0].iterations, second = straight.selection.candidates[1].iterations;
  TempDir dir("choosing");
  int seen = 0;
  FitControl control;
  control.on_iteration = [&](const IterationInfo&) { return ++seen > 0; };
  control.stop = [&] { return seen >= first + second + 1; };  // inside the third candidate
  control.checkpoint = [&](const Checkpoint& c) { save_checkpoint(c, dir.str()); };
  EXPECT_THROW(fit(s.data.view(), o, control), Stopped);
  const Checkpoint saved = load_checkpoint(dir.str());
  EXPECT_TRUE(saved.choosing);
  ASSERT_EQ(saved.model.selection.candidates.size(), 2u);
  int refitted = 0;
  FitControl resume;
  resume.resume = &saved;
  resume.on_iteration = [&](const IterationInfo&) { return ++refitted > 0; };
  const Model resumed = fit(s.data.view(), o, resume);
  expect_same_model(straight, resumed);
  EXPECT_EQ(refitted, total - first - second);
  ASSERT_EQ(resumed.selection.candidates.size(), straight.selection.candidates.size());
  for (std::size_t i = 0; i < straight.selection.candidates.size(); ++i)
    EXPECT_EQ(resumed.selection.candidates[i].log_evidence, straight.selection.candidates[i].log_evidence) << "candidate " << i;
  EXPECT_EQ(resumed.selection.chosen.rank, straight.selection.chosen.rank);
  EXPECT_EQ(resumed.selection.chosen.sparsity, straight.selection.chosen.sparsity);
}

// With a constant feature the candidates include the models that hold U (the random intercept, the
// slopes model): a stop inside any candidate, or in the chosen one's continuation, resumes to the
// straight fit, each held candidate with its basis.
TEST(Checkpoint, AStopInsideAnyCandidateWithUHeldResumesToTheStraightFit) {
  SyntheticData s = noisy_data(8);
  for (std::int64_t j = 0; j < s.data.n(); ++j) s.data.X[static_cast<std::size_t>(j * s.data.d + 4)] = 1.0;
  Options o = six_iterations(Prior::automatic);
  o.selection = Selection::evidence;
  o.rank_candidates = {1, 2, static_cast<int>(s.data.d)};
  o.sparsity_candidates = {0, 1};
  o.sparse_prior_scale = -1.0;
  o.support_threshold = -1.0;
  o.covariance_shrinkage = -1.0;
  o.iterations = 30;
  o.relative_tolerance = 1e-6;
  const Model straight = fit(s.data.view(), o);
  // The second iteration of each held candidate and of the candidate after it (a stop inside the
  // first candidate would leave no checkpoint: one is written after each), and one of the
  // continuation.
  std::vector<int> stops;
  int done = 0, held = 0;
  bool after_held = false;
  for (const SelectionCandidate& c : straight.selection.candidates) {
    const bool holds = c.low_rank_basis != LowRankBasis::learned;
    if (done > 0 && (holds || after_held)) stops.push_back(done + 2);
    after_held = holds;
    done += c.iterations;
    held += holds;
  }
  EXPECT_GE(held, 2);
  stops.push_back(done + 2);
  for (int stop_at : stops) {
    const Model resumed = stopped_and_resumed(s.data.view(), o, stop_at, "held");
    SCOPED_TRACE("stopped after " + std::to_string(stop_at) + " iterations");
    expect_same_model(straight, resumed);
    EXPECT_EQ(resumed.options.low_rank_basis, straight.options.low_rank_basis);
    ASSERT_EQ(resumed.selection.candidates.size(), straight.selection.candidates.size());
    for (std::size_t i = 0; i < straight.selection.candidates.size(); ++i)
      EXPECT_EQ(resumed.selection.candidates[i].low_rank_basis, straight.selection.candidates[i].low_rank_basis);
  }
}

// r and k left to be chosen (Options::kAuto, the default) are asked options like any other: a
// checkpoint says "auto" and reads back as kAuto, and one that wrote kAuto's integer (as earlier
// checkpoints did, which then could not be resumed) reads back the same.
TEST(Checkpoint, RAndKLeftToBeChosenReadBackFromTheAskedOptions) {
  const SyntheticData s = noisy_data(9);
  Options o = default_options();
  o.threads = 2;
  o.iterations = 3;
  TempDir dir("auto");
  FitControl control;
  control.checkpoint = [&](const Checkpoint& c) { save_checkpoint(c, dir.str()); };
  fit(s.data.view(), o, control);
  const Checkpoint saved = load_checkpoint(dir.str());
  EXPECT_EQ(saved.asked.rank, Options::kAuto);
  EXPECT_EQ(saved.asked.sparsity, Options::kAuto);
  std::string latest;
  std::ifstream(dir.path / "latest") >> latest;
  const fs::path file = dir.path / latest / "checkpoint.json";
  std::stringstream text;
  text << std::ifstream(file).rdbuf();
  std::string json = text.str();
  for (const char* key : {"\"rank\": \"auto\"", "\"sparsity\": \"auto\""}) {
    const std::size_t at = json.find(key);
    ASSERT_NE(at, std::string::npos) << key << " in " << file;
    json.replace(at, std::string(key).size(), std::string(key).substr(0, std::string(key).find(':') + 2) + "-2147483648");
  }
  std::ofstream(file) << json;
  const Checkpoint old = load_checkpoint(dir.str());
  EXPECT_EQ(old.asked.rank, Options::kAuto);
  EXPECT_EQ(old.asked.sparsity, Options::kAuto);
}

// A candidate that stopped ahead of the best so far is continued where a later comparison needs
// its score (core/selection.cpp): a stop inside the candidate that needed it, or inside the
// continuation, resumes to the straight fit, every candidate's record the same.
TEST(Checkpoint, AStopAroundTheContinuationOfACandidateStoppedAheadResumesToTheStraightFit) {
  SyntheticSpec spec;
  spec.tasks = 300;
  spec.min_samples = 5;
  spec.max_samples = 30;
  spec.d = 12;
  spec.r = 2;
  spec.k = 1;
  spec.noise = 0.2;
  spec.seed = 7;
  const SyntheticData s = generate_synthetic(spec);
  Options o = default_options();
  o.threads = 2;
  std::vector<int> index;  // each iteration's candidate (-1: the final fit)
  FitControl counting;
  counting.on_iteration = [&](const IterationInfo& info) {
    index.push_back(info.candidate_index);
    return true;
  };
  const Model straight = fit(s.data.view(), o, counting);
  // The continuation's first iteration: a candidate met again after another.
  std::size_t continuation = 0;
  for (std::size_t i = 1; i < index.size() && continuation == 0; ++i)
    if (index[i] >= 0 && index[i] != index[i - 1] && std::find(index.begin(), index.begin() + static_cast<std::ptrdiff_t>(i), index[i]) != index.begin() + static_cast<std::ptrdiff_t>(i))
      continuation = i;
  ASSERT_GT(continuation, 0u) << "these data have no continuation";
  for (const std::size_t stop_at : {continuation, continuation + 1}) {  // iterations done when it stops
    Checkpoint saved;
    const Model resumed = stopped_and_resumed(s.data.view(), o, stop_at, "ahead", &saved);
    EXPECT_TRUE(saved.choosing);
    EXPECT_EQ(saved.asked.rank, Options::kAuto);
    SCOPED_TRACE("stopped after " + std::to_string(stop_at) + " iterations");
    expect_same_model(straight, resumed);
    ASSERT_EQ(resumed.selection.candidates.size(), straight.selection.candidates.size());
    for (std::size_t i = 0; i < straight.selection.candidates.size(); ++i) {
      const SelectionCandidate &a = straight.selection.candidates[i], &b = resumed.selection.candidates[i];
      EXPECT_EQ(a.log_evidence, b.log_evidence) << "candidate " << i;
      EXPECT_EQ(a.iterations, b.iterations) << "candidate " << i;
      EXPECT_EQ(a.ahead, b.ahead) << "candidate " << i;
      EXPECT_EQ(a.abandoned, b.abandoned) << "candidate " << i;
    }
  }
}

// The choice on held-out rows is checkpointed after each of its fits (validation's one split, or
// each fold): a stop inside a later fit resumes, fits only those that had not ended, and ends with
// the uninterrupted model and report; every fit's iterations are shown as a candidate's.
TEST(Checkpoint, AStopDuringTheChoiceOnHeldOutRowsResumesWithoutRefittingTheFitsThatEnded) {
  const SyntheticData s = noisy_data(8);
  for (const Selection method : {Selection::validation, Selection::kfold}) {
    SCOPED_TRACE(to_string(method));
    Options o = six_iterations(Prior::automatic);
    o.selection = method;
    o.folds = 3;
    o.rank_candidates = {1, 2, 3};
    o.sparsity_candidates = {0, 1};
    o.sparse_prior_scale = -1.0;
    o.covariance_shrinkage = -1.0;
    // Each fit's iterations in order (its first marks a new fit), and the final fit's.
    std::vector<int> fit_iterations;
    int final_iterations = 0;
    FitControl counting;
    counting.on_iteration = [&](const IterationInfo& info) {
      if (!info.candidate) return ++final_iterations > 0;
      if (info.iteration == 1) fit_iterations.push_back(0);
      ++fit_iterations.back();
      EXPECT_GE(info.candidate_index, 0);
      EXPECT_EQ(info.fold >= 0, method == Selection::kfold);
      return true;
    };
    const Model straight = fit(s.data.view(), o, counting);
    ASSERT_TRUE(straight.selection.performed);
    ASSERT_GE(fit_iterations.size(), 4u);
    TempDir dir(std::string("held_out_") + to_string(method));
    int seen = 0;
    FitControl control;
    control.on_iteration = [&](const IterationInfo&) { return ++seen > 0; };
    control.stop = [&] { return seen >= fit_iterations[0] + fit_iterations[1] + fit_iterations[2] + 1; };  // inside the fourth fit
    int checkpoints = 0;
    control.checkpoint = [&](const Checkpoint& c) {
      ++checkpoints;
      save_checkpoint(c, dir.str());
    };
    EXPECT_THROW(fit(s.data.view(), o, control), Stopped);
    EXPECT_EQ(checkpoints, 3);
    const Checkpoint saved = load_checkpoint(dir.str());
    EXPECT_TRUE(saved.choosing);
    EXPECT_EQ(saved.iteration, 0);
    EXPECT_EQ(saved.model.r, 0);
    EXPECT_EQ(saved.model.selection.method, method);
    ASSERT_EQ(saved.held_out_fits.size(), 3u);
    EXPECT_EQ(saved.held_out_fits[0].fold, method == Selection::kfold ? 0 : -1);
    EXPECT_EQ(saved.held_out_fits[0].rank, 1);
    int refitted = 0, refitted_final = 0;
    FitControl resume;
    resume.resume = &saved;
    resume.on_iteration = [&](const IterationInfo& info) { return ++(info.candidate ? refitted : refitted_final) > 0; };
    const Model resumed = fit(s.data.view(), o, resume);
    expect_same_model(straight, resumed);
    int later = 0;
    for (std::size_t f = 3; f < fit_iterations.size(); ++f) later += fit_iterations[f];
    EXPECT_EQ(refitted, later);
    EXPECT_EQ(refitted_final, final_iterations);
    ASSERT_EQ(resumed.selection.candidates.size(), straight.selection.candidates.size());
    for (std::size_t i = 0; i < straight.selection.candidates.size(); ++i)
      EXPECT_EQ(resumed.selection.candidates[i].validation_mse, straight.selection.candidates[i].validation_mse) << "candidate " << i;
    EXPECT_EQ(resumed.selection.chosen.rank, straight.selection.chosen.rank);
    EXPECT_EQ(resumed.selection.chosen.sparsity, straight.selection.chosen.sparsity);
    // A checkpoint whose fits are not the ones this choice makes is refused by name; one made while
    // choosing by evidence is refused too.
    Checkpoint other = saved;
    other.held_out_fits[1].rank = 3;
    resume.resume = &other;
    try {
      fit(s.data.view(), o, resume);
      ADD_FAILURE() << "a checkpoint of other fits was resumed";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("fit 2 on held-out rows (r = 3"), std::string::npos) << e.what();
    }
    other = saved;
    other.model.selection.method = Selection::evidence;
    try {
      fit(s.data.view(), o, resume);
      ADD_FAILURE() << "a checkpoint of a choice by evidence was resumed on held-out rows";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("made while choosing by marginal likelihood"), std::string::npos) << e.what();
    }
  }
}

TEST(Checkpoint, AStopDuringTheChoiceOnValidationRowsSaysSo) {
  const SyntheticData s = noisy_data(6);
  Options o = six_iterations(Prior::automatic);
  o.selection = Selection::validation;
  o.rank_candidates = {1, 2};
  FitControl control;
  control.stop = [] { return true; };
  bool wrote = false;
  control.checkpoint = [&](const Checkpoint&) { wrote = true; };
  try {
    fit(s.data.view(), o, control);
    FAIL() << "no Stopped";
  } catch (const Stopped& e) {
    EXPECT_NE(std::string(e.what()).find("choice on validation rows"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(wrote);
}

TEST(Checkpoint, ContentHashIsIndependentOfThreadsAndSeesEveryByte) {
  // Sizes around the 1 MiB block and the 32-byte stride.
  for (std::size_t bytes : {std::size_t{0}, std::size_t{31}, std::size_t{33}, std::size_t{1} << 20, (std::size_t{3} << 20) + 5}) {
    std::vector<unsigned char> v(bytes);
    for (std::size_t i = 0; i < bytes; ++i) v[i] = static_cast<unsigned char>((i * 2654435761u) >> 13);
    omp_set_num_threads(1);
    const std::uint64_t one = core::content_hash(v.data(), bytes);
    omp_set_num_threads(2);
    EXPECT_EQ(one, core::content_hash(v.data(), bytes)) << bytes << " bytes";
    for (std::size_t at : {std::size_t{0}, bytes / 2, bytes - 1}) {
      if (bytes == 0) break;
      v[at] ^= 1;
      EXPECT_NE(one, core::content_hash(v.data(), bytes)) << "flip at " << at << " of " << bytes;
      v[at] ^= 1;
    }
  }
  // A zero-padded tail is not the same content as a shorter one.
  const std::vector<unsigned char> zeros(40, 0);
  EXPECT_NE(core::content_hash(zeros.data(), 39), core::content_hash(zeros.data(), 40));
}

class CheckpointRefusals : public ::testing::Test {
 protected:
  void SetUp() override {
    data = noisy_data(7);
    options = six_iterations(Prior::automatic);
    FitControl control;
    control.checkpoint = [&](const Checkpoint& c) { save_checkpoint(c, dir.str()); };
    control.checkpoint_every = 3;
    options.iterations = 3;
    fit(data.data.view(), options, control);
  }
  std::string resume_error(const Dataset<double>& d, const Options& o) {
    const Checkpoint c = load_checkpoint(dir.str());
    FitControl resume;
    resume.resume = &c;
    try {
      fit(d.view(), o, resume);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
  void corrupt(const std::string& file, std::size_t at) {
    const fs::path p = dir.path / "iteration-000003" / file;
    std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(at));
    char ch = 0;
    f.get(ch);
    f.seekp(static_cast<std::streamoff>(at));
    f.put(static_cast<char>(ch ^ 0x10));
  }
  SyntheticData data;
  Options options;
  TempDir dir{"refusals"};
};

TEST_F(CheckpointRefusals, OtherDataIsRefused) {
  Dataset<double> other = data.data;
  other.y[17] += 1e-9;  // same sizes, one target changed
  EXPECT_NE(resume_error(other, options).find("other data (same sizes, different contents"), std::string::npos);
  Dataset<double> fewer = data.data;
  fewer.task_offsets.pop_back();
  fewer.task_offsets.back() = static_cast<std::int64_t>(fewer.y.size());
  EXPECT_NE(resume_error(fewer, options).find("other data (n = "), std::string::npos);
}

TEST_F(CheckpointRefusals, OtherOptionsAreRefusedByName) {
  Options o = options;
  o.rank = 3;
  const std::string e = resume_error(data.data, o);
  EXPECT_NE(e.find("other options (checkpoint against this run: rank: 2 against 3)"), std::string::npos) << e;
  o = options;
  o.sparse_prior_scale_candidates = {1.0};
  EXPECT_NE(resume_error(data.data, o).find("sparse_prior_scale_candidates"), std::string::npos);
  // The thread count may differ.
  o = options;
  o.threads = 1;
  EXPECT_EQ(resume_error(data.data, o), "");
}

TEST_F(CheckpointRefusals, DamagedFilesAreRefused) {
  corrupt("W.npy", 200);
  try {
    load_checkpoint(dir.str());
    FAIL() << "a damaged W.npy was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("W.npy: damaged"), std::string::npos) << e.what();
  }
}

TEST_F(CheckpointRefusals, HeldOutFitsOfTheWrongTypeOrOutsideAChoiceAreRefused) {
  const fs::path state = dir.path / "iteration-000003" / "checkpoint.json";
  std::ifstream in(state);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto refusal = [&](const std::string& fits, bool choosing) {
    std::string changed = text;
    const std::string key = "\"held_out_fits\": []";
    const std::size_t at = changed.find(key);
    if (at == std::string::npos) return std::string("no held_out_fits in checkpoint.json");
    changed.replace(at, key.size(), "\"held_out_fits\": " + fits);
    const std::string not_choosing = "\"choosing\": false";
    if (choosing) changed.replace(changed.find(not_choosing), not_choosing.size(), "\"choosing\": true");
    write_text_file_atomically(state.string(), changed);
    try {
      load_checkpoint_tasks(dir.str(), 0, 0, false);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  const std::string one = R"([{"rank": 1, "sparsity": 0, "sparse_prior_scale": 0.1, "support_threshold": 2, "covariance_shrinkage": 10, "fold": -1, "mse": [0.5]}])";
  EXPECT_NE(refusal(one, false).find("field 'held_out_fits': present in a checkpoint not made while choosing"), std::string::npos);
  EXPECT_EQ(refusal(one, true), "");
  std::string bad = one;
  bad.replace(bad.find("[0.5]"), 5, "[\"x\"]");
  EXPECT_NE(refusal(bad, true).find("field 'held_out_fits[0].mse': expected numbers"), std::string::npos);
  bad = one;
  bad.replace(bad.find("\"rank\": 1"), 9, "\"rank\": -4");
  EXPECT_NE(refusal(bad, true).find("field 'held_out_fits[0].rank'"), std::string::npos);
  EXPECT_NE(refusal("{}", true).find("field 'held_out_fits': expected an array"), std::string::npos);
}

TEST_F(CheckpointRefusals, ABrokenLatestOrStateFileIsRefused) {
  fs::resize_file(dir.path / "iteration-000003" / "checkpoint.json", 40);
  EXPECT_THROW(load_checkpoint(dir.str()), Error);
  write_text_file_atomically((dir.path / "latest").string(), "iteration-000009\n");
  try {
    load_checkpoint(dir.str());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("names iteration-000009, which is missing"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_checkpoint((dir.path / "nowhere").string()), Error);
  EXPECT_FALSE(has_checkpoint((dir.path / "nowhere").string()));
}

}  // namespace
}  // namespace lrsmeta
