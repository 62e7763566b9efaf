// Seeded random numbers that give the same sequence on every platform (std::normal_distribution
// is implementation-defined; mt19937_64 and this Box-Muller transform are not).
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace lrsmeta::core {

class NormalGenerator {
 public:
  explicit NormalGenerator(std::uint64_t seed) : engine_(seed) {}
  // Uniform in (0, 1), never 0: 53 random bits.
  double uniform() { return (static_cast<double>(engine_() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
  double operator()() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double radius = std::sqrt(-2.0 * std::log(uniform()));
    const double angle = 6.283185307179586 * uniform();
    spare_ = radius * std::sin(angle);
    has_spare_ = true;
    return radius * std::cos(angle);
  }
  // Uniform integer in [0, n).
  std::uint64_t below(std::uint64_t n) { return static_cast<std::uint64_t>(uniform() * static_cast<double>(n)) % n; }

 private:
  std::mt19937_64 engine_;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

// A random d x r matrix with orthonormal columns (row-major), from a seed.
std::vector<double> random_orthonormal_basis(std::int64_t d, std::int64_t r, std::uint64_t seed);

}  // namespace lrsmeta::core
