#include "core/fingerprint.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

namespace lrsmeta::core {
namespace {

constexpr std::uint64_t kMultiplier = 0x9e3779b97f4a7c15ULL;

// The finaliser of SplitMix64: every input bit reaches every output bit.
std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// One block: four independent lanes over 8-byte words (so the multiplies overlap), the tail bytes
// zero-padded, then the lanes and the length folded together.
std::uint64_t block_hash(const unsigned char* p, std::size_t bytes, std::uint64_t seed) {
  std::uint64_t lane[4] = {seed, seed ^ 0x1234567ULL, seed ^ 0x89abcdefULL, seed ^ 0xfedcba98ULL};
  std::size_t at = 0;
  for (; at + 32 <= bytes; at += 32)
    for (int l = 0; l < 4; ++l) {
      std::uint64_t w;
      std::memcpy(&w, p + at + 8 * l, 8);
      lane[l] = (lane[l] ^ w) * kMultiplier;
      lane[l] ^= lane[l] >> 29;
    }
  unsigned char tail[32] = {0};
  std::memcpy(tail, p + at, bytes - at);
  for (int l = 0; l < 4; ++l) {
    std::uint64_t w;
    std::memcpy(&w, tail + 8 * l, 8);
    lane[l] = (lane[l] ^ w) * kMultiplier;
  }
  std::uint64_t h = mix(bytes);
  for (int l = 0; l < 4; ++l) h = mix(h ^ lane[l]);
  return h;
}

}  // namespace

std::uint64_t content_hash(const void* data, std::size_t bytes) {
  constexpr std::size_t kBlock = std::size_t{1} << 20;
  const auto* p = static_cast<const unsigned char*>(data);
  const std::int64_t blocks = static_cast<std::int64_t>((bytes + kBlock - 1) / kBlock);
  std::vector<std::uint64_t> hashes(static_cast<std::size_t>(blocks));
#pragma omp parallel for schedule(static)
  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::size_t start = static_cast<std::size_t>(b) * kBlock;
    const std::size_t len = std::min(kBlock, bytes - start);
    hashes[static_cast<std::size_t>(b)] = block_hash(p + start, len, static_cast<std::uint64_t>(b) * kMultiplier + 1);
  }
  std::uint64_t h = mix(static_cast<std::uint64_t>(bytes) + 0x5bd1e995ULL);
  for (std::uint64_t x : hashes) h = mix(h ^ x) + kMultiplier;
  return h;
}

template <typename T>
std::uint64_t data_fingerprint(const TaskDataView<T>& data) {
  std::uint64_t h = mix(static_cast<std::uint64_t>(data.n) ^ (static_cast<std::uint64_t>(data.d) << 40) ^
                        (static_cast<std::uint64_t>(data.t) << 20) ^ sizeof(T));
  h = mix(h ^ content_hash(data.task_offsets, static_cast<std::size_t>(data.t + 1) * sizeof(std::int64_t)));
  if (data.y) h = mix(h ^ content_hash(data.y, static_cast<std::size_t>(data.n) * sizeof(T)));
  h = mix(h ^ content_hash(data.X, static_cast<std::size_t>(data.n * data.d) * sizeof(T)));
  return h;
}
template std::uint64_t data_fingerprint(const TaskDataView<float>&);
template std::uint64_t data_fingerprint(const TaskDataView<double>&);

}  // namespace lrsmeta::core
