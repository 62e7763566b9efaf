// Distances between fitted and true parameters (lrsmeta.hpp): the fit loop's change in U, and the
// checks of recovery in the tests, the CLI's eval and the benchmarks.
#include <cmath>
#include <cstdint>
#include <vector>

#include "lrsmeta/lrsmeta.hpp"

namespace lrsmeta {

double subspace_distance(const std::vector<double>& U, const std::vector<double>& V, std::int64_t d, std::int64_t r) {
  if (U.size() != static_cast<std::size_t>(d * r) || V.size() != U.size()) throw Error("subspace_distance: U and V must be d x r");
  // C = U^T V, then ||V - U C||_F.
  std::vector<double> C(static_cast<std::size_t>(r * r), 0.0);
  for (std::int64_t a = 0; a < d; ++a)
    for (std::int64_t p = 0; p < r; ++p)
      for (std::int64_t q = 0; q < r; ++q) C[static_cast<std::size_t>(p * r + q)] += U[static_cast<std::size_t>(a * r + p)] * V[static_cast<std::size_t>(a * r + q)];
  double total = 0;
  for (std::int64_t a = 0; a < d; ++a)
    for (std::int64_t q = 0; q < r; ++q) {
      double e = V[static_cast<std::size_t>(a * r + q)];
      for (std::int64_t p = 0; p < r; ++p) e -= U[static_cast<std::size_t>(a * r + p)] * C[static_cast<std::size_t>(p * r + q)];
      total += e * e;
    }
  return std::sqrt(total);
}

double relative_error(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) throw Error("relative_error: sizes differ");
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

}  // namespace lrsmeta
