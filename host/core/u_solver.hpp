// Which solver the U step uses (Options::u_solver), decided once per fit from the data's sizes.
#pragma once

#include <cstdint>
#include <string>

#include "lrsmeta/lrsmeta.hpp"

namespace lrsmeta::core {

// Unknowns above which the direct solve is refused (its G would be 3.2 GB at 20000).
constexpr std::int64_t kDirectUnknownsLimit = 20000;

struct USolverChoice {
  USolver solver = USolver::direct;
  std::string why;  // for auto: one sentence, with the cost model's numbers
};

// For a fit of rank r on n rows, t tasks, d features of value_bytes bytes each: the solver asked
// for, or for auto the cheaper by a cost model (flops of forming G from every task's X_i^T X_i and
// factoring it, against kCgStepsEstimate passes over the data, each costing its flops or, where
// more, ten per byte of X read: a pass is bound by memory bandwidth when r' is small), never direct
// where G would not fit in half the memory available or above kDirectUnknownsLimit unknowns, and
// direct for private training and on the GPU.
USolverChoice choose_u_solver(std::int64_t n, std::int64_t t, std::int64_t d, int r, int value_bytes, const Options& options,
                              bool on_gpu);

}  // namespace lrsmeta::core
