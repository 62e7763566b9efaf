// GPU timings at the anchor sizes of the GPU issue: d = 100, r = 10, k = 5, m = 20, float data,
// t = 1e4, 1e5, 1e6. Reports the task step (with its effective bandwidth: the bytes of X over the
// time, against a device-to-device copy measured here), the U step (with G's FLOP/s) and whole
// outer iterations, for the paper's model and for the default model (the empirical-Bayes prior).
// Every benchmark reports an error and skips where no GPU is usable.
//
//   build/bench/bench_gpu --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <cuda_runtime_api.h>

#include <map>
#include <memory>
#include <tuple>

#include "core/backend.hpp"
#include "core/communicator.hpp"
#include "core/u_solver.hpp"
#include "cuda/cuda_backend.hpp"
#include "anchor_data.hpp"
#include "lrsmeta/io.hpp"

namespace lrsmeta {
namespace {

using bench::kD;
using bench::kK;
using bench::kM;
using bench::kR;

struct Fixture {
  Dataset<float> data;
  std::unique_ptr<core::Backend> backend;
};

// The prior as the empirical-Bayes fit would hand the backend after its first estimates (Sigma
// isotropic, s2 at the anchor data's noise, b's prior and pi fixed): the default model's steps.
const core::PriorState& anchor_prior() {
  static const core::PriorState prior = [] {
    core::PriorState p;
    p.beta.assign(static_cast<std::size_t>(kD), 0.0);
    p.Sigma.assign(static_cast<std::size_t>(kR) * kR, 0.0);
    for (int q = 0; q < kR; ++q) p.Sigma[static_cast<std::size_t>(q) * kR + q] = 1.0;
    p.noise_variance = 0.01;
    p.b_precision = p.noise_variance / 1.0;
    p.support_threshold = 2.0;
    p.inclusion_probability = 0.05;
    return p;
  }();
  return prior;
}

Options anchor_options(Variant variant, bool prior) {
  Options o;
  o.rank = kR;
  o.sparsity = kK;
  o.variant = variant;
  o.prior = prior ? Prior::automatic : Prior::none;
  o.u_solver = USolver::direct;
  return o;
}

// One direct U step with the core's solve policy, as a fit runs it (the joint [beta, U] system
// under the prior).
double u_step(core::Backend& backend, bool prior = false) {
  core::SingleProcess alone;
  core::UStep step(backend, anchor_options(Variant::pursuit, prior), alone);
  return step.run(nullptr, prior ? &anchor_prior() : nullptr);
}

// A backend on the anchor data after two warm-start iterations (the paper's model) or, with the
// prior, one warm-start step, stepped once at sparsity k.
core::Backend* backend_for(std::int64_t t, Variant variant, bool prior = false) {
  static std::map<std::tuple<std::int64_t, int, bool>, std::unique_ptr<Fixture>> cache;
  auto& slot = cache[{t, static_cast<int>(variant), prior}];
  if (!slot) {
    slot = std::make_unique<Fixture>();
    slot->data = bench::anchor_data<float>(t);
    const Options o = anchor_options(variant, prior);
    slot->backend = core::make_cuda_backend(slot->data.view(), o);
    slot->backend->set_U(bench::anchor_U());
    if (prior) {
      slot->backend->set_prior(&anchor_prior());
      slot->backend->task_step_all(0);
    } else {
      for (int it = 0; it < 2; ++it) {
        slot->backend->task_step_all(0);
        u_step(*slot->backend);
      }
    }
    slot->backend->task_step_all(kK);
  }
  return slot->backend.get();
}

bool skip_without_gpu(benchmark::State& state) {
  if (cuda_available()) return false;
  state.SkipWithError("no usable CUDA device");
  return true;
}

void BM_DeviceCopy(benchmark::State& state) {
  if (skip_without_gpu(state)) return;
  const std::size_t bytes = std::size_t{1} << 30;
  void *a = nullptr, *b = nullptr;
  cudaMalloc(&a, bytes);
  cudaMalloc(&b, bytes);
  for (auto _ : state) {
    cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);
    cudaDeviceSynchronize();
  }
  // A copy reads and writes every byte.
  state.counters["GB_per_s"] = benchmark::Counter(2.0 * bytes / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  cudaFree(a);
  cudaFree(b);
}

void BM_GpuTaskStep(benchmark::State& state) {
  if (skip_without_gpu(state)) return;
  const std::int64_t t = state.range(0);
  const Variant variant = static_cast<Variant>(state.range(1));
  core::Backend* backend = backend_for(t, variant);
  for (auto _ : state) benchmark::DoNotOptimize(backend->task_step_all(kK));  // returns after the device finishes
  const double x_bytes = static_cast<double>(t) * kM * kD * sizeof(float);
  state.counters["X_GB_per_s"] = benchmark::Counter(x_bytes / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(to_string(variant));
}

void BM_GpuUStep(benchmark::State& state) {
  if (skip_without_gpu(state)) return;
  const std::int64_t t = state.range(0);
  core::Backend* backend = backend_for(t, Variant::pursuit);
  for (auto _ : state) benchmark::DoNotOptimize(u_step(*backend));
  const double P = kR * (kR + 1) / 2.0, Q = kD * (kD + 1) / 2.0;
  state.counters["G_GFLOPs"] = benchmark::Counter((2.0 * P * Q + 2.0 * Q * kM) * t / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_GpuOuterIteration(benchmark::State& state) {
  if (skip_without_gpu(state)) return;
  core::Backend* backend = backend_for(state.range(0), Variant::pursuit);
  for (auto _ : state) {
    backend->task_step_all(kK);
    benchmark::DoNotOptimize(u_step(*backend));
  }
}

// The default model (the prior): the task step with its evidence search, posterior and mapping
// back, and a whole outer iteration with the joint U step.
void BM_GpuPriorTaskStep(benchmark::State& state) {
  if (skip_without_gpu(state)) return;
  core::Backend* backend = backend_for(state.range(0), Variant::pursuit, true);
  for (auto _ : state) benchmark::DoNotOptimize(backend->task_step_all(kK));
}

void BM_GpuPriorOuterIteration(benchmark::State& state) {
  if (skip_without_gpu(state)) return;
  core::Backend* backend = backend_for(state.range(0), Variant::pursuit, true);
  for (auto _ : state) {
    backend->task_step_all(kK);
    benchmark::DoNotOptimize(u_step(*backend, true));
  }
}

void sizes(benchmark::internal::Benchmark* b) {
  for (std::int64_t t : {10000, 100000, 1000000}) b->Args({t, 0});
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}
void variants(benchmark::internal::Benchmark* b) {
  for (std::int64_t t : {10000, 100000, 1000000})
    for (int v : {0, 1, 2}) b->Args({t, v});
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

BENCHMARK(BM_DeviceCopy)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_GpuTaskStep)->Apply(variants);
BENCHMARK(BM_GpuUStep)->Apply(sizes);
BENCHMARK(BM_GpuOuterIteration)->Apply(sizes);
BENCHMARK(BM_GpuPriorTaskStep)->Apply(sizes);
BENCHMARK(BM_GpuPriorOuterIteration)->Apply(sizes);

}  // namespace
}  // namespace lrsmeta

BENCHMARK_MAIN();
