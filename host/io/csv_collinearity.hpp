// Exact collinearity among a CSV table's numeric features, found while it is read (io/csv.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "lrsmeta/io.hpp"

namespace lrsmeta::io {

// Exact collinearity among the numeric features and the intercept (one-hot blocks sum to the
// intercept by construction, so they are left out): their Gram, summed row by row in pass 2, is
// factored column by column; a column the columns before it reproduce (its residual below 1e-12 of
// its squared norm) is named, with those it is a combination of. Its coefficient is then not
// identified by the data; the fit's ridge settles it.
class Collinearity {
 public:
  Collinearity(const FeatureEncoding& enc, const std::vector<std::int64_t>& first_feature);
  template <typename T>
  void add(const T* x) {
    const std::size_t p = names_.size();
    for (std::size_t a = 0; a < p; ++a)
      for (std::size_t b = a; b < p; ++b)
        gram_[a * p + b] += static_cast<double>(x[index_[a]]) * static_cast<double>(x[index_[b]]);
  }
  // One line for each column the columns before it reproduce (or that is all zeros).
  std::vector<std::string> notes() const;

 private:
  std::vector<std::string> names_;
  std::vector<std::int64_t> index_;
  std::vector<double> gram_;  // upper triangle, row-major
};

}  // namespace lrsmeta::io
