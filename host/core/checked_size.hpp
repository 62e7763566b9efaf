// Sizes computed from untrusted counts (a file header's shape, a model's d, r, k and t): products
// with overflow checks, so that a hostile claim is refused rather than wrapped to a small number.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "lrsmeta/lrsmeta.hpp"

namespace lrsmeta::core {

// a * b, or nothing when either is negative or the product exceeds int64's range.
inline std::optional<std::int64_t> checked_multiply(std::int64_t a, std::int64_t b) {
  std::int64_t out = 0;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &out)) return std::nullopt;
  return out;
}

// The product of the dimensions (1 for none), or nothing as above.
inline std::optional<std::int64_t> checked_product(const std::vector<std::int64_t>& dims) {
  std::int64_t out = 1;
  for (std::int64_t e : dims) {
    const std::optional<std::int64_t> next = checked_multiply(out, e);
    if (!next) return std::nullopt;
    out = *next;
  }
  return out;
}

// The product, or an Error "<what>: <a> x <b> ... is too large" naming the caller's file or field.
inline std::int64_t product_or_throw(const std::vector<std::int64_t>& dims, const std::string& what) {
  const std::optional<std::int64_t> p = checked_product(dims);
  if (p) return *p;
  std::string text;
  for (std::int64_t e : dims) text += (text.empty() ? "" : " x ") + std::to_string(e);
  throw Error(what + ": " + text + (std::any_of(dims.begin(), dims.end(), [](std::int64_t e) { return e < 0; })
                                         ? " has a negative dimension"
                                         : " overflows a 64-bit count"));
}

}  // namespace lrsmeta::core
