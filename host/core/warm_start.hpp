// A fit started from a neighbouring fit's state rather than from scratch (FitRun::start_from): the
// evidence search's candidates start from the best candidate so far, whose r or k may differ.
#pragma once

#include <cstdint>
#include <vector>

#include "lrsmeta/lrsmeta.hpp"

namespace lrsmeta::core {

// What a fit of rank r and sparsity k takes from `from` (same d and tasks):
// - U: from's, with its columns rotated to the eigenvectors of from's Sigma (largest variance
//   first) and the first r kept where r is smaller; where r is larger, the columns `new_columns`
//   (d x (r - from's r), row-major, orthonormal and orthogonal to from's U) appended;
// - Sigma: from's in that basis, truncated, or with each new direction given kNewDirectionVariance
//   times the mean variance of from's directions: new directions start small and grow where the
//   data support them. Started at the mean, the 27 new directions of the full-rank fit on
//   bench/noisy_synthetic (d = 30, true rank 3) cost 10,000 nats of evidence at first and took 14
//   iterations to shrink; started at a hundredth of it, 4 or 5. A direction the data support grows
//   from there by about 1.4 times a step (InstEval, r = 23 from r = 1's state at a thousandth of
//   the mean: 0.12, 0.16, 0.23, 0.34, 0.50 nats, ... 6.0 at the 16th step), so fit_fixed meets no
//   tolerance while a fit started from a neighbour still gains more each step than the one before;
// - every task's w in that basis (new entries 0), and its b cut or padded (index -1) to k entries.
constexpr double kNewDirectionVariance = 1e-2;
struct NeighbourState {
  std::vector<double> U;      // d x r, row-major
  std::vector<double> Sigma;  // r x r
  Model task_parameters;      // W, B_index, B_value for r and k
};
// With keep_basis (a held U: r must be from's), U, Sigma and w are from's as they are.
NeighbourState state_from_neighbour(const Checkpoint& from, int r, int k, const std::vector<double>& new_columns,
                                    bool keep_basis = false);

// The U a fit that holds it starts from and keeps (d x r, row-major): the constant feature's axis
// (LowRankBasis intercept, r = 1) or every feature's (slopes, r = d).
std::vector<double> held_basis(LowRankBasis basis, std::int64_t constant, int d, int r);

// What a fit that holds U (LowRankBasis intercept, r = 1, or slopes, r = d) takes from `from` of
// another basis or rank: U held as a fit from scratch holds it; every task's w the held coordinates
// of its U w (its constant entry, or all of it); Sigma the held basis's form of from's spread
// U Sigma U^T (the constant feature's variance, and for the slopes the mean of the others), a
// variance from has not (r = 0, a random intercept's slopes) kNewDirectionVariance times the one it
// has; b cut or padded to k entries. constant: the constant feature's index.
NeighbourState state_in_held_basis(const Checkpoint& from, LowRankBasis basis, std::int64_t constant, int r, int k);

// `count` orthonormal directions orthogonal to U's r columns (d x r, row-major): the top eigenvectors
// of M (d x d, symmetric) projected off U's span, or with M empty, Gaussian draws (seeded) projected
// off it. Row-major d x count.
std::vector<double> directions_off_span(const std::vector<double>& M, const std::vector<double>& U, int d, int r, int count,
                                        std::uint64_t seed);

}  // namespace lrsmeta::core
