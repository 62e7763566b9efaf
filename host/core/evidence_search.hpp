// The choice of b's support by the marginal likelihood of a task's data (detail::evidence_subset),
// its enumeration shared out among a thread block's threads, and the prior over supports' mass.
// Header-only and __host__ __device__ under nvcc, as core/small_dense.hpp, which it builds on: the
// CPU loop and the CUDA kernel run the same search.
#pragma once

#include <algorithm>
#include <cmath>

#include "core/small_dense.hpp"

namespace lrsmeta::detail {

// Supports evidence_subset enumerates at most (each costs O(k^2) flop on the incremental factor),
// and candidates it weighs at most (their Gram is formed from the task's rows).
constexpr long long kEvidenceEnumerationBudget = 512;
constexpr int kEvidenceMaxCandidates = 48;
// Tasks with fewer rows than this many per unknown (r + k) enumerate; the support of a larger task
// is well determined by its data, and a local search from its current support finds it (measured
// on bench/noisy_synthetic: no difference above about 5 rows per unknown).
constexpr int kEvidenceEnumerationRowsPerUnknown = 4;
// The smallest sparsity whose enumeration is bounded (evidence_fit_ceiling): the ceiling's factor
// costs about n_C^3 / 6 multiply-adds, more than all of k = 2's enumeration (about n_C^2 / 2
// supports at O(1) each: on the noisy benchmark's d = 30 the bound cost 3% of the default fit's
// CPU time and saved nothing), and deeper enumerations are where whole subtrees are passed over.
constexpr int kEvidenceBoundedSparsity = 3;

// The largest candidate count n_C <= min(d, kEvidenceMaxCandidates) whose supports of size at most
// k (sum over s <= k of C(n_C, s)) fit the enumeration budget, or 0 if fewer than k + 2 candidates
// fit (then evidence_subset searches locally among 3k).
LRSMETA_HD inline int evidence_enumeration_candidates(int d, int k) {
  int best = 0;
  for (int c = 1; c <= d && c <= kEvidenceMaxCandidates; ++c) {
    long long total = 1, term = 1;
    for (int s = 1; s <= k && s <= c; ++s) {
      term = term * (c - s + 1) / s;
      total += term;
      if (total > kEvidenceEnumerationBudget) break;
    }
    if (total > kEvidenceEnumerationBudget) break;
    best = c;
  }
  return best >= (k + 2 < d ? k + 2 : d) ? best : 0;
}

// The candidates pursuit weighs under the prior for a task of m rows, and whether it enumerates
// them (else searches locally among 3k); with `always`, it enumerates whatever the rows where the
// budget allows.
LRSMETA_HD inline int evidence_candidates(int m, int d, int r, int k, bool* enumerate, bool always = false) {
  const int enumerable = evidence_enumeration_candidates(d, k);
  *enumerate = enumerable > 0 && (always || m < kEvidenceEnumerationRowsPerUnknown * (r + k));
  return *enumerate ? enumerable : (3 * k < d ? 3 * k : d);
}

// The most candidates evidence_candidates returns for any task: what workspaces are sized for.
LRSMETA_HD inline int evidence_candidate_capacity(int d, int k) {
  if (k <= 0) return 0;
  const int enumerable = evidence_enumeration_candidates(d, k), local = 3 * k < d ? 3 * k : d;
  return enumerable > local ? enumerable : local;
}

// Scratch (in elements of S) that evidence_subset needs for r w-columns, n_C candidates and
// sparsity k; with `enumerate`, also the enumeration's conditioned Schur complements (k - 1 levels
// of n_C x n_C and 2 n_C), 4 (k + 1) for its path, 3 n_C, and n_C^2 + n_C for the ceiling's factor
// (evidence_fit_ceiling), which the local search does without.
LRSMETA_HD inline int evidence_subset_scratch(int r, int n_C, int k, bool enumerate = false) {
  const int base = r * r + r + n_C * r + n_C * n_C + n_C + (k + 1) * (k + 1) + 2 * (k + 2);
  return enumerate ? base + (k > 1 ? (k - 1) * (n_C * n_C + 2 * n_C) : 0) + 4 * (k + 1) + 4 * n_C + n_C * n_C : base;
}

// A bound that lets the enumeration pass over supports that cannot win (without inclusion
// probabilities, which sum over every support). M is at least b_precision I, b_precision = s2 /
// tau2 (the prior's share of its diagonal; so is every Schur complement of it), so each column a
// support adds costs at least `entry` = log_tau2_over_s2 + log(b_precision), the prior over
// supports' charge (0, no bound, where that is not positive or b_precision is not given); and
// together a support's columns fit at most h^T M^-1 h / s2 over every candidate, the ceiling (the
// fit term h_S^T M_S^-1 h_S only grows as columns join S).
template <typename S>
LRSMETA_HD inline S evidence_entry_floor(S log_tau2_over_s2, S b_precision) {
  const S entry = b_precision > S(0) ? log_tau2_over_s2 + log(b_precision) : S(0);
  return entry > S(0) ? entry : S(0);
}

// The entry floor the enumeration bounds by: evidence_entry_floor from kEvidenceBoundedSparsity,
// and 0 (no bound) where b is averaged over the supports, which weighs every one of them.
template <typename S>
LRSMETA_HD inline S evidence_bound_entry(S log_tau2_over_s2, S b_precision, int k, bool averaging) {
  return averaging || k < kEvidenceBoundedSparsity ? S(0) : evidence_entry_floor(log_tau2_over_s2, b_precision);
}

// The ceiling from evidence_schur's M and h, raised by what rounding can move it: M's factor and
// the enumeration's own conditioning lose about n_C eps cond(M) of it, and cond(M) <= trace(M) /
// b_precision (M's smallest eigenvalue is at least b_precision). +inf where M cannot be factored
// or the ceiling is not a number (then it bounds nothing). C: n_C x n_C and z: n_C scratch.
template <typename S>
LRSMETA_HD inline S evidence_fit_ceiling(const S* M, const S* h, int n_C, S s2, S b_precision, S* C, S* z) {
  if (!(b_precision > S(0))) return S(INFINITY);
  S trace = S(0);
  for (int a = 0; a < n_C; ++a) {
    for (int b = 0; b <= a; ++b) C[a * n_C + b] = M[a * n_C + b];
    trace += M[a * n_C + a];
  }
  if (!cholesky_factor(C, n_C)) return S(INFINITY);
  S total = S(0);
  for (int a = 0; a < n_C; ++a) {
    S t = h[a];
    for (int b = 0; b < a; ++b) t -= C[a * n_C + b] * z[b];
    z[a] = t / C[a * n_C + a];
    total += z[a] * z[a];
  }
  const S rounding = S(1e-9) + S(64) * S(n_C) * S(2.3e-16) * trace / b_precision;
  const S ceiling = total / s2 * (S(1) + rounding) + S(1e-9);
  return ceiling < S(INFINITY) ? ceiling : S(INFINITY);  // NaN (a non-finite h) bounds nothing either
}

// The largest support size (at most k) whose best possible score, size times entry less the
// ceiling, is below the empty support's 0: no larger support can be chosen.
template <typename S>
LRSMETA_HD inline int evidence_size_limit(S entry, S ceiling, int k) {
  if (!(entry > S(0))) return k;
  int s = 0;
  while (s < k && S(s + 1) * entry - ceiling < S(0)) ++s;
  return s;
}

// Whether a candidate whose variance given the support so far is `conditioned`, of `unconditioned`
// alone, adds anything independent of that support: a column that the support's columns explain
// to 1e-10 of its variance (a copy, in rounding) is skipped rather than scored with the logarithm
// of a rounding error.
template <typename S>
LRSMETA_HD inline bool evidence_adds_column(S conditioned, S unconditioned) {
  return conditioned > S(1e-10) * unconditioned;
}

// Entries of the index array P that evidence_subset needs for sparsity k.
LRSMETA_HD inline int evidence_subset_picks(int k) { return 3 * (k + 1); }

// The support of b among n_C candidate columns chosen by the marginal likelihood of the task's
// data (the continuous parameters integrated out), rather than by the size of the fitted values:
// where a task has too few rows to identify its support, the size of a fitted value says little,
// and the likelihood's Occam factor is what keeps a spurious column out. With `enumerate`, every
// support of at most k candidates is scored (the global optimum: greedy and swap searches were
// measured to stop in poorer local optima on tasks of 5 to 15 rows); otherwise a local search:
// from the incoming support (the first n_start candidates; greedy forward inclusion while the
// evidence improves when there is none), the best improving swap, addition or removal until none
// is left.
//
// K (n x n, n = r + n_C, row-major, lower triangle read) is the posterior precision times s2,
// A^T A + s2 P, of [X U, X_C] with the prior added; rhs = A^T y. Up to terms that do not depend on
// the support S, -2 log p(y | S) = |S| log(tau2 / s2) + log det K_S - rhs_S^T K_S^-1 rhs_S / s2.
// The w block is eliminated once (its Schur complement M over the candidates), so each evaluation
// only factors an |S| x |S| block of M. Writes the chosen positions (indices into the candidates)
// to P and returns their count; returns -1 if the w block cannot be factored.
// With `inclusion` (n_C entries) and `enumerate`, also each candidate's posterior inclusion
// probability among the supports enumerated, sum over S containing c of p(y | S) p(S) over the sum
// over all S (the per-entry cost log_tau2_over_s2 carries the prior over supports); without
// enumeration, 1 for the chosen candidates and 0 for the others.
// The w block of K eliminated once (evidence_subset, below): into `scratch` (its layout) the factor
// Lw (r x r), cw = Lw^-1 rhs_w, Lc = Lw^-1 K_{w, C} (r x n_C, row-major: row a holds every
// candidate's entry a), the Schur complement M (n_C x n_C, lower triangle) and h = rhs_C - Lc^T cw
// (n_C). False where the w block cannot be factored.
// Every candidate at once: each step of the forward substitution, and each term of M and h, is one
// update along a row of Lc, with one reciprocal of Lw's pivot a step (a substitution per candidate
// chained a division into every entry: at r = 30 and 30 candidates about a fifth of the search).
// Each entry still receives its terms in the same order (a = 0, 1, ...).
template <typename S>
LRSMETA_HD inline bool evidence_schur(const S* K, const S* rhs, int r, int n_C, S* scratch) {
  const int n = r + n_C;
  S* Lw = scratch;
  S* cw = Lw + r * r;
  S* Lc = cw + r;
  S* M = Lc + n_C * r;
  S* h = M + n_C * n_C;
  for (int a = 0; a < r; ++a)
    for (int b = 0; b <= a; ++b) Lw[a * r + b] = K[a * n + b];
  if (r > 0 && !cholesky_factor(Lw, r)) return false;
  for (int a = 0; a < r; ++a) {
    S* row = Lc + a * n_C;
    for (int c = 0; c < n_C; ++c) row[c] = K[(r + c) * n + a];
  }
  for (int c = 0; c < n_C; ++c) {
    h[c] = rhs[r + c];
    for (int c2 = 0; c2 <= c; ++c2) M[c * n_C + c2] = K[(r + c) * n + r + c2];
  }
  for (int a = 0; a < r; ++a) cw[a] = rhs[a];
  for (int a = 0; a < r; ++a) {
    const S inverse = S(1) / Lw[a * r + a];
    S* row = Lc + a * n_C;
    cw[a] *= inverse;
    for (int c = 0; c < n_C; ++c) row[c] *= inverse;
    for (int b = a + 1; b < r; ++b) {
      const S l = Lw[b * r + a];
      cw[b] -= l * cw[a];
      subtract_scaled(Lc + b * n_C, row, l, n_C);
    }
    subtract_scaled(h, row, cw[a], n_C);
    for (int c = 0; c < n_C; ++c) subtract_scaled(M + c * n_C, row, row[c], c + 1);
  }
  return true;
}

template <typename S>
LRSMETA_HD inline int evidence_subset(const S* K, const S* rhs, int r, int n_C, int k, S log_tau2_over_s2,
                                      S s2, S b_precision, bool enumerate, int n_start, S* scratch, int* P,
                                      S* inclusion = nullptr) {
  S* M = scratch + r * r + r + n_C * r;  // evidence_schur's Schur complement
  S* h = M + n_C * n_C;        // n_C: rhs_C - Lc cw
  S* F = h + n_C;              // (k+1) x (k+1) factor of one trial
  S* v = F + (k + 1) * (k + 1);  // k + 1, then k + 2 for the enumeration's running scores
  int* trial = P;              // P has evidence_subset_picks(k) entries
  int* best = P + (k + 1);
  if (!evidence_schur(K, rhs, r, n_C, scratch)) return -1;
  // -2 log evidence of the support cols[0..s) (plus a constant): +inf when its block is not
  // positive definite.
  auto score = [&](const int* cols, int s) -> S {
    for (int a = 0; a < s; ++a) {
      for (int b = 0; b <= a; ++b) {
        const int ca = cols[a], cb = cols[b];
        F[a * s + b] = ca >= cb ? M[ca * n_C + cb] : M[cb * n_C + ca];
      }
      v[a] = h[cols[a]];
    }
    if (!cholesky_factor(F, s)) return S(INFINITY);
    S total = S(s) * log_tau2_over_s2;
    for (int a = 0; a < s; ++a) {
      S t = v[a];
      for (int b = 0; b < a; ++b) t -= F[a * s + b] * v[b];
      v[a] = t / F[a * s + a];
      total += S(2) * log(F[a * s + a]) - v[a] * v[a] / s2;
    }
    return total;
  };
  auto chosen = [&](const int* cols, int s, int c) {
    for (int a = 0; a < s; ++a)
      if (cols[a] == c) return true;
    return false;
  };
  if (enumerate) {
    // Every support of size <= k in lexicographic order, depth first. Each level holds M and h
    // conditioned on the support so far (its Schur complement), over the candidates after its last
    // column: a candidate's score is then O(1), and descending costs a rank-one downdate of what is
    // left. A logarithm per support would be most of the cost; a support's score is bounded below
    // without one (log x >= log a + 1 - a / x, with a its unconditioned variance, whose logarithm
    // is taken once), and only a support whose bound beats the best so far (or every one, where
    // inclusion probabilities are asked for) is scored exactly, its path's terms summed in order.
    // The last level's supports (most of them) are bounded in one pass over its candidates.
    // Whole subtrees are passed over by the ceiling on what any support fits (evidence_fit_ceiling),
    // with each column charged at least the prior over supports' entry: on 20,000 tasks of 20 rows
    // (d = 100, r = 10, k = 5, one in 500 entries of b non-zero) it took a third off the task step.
    // (Without that charge, the ceiling alone was too loose to pay for itself.)
    const int level = n_C * n_C + 2 * n_C;  // conditioned M, h and M's diagonal
    S* levels = F + (k + 1) * (k + 1) + 2 * (k + 2);  // levels 1 .. k-1 (level 0: M, h, unconditioned)
    S* path_diag = levels + (k > 1 ? (k - 1) * level : 0);  // the path's conditioned variances,
    S* path_fit = path_diag + (k + 1);                          // h^2 / (variance s2),
    S* exact = path_fit + (k + 1);                              // and exact scores (k + 1 each)
    S* unconditioned = exact + (k + 1);                         // n_C: M's diagonal,
    S* log_unconditioned = unconditioned + n_C;                 // n_C: its logarithms,
    S* lower = log_unconditioned + n_C;                         // n_C: the last level's bounds
    S* fit_sum = lower + n_C;                                   // k + 1: the path's fit so far
    S* ceiling_scratch = fit_sum + (k + 1);                     // n_C^2 + n_C: evidence_fit_ceiling's
    S* bound = v;  // k + 2: a lower bound on the score of idx[0..depth)
    int* idx = trial;
    const S inverse_s2 = S(1) / s2;
    for (int c = 0; c < n_C; ++c) {
      unconditioned[c] = M[c * n_C + c];
      log_unconditioned[c] = unconditioned[c] > S(0) ? log(unconditioned[c]) : S(0);
    }
    bound[0] = exact[0] = fit_sum[0] = S(0);
    // Without inclusion probabilities (and from kEvidenceBoundedSparsity), a support and all its
    // extensions are passed over where their best possible score (evidence_entry_floor: the
    // prefix's bound, one more column's entry, and the ceiling less what the prefix fits) is not
    // below the best so far; where no support can beat the empty one, nothing is enumerated.
    const S entry = evidence_bound_entry(log_tau2_over_s2, b_precision, k, inclusion != nullptr);
    const S ceiling = entry > S(0) ? evidence_fit_ceiling(M, h, n_C, s2, b_precision, ceiling_scratch, ceiling_scratch + n_C * n_C)
                                   : S(INFINITY);
    if (evidence_size_limit(entry, ceiling, k) == 0) return 0;
    int exact_depth = 0;  // exact[0..exact_depth] hold the scores of the path's prefixes
    S best_score = S(0);
    int n_best = 0, depth = 0, next = 0;
    // Inclusion weights, relative to the best support so far (exp(-(score - best) / 2)); the empty
    // support (score 0) counts too.
    S total = S(1);
    if (inclusion)
      for (int c = 0; c < n_C; ++c) inclusion[c] = S(0);
    // Level `depth`'s conditioned M, h and diagonal.
    auto level_M = [&](int at) -> const S* { return at == 0 ? M : levels + (at - 1) * level; };
    auto level_h = [&](int at) -> const S* { return at == 0 ? h : levels + (at - 1) * level + n_C * n_C; };
    auto level_diag = [&](int at) -> const S* { return at == 0 ? unconditioned : levels + (at - 1) * level + n_C * n_C + n_C; };
    // The support idx[0..depth) + c, whose conditioned variance is diag and h hcc: scored exactly
    // (the path's prefixes first, where not yet), against the best, and into the inclusion sums.
    auto score_exactly = [&](int c, S diag, S inverse, S hcc) {
      idx[depth] = c;
      path_diag[depth] = diag;
      path_fit[depth] = hcc * hcc * inverse * inverse_s2;
      if (exact_depth > depth) exact_depth = depth;
      for (; exact_depth <= depth; ++exact_depth)
        exact[exact_depth + 1] = exact[exact_depth] + log_tau2_over_s2 + log(path_diag[exact_depth]) - path_fit[exact_depth];
      const S score = exact[depth + 1];
      if (score < best_score) {
        if (inclusion) {  // rescale what is summed to the new best
          const S factor = exp(S(0.5) * (score - best_score));
          total *= factor;
          for (int a = 0; a < n_C; ++a) inclusion[a] *= factor;
        }
        best_score = score;
        n_best = depth + 1;
        for (int a = 0; a < n_best; ++a) best[a] = idx[a];
      }
      if (inclusion) {
        const S weight = exp(S(-0.5) * (score - best_score));
        total += weight;
        for (int a = 0; a <= depth; ++a) inclusion[idx[a]] += weight;
      }
    };
    // A bound at or above the best so far rules a support out; the bound's own rounding is allowed
    // for (a support that would win by less is a tie).
    auto may_win = [&](S bound_of) { return bound_of < best_score + S(1e-12) * (S(1) + fabs(best_score) + fabs(bound_of)); };
    while (true) {
      if (depth == k - 1 && !inclusion && next < n_C) {
        // The last level: every remaining candidate's bound in one pass, then the few that may win.
        const S* d = level_diag(depth);
        const S* hl = level_h(depth);
        const S base = bound[depth] + log_tau2_over_s2 + S(1);
        for (int c = next; c < n_C; ++c) {
          const S inverse = S(1) / d[c];
          const S b = base + log_unconditioned[c] - (unconditioned[c] + hl[c] * hl[c] * inverse_s2) * inverse;
          lower[c] = evidence_adds_column(d[c], unconditioned[c]) ? b : S(INFINITY);
        }
        for (int c = next; c < n_C; ++c)
          if (lower[c] < S(INFINITY) && may_win(lower[c])) score_exactly(c, d[c], S(1) / d[c], hl[c]);
        next = n_C;
      }
      if (depth < k && next < n_C) {
        const int c = next++;
        const S* Mc = level_M(depth);
        const S* hc = level_h(depth);
        const S diag = level_diag(depth)[c];
        if (!evidence_adds_column(diag, unconditioned[c])) continue;
        const S inverse = S(1) / diag, hcc = hc[c];
        idx[depth] = c;
        path_diag[depth] = diag;
        path_fit[depth] = hcc * hcc * inverse * inverse_s2;
        if (exact_depth > depth) exact_depth = depth;
        const S bound_of = bound[depth] + log_tau2_over_s2 + (log_unconditioned[c] + S(1) - unconditioned[c] * inverse) - path_fit[depth];
        if (inclusion || may_win(bound_of)) score_exactly(c, diag, inverse, hcc);
        fit_sum[depth + 1] = fit_sum[depth] + path_fit[depth];
        if (depth + 1 < k && c + 1 < n_C && may_win(bound_of + entry - (ceiling - fit_sum[depth + 1]))) {
          // Condition on c: the next level over the candidates after it (only their variances and
          // h where it is the last).
          S* Mn = levels + depth * level;
          S* hn = Mn + n_C * n_C;
          S* dn = hn + n_C;
          const bool variances_only = depth + 2 == k;
          for (int a = c + 1; a < n_C; ++a) {
            const S l = Mc[a * n_C + c] * inverse;
            hn[a] = hc[a] - l * hcc;
            if (variances_only) {
              dn[a] = Mc[a * n_C + a] - l * Mc[a * n_C + c];
            } else {
              for (int b = c + 1; b <= a; ++b) Mn[a * n_C + b] = Mc[a * n_C + b] - l * Mc[b * n_C + c];
              dn[a] = Mn[a * n_C + a];
            }
          }
          bound[depth + 1] = bound_of;
          ++depth;
          next = c + 1;
        }
      } else {
        if (depth == 0) break;
        --depth;
        next = idx[depth] + 1;
      }
    }
    for (int a = 0; a < n_best; ++a) P[a] = best[a];
    if (inclusion)
      for (int c = 0; c < n_C; ++c) inclusion[c] /= total;
    return n_best;
  }
  // Greedy inclusion from the empty support while the evidence improves: the support in best,
  // its score in *current.
  auto greedy = [&](S* current) -> int {
    int n_S = 0;
    *current = S(0);
    while (n_S < k) {
      S best_score = *current;
      int best_c = -1;
      for (int a = 0; a < n_S; ++a) trial[a] = best[a];
      for (int c = 0; c < n_C; ++c) {
        if (chosen(best, n_S, c)) continue;
        trial[n_S] = c;
        const S sc = score(trial, n_S + 1);
        if (sc < best_score) best_score = sc, best_c = c;
      }
      if (best_c < 0) break;
      best[n_S++] = best_c;
      *current = best_score;
    }
    return n_S;
  };
  // Swaps, additions and removals, best improvement first, from the support best[0..n_S); each
  // accepted move lowers the score strictly, so this ends; the cap on moves only bounds the work on
  // pathological ties in rounding.
  auto improve = [&](int n_S, S* current) -> int {
    for (int move = 0; move < 4 * (k + 1) * (n_C + 1); ++move) {
      S best_score = *current;
      int best_slot = -1, best_c = -1;  // slot n_S: add best_c; best_c -1: remove that slot
      if (n_S < k) {  // a swap can make room for one more column
        for (int a = 0; a < n_S; ++a) trial[a] = best[a];
        for (int c = 0; c < n_C; ++c) {
          if (chosen(best, n_S, c)) continue;
          trial[n_S] = c;
          const S sc = score(trial, n_S + 1);
          if (sc < best_score) best_score = sc, best_slot = n_S, best_c = c;
        }
      }
      for (int slot = 0; slot < n_S; ++slot) {
        int s = 0;
        for (int a = 0; a < n_S; ++a)
          if (a != slot) trial[s++] = best[a];
        const S removed = score(trial, s);
        if (removed < best_score) best_score = removed, best_slot = slot, best_c = -1;
        for (int c = 0; c < n_C; ++c) {
          if (chosen(best, n_S, c)) continue;
          trial[s] = c;
          const S sc = score(trial, s + 1);
          if (sc < best_score) best_score = sc, best_slot = slot, best_c = c;
        }
      }
      if (best_slot < 0) break;
      if (best_slot == n_S) {
        best[n_S++] = best_c;
      } else if (best_c >= 0) {
        best[best_slot] = best_c;
      } else {
        for (int a = best_slot; a + 1 < n_S; ++a) best[a] = best[a + 1];
        --n_S;
      }
      *current = best_score;
    }
    return n_S;
  };
  // Local search from the incoming support (candidates 0 .. n_start - 1), and from greedy
  // inclusion; the better of the two. The incoming support was chosen when the shared part of the
  // model (U, beta, s2) was another: single swaps from it can stay in a local optimum that fits the
  // task's rows far worse (measured: tasks whose training error stayed 1000 times the noise).
  int n_S = n_start < k ? n_start : k;
  for (int a = 0; a < n_S; ++a) best[a] = a;
  S current = score(best, n_S);
  const bool from_incoming = n_S > 0 && current < S(INFINITY);
  if (!from_incoming) n_S = greedy(&current);
  n_S = improve(n_S, &current);
  if (from_incoming) {
    int* kept = P + 2 * (k + 1);  // the first search's support
    for (int a = 0; a < n_S; ++a) kept[a] = best[a];
    const int n_kept = n_S;
    const S kept_score = current;
    n_S = improve(greedy(&current), &current);
    if (!(current < kept_score)) {
      for (int a = 0; a < n_kept; ++a) best[a] = kept[a];
      n_S = n_kept;
      current = kept_score;
    }
  }
  for (int a = 0; a < n_S; ++a) P[a] = best[a];
  if (inclusion) {
    for (int c = 0; c < n_C; ++c) inclusion[c] = S(0);
    for (int a = 0; a < n_S; ++a) inclusion[best[a]] = S(1);
  }
  return n_S;
}

// log P(|S| <= k) for a support S of d features each included independently with probability pi
// (log_pi = log pi, log_not_pi = log(1 - pi)): the binomial mass the prior over supports keeps when
// supports are limited to k features.
inline double support_prior_log_mass(int d, int k, double log_pi, double log_not_pi) {
  const int last = k < d ? k : d;
  auto log_term = [&](int s) {
    return std::lgamma(d + 1.0) - std::lgamma(s + 1.0) - std::lgamma(d - s + 1.0) + s * log_pi + (d - s) * log_not_pi;
  };
  double top = -INFINITY, sum = 0.0;
  for (int s = 0; s <= last; ++s) top = std::max(top, log_term(s));
  for (int s = 0; s <= last; ++s) sum += std::exp(log_term(s) - top);
  return std::min(0.0, top + std::log(sum));
}

// The enumeration of evidence_subset shared out among a block's threads (the CUDA kernel): each
// thread scores the supports q = first, first + stride, ... of the same set (sizes 1 to k, each in
// lexicographic order), each from scratch by an incremental Cholesky factor of M over its columns
// (O(s^2) a support, no state shared between supports), so a support's score is the one
// evidence_subset computes by conditioning, to rounding; evidence_merge then takes the best over
// the threads. The same supports are scored and the same one chosen (ties go to the support the
// depth-first enumeration meets first; supports whose scores agree to rounding are ties); the
// inclusion probabilities agree to rounding.

// Supports of 1 to k columns of n_C: sum over s of C(n_C, s).
LRSMETA_HD inline int evidence_support_count(int n_C, int k) {
  long long total = 0, term = 1;
  for (int s = 1; s <= k && s <= n_C; ++s) {
    term = term * (n_C - s + 1) / s;
    total += term;
  }
  return static_cast<int>(total);
}

// Support number q of that order, ascending, into cols; returns its size.
LRSMETA_HD inline int evidence_support(int q, int n_C, int k, int* cols) {
  auto binomial = [](int n, int s) -> long long {
    if (s < 0 || s > n) return 0;
    long long b = 1;
    for (int j = 1; j <= s; ++j) b = b * (n - s + j) / j;
    return b;
  };
  for (int s = 1; s <= k && s <= n_C; ++s) {
    const long long count = binomial(n_C, s);
    if (q >= count) {
      q -= static_cast<int>(count);
      continue;
    }
    int x = 0;
    for (int a = 0; a < s; ++a) {
      // Supports whose column a is x (given the columns before it): C(n_C - x - 1, s - a - 1).
      for (long long with_x = binomial(n_C - x - 1, s - a - 1); q >= with_x; with_x = binomial(n_C - x - 1, s - a - 1)) {
        q -= static_cast<int>(with_x);
        ++x;
      }
      cols[a] = x++;
    }
    return s;
  }
  return 0;
}

// Whether support a (ascending) comes before support b in the depth-first enumeration (a prefix
// before its extensions, then lexicographic).
LRSMETA_HD inline bool evidence_support_before(const int* a, int na, const int* b, int nb) {
  for (int j = 0; j < na && j < nb; ++j)
    if (a[j] != b[j]) return a[j] < b[j];
  return na < nb;
}

// -2 log evidence (plus a constant) of the support cols[0..s) from evidence_schur's M and h, by an
// incremental Cholesky factor of M over cols; +inf where a column adds nothing independent of those
// before it (evidence_adds_column: the enumeration skips such supports). F: s x s, v: s scratch.
template <typename S>
LRSMETA_HD inline S evidence_support_score(const S* M, const S* h, int n_C, const int* cols, int s, S log_tau2_over_s2, S s2, S* F,
                                           S* v) {
  S acc = S(0);
  for (int depth = 0; depth < s; ++depth) {
    const int c = cols[depth];
    S* row = F + depth * s;
    S diag = M[c * n_C + c];
    for (int a = 0; a < depth; ++a) {
      S t = M[c * n_C + cols[a]];
      for (int b = 0; b < a; ++b) t -= row[b] * F[a * s + b];
      row[a] = t / F[a * s + a];
      diag -= row[a] * row[a];
    }
    if (!evidence_adds_column(diag, M[c * n_C + c])) return S(INFINITY);
    row[depth] = sqrt(diag);
    S t = h[c];
    for (int a = 0; a < depth; ++a) t -= row[a] * v[a];
    v[depth] = t / row[depth];
    acc = acc + log_tau2_over_s2 + log(diag) - v[depth] * v[depth] / s2;
  }
  return acc;
}

// One thread's share: the best of its supports (*best_score, best_cols[0..*best_size); the empty
// support, score 0, to start with) and, where inclusion (n_C) is given, the sums of
// exp(-(score - *best_score) / 2) over its supports (*total; the empty support's term too where
// counts_empty, which one thread only should be) and, per candidate, over those containing it.
// Scratch: F (k x k), v (k), cols (k).
template <typename S>
LRSMETA_HD inline void evidence_enumerate_share(const S* M, const S* h, int n_C, int k, S log_tau2_over_s2, S s2, int first,
                                                int stride, bool counts_empty, S* F, S* v, int* cols, S* best_score,
                                                int* best_cols, int* best_size, S* total, S* inclusion) {
  *best_score = S(0);
  *best_size = 0;
  *total = counts_empty ? S(1) : S(0);
  if (inclusion)
    for (int c = 0; c < n_C; ++c) inclusion[c] = S(0);
  const int supports = evidence_support_count(n_C, k);
  for (int q = first; q < supports; q += stride) {
    const int s = evidence_support(q, n_C, k, cols);
    const S score = evidence_support_score(M, h, n_C, cols, s, log_tau2_over_s2, s2, F, v);
    if (!(score < S(INFINITY))) continue;
    if (score < *best_score || (score == *best_score && evidence_support_before(cols, s, best_cols, *best_size))) {
      if (inclusion) {  // rescale what is summed to the new best
        const S factor = exp(S(0.5) * (score - *best_score));
        *total *= factor;
        for (int c = 0; c < n_C; ++c) inclusion[c] *= factor;
      }
      *best_score = score;
      *best_size = s;
      for (int a = 0; a < s; ++a) best_cols[a] = cols[a];
    }
    if (inclusion) {
      const S weight = exp(S(-0.5) * (score - *best_score));
      *total += weight;
      for (int a = 0; a < s; ++a) inclusion[cols[a]] += weight;
    }
  }
}

// The threads' shares (parts of them; share j's best columns at best_cols + j k, its inclusion sums
// at inclusions + j n_C) merged: the chosen positions into P, their count returned, and where
// inclusion is given each candidate's posterior inclusion probability, as evidence_subset returns them.
template <typename S>
LRSMETA_HD inline int evidence_merge(int parts, int k, int n_C, const S* best_scores, const int* best_cols, const int* best_sizes,
                                     const S* totals, const S* inclusions, int* P, S* inclusion) {
  int chosen = 0;
  for (int j = 1; j < parts; ++j)
    if (best_scores[j] < best_scores[chosen] ||
        (best_scores[j] == best_scores[chosen] &&
         evidence_support_before(best_cols + j * k, best_sizes[j], best_cols + chosen * k, best_sizes[chosen])))
      chosen = j;
  const S best = best_scores[chosen];
  if (inclusion) {
    S total = S(0);
    for (int c = 0; c < n_C; ++c) inclusion[c] = S(0);
    for (int j = 0; j < parts; ++j) {
      const S factor = exp(S(-0.5) * (best_scores[j] - best));
      total += totals[j] * factor;
      for (int c = 0; c < n_C; ++c) inclusion[c] += inclusions[j * n_C + c] * factor;
    }
    for (int c = 0; c < n_C; ++c) inclusion[c] /= total;
  }
  for (int a = 0; a < best_sizes[chosen]; ++a) P[a] = best_cols[chosen * k + a];
  return best_sizes[chosen];
}

}  // namespace lrsmeta::detail
