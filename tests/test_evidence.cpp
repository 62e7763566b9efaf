// The choice of b's support by marginal likelihood (detail::evidence_subset) against an
// independent computation: log N(y; 0, s2 I + A_S Lambda_S A_S^T) formed as an m x m covariance and
// factored here, for every support of at most k candidates, on fresh random problems.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <random>
#include <vector>

#include "core/evidence_search.hpp"

namespace lrsmeta {
namespace {

struct Problem {
  int m = 0, r = 0, n_C = 0, k = 0;
  double s2 = 0, tau2 = 0;
  std::vector<double> A;      // m x (r + n_C), row-major: [Z, X_C]
  std::vector<double> Sigma;  // r x r
  std::vector<double> y;
};

Problem random_problem(std::mt19937_64& rng, int m, int r, int n_C, int k) {
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  Problem p;
  p.m = m, p.r = r, p.n_C = n_C, p.k = k;
  p.s2 = 0.05 + 0.5 * uniform(rng);
  p.tau2 = 0.2 + 2.0 * uniform(rng);
  const int n = r + n_C;
  p.A.resize(static_cast<std::size_t>(m) * n);
  for (double& a : p.A) a = normal(rng);
  std::vector<double> B(static_cast<std::size_t>(r) * r);
  for (double& b : B) b = normal(rng);
  p.Sigma.assign(static_cast<std::size_t>(r) * r, 0.0);
  for (int a = 0; a < r; ++a)
    for (int b = 0; b < r; ++b) {
      for (int c = 0; c < r; ++c) p.Sigma[a * r + b] += B[a * r + c] * B[b * r + c];
      if (a == b) p.Sigma[a * r + b] += 0.2;
    }
  // y from the model with a random support of size k (the search need not recover it).
  std::vector<double> x(static_cast<std::size_t>(n), 0.0);
  for (int a = 0; a < r; ++a) x[a] = normal(rng);
  for (int s = 0; s < k; ++s) x[r + static_cast<int>(uniform(rng) * n_C) % n_C] = 1.5 * normal(rng);
  p.y.resize(static_cast<std::size_t>(m));
  for (int j = 0; j < m; ++j) {
    double v = std::sqrt(p.s2) * normal(rng);
    for (int c = 0; c < n; ++c) v += p.A[j * n + c] * x[c];
    p.y[j] = v;
  }
  return p;
}

// log p(y | S) by the m x m covariance, factored by a plain Cholesky written here.
double log_evidence(const Problem& p, const std::vector<int>& S) {
  const int m = p.m, n = p.r + p.n_C;
  std::vector<double> C(static_cast<std::size_t>(m) * m, 0.0);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < m; ++j) {
      double v = i == j ? p.s2 : 0.0;
      for (int a = 0; a < p.r; ++a)
        for (int b = 0; b < p.r; ++b) v += p.A[i * n + a] * p.Sigma[a * p.r + b] * p.A[j * n + b];
      for (int q : S) v += p.tau2 * p.A[i * n + p.r + q] * p.A[j * n + p.r + q];
      C[i * m + j] = v;
    }
  double log_det = 0.0;
  for (int j = 0; j < m; ++j) {
    for (int i = j; i < m; ++i) {
      double s = C[i * m + j];
      for (int c = 0; c < j; ++c) s -= C[i * m + c] * C[j * m + c];
      if (i == j) {
        C[j * m + j] = std::sqrt(s);
        log_det += 2.0 * std::log(C[j * m + j]);
      } else {
        C[i * m + j] = s / C[j * m + j];
      }
    }
  }
  std::vector<double> z(p.y);
  double quad = 0.0;
  for (int i = 0; i < m; ++i) {
    for (int c = 0; c < i; ++c) z[i] -= C[i * m + c] * z[c];
    z[i] /= C[i * m + i];
    quad += z[i] * z[i];
  }
  return -0.5 * (log_det + quad + m * std::log(2.0 * M_PI));
}

// Every subset of at most k of n_C candidates.
void subsets(int n_C, int k, int from, std::vector<int>& current, std::vector<std::vector<int>>& out) {
  out.push_back(current);
  if (static_cast<int>(current.size()) == k) return;
  for (int c = from; c < n_C; ++c) {
    current.push_back(c);
    subsets(n_C, k, c + 1, current, out);
    current.pop_back();
  }
}

// Every support of at most p.k candidates, and its log marginal likelihood from the m x m covariance.
struct AllSupports {
  std::vector<std::vector<int>> supports;
  std::vector<double> log_evidence;
};
AllSupports all_supports(const Problem& p) {
  AllSupports out;
  std::vector<int> current;
  subsets(p.n_C, p.k, 0, current, out.supports);
  for (const auto& S : out.supports) out.log_evidence.push_back(log_evidence(p, S));
  return out;
}

// The support of highest marginal likelihood among every support of at most p.k candidates; none
// where the two best tie in rounding (either is right then).
std::optional<std::vector<int>> clear_best_support(const Problem& p) {
  const AllSupports all = all_supports(p);
  double best = -INFINITY, second = -INFINITY;
  std::vector<int> argbest;
  for (std::size_t s = 0; s < all.supports.size(); ++s) {
    const double l = all.log_evidence[s];
    if (l > best) second = best, best = l, argbest = all.supports[s];
    else if (l > second) second = l;
  }
  if (best - second < 1e-8 * (1 + std::fabs(best))) return std::nullopt;
  return argbest;
}

// The library's choice: K = A^T A + s2 blockdiag(Sigma^-1, I / tau2) and rhs = A^T y as the task
// step forms them.
// With `inclusion`, also each candidate's posterior inclusion probability.
void task_system(const Problem& p, std::vector<double>& K, std::vector<double>& rhs) {
  const int r = p.r, n = r + p.n_C;
  K.assign(static_cast<std::size_t>(n) * n, 0.0);
  rhs.assign(static_cast<std::size_t>(n), 0.0);
  for (int j = 0; j < p.m; ++j)
    for (int a = 0; a < n; ++a) {
      rhs[a] += p.A[j * n + a] * p.y[j];
      for (int b = 0; b <= a; ++b) K[a * n + b] += p.A[j * n + a] * p.A[j * n + b];
    }
  // Sigma^-1 by Gauss-Jordan.
  std::vector<double> S(p.Sigma), inv(static_cast<std::size_t>(r) * r, 0.0);
  for (int a = 0; a < r; ++a) inv[a * r + a] = 1.0;
  for (int c = 0; c < r; ++c) {
    const double piv = S[c * r + c];
    for (int b = 0; b < r; ++b) S[c * r + b] /= piv, inv[c * r + b] /= piv;
    for (int a = 0; a < r; ++a)
      if (a != c) {
        const double f = S[a * r + c];
        for (int b = 0; b < r; ++b) S[a * r + b] -= f * S[c * r + b], inv[a * r + b] -= f * inv[c * r + b];
      }
  }
  for (int a = 0; a < r; ++a)
    for (int b = 0; b <= a; ++b) K[a * n + b] += p.s2 * inv[a * r + b];
  for (int q = 0; q < p.n_C; ++q) K[(r + q) * n + r + q] += p.s2 / p.tau2;
}

// The library's choice with a per-entry cost and b's prior precision (0: the enumeration is not
// bounded); library_choice with a uniform prior over supports.
std::vector<int> choice_with_costs(const Problem& p, bool enumerate, int n_start, std::vector<double>* inclusion, double entry_cost,
                                   double b_precision) {
  std::vector<double> K, rhs;
  task_system(p, K, rhs);
  std::vector<double> scratch(static_cast<std::size_t>(detail::evidence_subset_scratch(p.r, p.n_C, p.k, enumerate)));
  std::vector<int> picks(static_cast<std::size_t>(detail::evidence_subset_picks(p.k)));
  if (inclusion) inclusion->assign(static_cast<std::size_t>(p.n_C), -1.0);
  const int n_S = detail::evidence_subset(K.data(), rhs.data(), p.r, p.n_C, p.k, entry_cost, p.s2, b_precision, enumerate, n_start,
                                          scratch.data(), picks.data(), inclusion ? inclusion->data() : nullptr);
  EXPECT_GE(n_S, 0);
  std::vector<int> chosen(picks.begin(), picks.begin() + std::max(n_S, 0));
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

std::vector<int> library_choice(const Problem& p, bool enumerate, int n_start = 0, std::vector<double>* inclusion = nullptr) {
  return choice_with_costs(p, enumerate, n_start, inclusion, std::log(p.tau2 / p.s2), 0.0);
}

// At the sizes the fits enumerate (as many candidates as the budget of supports allows for each k,
// up to 48), the support chosen is the one of highest marginal likelihood by the m x m covariance:
// the enumeration's conditioned Schur complements and its bounds (most supports are ruled out
// without a logarithm) lose none. Problems with and without b's signal, with and without w.
TEST(EvidenceSubset, AtTheFitsSizesTheEnumerationFindsTheSupportOfHighestMarginalLikelihood) {
  std::mt19937_64 rng(20261206);
  int checked = 0, nonempty = 0, empty = 0;
  for (const int k : {1, 2, 3, 5}) {
    const int n_C = detail::evidence_enumeration_candidates(48, k);
    ASSERT_GT(n_C, k) << "k = " << k;
    for (int trial = 0; trial < 12; ++trial) {
      const int m = 6 + 9 * (trial % 3), r = 3 * (trial % 2);
      Problem p = random_problem(rng, m, r, n_C, k);
      if (trial % 4 == 3)  // no signal in b: y from w and the noise alone
        for (int j = 0; j < m; ++j) {
          double v = 0.0;
          for (int a = 0; a < r; ++a) v += p.A[j * (r + n_C) + a];
          p.y[j] = v + std::sqrt(p.s2) * std::normal_distribution<double>()(rng);
        }
      const std::optional<std::vector<int>> clear = clear_best_support(p);
      if (!clear) continue;
      const std::vector<int>& argbest = *clear;
      std::vector<double> inclusion;
      EXPECT_EQ(library_choice(p, true), argbest) << "k = " << k << ", n_C = " << n_C << ", trial " << trial;
      EXPECT_EQ(library_choice(p, true, 0, &inclusion), argbest) << "with inclusion: k = " << k << ", trial " << trial;
      ++checked;
      (argbest.empty() ? empty : nonempty) += 1;
    }
  }
  EXPECT_GT(checked, 40);
  EXPECT_GT(nonempty, 20);  // not vacuous either way
  EXPECT_GT(empty, 0);
}

// The enumeration shared out among threads (the kernel's: evidence_enumerate_share, then
// evidence_merge) against evidence_subset's own: the same support, and the same inclusion
// probabilities to rounding, for 1 to 32 threads; some problems have a candidate column repeated
// (it adds nothing independent: the supports holding both copies are skipped).
TEST(EvidenceSubset, TheEnumerationSharedAmongThreadsChoosesAsItsOwn) {
  std::mt19937_64 rng(20261205);
  for (int trial = 0; trial < 40; ++trial) {
    const int m = 3 + trial % 9, r = trial % 3, n_C = 5 + trial % 6, k = 1 + trial % 4;
    Problem p = random_problem(rng, m, r, n_C, k);
    if (trial % 4 == 3)  // candidate 1 a copy of candidate 0
      for (int j = 0; j < m; ++j) p.A[j * (r + n_C) + r + 1] = p.A[j * (r + n_C) + r];
    std::vector<double> inclusion;
    const std::vector<int> chosen = library_choice(p, true, 0, &inclusion);
    std::vector<double> K, rhs;
    task_system(p, K, rhs);
    std::vector<double> schur(static_cast<std::size_t>(detail::evidence_subset_scratch(r, n_C, k)));
    ASSERT_TRUE(detail::evidence_schur(K.data(), rhs.data(), r, n_C, schur.data()));
    const double* M = schur.data() + r * r + r + n_C * r;
    const double* h = M + n_C * n_C;
    for (int threads : {1, 2, 5, 32}) {
      std::vector<double> scores(threads), totals(threads), sums(static_cast<std::size_t>(threads) * n_C), F(k * k), v(k);
      std::vector<int> cols(k), best(static_cast<std::size_t>(threads) * k), sizes(threads);
      for (int j = 0; j < threads; ++j)
        detail::evidence_enumerate_share(M, h, n_C, k, std::log(p.tau2 / p.s2), p.s2, j, threads, j == 0, F.data(), v.data(), cols.data(),
                                         &scores[j], best.data() + j * k, &sizes[j], &totals[j], sums.data() + j * n_C);
      std::vector<int> picks(k);
      std::vector<double> shared_inclusion(n_C);
      const int n_S = detail::evidence_merge(threads, k, n_C, scores.data(), best.data(), sizes.data(), totals.data(), sums.data(),
                                             picks.data(), shared_inclusion.data());
      std::vector<int> shared(picks.begin(), picks.begin() + n_S);
      std::sort(shared.begin(), shared.end());
      EXPECT_EQ(shared, chosen) << "trial " << trial << ", " << threads << " threads";
      for (int c = 0; c < n_C; ++c)
        EXPECT_NEAR(shared_inclusion[c], inclusion[c], 1e-12) << "trial " << trial << ", " << threads << " threads, candidate " << c;
    }
  }
}

// With a prior over supports (each candidate in with probability pi: a charge of 2 log((1 - pi) /
// pi) a column, on top of log(tau2 / s2)), the enumeration's choice; with `bounded`, b's prior
// precision s2 / tau2 is passed, so that subtrees that cannot win are passed over.
std::vector<int> choice_under_prior(const Problem& p, double pi, bool bounded) {
  const double entry_cost = std::log(p.tau2 / p.s2) + 2.0 * std::log((1.0 - pi) / pi);
  return choice_with_costs(p, true, 0, nullptr, entry_cost, bounded ? p.s2 / p.tau2 : 0.0);
}

// The bound that passes over supports (evidence_entry_floor, evidence_fit_ceiling) against the
// m x m covariances: every support's score, -2 log of its posterior odds against the empty
// support, is at least its size times the entry floor less the ceiling; so no support larger than
// evidence_size_limit beats the empty one. And the bounded enumeration chooses the support of
// highest posterior probability, as the full one does, and so do threads sharing the supports up to
// the limit (the kernel's way), at the fits' sizes and with the prior sparse enough that it bounds
// something (supports larger than the limit, or none at all).
TEST(EvidenceSubset, SupportsTheBoundPassesOverCannotWin) {
  std::mt19937_64 rng(20261207);
  int checked = 0, limited = 0, nothing = 0, nonempty = 0;
  for (const int k : {1, 2, 3, 5}) {
    const int n_C = detail::evidence_enumeration_candidates(48, k);
    for (int trial = 0; trial < 16; ++trial) {
      const int m = 6 + 7 * (trial % 3), r = 3 * (trial % 2);
      const double pi = trial % 4 == 0 ? 0.3 : trial % 4 == 1 ? 0.05 : trial % 4 == 2 ? 0.01 : 0.002;
      Problem p = random_problem(rng, m, r, n_C, k);
      if (trial % 8 >= 4)  // no signal in b: y from w and the noise alone
        for (int j = 0; j < m; ++j) {
          double v = 0.0;
          for (int a = 0; a < r; ++a) v += p.A[j * (r + n_C) + a];
          p.y[j] = v + std::sqrt(p.s2) * std::normal_distribution<double>()(rng);
        }
      const double log_odds = 2.0 * std::log((1.0 - pi) / pi);
      std::vector<double> K, rhs;
      task_system(p, K, rhs);
      std::vector<double> schur(static_cast<std::size_t>(detail::evidence_subset_scratch(r, n_C, k)));
      std::vector<double> C(static_cast<std::size_t>(n_C) * n_C), z(static_cast<std::size_t>(n_C));
      ASSERT_TRUE(detail::evidence_schur(K.data(), rhs.data(), r, n_C, schur.data()));
      const double* M = schur.data() + r * r + r + n_C * r;
      const double* h = M + n_C * n_C;
      const double entry = detail::evidence_entry_floor(std::log(p.tau2 / p.s2) + log_odds, p.s2 / p.tau2);
      EXPECT_NEAR(entry, log_odds, 1e-9 * log_odds);
      const double ceiling = detail::evidence_fit_ceiling(M, h, n_C, p.s2, p.s2 / p.tau2, C.data(), z.data());
      const int limit = detail::evidence_size_limit(entry, ceiling, k);
      const AllSupports all = all_supports(p);
      double best = 0.0;  // the empty support's score
      std::vector<int> argbest;
      for (std::size_t s = 1; s < all.supports.size(); ++s) {
        const int size = static_cast<int>(all.supports[s].size());
        const double score = -2.0 * (all.log_evidence[s] - all.log_evidence[0]) + size * log_odds;
        EXPECT_GE(score, size * entry - ceiling - 1e-7 * (1.0 + std::fabs(score))) << "k = " << k << ", trial " << trial;
        if (size > limit) EXPECT_GT(score, 0.0) << "k = " << k << ", trial " << trial;
        if (score < best) best = score, argbest = all.supports[s];
      }
      limited += limit < k;
      // A ceiling that is not a number (h from non-finite data) bounds nothing.
      std::vector<double> h_nan(h, h + n_C);
      h_nan[0] = std::nan("");
      EXPECT_EQ(detail::evidence_fit_ceiling(M, h_nan.data(), n_C, p.s2, p.s2 / p.tau2, C.data(), z.data()), INFINITY);
      EXPECT_EQ(detail::evidence_size_limit(entry, static_cast<double>(INFINITY), k), k);
      nothing += limit == 0;
      // The choice, where the best is clear of the next (either is right in a tie).
      std::vector<double> scores{0.0};
      for (std::size_t s = 1; s < all.supports.size(); ++s)
        scores.push_back(-2.0 * (all.log_evidence[s] - all.log_evidence[0]) + static_cast<double>(all.supports[s].size()) * log_odds);
      std::sort(scores.begin(), scores.end());
      if (scores[1] - scores[0] < 1e-6 * (1.0 + std::fabs(scores[0]))) continue;
      EXPECT_EQ(choice_under_prior(p, pi, true), argbest) << "k = " << k << ", pi = " << pi << ", trial " << trial;
      EXPECT_EQ(choice_under_prior(p, pi, false), argbest) << "k = " << k << ", pi = " << pi << ", trial " << trial;
      // The kernel's way: threads share the supports of at most `limit` columns (strides of k).
      for (int threads : {1, 5}) {
        std::vector<double> scores(threads), totals(threads), F(k * k), v(k);
        std::vector<int> cols(k), best_cols(static_cast<std::size_t>(threads) * k), sizes(threads);
        for (int j = 0; j < threads; ++j)
          detail::evidence_enumerate_share(M, h, n_C, limit, std::log(p.tau2 / p.s2) + log_odds, p.s2, j, threads, j == 0, F.data(),
                                           v.data(), cols.data(), &scores[j], best_cols.data() + j * k, &sizes[j], &totals[j],
                                           static_cast<double*>(nullptr));
        std::vector<int> picks(k);
        const int n_S = detail::evidence_merge(threads, k, n_C, scores.data(), best_cols.data(), sizes.data(), totals.data(),
                                               static_cast<const double*>(nullptr), picks.data(), static_cast<double*>(nullptr));
        std::vector<int> shared(picks.begin(), picks.begin() + n_S);
        std::sort(shared.begin(), shared.end());
        EXPECT_EQ(shared, argbest) << "k = " << k << ", pi = " << pi << ", trial " << trial << ", " << threads << " threads";
      }
      ++checked;
      nonempty += !argbest.empty();
    }
  }
  EXPECT_GT(checked, 50);
  EXPECT_GT(nonempty, 15);  // not vacuous either way
  EXPECT_GT(limited, 10);
  EXPECT_GT(nothing, 5);
}

// Support number q of the shared enumeration's order: every support of 1 to k columns once, ascending.
TEST(EvidenceSubset, TheSharedOrderListsEverySupportOnce) {
  for (int n_C = 1; n_C <= 12; ++n_C)
    for (int k = 1; k <= 5; ++k) {
      std::vector<std::vector<int>> expected, current_out;
      std::vector<int> current;
      subsets(n_C, k, 0, current, expected);
      expected.erase(expected.begin());  // the empty support is not in the order
      std::sort(expected.begin(), expected.end());
      const int count = detail::evidence_support_count(n_C, k);
      ASSERT_EQ(count, static_cast<int>(expected.size())) << n_C << ", " << k;
      std::vector<std::vector<int>> listed;
      std::vector<int> cols(k);
      for (int q = 0; q < count; ++q) {
        const int s = detail::evidence_support(q, n_C, k, cols.data());
        listed.emplace_back(cols.begin(), cols.begin() + s);
        EXPECT_TRUE(std::is_sorted(listed.back().begin(), listed.back().end()));
      }
      std::sort(listed.begin(), listed.end());
      EXPECT_EQ(listed, expected) << n_C << ", " << k;
    }
}

TEST(EvidenceSubset, EnumerationFindsTheSupportOfHighestMarginalLikelihood) {
  std::mt19937_64 rng(20261123);
  int checked = 0, nonempty = 0;
  for (int trial = 0; trial < 60; ++trial) {
    const int m = 3 + trial % 10, r = trial % 3, n_C = 6 + trial % 5, k = 1 + trial % 3;
    const Problem p = random_problem(rng, m, r, n_C, k);
    const std::optional<std::vector<int>> clear = clear_best_support(p);
    if (!clear) continue;
    const std::vector<int>& argbest = *clear;
    EXPECT_EQ(library_choice(p, true), argbest) << "trial " << trial << " (m = " << m << ", r = " << r << ")";
    ++checked;
    nonempty += !argbest.empty();
  }
  EXPECT_GT(checked, 50);
  EXPECT_GT(nonempty, 30);  // not vacuous: most problems pick some non-zeros
}

// Each candidate's posterior inclusion probability, sum over supports S containing it of p(y | S)
// over the sum over every S of at most k (a uniform prior over those supports), from the m x m
// covariances.
TEST(EvidenceSubset, InclusionProbabilitiesAverageOverEverySupport) {
  std::mt19937_64 rng(20261204);
  for (int trial = 0; trial < 30; ++trial) {
    const int m = 3 + trial % 10, r = trial % 3, n_C = 5 + trial % 4, k = 1 + trial % 3;
    const Problem p = random_problem(rng, m, r, n_C, k);
    const AllSupports all = all_supports(p);
    const double top = *std::max_element(all.log_evidence.begin(), all.log_evidence.end());
    double total = 0.0;
    std::vector<double> expected(static_cast<std::size_t>(n_C), 0.0);
    for (std::size_t s = 0; s < all.supports.size(); ++s) {
      const double weight = std::exp(all.log_evidence[s] - top);
      total += weight;
      for (int c : all.supports[s]) expected[static_cast<std::size_t>(c)] += weight;
    }
    std::vector<double> inclusion;
    library_choice(p, true, 0, &inclusion);
    for (int c = 0; c < n_C; ++c)
      EXPECT_NEAR(inclusion[static_cast<std::size_t>(c)], expected[static_cast<std::size_t>(c)] / total, 1e-8)
          << "candidate " << c << ", trial " << trial;
  }
  // Without enumeration: 1 for the chosen, 0 for the others.
  const Problem p = random_problem(rng, 8, 2, 6, 2);
  std::vector<double> inclusion;
  const std::vector<int> chosen = library_choice(p, false, 0, &inclusion);
  for (int c = 0; c < 6; ++c)
    EXPECT_EQ(inclusion[static_cast<std::size_t>(c)], std::find(chosen.begin(), chosen.end(), c) != chosen.end() ? 1.0 : 0.0);
}

TEST(EvidenceSubset, LocalSearchEndsWhereNoSingleMoveRaisesTheMarginalLikelihood) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 40; ++trial) {
    const int m = 4 + trial % 12, r = 1 + trial % 3, n_C = 9, k = 3;
    const Problem p = random_problem(rng, m, r, n_C, k);
    // From greedy inclusion, or from an incoming support (the first two candidates).
    const std::vector<int> chosen = library_choice(p, false, trial % 2 == 0 ? 0 : 2);
    ASSERT_LE(static_cast<int>(chosen.size()), k);
    const double at = log_evidence(p, chosen);
    const double tol = 1e-9 * (1 + std::fabs(at));
    auto in = [&](int c) { return std::find(chosen.begin(), chosen.end(), c) != chosen.end(); };
    for (int c = 0; c < n_C; ++c) {
      if (in(c)) {
        std::vector<int> removed;
        for (int x : chosen)
          if (x != c) removed.push_back(x);
        EXPECT_LE(log_evidence(p, removed), at + tol) << "removing " << c << ", trial " << trial;
        for (int c2 = 0; c2 < n_C; ++c2) {
          if (in(c2)) continue;
          std::vector<int> swapped = removed;
          swapped.push_back(c2);
          EXPECT_LE(log_evidence(p, swapped), at + tol) << "swapping " << c << " for " << c2 << ", trial " << trial;
        }
      } else if (static_cast<int>(chosen.size()) < k) {
        std::vector<int> added = chosen;
        added.push_back(c);
        EXPECT_LE(log_evidence(p, added), at + tol) << "adding " << c << ", trial " << trial;
      }
    }
  }
}

TEST(EvidenceSubset, CandidateCountsFitTheBudget) {
  EXPECT_EQ(detail::evidence_enumeration_candidates(30, 2), 30);  // 466 supports: all of d
  EXPECT_EQ(detail::evidence_enumeration_candidates(40, 2), 31);  // 497; 32 would be 529
  
  EXPECT_EQ(detail::evidence_enumeration_candidates(100, 5), 9);  // 382 supports; 10 would be 638
  EXPECT_EQ(detail::evidence_enumeration_candidates(100, 20), 0);  // too many: local search
  EXPECT_EQ(detail::evidence_enumeration_candidates(5, 3), 5);
}

}  // namespace
}  // namespace lrsmeta
