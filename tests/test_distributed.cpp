// A fit over many processes, checked in one: each "process" is a thread with its shard of the tasks
// (tests/thread_communicator.hpp), against the fit of all tasks in one process, for every model and
// solver; the shards of a data folder and what loading them reads; a model and predictions written
// from shards; and one shard's bad data stopping every process with its message.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/distributed_backend.hpp"
#include "core/feature_scaling.hpp"
#include "cpu/cpu_backend.hpp"
#include "lrsmeta/io.hpp"
#include "test_helpers.hpp"
#include "thread_communicator.hpp"

namespace lrsmeta {
namespace {

namespace fs = std::filesystem;

// Tasks [first, end) of a data set as a data set of their own (offsets from 0).
Dataset<double> shard_of(const Dataset<double>& all, TaskRange range) {
  Dataset<double> s;
  s.d = all.d;
  const std::int64_t row0 = all.task_offsets[static_cast<std::size_t>(range.first)];
  const std::int64_t row1 = all.task_offsets[static_cast<std::size_t>(range.end)];
  for (std::int64_t i = range.first; i <= range.end; ++i) s.task_offsets.push_back(all.task_offsets[static_cast<std::size_t>(i)] - row0);
  s.X.assign(all.X.begin() + row0 * all.d, all.X.begin() + row1 * all.d);
  s.y.assign(all.y.begin() + row0, all.y.begin() + row1);
  return s;
}

SyntheticData ragged(std::uint64_t seed) {
  SyntheticSpec spec;
  spec.tasks = 240;
  // Ragged, every task well-posed (m > r + 2k): a near-singular task solve would magnify the
  // rounding of G's sums, whose order the processes change, far beyond 1e-10.
  spec.min_samples = 8;
  spec.max_samples = 30;
  spec.d = 10;
  spec.r = 2;
  spec.k = 1;
  spec.noise = 0.1;
  spec.seed = seed;
  return generate_synthetic(spec);
}

Options fixed_options() {
  Options o;
  o.rank = 2;
  o.sparsity = 1;
  o.iterations = 6;
  o.threads = 1;
  o.prior = Prior::none;
  return o;
}

// Fits `processes` shards together; returns each shard's model.
std::vector<Model> fit_in_shards(const Dataset<double>& all, const Options& o, int processes) {
  std::vector<Model> models(static_cast<std::size_t>(processes));
  testing::run_ranks(processes, [&](Communicator& comm) {
    const TaskRange range = shard_tasks(all.task_offsets.data(), all.t(), comm.rank(), comm.size());
    const Dataset<double> mine = shard_of(all, range);
    FitControl control;
    control.communicator = &comm;
    models[static_cast<std::size_t>(comm.rank())] = fit(mine.view(), o, control);
  });
  return models;
}

// Fits `processes` shards, checkpointing into `dir`, stopped (as by a signal) at the `polls`-th
// poll of every process's stop.
void stop_in_shards(const Dataset<double>& all, const Options& o, int processes, int polls, const std::string& dir) {
  testing::run_ranks(processes, [&](Communicator& comm) {
    const Dataset<double> mine = shard_of(all, shard_tasks(all.task_offsets.data(), all.t(), comm.rank(), comm.size()));
    FitControl control;
    control.communicator = &comm;
    control.checkpoint = [&](const Checkpoint& c) { save_checkpoint(c, dir, comm); };
    int seen = 0;
    control.stop = [&] { return ++seen >= polls; };
    EXPECT_THROW(fit(mine.view(), o, control), Stopped);
  });
}

// Resumes `processes` shards from the checkpoint in `dir`, each reading its own tasks' part.
std::vector<Model> resume_in_shards(const Dataset<double>& all, const Options& o, int processes, const std::string& dir) {
  std::vector<Model> resumed(static_cast<std::size_t>(processes));
  testing::run_ranks(processes, [&](Communicator& comm) {
    const TaskRange range = shard_tasks(all.task_offsets.data(), all.t(), comm.rank(), comm.size());
    const Dataset<double> mine = shard_of(all, range);
    const Checkpoint part = load_checkpoint_tasks(dir, range.first, range.end - range.first, comm.rank() == 0);
    FitControl control;
    control.communicator = &comm;
    control.resume = &part;
    resumed[static_cast<std::size_t>(comm.rank())] = fit(mine.view(), o, control);
  });
  return resumed;
}

double max_difference(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (std::size_t e = 0; e < a.size() && e < b.size(); ++e) worst = std::max(worst, std::fabs(a[e] - b[e]));
  return worst;
}

// The largest magnitude in a, and 1 where all are smaller.
double scale_of(const std::vector<double>& a) {
  double largest = 1.0;
  for (double x : a) largest = std::max(largest, std::fabs(x));
  return largest;
}

// The shards' models against the one-process model: U, beta and Sigma on every process (relative
// to their largest entry where it is above 1: features in other units have Sigma's entries near
// 60, and an ASan build's rounding moved them by 1.5e-7), and each process's tasks' (w, b) against
// those rows of the whole, to rounding (G's sums change order).
void expect_same_model(const Model& whole, const std::vector<Model>& parts, const std::string& what, double tolerance = 1e-10) {
  std::int64_t task = 0;
  for (const Model& part : parts) {
    EXPECT_LT(max_difference(part.U, whole.U), tolerance * scale_of(whole.U)) << what;
    EXPECT_LT(max_difference(part.beta, whole.beta), tolerance * scale_of(whole.beta)) << what;
    EXPECT_LT(max_difference(part.Sigma, whole.Sigma), tolerance * scale_of(whole.Sigma)) << what;
    ASSERT_EQ(part.history.size(), whole.history.size()) << what;
    for (std::size_t h = 0; h < whole.history.size(); ++h)
      EXPECT_NEAR(part.history[h].training_loss, whole.history[h].training_loss, tolerance * whole.history[h].training_loss) << what;
    for (std::int64_t i = 0; i < part.t; ++i, ++task) {
      for (std::int64_t p = 0; p < whole.r; ++p)
        EXPECT_NEAR(part.W[static_cast<std::size_t>(i * whole.r + p)], whole.W[static_cast<std::size_t>(task * whole.r + p)], tolerance)
            << what << ", task " << task;
      for (std::int64_t s = 0; s < whole.k; ++s) {
        EXPECT_EQ(part.B_index[static_cast<std::size_t>(i * whole.k + s)], whole.B_index[static_cast<std::size_t>(task * whole.k + s)]);
        EXPECT_NEAR(part.B_value[static_cast<std::size_t>(i * whole.k + s)], whole.B_value[static_cast<std::size_t>(task * whole.k + s)], tolerance);
      }
    }
  }
  EXPECT_EQ(task, whole.t) << what;
}

TEST(Distributed, ShardsAreContiguousAndBalancedByRows) {
  const std::vector<std::int64_t> offsets{0, 10, 10, 11, 30, 31, 32, 60, 61, 100};  // 9 tasks, 100 rows
  for (int processes : {1, 2, 3, 4, 9, 12}) {
    std::int64_t next = 0;
    for (int q = 0; q < processes; ++q) {
      const TaskRange range = shard_tasks(offsets.data(), 9, q, processes);
      EXPECT_EQ(range.first, next);
      EXPECT_GE(range.end, range.first);
      // A shard starts at the first task whose rows start at or after q n / P.
      if (range.first > 0 && range.first < 9) EXPECT_GE(offsets[static_cast<std::size_t>(range.first)], 100 * q / processes);
      if (range.first > 0) EXPECT_LT(offsets[static_cast<std::size_t>(range.first - 1)], 100 * q / processes);
      next = range.end;
    }
    EXPECT_EQ(next, 9) << processes;
  }
  EXPECT_THROW(shard_tasks(offsets.data(), 9, 2, 2), Error);
}

TEST(Distributed, EveryModelAndSolverEqualsTheOneProcessFit) {
  const SyntheticData syn = ragged(5);
  struct Case {
    std::string name;
    Options options;
  };
  std::vector<Case> cases;
  cases.push_back({"prior none, direct", fixed_options()});
  Case spectral{"prior none, spectral start, cg", fixed_options()};
  spectral.options.init = Init::spectral;
  spectral.options.u_solver = USolver::cg;
  cases.push_back(spectral);
  for (USolver solver : {USolver::direct, USolver::cg}) {
    Case prior{std::string("prior auto, ") + to_string(solver), fixed_options()};
    prior.options.prior = Prior::automatic;
    prior.options.sparse_prior_scale = 0.1;
    prior.options.support_threshold = 2.0;
    prior.options.covariance_shrinkage = 10.0;
    prior.options.u_solver = solver;
    cases.push_back(prior);
  }
  // The priors' settings estimated from all rows (tau2, the supports' inclusion probability,
  // Sigma's shrinkage): sums over tasks, so over processes too.
  Case estimated{"prior auto, settings estimated", fixed_options()};
  estimated.options.prior = Prior::automatic;
  estimated.options.selection = Selection::evidence;
  cases.push_back(estimated);
  // r and k chosen by the marginal likelihood: each candidate's score is a sum over tasks too.
  Case chosen{"prior auto, r and k chosen by evidence", fixed_options()};
  chosen.options.prior = Prior::automatic;
  chosen.options.selection = Selection::evidence;
  chosen.options.rank_candidates = {1, 2, 3};
  chosen.options.sparsity_candidates = {0, 1, 2};
  cases.push_back(chosen);
  Case private_fit{"private, fixed noise seed", fixed_options()};
  private_fit.options.privacy.enabled = true;
  private_fit.options.privacy.epsilon = 4.0;
  private_fit.options.privacy.delta = 1e-5;
  private_fit.options.privacy.fixed_seed = true;
  private_fit.options.privacy.noise_seed = 9;
  cases.push_back(private_fit);
  for (const Case& c : cases) {
    const Model whole = fit(syn.data.view(), c.options);
    if (!c.options.rank_candidates.empty()) EXPECT_EQ(whole.selection.candidates.size() > 1, true) << c.name;
    // The estimated settings (a maximisation over Sigma's shrinkage among them) carry the sums'
    // rounding a little further than the fixed ones: the same model to 1e-7 rather than 1e-10.
    const double tolerance = c.options.selection == Selection::evidence ? 1e-7 : 1e-10;
    for (int processes : {1, 2, 3}) {
      const std::vector<Model> parts = fit_in_shards(syn.data, c.options, processes);
      expect_same_model(whole, parts, c.name + ", " + std::to_string(processes) + " processes", tolerance);
      for (const Model& part : parts) {  // the same choice, from the same scores
        EXPECT_EQ(part.selection.candidates.size(), whole.selection.candidates.size()) << c.name;
        EXPECT_EQ(part.selection.tasks, whole.selection.tasks) << c.name;
        for (std::size_t i = 0; i < part.selection.candidates.size() && i < whole.selection.candidates.size(); ++i)
          EXPECT_NEAR(part.selection.candidates[i].log_evidence, whole.selection.candidates[i].log_evidence,
                      1e-7 * std::fabs(whole.selection.candidates[i].log_evidence)) << c.name;
      }
    }
  }
  // Features in other units: the factors that bring them to a common scale come from sums over every
  // process's rows, so every shard scales its rows alike and the model is the one-process model's.
  Dataset<double> units = syn.data;
  for (std::int64_t j = 0; j < units.n(); ++j)
    for (std::int64_t a = 0; a < units.d; ++a) units.X[static_cast<std::size_t>(j * units.d + a)] *= a % 2 == 0 ? 64.0 : 1.0 / 8.0;
  Options scaled_options = fixed_options();
  scaled_options.prior = Prior::automatic;
  scaled_options.selection = Selection::evidence;
  Model whole = fit(units.view(), scaled_options);
  const std::vector<double> scales = whole.feature_scales;
  ASSERT_EQ(scales.size(), static_cast<std::size_t>(units.d));
  core::to_common_scale(whole);  // compared where the fits ran, as the cases above
  for (int processes : {2, 3}) {
    std::vector<Model> parts = fit_in_shards(units, scaled_options, processes);
    for (Model& part : parts) {
      EXPECT_EQ(part.feature_scales, scales);
      core::to_common_scale(part);
    }
    expect_same_model(whole, parts, "features in other units, " + std::to_string(processes) + " processes", 1e-7);
  }
  // A constant feature: the models that hold U there (the random intercept, the slopes model) are
  // candidates, found by sums over every process's rows, and each runs over the processes.
  Dataset<double> with_constant = syn.data;
  for (std::int64_t j = 0; j < with_constant.n(); ++j) with_constant.X[static_cast<std::size_t>(j * with_constant.d)] = 1.0;
  Options held = fixed_options();
  held.prior = Prior::automatic;
  held.selection = Selection::evidence;
  held.rank_candidates = default_rank_candidates(with_constant.d);
  held.sparsity_candidates = {0, 1, 2};
  const Model whole_held = fit(with_constant.view(), held);
  int held_candidates = 0;
  for (const SelectionCandidate& c : whole_held.selection.candidates) held_candidates += c.low_rank_basis != LowRankBasis::learned;
  EXPECT_GE(held_candidates, 2);
  for (int processes : {2, 3}) {
    const std::vector<Model> parts = fit_in_shards(with_constant, held, processes);
    expect_same_model(whole_held, parts, "a constant feature, " + std::to_string(processes) + " processes", 1e-7);
    for (const Model& part : parts) {
      ASSERT_EQ(part.selection.candidates.size(), whole_held.selection.candidates.size());
      for (std::size_t i = 0; i < part.selection.candidates.size(); ++i)
        EXPECT_EQ(part.selection.candidates[i].low_rank_basis, whole_held.selection.candidates[i].low_rank_basis);
    }
  }
  // U held at the intercept over the processes, r and k given.
  held.rank_candidates.clear();
  held.sparsity_candidates.clear();
  held.rank = 1;
  held.sparsity = 1;
  held.low_rank_basis = LowRankBasis::intercept;
  const Model whole_intercept = fit(with_constant.view(), held);
  for (int processes : {2, 3})
    expect_same_model(whole_intercept, fit_in_shards(with_constant, held, processes), "the random intercept, " + std::to_string(processes) + " processes", 1e-7);
}

TEST(Distributed, OneShardsBadDataStopsEveryProcessWithItsMessage) {
  SyntheticData syn = ragged(6);
  syn.data.X[syn.data.X.size() - 3] = NAN;  // in the last shard
  const std::vector<std::string> messages = testing::collective_errors(3, [&](Communicator& comm) {
    const Dataset<double> mine = shard_of(syn.data, shard_tasks(syn.data.task_offsets.data(), syn.data.t(), comm.rank(), comm.size()));
    FitControl control;
    control.communicator = &comm;
    fit(mine.view(), fixed_options(), control);
  });
  ASSERT_EQ(messages.size(), 3u);
  for (const std::string& m : messages) {
    EXPECT_EQ(m, messages.front());
    EXPECT_EQ(m.rfind("rank 2: ", 0), 0u) << m;
    EXPECT_NE(m.find("non-finite"), std::string::npos) << m;
  }
}

TEST(Distributed, ChoicesOnValidationRowsAreRefusedByEveryProcess) {
  const SyntheticData syn = ragged(7);
  for (int what = 0; what < 2; ++what) {
    const std::vector<std::string> messages = testing::collective_errors(2, [&](Communicator& comm) {
      const Dataset<double> mine = shard_of(syn.data, shard_tasks(syn.data.task_offsets.data(), syn.data.t(), comm.rank(), comm.size()));
      Options o = fixed_options();
      o.selection = Selection::validation;
      FitControl control;
      control.communicator = &comm;
      if (what == 0) o.rank_candidates = {1, 2};
      else o.sparse_prior_scale = -1, o.prior = Prior::automatic;  // the b prior's scale chosen
      fit(mine.view(), o, control);
    });
    ASSERT_EQ(messages.size(), 2u);
    EXPECT_NE(messages[0].find(what == 0 ? "--rank" : "--sparse-prior-scale"), std::string::npos) << messages[0];
  }
}

// A backend standing in for GPUs joined by NCCL: the CPU backend, taking the U step's sums over the
// processes itself once it is handed them.
class SelfSumming final : public core::Backend {
 public:
  SelfSumming(const TaskDataView<double>& data, const Options& o, bool able) : inner_(data, o), able_(able) {}
  bool can_sum_in_place() const override { return able_; }
  void sum_in_place_over(Communicator& processes) override { joined_ = &processes; }
  void accumulate_normal_equations(std::vector<double>& G, std::vector<double>& v, const PrivacyOptions* bounds) override {
    inner_.accumulate_normal_equations(G, v, bounds);
    if (joined_) {
      joined_->sum(G.data(), G.size());
      joined_->sum(v.data(), v.size());
    }
  }
  void accumulate_rhs(std::vector<double>& v, std::vector<double>& W_hat) override { inner_.accumulate_rhs(v, W_hat); }
  void apply_normal_operator(const std::vector<double>& x, std::vector<double>& y) override {
    inner_.apply_normal_operator(x, y);
    if (joined_) joined_->sum(y.data(), y.size());
  }
  double orthonormalise_U(const std::vector<double>& U_tilde, std::vector<double>* R) override {
    return inner_.orthonormalise_U(U_tilde, R);
  }
  void set_U(const std::vector<double>& U) override { inner_.set_U(U); }
  std::vector<double> get_U() const override { return inner_.get_U(); }
  core::TaskStepTotals task_step_all(int k) override { return inner_.task_step_all(k); }
  std::vector<double> spectral_moment(const core::PrivateRelease* release) override { return inner_.spectral_moment(release); }
  void export_task_parameters(Model& m) const override { inner_.export_task_parameters(m); }
  void import_task_parameters(const Model& m) override { inner_.import_task_parameters(m); }
  void set_prior(const core::PriorState* p) override { inner_.set_prior(p); }
  core::DataMoments data_moments() override { return inner_.data_moments(); }
  bool joined() const { return joined_ != nullptr; }

