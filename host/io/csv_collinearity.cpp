#include "io/csv_collinearity.hpp"

#include <algorithm>
#include <cmath>

namespace lrsmeta::io {

Collinearity::Collinearity(const FeatureEncoding& enc, const std::vector<std::int64_t>& first_feature) {
  if (enc.intercept) {
    names_.push_back("(intercept)");
    index_.push_back(0);
  }
  for (std::size_t c = 0; c < enc.columns.size(); ++c)
    if (enc.columns[c].levels.empty()) {
      names_.push_back(enc.columns[c].name);
      index_.push_back(first_feature[c]);
    }
  gram_.assign(names_.size() * names_.size(), 0.0);
}

std::vector<std::string> Collinearity::notes() const {
  const std::size_t p = names_.size();
  std::vector<std::string> out;
  std::vector<std::size_t> kept;  // columns accepted so far, and their Cholesky rows
  std::vector<std::vector<double>> L;
  for (std::size_t j = 0; j < p; ++j) {
    const double norm = gram_[j * p + j];
    std::vector<double> l(kept.size());  // L^-1 G[kept, j]
    double residual = norm;
    for (std::size_t a = 0; a < kept.size(); ++a) {
      double v = gram_[std::min(kept[a], j) * p + std::max(kept[a], j)];
      for (std::size_t b = 0; b < a; ++b) v -= L[a][b] * l[b];
      l[a] = v / L[a][a];
      residual -= l[a] * l[a];
    }
    if (norm > 0 && residual > 1e-12 * norm) {
      l.push_back(std::sqrt(residual));
      L.push_back(l);
      kept.push_back(j);
      continue;
    }
    // Coefficients over the kept columns: L^T c = l.
    std::vector<double> coef(kept.size());
    for (std::size_t a = kept.size(); a-- > 0;) {
      double v = l[a];
      for (std::size_t b = a + 1; b < kept.size(); ++b) v -= L[b][a] * coef[b];
      coef[a] = v / L[a][a];
    }
    std::string with;
    for (std::size_t a = 0; a < kept.size(); ++a)
      if (std::fabs(coef[a]) > 1e-9) with += (with.empty() ? "" : ", ") + names_[kept[a]];
    out.push_back("column " + names_[j] + (norm > 0 ? " is an exact linear combination of " + (with.empty() ? "other columns" : with)
                                                   : " is all zeros") +
                  ": its coefficient is not identified by the data (the fit's ridge settles it); --ignore " + names_[j] +
                  " to leave it out");
  }
  return out;
}

}  // namespace lrsmeta::io
