// CPU path timings at docs/design.md's anchor sizes: d = 100, r = 10, k = 5, m = 20, t = 1e3 .. 1e5.
// One outer iteration = the task step over all tasks + the U step (G and v, then the dr x dr solve
// and QR). The counter us_per_task_core is the time per task times the threads used.
//
//   build/bench/bench_cpu --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <omp.h>

#include "core/u_solver.hpp"
#include "cpu/cpu_backend.hpp"
#include "anchor_data.hpp"
#include "lrsmeta/io.hpp"

namespace lrsmeta {
namespace {

using bench::kD;
using bench::kK;
using bench::kM;
using bench::kR;

template <typename T>
struct Fixture {
  Dataset<T> data;
  std::unique_ptr<cpu::CpuBackend<T>> backend;
};

// One data set and one warmed-up backend per (precision, t, variant), kept across benchmarks.
template <typename T>
cpu::CpuBackend<T>& backend_for(std::int64_t t, Variant variant) {
  static std::map<std::pair<std::int64_t, int>, std::unique_ptr<Fixture<T>>> cache;
  auto& slot = cache[{t, static_cast<int>(variant)}];
  if (!slot) {
    slot = std::make_unique<Fixture<T>>();
    slot->data = bench::anchor_data<T>(t);
    Options o;
    o.rank = kR;
    o.sparsity = kK;
    o.variant = variant;
    slot->backend = std::make_unique<cpu::CpuBackend<T>>(slot->data.view(), o);
    // A realistic state: a fixed starting U, two warm-start iterations, one with the full sparsity.
    slot->backend->set_U(bench::anchor_U());
    for (int it = 0; it < 2; ++it) {
      slot->backend->task_step_all(0);
      core::direct_U_step(*slot->backend, o);
    }
    slot->backend->task_step_all(kK);
  }
  return *slot->backend;
}

void per_task_counter(benchmark::State& state, std::int64_t t, int threads) {
  state.counters["us_per_task_core"] = benchmark::Counter(static_cast<double>(t) / threads / 1e6,
                                                          benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.counters["threads"] = threads;
}

template <typename T>
void BM_TaskStep(benchmark::State& state) {
  const std::int64_t t = state.range(0);
  const Variant variant = static_cast<Variant>(state.range(1));
  auto& backend = backend_for<T>(t, variant);
  for (auto _ : state) benchmark::DoNotOptimize(backend.task_step_all(kK));
  per_task_counter(state, t, backend.threads());
  state.SetLabel(to_string(variant));
}

// The task step with cg's start (v, W_hat, G x0) added task by task: against BM_TaskStep, what the
// start costs when the task's rows are in cache.
template <typename T>
void BM_TaskStepWithUStart(benchmark::State& state) {
  const std::int64_t t = state.range(0);
  auto& backend = backend_for<T>(t, Variant::pursuit);
  // The warm start a fit hands it: the task steps' own U, column-major.
  const std::vector<double> U = backend.get_U();
  std::vector<double> x0;
  for (int p = 0; p < kR; ++p)
    for (int a = 0; a < kD; ++a) x0.push_back(U[static_cast<std::size_t>(a * kR + p)]);
  core::UStepStart start;
  for (auto _ : state) {
    start.x0 = x0;
    benchmark::DoNotOptimize(backend.task_step_all_with_u_start(kK, start));
  }
  per_task_counter(state, t, backend.threads());
}

template <typename T>
void BM_BuildG(benchmark::State& state) {
  const std::int64_t t = state.range(0);
  auto& backend = backend_for<T>(t, Variant::pursuit);
  std::vector<double> G, v;
  for (auto _ : state) {
    backend.accumulate_normal_equations(G, v);
    benchmark::DoNotOptimize(G.data());
  }
  per_task_counter(state, t, backend.threads());
  // Packed GEMM flops: 2 * r(r+1)/2 * d(d+1)/2 per task, plus d(d+1)/2 * m for X_i^T X_i.
  const double flops = (2.0 * kR * (kR + 1) / 2 * kD * (kD + 1) / 2 + 2.0 * kD * (kD + 1) / 2 * kM) * static_cast<double>(t);
  state.counters["GFLOPs"] = benchmark::Counter(flops / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}

// One product G x of the cg U step: a pass over the data; counters are the data read per second and
// the time per task.
template <typename T>
void BM_NormalOperator(benchmark::State& state) {
  const std::int64_t t = state.range(0);
  auto& backend = backend_for<T>(t, Variant::pursuit);
  std::vector<double> x = bench::anchor_U(), y;
  for (auto _ : state) {
    backend.apply_normal_operator(x, y);
    benchmark::DoNotOptimize(y.data());
  }
  per_task_counter(state, t, backend.threads());
  state.counters["data_GBps"] = benchmark::Counter(static_cast<double>(t) * kM * (kD + 1) * sizeof(T) / 1e9,
                                                   benchmark::Counter::kIsIterationInvariantRate);
}

// The memory ceiling the passes above are measured against: the threads each sum their half of a
// 160 MB float array (16 independent accumulators, so the additions do not wait on one another).
void BM_StreamRead(benchmark::State& state) {
  const std::size_t n = 40000000;
  static const std::vector<float> data(n, 1.0f);
  const int threads = omp_get_max_threads();
  for (auto _ : state) {
    float total = 0.0f;
#pragma omp parallel num_threads(threads) reduction(+ : total)
    {
      const std::size_t nt = static_cast<std::size_t>(omp_get_num_threads()), id = static_cast<std::size_t>(omp_get_thread_num());
      const std::size_t lo = n * id / nt, hi = n * (id + 1) / nt;
      float acc[16] = {};
      std::size_t i = lo;
      for (; i + 16 <= hi; i += 16)
        for (int l = 0; l < 16; ++l) acc[l] += data[i + static_cast<std::size_t>(l)];
      for (; i < hi; ++i) acc[0] += data[i];
      for (float a : acc) total += a;
    }
    benchmark::DoNotOptimize(total);
  }
  state.counters["GBps"] = benchmark::Counter(static_cast<double>(n) * sizeof(float) / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = threads;
}

template <typename T>
void BM_SolveAndQR(benchmark::State& state) {
  auto& backend = backend_for<T>(state.range(0), Variant::pursuit);
  std::vector<double> G0, v;
  backend.accumulate_normal_equations(G0, v);
  for (auto _ : state) {
    std::vector<double> G = G0;
    benchmark::DoNotOptimize(core::solve_normal_equations(G, v, Options().ridge));
  }
}

template <typename T>
void BM_OuterIteration(benchmark::State& state) {
  const std::int64_t t = state.range(0);
  auto& backend = backend_for<T>(t, Variant::pursuit);
  Options o;
  o.rank = kR;
  o.sparsity = kK;
  for (auto _ : state) {
    backend.task_step_all(kK);
    benchmark::DoNotOptimize(core::direct_U_step(backend, o));
  }
  per_task_counter(state, t, backend.threads());
}

void sizes(benchmark::internal::Benchmark* b) {
  for (std::int64_t t : {1000, 10000, 100000}) b->Args({t, static_cast<int>(Variant::pursuit)});
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}
void variants(benchmark::internal::Benchmark* b) {
  for (std::int64_t t : {1000, 10000, 100000})
    for (Variant v : {Variant::pursuit, Variant::htp, Variant::iht}) b->Args({t, static_cast<int>(v)});
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

BENCHMARK_TEMPLATE(BM_TaskStep, double)->Apply(variants);
BENCHMARK_TEMPLATE(BM_TaskStep, float)->Apply(sizes);
BENCHMARK_TEMPLATE(BM_TaskStepWithUStart, float)->Apply(sizes);
BENCHMARK_TEMPLATE(BM_BuildG, double)->Apply(sizes);
BENCHMARK_TEMPLATE(BM_BuildG, float)->Apply(sizes);
BENCHMARK_TEMPLATE(BM_NormalOperator, double)->Apply(sizes);
BENCHMARK_TEMPLATE(BM_NormalOperator, float)->Apply(sizes);
BENCHMARK(BM_StreamRead)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_TEMPLATE(BM_SolveAndQR, double)->Args({1000, 0})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_TEMPLATE(BM_OuterIteration, double)->Apply(sizes);
BENCHMARK_TEMPLATE(BM_OuterIteration, float)->Apply(sizes);

}  // namespace
}  // namespace lrsmeta

BENCHMARK_MAIN();
