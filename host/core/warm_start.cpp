// A fit's start from a neighbouring fit's state (core/warm_start.hpp).
#include "core/warm_start.hpp"

#include <algorithm>
#include <cmath>

#include "core/random.hpp"
#include "linalg/blas_lapack.hpp"

namespace lrsmeta::core {

namespace {

// Remove from column-major v (d) its projection on the columns of Q (row-major d x q, first q
// columns of width `width`) twice (classical Gram-Schmidt, repeated for rounding).
void project_off(std::vector<double>& v, const std::vector<double>& Q, int d, int q, int width) {
  for (int pass = 0; pass < 2; ++pass)
    for (int p = 0; p < q; ++p) {
      double dot = 0.0;
      for (int a = 0; a < d; ++a) dot += Q[static_cast<std::size_t>(a) * width + p] * v[static_cast<std::size_t>(a)];
      for (int a = 0; a < d; ++a) v[static_cast<std::size_t>(a)] -= dot * Q[static_cast<std::size_t>(a) * width + p];
    }
}

// m's shape (d, t) with r and k: every w 0, every b slot unused.
Model empty_task_parameters(const Model& m, int r, int k) {
  Model tp;
  tp.d = m.d;
  tp.t = m.t;
  tp.r = r;
  tp.k = k;
  tp.W.assign(static_cast<std::size_t>(m.t) * r, 0.0);
  tp.B_index.assign(static_cast<std::size_t>(m.t) * k, -1);
  tp.B_value.assign(static_cast<std::size_t>(m.t) * k, 0.0);
  return tp;
}

// Task i's b from m's, cut or padded to k entries: the largest first where fewer are kept (then in
// their order in m's b), index -1 in the slots left over.
void carry_support(const Model& m, std::int64_t i, int k, Model& tp) {
  const int k0 = static_cast<int>(m.k);
  std::vector<int> slots;
  for (int e = 0; e < k0; ++e)
    if (m.B_index[static_cast<std::size_t>(i * k0 + e)] >= 0) slots.push_back(e);
  if (static_cast<int>(slots.size()) > k) {
    std::stable_sort(slots.begin(), slots.end(), [&](int a, int b) {
      return std::fabs(m.B_value[static_cast<std::size_t>(i * k0 + a)]) > std::fabs(m.B_value[static_cast<std::size_t>(i * k0 + b)]);
    });
    slots.resize(static_cast<std::size_t>(k));
    std::sort(slots.begin(), slots.end());
  }
  for (std::size_t e = 0; e < slots.size(); ++e) {
    tp.B_index[static_cast<std::size_t>(i * k) + e] = m.B_index[static_cast<std::size_t>(i * k0 + slots[e])];
    tp.B_value[static_cast<std::size_t>(i * k) + e] = m.B_value[static_cast<std::size_t>(i * k0 + slots[e])];
  }
}

}  // namespace

std::vector<double> directions_off_span(const std::vector<double>& M, const std::vector<double>& U, int d, int r, int count,
                                        std::uint64_t seed) {
  std::vector<double> candidates;  // column-major d x n_cand
  int n_cand = 0;
  if (!M.empty()) {
    // P M P with P = I - U U^T: its top eigenvectors lie in the orthogonal complement.
    std::vector<double> PM(M);
    for (int b = 0; b < d; ++b) {  // columns of M, then rows (M symmetric)
      std::vector<double> col(PM.begin() + static_cast<std::ptrdiff_t>(b) * d, PM.begin() + static_cast<std::ptrdiff_t>(b + 1) * d);
      project_off(col, U, d, r, r);
      std::copy(col.begin(), col.end(), PM.begin() + static_cast<std::ptrdiff_t>(b) * d);
    }
    for (int a = 0; a < d; ++a) {
      std::vector<double> row(static_cast<std::size_t>(d));
      for (int b = 0; b < d; ++b) row[static_cast<std::size_t>(b)] = PM[static_cast<std::size_t>(b) * d + a];
      project_off(row, U, d, r, r);
      for (int b = 0; b < d; ++b) PM[static_cast<std::size_t>(b) * d + a] = row[static_cast<std::size_t>(b)];
    }
    candidates = linalg::top_eigenvectors(d, PM, count);
    n_cand = count;
  }
  NormalGenerator gen(seed * 0x94d049bb133111ebULL + 0x632be59bd9b4e019ULL);
  std::vector<double> out(static_cast<std::size_t>(d) * count, 0.0);  // row-major d x count
  std::vector<double> both(static_cast<std::size_t>(d) * (r + count), 0.0);  // row-major [U, out]
  for (int a = 0; a < d; ++a)
    for (int p = 0; p < r; ++p) both[static_cast<std::size_t>(a) * (r + count) + p] = U[static_cast<std::size_t>(a) * r + p];
  for (int j = 0; j < count; ++j) {
    // The eigenvector (or a draw), made orthogonal to U and the directions before it; a draw where
    // what is left is too small to be a direction (M of lower rank than asked).
    std::vector<double> v(static_cast<std::size_t>(d));
    for (int attempt = 0; attempt < 8; ++attempt) {
      for (int a = 0; a < d; ++a)
        v[static_cast<std::size_t>(a)] = j < n_cand && attempt == 0 ? candidates[static_cast<std::size_t>(j) * d + a] : gen();
      double before = 0.0;
      for (double x : v) before += x * x;
      project_off(v, both, d, r + j, r + count);
      double norm = 0.0;
      for (double x : v) norm += x * x;
      if (norm > 1e-12 * before && norm > 0) {
        norm = std::sqrt(norm);
        for (double& x : v) x /= norm;
        break;
      }
    }
    for (int a = 0; a < d; ++a) {
      out[static_cast<std::size_t>(a) * count + j] = v[static_cast<std::size_t>(a)];
      both[static_cast<std::size_t>(a) * (r + count) + r + j] = v[static_cast<std::size_t>(a)];
    }
  }
  return out;
}

NeighbourState state_from_neighbour(const Checkpoint& from, int r, int k, const std::vector<double>& new_columns, bool keep_basis) {
  const Model& m = from.model;
  const int d = static_cast<int>(m.d), r0 = static_cast<int>(m.r), k0 = static_cast<int>(m.k);
  const std::int64_t t = m.t;
  const int kept = std::min(r, r0), added = r - kept;
  if (keep_basis && r != r0) throw Error("warm start: a held basis is kept only at its own rank");
  if (added > 0 && new_columns.size() != static_cast<std::size_t>(d) * added)
    throw Error("warm start: " + std::to_string(added) + " new columns of U were needed, " + std::to_string(new_columns.size() / std::max(d, 1)) +
                " given");
  if (m.U.size() != static_cast<std::size_t>(d) * r0 || m.Sigma.size() != static_cast<std::size_t>(r0) * r0 ||
      m.W.size() != static_cast<std::size_t>(t) * r0 || m.B_index.size() != static_cast<std::size_t>(t) * k0 ||
      m.B_value.size() != static_cast<std::size_t>(t) * k0)
    throw Error("warm start: the neighbouring fit's state does not have its own shape");
  // Sigma's eigenvectors Q (r0 x r0, column-major, largest first): the basis the kept columns are
  // in (kept as it is: Q = I, Sigma not diagonalised).
  std::vector<double> Q(static_cast<std::size_t>(r0) * r0, 0.0), lambda(static_cast<std::size_t>(r0), 0.0);
  if (keep_basis) {
    for (int j = 0; j < r0; ++j) Q[static_cast<std::size_t>(j) * r0 + j] = 1.0;
  } else if (r0 > 0) {
    std::vector<double> ascending;
    const std::vector<double> E = linalg::symmetric_eigen(r0, m.Sigma, &ascending);  // Sigma symmetric: either layout
    for (int j = 0; j < r0; ++j) {
      const int from_j = r0 - 1 - j;
      lambda[static_cast<std::size_t>(j)] = std::max(0.0, ascending[static_cast<std::size_t>(from_j)]);
      std::copy(E.begin() + static_cast<std::ptrdiff_t>(from_j) * r0, E.begin() + static_cast<std::ptrdiff_t>(from_j + 1) * r0,
                Q.begin() + static_cast<std::ptrdiff_t>(j) * r0);
    }
  }
  NeighbourState s;
  s.U.assign(static_cast<std::size_t>(d) * r, 0.0);
  for (int a = 0; a < d; ++a) {
    for (int j = 0; j < kept; ++j) {
      double x = 0.0;
      for (int p = 0; p < r0; ++p) x += m.U[static_cast<std::size_t>(a) * r0 + p] * Q[static_cast<std::size_t>(j) * r0 + p];
      s.U[static_cast<std::size_t>(a) * r + j] = x;
    }
    for (int j = 0; j < added; ++j) s.U[static_cast<std::size_t>(a) * r + kept + j] = new_columns[static_cast<std::size_t>(a) * added + j];
  }
  // A new direction's variance: kNewDirectionVariance times the mean of from's, or without any, of
  // the start from scratch's (core::initial_prior: the coefficients' scale shared among the r
  // directions).
  double new_variance = 0.0;
  for (int j = 0; j < r0; ++j) new_variance += lambda[static_cast<std::size_t>(j)] / r0;
  if (!(new_variance > 0) && r > 0) new_variance = from.coefficient_scale / r;
  new_variance *= kNewDirectionVariance;
  s.Sigma.assign(static_cast<std::size_t>(r) * r, 0.0);
  for (int j = 0; j < r; ++j) s.Sigma[static_cast<std::size_t>(j) * r + j] = j < kept ? lambda[static_cast<std::size_t>(j)] : new_variance;
  if (keep_basis) s.Sigma = m.Sigma;
  Model& tp = s.task_parameters;
  tp = empty_task_parameters(m, r, k);
  for (std::int64_t i = 0; i < t; ++i) {
    for (int j = 0; j < kept; ++j) {
      double x = 0.0;
      for (int p = 0; p < r0; ++p) x += Q[static_cast<std::size_t>(j) * r0 + p] * m.W[static_cast<std::size_t>(i * r0 + p)];
      tp.W[static_cast<std::size_t>(i * r + j)] = x;
    }
    carry_support(m, i, k, tp);
  }
  return s;
}

std::vector<double> held_basis(LowRankBasis basis, std::int64_t constant, int d, int r) {
  std::vector<double> U(static_cast<std::size_t>(d) * r, 0.0);
  if (basis == LowRankBasis::intercept) U[static_cast<std::size_t>(constant) * r] = 1.0;
  else
    for (int a = 0; a < d; ++a) U[static_cast<std::size_t>(a) * r + a] = 1.0;
  return U;
}

NeighbourState state_in_held_basis(const Checkpoint& from, LowRankBasis basis, std::int64_t constant, int r, int k) {
  const Model& m = from.model;
  const int d = static_cast<int>(m.d), r0 = static_cast<int>(m.r), k0 = static_cast<int>(m.k);
  const std::int64_t t = m.t;
  const bool intercept = basis == LowRankBasis::intercept;
  if (!intercept && basis != LowRankBasis::slopes) throw Error("warm start: a held basis is the intercept's or the slopes'");
  if (constant < 0 || constant >= d) throw Error("warm start: no constant feature to hold U at");
  if (r != (intercept ? 1 : d)) throw Error("warm start: a held basis has rank 1 (intercept) or d (slopes)");
  if (m.U.size() != static_cast<std::size_t>(d) * r0 || m.Sigma.size() != static_cast<std::size_t>(r0) * r0 ||
      m.W.size() != static_cast<std::size_t>(t) * r0 || m.B_index.size() != static_cast<std::size_t>(t) * k0 ||
      m.B_value.size() != static_cast<std::size_t>(t) * k0)
    throw Error("warm start: the neighbouring fit's state does not have its own shape");
  // The held U: the constant feature's axis, or every feature's (fit_fixed's own start).
  NeighbourState s;
  s.U = held_basis(basis, constant, d, r);
  // H^T x for x in feature space: its constant entry, or all of it.
  auto held_coordinates = [&](const std::vector<double>& x, double* out) {
    if (intercept) *out = x[static_cast<std::size_t>(constant)];
    else std::copy(x.begin(), x.end(), out);
  };
  // from's spread of theta, U Sigma U^T, on the constant feature's axis (own) and on the others
  // (shared: its mean variance), the slopes model's two variances; a variance from's model does not
  // have (r = 0, or a random intercept's slopes) starts at kNewDirectionVariance times the one it
  // has, or of the scale a start from scratch takes.
  double own = 0.0, trace = 0.0;
  for (int a = 0; a < d; ++a)
    for (int p = 0; p < r0; ++p)
      for (int q = 0; q < r0; ++q) {
        const double c = m.U[static_cast<std::size_t>(a) * r0 + p] * m.Sigma[static_cast<std::size_t>(p) * r0 + q] * m.U[static_cast<std::size_t>(a) * r0 + q];
        trace += c;
        if (a == constant) own += c;
      }
  own = std::max(0.0, own);
  double shared = d > 1 ? std::max(0.0, trace - own) / (d - 1) : 0.0;
  const double scale = own > 0 ? own : shared > 0 ? shared : from.coefficient_scale;
  if (!(own > 0)) own = kNewDirectionVariance * scale;
  if (!(shared > 0)) shared = kNewDirectionVariance * scale;
  s.Sigma.assign(static_cast<std::size_t>(r) * r, 0.0);
  for (int j = 0; j < r; ++j) s.Sigma[static_cast<std::size_t>(j) * r + j] = intercept || j == constant ? own : shared;
  Model& tp = s.task_parameters;
  tp = empty_task_parameters(m, r, k);
  std::vector<double> deviation(static_cast<std::size_t>(d));
  for (std::int64_t i = 0; i < t; ++i) {
    // The task's low-rank deviation U w_i in the held coordinates.
    for (int a = 0; a < d; ++a) {
      double x = 0.0;
      for (int p = 0; p < r0; ++p) x += m.U[static_cast<std::size_t>(a) * r0 + p] * m.W[static_cast<std::size_t>(i * r0 + p)];
      deviation[static_cast<std::size_t>(a)] = x;
    }
    held_coordinates(deviation, tp.W.data() + i * r);
    carry_support(m, i, k, tp);
  }
  return s;
}

}  // namespace lrsmeta::core
