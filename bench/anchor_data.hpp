// The anchor problem of the benchmarks (d = 100, r = 10, k = 5, m = 20 rows per task, noise 0.01),
// generated once in double and held in the precision T the benchmark measures.
#pragma once

#include <cstdint>
#include <vector>

#include "lrsmeta/io.hpp"

namespace lrsmeta::bench {

constexpr int kD = 100, kR = 10, kK = 5, kM = 20;

template <typename T>
Dataset<T> anchor_data(std::int64_t tasks) {
  SyntheticSpec spec;
  spec.tasks = tasks;
  spec.min_samples = spec.max_samples = kM;
  spec.d = kD;
  spec.r = kR;
  spec.k = kK;
  spec.noise = 0.01;
  spec.seed = 5;
  SyntheticData syn = generate_synthetic(spec);
  Dataset<T> data;
  data.d = kD;
  data.task_offsets = syn.data.task_offsets;
  data.X.assign(syn.data.X.begin(), syn.data.X.end());
  data.y.assign(syn.data.y.begin(), syn.data.y.end());
  return data;
}

// A starting U with orthonormal columns (coordinate vectors), the same for every benchmark.
inline std::vector<double> anchor_U() {
  std::vector<double> U(static_cast<std::size_t>(kD) * kR, 0.0);
  for (int p = 0; p < kR; ++p) U[static_cast<std::size_t>(p * 7 % kD) * kR + p] = 1.0;
  return U;
}

}  // namespace lrsmeta::bench
