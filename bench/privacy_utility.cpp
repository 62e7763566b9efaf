// Utility of private training (issue: differentially private training): subspace error of U
// against the number of tasks t, for epsilon in {1, 2, 8} and the non-private run, on noiseless
// synthetic data at d = 50, r = 3, k = 2, m = 40. Prints a Markdown table.
//
//   build/bench/privacy_utility [max_tasks]      (default 100000)
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "lrsmeta/io.hpp"
#include "lrsmeta/lrsmeta.hpp"


int main(int argc, char** argv) {
  const std::int64_t max_tasks = argc > 1 ? std::atoll(argv[1]) : 100000;
  const int d = 50, r = 3, k = 2, m = 40;
  // Bounds from the generating distribution (public knowledge, not the data): x ~ N(0, I_d) has
  // norm about sqrt(d); w ~ N(0, I_r) has norm about sqrt(r); a residual y - x^T b = x^T U w has
  // standard deviation about sqrt(r). Tight bounds clip some contributions (a little bias) but
  // cut the noise, which scales with C_x^2 C_w^2.
  lrsmeta::Options base;
  base.rank = r;
  base.sparsity = k;
  // Few outer iterations: every one is paid for in privacy.
  base.iterations = 6;
  base.warm_start_iterations = 2;
  base.seed = 3;
  base.privacy.delta = 1e-6;
  base.privacy.clip_x = std::sqrt(double(d));
  base.privacy.clip_y = 2.0 * std::sqrt(double(r));
  base.privacy.clip_w = 1.5 * std::sqrt(double(r));
  base.privacy.max_samples = m;
  std::printf("| t | epsilon = 1 | epsilon = 2 | epsilon = 8 | non-private |\n|---|---|---|---|---|\n");
  for (std::int64_t t = 1000; t <= max_tasks; t *= 10) {
    lrsmeta::SyntheticSpec spec;
    spec.tasks = t;
    spec.min_samples = spec.max_samples = m;
    spec.d = d;
    spec.r = r;
    spec.k = k;
    spec.seed = 11;
    const lrsmeta::SyntheticData syn = lrsmeta::generate_synthetic(spec);
    std::printf("| %lld |", static_cast<long long>(t));
    for (double eps : {1.0, 2.0, 8.0, 0.0}) {
      lrsmeta::Options o = base;
      o.privacy.enabled = eps > 0;
      o.privacy.epsilon = eps > 0 ? eps : 1.0;
      const auto start = std::chrono::steady_clock::now();
      const lrsmeta::Model model = lrsmeta::fit(syn.data.view(), o);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::printf(" %.3g |", lrsmeta::subspace_distance(syn.U, model.U, d, r));
      std::fprintf(stderr, "t = %lld, epsilon %g: %.1f s, spent epsilon %g\n", static_cast<long long>(t), eps, seconds,
                   model.privacy.epsilon);
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  return 0;
}