 private:
  cpu::CpuBackend<double> inner_;
  bool able_;
  Communicator* joined_ = nullptr;
};

TEST(Distributed, BackendsThatSumInPlaceDoSoOnlyWhenAllCan) {
  const SyntheticData syn = ragged(10);
  const Options o = fixed_options();
  const std::vector<double> U = testing::random_orthonormal(10, 2, 11);
  cpu::CpuBackend<double> whole(syn.data.view(), o);
  whole.set_U(U);
  whole.task_step_all(1);
  std::vector<double> G_whole, v_whole, x = testing::random_normal(20, 12), y_whole;
  whole.accumulate_normal_equations(G_whole, v_whole);
  whole.apply_normal_operator(x, y_whole);
  for (bool all_able : {true, false}) {
    testing::run_ranks(2, [&](Communicator& comm) {
      const Dataset<double> mine = shard_of(syn.data, shard_tasks(syn.data.task_offsets.data(), syn.data.t(), comm.rank(), comm.size()));
      auto local = std::make_unique<SelfSumming>(mine.view(), o, all_able || comm.rank() == 0);
      SelfSumming* stand_in = local.get();
      auto backend = core::make_distributed_backend(std::move(local), comm, mine.n());
      EXPECT_EQ(stand_in->joined(), all_able);  // one process that cannot: none sums in place
      backend->set_U(U);
      backend->task_step_all(1);
      std::vector<double> G, v, y;
      backend->accumulate_normal_equations(G, v);
      backend->apply_normal_operator(x, y);
      EXPECT_LT(max_difference(G, G_whole), 1e-10);  // summed once, by one or the other
      EXPECT_LT(max_difference(v, v_whole), 1e-10);
      EXPECT_LT(max_difference(y, y_whole), 1e-10);
    });
  }
}

class DistributedFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lrsmeta_distributed_" + std::to_string(::getpid()) + "_" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(DistributedFiles, ShardsReadOnlyTheirRowsAndTheModelIsWrittenWhole) {
  const SyntheticData syn = ragged(8);
  const std::string folder = (dir_ / "data").string();
  save_data_folder(folder, syn.data);
  const Options o = fixed_options();
  const Model whole = fit(syn.data.view(), o);
  save_model(whole, (dir_ / "one").string());
  const std::vector<double> predicted = predict(whole, syn.data.view());
  testing::run_ranks(3, [&](Communicator& comm) {
    const MappedDataset<double> mine = map_data_folder_shard<double>(folder, comm.rank(), comm.size());
    const TaskRange range = shard_tasks(syn.data.task_offsets.data(), syn.data.t(), comm.rank(), comm.size());
    EXPECT_EQ(mine.first_task, range.first);
    EXPECT_EQ(mine.t(), range.end - range.first);
    EXPECT_EQ(mine.first_row, syn.data.task_offsets[static_cast<std::size_t>(range.first)]);
    EXPECT_EQ(mine.folder_tasks, syn.data.t());
    EXPECT_EQ(mine.folder_rows, syn.data.n());
    // The loader's counter: this shard's y and offsets, nothing else (X is mapped, its rows only used).
    EXPECT_EQ(mine.bytes_read, mine.n() * 8 + (mine.t() + 1) * 8);
    const TaskDataView<double> view = mine.view();
    for (std::int64_t e = 0; e < mine.n() * mine.d; ++e)
      ASSERT_EQ(view.X[e], syn.data.X[static_cast<std::size_t>(mine.first_row * mine.d + e)]);
    FitControl control;
    control.communicator = &comm;
    const Model part = fit(view, o, control);
    save_model(part, (dir_ / "many").string(), comm);
    // The predictions of each process's rows, written in the folder's row order.
    const Model part_again = load_model_tasks((dir_ / "many").string(), mine.first_task, mine.t());
    write_npy((dir_ / "predictions.npy").string(), predict(part_again, view), comm);
  });
  const Model one = load_model((dir_ / "one").string()), many = load_model((dir_ / "many").string());
  EXPECT_EQ(many.t, one.t);
  EXPECT_LT(max_difference(many.U, one.U), 1e-10);
  EXPECT_LT(max_difference(many.W, one.W), 1e-10);
  EXPECT_EQ(many.B_index, one.B_index);
  EXPECT_LT(max_difference(many.B_value, one.B_value), 1e-10);
  EXPECT_LT(max_difference(read_npy_as<double>((dir_ / "predictions.npy").string(), nullptr), predicted), 1e-9);
  for (const auto& entry : fs::directory_iterator(dir_))  // no temporary left behind
    EXPECT_EQ(entry.path().filename().string().find(".tmp"), std::string::npos) << entry.path();
}

// Stopped after 3 of 6 iterations, each process's checkpoint written whole by rank 0 and read back
// with only its tasks: the resumed fit gives the uninterrupted fit's model. A resume by another
// number of processes is refused by all.
TEST_F(DistributedFiles, AStoppedFitResumesFromItsCheckpointToTheSameModel) {
  const SyntheticData syn = ragged(12);
  Options o = fixed_options();
  o.prior = Prior::automatic;
  o.sparse_prior_scale = 0.1;
  o.support_threshold = 2.0;
  o.covariance_shrinkage = 10.0;
  const std::vector<Model> uninterrupted = fit_in_shards(syn.data, o, 2);
  const std::string dir = (dir_ / "checkpoints").string();
  stop_in_shards(syn.data, o, 2, 3, dir);
  const Checkpoint whole = load_checkpoint(dir);
  EXPECT_EQ(whole.iteration, 3);
  EXPECT_EQ(whole.processes, 2);
  EXPECT_EQ(whole.model.t, syn.data.t());
  const std::vector<Model> resumed = resume_in_shards(syn.data, o, 2, dir);
  // To rounding, not bit for bit: threads standing in for processes share OpenBLAS's one global
  // thread count, which each process's BLAS guard sets and restores (separate processes do not).
  for (int q = 0; q < 2; ++q) {
    EXPECT_LT(max_difference(resumed[static_cast<std::size_t>(q)].U, uninterrupted[static_cast<std::size_t>(q)].U), 1e-10);
    EXPECT_LT(max_difference(resumed[static_cast<std::size_t>(q)].W, uninterrupted[static_cast<std::size_t>(q)].W), 1e-10);
    EXPECT_EQ(resumed[static_cast<std::size_t>(q)].B_index, uninterrupted[static_cast<std::size_t>(q)].B_index);
    EXPECT_LT(max_difference(resumed[static_cast<std::size_t>(q)].B_value, uninterrupted[static_cast<std::size_t>(q)].B_value), 1e-10);
    EXPECT_EQ(resumed[static_cast<std::size_t>(q)].history.size(), uninterrupted[static_cast<std::size_t>(q)].history.size());
  }
  const std::vector<std::string> messages = testing::collective_errors(3, [&](Communicator& comm) {
    const TaskRange range = shard_tasks(syn.data.task_offsets.data(), syn.data.t(), comm.rank(), comm.size());
    const Dataset<double> mine = shard_of(syn.data, range);
    const Checkpoint part = load_checkpoint_tasks(dir, range.first, range.end - range.first);
    FitControl control;
    control.communicator = &comm;
    control.resume = &part;
    fit(mine.view(), o, control);
  });
  ASSERT_EQ(messages.size(), 3u);
  EXPECT_NE(messages[0].find("made by 2 process(es)"), std::string::npos) << messages[0];
}

// Over many processes too, a stop while r and k are chosen by evidence leaves a checkpoint of the
// candidates scored (every process's tasks of the best one, on rank 0), and a resume from it ends
// with the uninterrupted model.
TEST_F(DistributedFiles, AStopWhileChoosingRAndKResumesToTheSameModel) {
  const SyntheticData syn = ragged(13);
  Options o = fixed_options();
  o.prior = Prior::automatic;
  o.selection = Selection::evidence;
  o.rank_candidates = {1, 2, 3};
  o.sparsity_candidates = {0, 1};
  o.iterations = 20;
  const std::vector<Model> uninterrupted = fit_in_shards(syn.data, o, 2);
  ASSERT_GE(uninterrupted[0].selection.candidates.size(), 3u);
  const int first = uninterrupted[0].selection.candidates[0].iterations;
  const std::string dir = (dir_ / "choosing").string();
  stop_in_shards(syn.data, o, 2, first + 1, dir);  // inside the second candidate
  const Checkpoint whole = load_checkpoint(dir);
  EXPECT_TRUE(whole.choosing);
  EXPECT_EQ(whole.model.selection.candidates.size(), 1u);
  EXPECT_EQ(whole.model.t, syn.data.t());
  const std::vector<Model> resumed = resume_in_shards(syn.data, o, 2, dir);
  for (int q = 0; q < 2; ++q) {  // to rounding, as above
    const Model& a = resumed[static_cast<std::size_t>(q)];
    const Model& b = uninterrupted[static_cast<std::size_t>(q)];
    EXPECT_EQ(a.r, b.r);
    EXPECT_EQ(a.k, b.k);
    EXPECT_EQ(a.selection.candidates.size(), b.selection.candidates.size());
    EXPECT_LT(max_difference(a.U, b.U), 1e-8);
    EXPECT_LT(max_difference(a.W, b.W), 1e-8);
    EXPECT_EQ(a.history.size(), b.history.size());
  }
}

TEST_F(DistributedFiles, AShardOfABrokenFolderIsRefusedNamingTheFile) {
  const SyntheticData syn = ragged(13);
  const std::string folder = (dir_ / "data").string();
  save_data_folder(folder, syn.data);
  auto refusal = [&](const std::string& needle) {
    try {
      map_data_folder_shard<double>(folder, 1, 2);
      ADD_FAILURE() << "accepted; expected an error naming '" << needle << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  // y with fewer rows than X; offsets that do not end at n; an unreadable (missing) X.
  std::vector<double> short_y(syn.data.y.begin(), syn.data.y.end() - 1);
  write_npy(folder + "/y.npy", short_y.data(), {static_cast<std::int64_t>(short_y.size())});
  refusal("but y.npy has");
  write_npy(folder + "/y.npy", syn.data.y.data(), {syn.data.n()});
  std::vector<std::int64_t> offsets = syn.data.task_offsets;
  offsets.back() -= 1;
  write_npy(folder + "/task_offsets.npy", offsets.data(), {static_cast<std::int64_t>(offsets.size())});
  refusal("task_offsets.npy: must start at 0 and end at n");
  fs::remove(folder + "/X.npy");
  refusal("X.npy: cannot open for reading");
}

TEST_F(DistributedFiles, AFolderWithTaskIdsOrACsvIsRefusedNamingConvert) {
  const SyntheticData syn = ragged(9);
  const std::string folder = (dir_ / "ids").string();
  fs::create_directories(folder);
  std::vector<std::int64_t> ids;
  for (std::int64_t i = 0; i < syn.data.t(); ++i)
    for (std::int64_t j = syn.data.task_offsets[static_cast<std::size_t>(i)]; j < syn.data.task_offsets[static_cast<std::size_t>(i + 1)]; ++j) ids.push_back(i);
  write_npy(folder + "/X.npy", syn.data.X.data(), {syn.data.n(), syn.data.d});
  write_npy(folder + "/y.npy", syn.data.y.data(), {syn.data.n()});
  write_npy(folder + "/task_ids.npy", ids.data(), {syn.data.n()});
  for (const std::string& path : {folder, (dir_ / "table.csv").string()}) {
    try {
      map_data_folder_shard<double>(path, 0, 2);
      ADD_FAILURE() << path << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("lrsmeta convert"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace lrsmeta
