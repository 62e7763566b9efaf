// The privacy accountant (zCDP) and the noise of the private release.
#include "lrsmeta/privacy.hpp"

#include <sys/random.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <cstdlib>
#include <sstream>
#include <string>

#include "core/noise.hpp"

namespace lrsmeta {
namespace privacy {

namespace {
void check_delta(double delta) {
  if (!(delta > 0.0 && delta < 1.0)) throw Error("privacy: delta = " + std::to_string(delta) + " must be in (0, 1)");
}
}  // namespace

double gaussian_zcdp(double sensitivity, double sigma) {
  if (!(sensitivity >= 0.0) || !(sigma > 0.0)) throw Error("privacy: need sensitivity >= 0 and sigma > 0");
  return sensitivity * sensitivity / (2.0 * sigma * sigma);
}

double zcdp_to_epsilon(double rho, double delta) {
  check_delta(delta);
  if (!(rho >= 0.0)) throw Error("privacy: rho must be >= 0");
  return rho + 2.0 * std::sqrt(rho * std::log(1.0 / delta));
}

double epsilon_to_zcdp(double epsilon, double delta) {
  check_delta(delta);
  if (!(epsilon > 0.0) || !std::isfinite(epsilon)) throw Error("privacy: epsilon must be finite and > 0");
  // rho + 2 sqrt(rho L) = epsilon  <=>  (sqrt(rho) + sqrt(L))^2 = epsilon + L, with L = ln(1/delta).
  const double L = std::log(1.0 / delta);
  const double root = std::sqrt(L + epsilon) - std::sqrt(L);
  return root * root;
}

double noise_multiplier(double epsilon, double delta, int releases) {
  if (releases <= 0) return 0.0;
  return std::sqrt(static_cast<double>(releases) / (2.0 * epsilon_to_zcdp(epsilon, delta)));
}

int releases(int outer_iterations, bool private_spectral_start) {
  return 2 * outer_iterations + (private_spectral_start ? 1 : 0);
}

double sensitivity_G(const PrivacyOptions& p) { return p.max_samples * p.clip_x * p.clip_x * p.clip_w * p.clip_w; }
double sensitivity_v(const PrivacyOptions& p) { return p.max_samples * p.clip_x * p.clip_y * p.clip_w; }
double sensitivity_spectral(const PrivacyOptions& p) { return p.max_samples * p.clip_x * p.clip_x * p.clip_y * p.clip_y; }

}  // namespace privacy

namespace core {

GaussianNoise::GaussianNoise(const PrivacyOptions& options)
    : from_kernel_(!options.fixed_seed), engine_(options.noise_seed) {
  if (from_kernel_) buffer_.resize(4096);
  used_ = buffer_.size();
}

std::uint64_t GaussianNoise::next_bits() {
  if (!from_kernel_) return engine_();
  if (used_ == buffer_.size()) {
    auto* bytes = reinterpret_cast<unsigned char*>(buffer_.data());
    std::size_t have = 0, want = buffer_.size() * sizeof(std::uint64_t);
    while (have < want) {
      const ssize_t got = ::getrandom(bytes + have, want - have, 0);
      if (got < 0) {
        if (errno == EINTR) continue;
        throw Error(std::string("privacy: getrandom failed (") + std::strerror(errno) + ")");
      }
      have += static_cast<std::size_t>(got);
    }
    used_ = 0;
  }
  return buffer_[used_++];
}

double GaussianNoise::operator()() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  auto uniform = [this] { return (static_cast<double>(next_bits() >> 11) + 0.5) * (1.0 / 9007199254740992.0); };
  const double radius = std::sqrt(-2.0 * std::log(uniform()));
  const double angle = 6.283185307179586 * uniform();
  spare_ = radius * std::sin(angle);
  has_spare_ = true;
  return radius * std::cos(angle);
}

std::string GaussianNoise::state() const {
  if (from_kernel_) return {};
  std::ostringstream out;
  out.precision(17);
  out << engine_ << ' ' << (has_spare_ ? 1 : 0) << ' ' << std::hexfloat << spare_;
  return out.str();
}

void GaussianNoise::restore(const std::string& state) {
  if (from_kernel_) return;
  std::istringstream in(state);
  int spare_flag = 0;
  std::string spare_text;
  in >> engine_ >> spare_flag >> spare_text;
  if (!in || (spare_flag != 0 && spare_flag != 1)) throw Error("privacy: the noise generator's saved state is malformed");
  has_spare_ = spare_flag == 1;
  spare_ = std::strtod(spare_text.c_str(), nullptr);
}

void add_symmetric_noise(double* G, int n, double sigma, GaussianNoise& noise) {
  for (int col = 0; col < n; ++col)
    for (int row = 0; row <= col; ++row) {
      const double e = sigma * noise();
      G[static_cast<std::size_t>(row) + static_cast<std::size_t>(n) * col] += e;
      if (row != col) G[static_cast<std::size_t>(col) + static_cast<std::size_t>(n) * row] += e;
    }
}

void add_noise(double* v, int n, double sigma, GaussianNoise& noise) {
  for (int i = 0; i < n; ++i) v[i] += sigma * noise();
}

}  // namespace core
}  // namespace lrsmeta
