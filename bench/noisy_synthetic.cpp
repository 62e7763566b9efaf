// Noisy ragged synthetic tasks (docs/design.md section 6): d = 30, r = 3, k = 2, noise 0.3, t = 800
// tasks with 5 to 60 training rows each and 20 held-out test rows each (the truth is known: the
// noise floor is 0.3). Held-out RMSE of lrsmeta's models against the baselines a statistician would
// use. Every hyperparameter is chosen on validation rows carved from the training rows, never on
// the test rows. Prints a Markdown table.
//
//   build/bench/noisy_synthetic [seed ...]      (default: seeds 1 2 3)
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "lrsmeta/io.hpp"
#include "lrsmeta/lrsmeta.hpp"

namespace {

using lrsmeta::Dataset;

struct Split {
  Dataset<double> train, test;
};

// Tasks of 25 to 80 rows: the last 20 of each are its test rows, the rest (5 to 60) its training rows.
Split make_data(std::uint64_t seed) {
  lrsmeta::SyntheticSpec spec;
  spec.tasks = 800;
  spec.min_samples = 25;
  spec.max_samples = 80;
  spec.d = 30;
  spec.r = 3;
  spec.k = 2;
  spec.noise = 0.3;
  spec.seed = seed;
  const lrsmeta::SyntheticData all = lrsmeta::generate_synthetic(spec);
  Split s;
  s.train.d = s.test.d = spec.d;
  s.train.task_offsets.assign(1, 0);
  s.test.task_offsets.assign(1, 0);
  const Dataset<double>& a = all.data;
  for (std::int64_t i = 0; i < a.t(); ++i) {
    const std::int64_t row0 = a.task_offsets[i], row1 = a.task_offsets[i + 1], cut = row1 - 20;
    for (std::int64_t j = row0; j < row1; ++j) {
      Dataset<double>& to = j < cut ? s.train : s.test;
      to.X.insert(to.X.end(), a.X.begin() + j * spec.d, a.X.begin() + (j + 1) * spec.d);
      to.y.push_back(a.y[static_cast<std::size_t>(j)]);
    }
    s.train.task_offsets.push_back(s.train.n());
    s.test.task_offsets.push_back(s.test.n());
  }
  return s;
}

// Fit rows and validation rows of the training set: the last 20% of each task's rows (tasks with
// 3 rows or more), as lrsmeta's own selection does.
Split carve_validation(const Dataset<double>& train) {
  Split s;
  s.train.d = s.test.d = train.d;
  s.train.task_offsets.assign(1, 0);
  s.test.task_offsets.assign(1, 0);
  for (std::int64_t i = 0; i < train.t(); ++i) {
    const std::int64_t row0 = train.task_offsets[i], m = train.task_offsets[i + 1] - row0;
    const std::int64_t n_val = m >= 3 ? std::max<std::int64_t>(1, std::llround(0.2 * static_cast<double>(m))) : 0;
    for (std::int64_t j = 0; j < m; ++j) {
      Dataset<double>& to = j < m - n_val ? s.train : s.test;
      to.X.insert(to.X.end(), train.X.begin() + (row0 + j) * train.d, train.X.begin() + (row0 + j + 1) * train.d);
      to.y.push_back(train.y[static_cast<std::size_t>(row0 + j)]);
    }
    s.train.task_offsets.push_back(s.train.n());
    s.test.task_offsets.push_back(s.test.n());
  }
  return s;
}

// Solve the symmetric positive definite system A x = b (n x n, row-major) by Cholesky.
std::vector<double> spd_solve(std::vector<double> A, std::vector<double> b) {
  const int n = static_cast<int>(b.size());
  for (int j = 0; j < n; ++j) {
    for (int p = 0; p < j; ++p) A[j * n + j] -= A[j * n + p] * A[j * n + p];
    A[j * n + j] = std::sqrt(A[j * n + j]);
    for (int i = j + 1; i < n; ++i) {
      for (int p = 0; p < j; ++p) A[i * n + j] -= A[i * n + p] * A[j * n + p];
      A[i * n + j] /= A[j * n + j];
    }
  }
  for (int i = 0; i < n; ++i) {
    for (int p = 0; p < i; ++p) b[i] -= A[i * n + p] * b[p];
    b[i] /= A[i * n + i];
  }
  for (int i = n - 1; i >= 0; --i) {
    for (int p = i + 1; p < n; ++p) b[i] -= A[p * n + i] * b[p];
    b[i] /= A[i * n + i];
  }
  return b;
}

double rmse_of(const std::vector<std::vector<double>>& theta, const Dataset<double>& eval) {
  double s = 0;
  for (std::int64_t i = 0; i < eval.t(); ++i)
    for (std::int64_t j = eval.task_offsets[i]; j < eval.task_offsets[i + 1]; ++j) {
      double p = 0;
      for (std::int64_t a = 0; a < eval.d; ++a) p += eval.X[static_cast<std::size_t>(j * eval.d + a)] * theta[static_cast<std::size_t>(i)][static_cast<std::size_t>(a)];
      s += (p - eval.y[static_cast<std::size_t>(j)]) * (p - eval.y[static_cast<std::size_t>(j)]);
    }
  return std::sqrt(s / static_cast<double>(eval.n()));
}

// Per-task ridge shrunk towards the global least-squares fit: theta_i = argmin ||y_i - X_i theta||^2
// + lambda ||theta - theta_global||^2.
std::vector<std::vector<double>> shrunk_ridge(const Dataset<double>& train, double lambda) {
  const std::int64_t d = train.d;
  std::vector<double> A(static_cast<std::size_t>(d * d), 0.0), b(static_cast<std::size_t>(d), 0.0);
  for (std::int64_t j = 0; j < train.n(); ++j)
    for (std::int64_t a = 0; a < d; ++a) {
      b[a] += train.X[j * d + a] * train.y[j];
      for (std::int64_t c = 0; c < d; ++c) A[a * d + c] += train.X[j * d + a] * train.X[j * d + c];
    }
  for (std::int64_t a = 0; a < d; ++a) A[a * d + a] += 1e-9 * A[a * d + a] + 1e-12;
  const std::vector<double> global = spd_solve(A, b);
  std::vector<std::vector<double>> theta;
  for (std::int64_t i = 0; i < train.t(); ++i) {
    std::vector<double> Ai(static_cast<std::size_t>(d * d), 0.0), bi(static_cast<std::size_t>(d), 0.0);
    for (std::int64_t j = train.task_offsets[i]; j < train.task_offsets[i + 1]; ++j)
      for (std::int64_t a = 0; a < d; ++a) {
        bi[a] += train.X[j * d + a] * train.y[j];
        for (std::int64_t c = 0; c < d; ++c) Ai[a * d + c] += train.X[j * d + a] * train.X[j * d + c];
      }
    for (std::int64_t a = 0; a < d; ++a) {
      Ai[a * d + a] += lambda;
      bi[a] += lambda * global[a];
    }
    theta.push_back(spd_solve(Ai, bi));
  }
  return theta;
}

std::vector<std::vector<double>> thetas(const lrsmeta::Model& m) {
  std::vector<std::vector<double>> out;
  for (std::int64_t i = 0; i < m.t; ++i) out.push_back(m.theta(i));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::uint64_t> seeds;
  for (int a = 1; a < argc; ++a) seeds.push_back(std::strtoull(argv[a], nullptr, 10));
  if (seeds.empty()) seeds = {1, 2, 3};
  // Times taken with OpenBLAS's generic kernels are not this library's (docs/building.md).
  if (const std::string slow_blas = lrsmeta::blas_kernel_warning(); !slow_blas.empty()) std::fprintf(stderr, "warning: %s\n", slow_blas.c_str());
  std::vector<std::string> order;
  std::map<std::string, std::vector<double>> results;
  std::map<std::string, double> seconds;
  auto record = [&](const std::string& name, double rmse, double s) {
    if (!results.count(name)) order.push_back(name);
    results[name].push_back(rmse);
    seconds[name] += s;
    std::fprintf(stderr, "  %-58s %.4f  (%.1f s)\n", name.c_str(), rmse, s);
  };
  using Clock = std::chrono::steady_clock;
  for (std::uint64_t seed : seeds) {
    std::fprintf(stderr, "seed %llu\n", static_cast<unsigned long long>(seed));
    const Split data = make_data(seed);
    const Split select = carve_validation(data.train);
    {
      auto t0 = Clock::now();
      double best = INFINITY, best_lambda = 0;
      for (double lambda : {0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0}) {
        const double v = rmse_of(shrunk_ridge(select.train, lambda), select.test);
        if (v < best) best = v, best_lambda = lambda;
      }
      record("per-task ridge shrunk to the global fit (lambda on validation)",
             rmse_of(shrunk_ridge(data.train, best_lambda), data.test), std::chrono::duration<double>(Clock::now() - t0).count());
    }
    auto run = [&](const std::string& name, lrsmeta::Options o) {
      auto t0 = Clock::now();
      const lrsmeta::Model m = lrsmeta::fit(data.train.view(), o);
      record(name, rmse_of(thetas(m), data.test), std::chrono::duration<double>(Clock::now() - t0).count());
      return m;
    };
    lrsmeta::Options o;
    o.seed = seed;
    lrsmeta::Options mixed = o;
    mixed.rank = 30;
    mixed.sparsity = 0;
    mixed.covariance_shrinkage = 0.0;  // the classical model: Sigma by maximum likelihood
    mixed.iterations = 100;
    run("mixed effects (lrsmeta prior auto, r = d, k = 0, no shrinkage of Sigma)", mixed);
    lrsmeta::Options paper = o;
    paper.prior = lrsmeta::Prior::none;
    paper.rank = 3;
    paper.sparsity = 2;
    paper.iterations = 30;  // the old default
    run("AMHT-LRS, prior none, r = 3, k = 2 (the old defaults)", paper);
    paper.task_ridge = 1e-2;
    run("AMHT-LRS, prior none, r = 3, k = 2, task ridge 1e-2", paper);
    auto describe = [](const lrsmeta::Model& m) {
      std::fprintf(stderr, "    pi %.4g\n", m.support_inclusion_probability);
      std::fprintf(stderr, "    r = %lld, k = %lld, tau2 %.3g, shrinkage %.3g, s2 %.4g, log evidence %.1f, %zu iterations\n",
                   static_cast<long long>(m.r), static_cast<long long>(m.k), m.sparse_prior_variance, m.covariance_shrinkage,
                   m.noise_variance, m.log_evidence, m.history.size());
      for (const lrsmeta::SelectionCandidate& c : m.selection.candidates)
        if (m.selection.method == lrsmeta::Selection::evidence)
          std::fprintf(stderr, "      candidate r = %d, k = %d: log evidence %.1f, tau2 %.3g, f %.3g, %d iterations\n", c.rank,
                       c.sparsity, c.log_evidence, c.sparse_prior_variance, c.covariance_shrinkage, c.iterations);
    };
    // The support threshold under --select evidence (with the supports' prior): does it matter?
    if (std::getenv("LRSMETA_BENCH_THRESHOLDS")) {
      for (double c : {0.0, 1.0, 2.0, 4.0}) {
        lrsmeta::Options x = o;
        x.selection = lrsmeta::Selection::evidence;
        x.rank = 3;
        x.sparsity = 2;
        x.support_threshold = c;
        describe(run("LRS evidence, r = 3, k = 2, support threshold " + std::to_string(c), x));
      }
      continue;
    }
    lrsmeta::Options eb = o;
    eb.rank = 3;
    eb.sparsity = 2;
    eb.selection = lrsmeta::Selection::evidence;
    describe(run("LRS prior auto, r = 3, k = 2, --select evidence (tau2, pi and shrinkage estimated)", eb));
    eb.sparsity = 5;
    describe(run("LRS prior auto, r = 3, k at most 5, --select evidence", eb));
    eb.sparsity = 2;
    eb.selection = lrsmeta::Selection::validation;
    run("LRS prior auto, r = 3, k = 2 (b prior and shrinkage on validation rows)", eb);
    eb.sparsity = 0;
    run("LRS prior auto, r = 3, k = 0", eb);
    lrsmeta::Options chosen = o;
    chosen.rank_candidates = lrsmeta::default_rank_candidates(30);
    chosen.sparsity_candidates = lrsmeta::default_sparsity_candidates(30);
    chosen.selection = lrsmeta::Selection::evidence;
    const lrsmeta::Model by_evidence = run("LRS prior auto, r and k auto (the defaults: by evidence)", chosen);
    describe(by_evidence);
    // The chosen model trained with all its settings given (r, k, Sigma's shrinkage, the b prior's
    // variance as a scale and the support threshold: nothing estimated, nothing chosen), the unit
    // of the defaults' cost.
    lrsmeta::Options given = o;
    given.rank = static_cast<int>(by_evidence.r);
    given.sparsity = static_cast<int>(by_evidence.k);
    given.covariance_shrinkage = by_evidence.covariance_shrinkage;
    given.support_threshold = by_evidence.support_threshold;
    given.sparse_prior_scale = 0.1;  // the start of tau2's estimate: any given scale stops the estimate
    run("LRS prior auto, the defaults' r and k, every prior setting given", given);
    chosen.selection = lrsmeta::Selection::validation;
    const lrsmeta::Model m = run("LRS prior auto, r and k auto, --select validation", chosen);
    std::fprintf(stderr, "    chosen r = %d, k = %d, scale %.3g\n", m.selection.chosen.rank, m.selection.chosen.sparsity,
                 m.selection.chosen.sparse_prior_scale);
  }
  std::printf("| method | held-out RMSE (mean over %zu seeds) | per seed | seconds per fit |\n|---|---|---|---|\n", seeds.size());
  for (const std::string& name : order) {
    double mean = 0;
    std::string each;
    char buf[32];
    for (double v : results[name]) {
      mean += v / static_cast<double>(results[name].size());
      std::snprintf(buf, sizeof buf, "%s%.4f", each.empty() ? "" : ", ", v);
      each += buf;
    }
    std::printf("| %s | %.4f | %s | %.2f |\n", name.c_str(), mean, each.c_str(), seconds[name] / static_cast<double>(seeds.size()));
  }
  std::printf("| noise floor | 0.3000 | | |\n");
  const double defaults = seconds["LRS prior auto, r and k auto (the defaults: by evidence)"];
  const double given = seconds["LRS prior auto, the defaults' r and k, every prior setting given"];
  if (given > 0) std::printf("\nthe defaults' wall time: %.1f times that of their model with every setting given\n", defaults / given);
  return 0;
}
