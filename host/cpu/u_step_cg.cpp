// The CPU backend's two passes for the U step by conjugate gradients (DESIGN.md section 8; the
// solver itself is the core's, host/core/u_solver.cpp): the normal equations (G + lambda I)
// vec(U~) = v solved without forming G. G = sum_i E_i kron X_i^T X_i, so a product G x is one pass
// over the tasks, each adding X_i^T X_i M E_i (M: x as a d x r' matrix, E_i = E[w'_i w'_i^T]);
// memory is a few d r' vectors per thread, whatever d r'.
#include <omp.h>

#include <algorithm>

#include "cpu/cpu_backend.hpp"

namespace lrsmeta::cpu {

template <typename T>
void CpuBackend<T>::accumulate_rhs(std::vector<double>& v, std::vector<double>& W_hat) {
  const bool augmented = has_prior_;
  const std::int64_t d = d_, r = r_ + (augmented ? 1 : 0), dr = d * r;
  const std::int64_t P_own = static_cast<std::int64_t>(r_) * (r_ + 1) / 2;
  const int n_threads = threads_;
  std::vector<std::vector<double>> parts(static_cast<std::size_t>(n_threads));
#pragma omp parallel num_threads(n_threads)
  {
    std::vector<double>& part = parts[static_cast<std::size_t>(omp_get_thread_num())];
    part.assign(static_cast<std::size_t>(dr + r * r), 0.0);  // v, then W_hat
    std::vector<double> q(static_cast<std::size_t>(d)), w(static_cast<std::size_t>(std::max<std::int64_t>(r, 1)));
#pragma omp for schedule(static)
    for (std::int64_t i = 0; i < t_; ++i) {
      const std::int64_t row0 = data_.task_offsets[i], m = data_.task_offsets[i + 1] - row0;
      if (m == 0) continue;
      const double* w_own = W_.data() + i * r_;
      if (augmented) {
        w[0] = 1.0;
        std::copy(w_own, w_own + r_, w.begin() + 1);
      } else {
        std::copy(w_own, w_own + r_, w.begin());
      }
      std::fill(q.begin(), q.end(), 0.0);
      const std::int32_t* bi = B_index_.data() + i * k_;
      const double* bv = B_value_.data() + i * k_;
      for (std::int64_t j = 0; j < m; ++j) {
        const T* x = data_.X + (row0 + j) * d;
        double e = static_cast<double>(data_.y[row0 + j]);
        for (int s = 0; s < k_; ++s)
          if (bi[s] >= 0) e -= static_cast<double>(x[bi[s]]) * bv[s];
#pragma omp simd
        for (std::int64_t a = 0; a < d; ++a) q[static_cast<std::size_t>(a)] += static_cast<double>(x[a]) * e;
      }
      for (std::int64_t p = 0; p < r; ++p)
        for (std::int64_t a = 0; a < d; ++a) part[static_cast<std::size_t>(a + d * p)] += w[static_cast<std::size_t>(p)] * q[static_cast<std::size_t>(a)];
      // W_hat += m_i E_i, E_i = w' w'^T (+ V_i on w's block under the prior).
      double* Wh = part.data() + dr;
      const double* Vi = augmented ? V_.data() + i * P_own : nullptr;
      for (std::int64_t p = 0; p < r; ++p)
        for (std::int64_t c = 0; c < r; ++c) {
          double e = w[static_cast<std::size_t>(p)] * w[static_cast<std::size_t>(c)];
          if (augmented && p > 0 && c > 0) {
            const std::int64_t a = std::min(p, c) - 1, b = std::max(p, c) - 1;
            e += Vi[a * r_ - a * (a - 1) / 2 + (b - a)];
          }
          Wh[p * r + c] += static_cast<double>(m) * e;
        }
    }
  }
  v.assign(static_cast<std::size_t>(dr), 0.0);
  W_hat.assign(static_cast<std::size_t>(r * r), 0.0);
  for (const std::vector<double>& part : parts) {  // in thread order: reproducible for a thread count
    for (std::int64_t e = 0; e < dr; ++e) v[static_cast<std::size_t>(e)] += part[static_cast<std::size_t>(e)];
    for (std::int64_t e = 0; e < r * r; ++e) W_hat[static_cast<std::size_t>(e)] += part[static_cast<std::size_t>(dr + e)];
  }
}

template <typename T>
void CpuBackend<T>::apply_normal_operator(const std::vector<double>& x, std::vector<double>& y) {
  const bool augmented = has_prior_;
  const std::int64_t d = d_, r = r_ + (augmented ? 1 : 0), dr = d * r;
  const std::int64_t P_own = static_cast<std::int64_t>(r_) * (r_ + 1) / 2;
  if (static_cast<std::int64_t>(x.size()) != dr) throw Error("CPU backend: the U step's vector has the wrong size");
  const int n_threads = threads_;
  cg_parts_.resize(static_cast<std::size_t>(n_threads));
#pragma omp parallel num_threads(n_threads)
  {
    std::vector<double>& acc = cg_parts_[static_cast<std::size_t>(omp_get_thread_num())];
    acc.assign(static_cast<std::size_t>(dr), 0.0);
    std::vector<double> w(static_cast<std::size_t>(std::max<std::int64_t>(r, 1))), z(w.size()), ez(w.size());
    std::vector<double> Mw(static_cast<std::size_t>(d)), g(static_cast<std::size_t>(d)), row(static_cast<std::size_t>(d));
    const double* M = x.data();
#pragma omp for schedule(static)
    for (std::int64_t i = 0; i < t_; ++i) {
      const std::int64_t row0 = data_.task_offsets[i], m = data_.task_offsets[i + 1] - row0;
      if (m == 0) continue;
      const double* w_own = W_.data() + i * r_;
      const T* X = data_.X + row0 * d;
      if (!augmented) {
        // E_i = w w^T: X_i^T X_i M w w^T = (X_i^T X_i (M w)) w^T, two passes over the task's rows.
        for (std::int64_t p = 0; p < r; ++p) w[static_cast<std::size_t>(p)] = w_own[p];
        std::fill(Mw.begin(), Mw.end(), 0.0);
        for (std::int64_t p = 0; p < r; ++p) {
          const double wp = w[static_cast<std::size_t>(p)];
          const double* col = M + d * p;
#pragma omp simd
          for (std::int64_t a = 0; a < d; ++a) Mw[static_cast<std::size_t>(a)] += col[a] * wp;
        }
        std::fill(g.begin(), g.end(), 0.0);
        for (std::int64_t j = 0; j < m; ++j) {
          const T* xj = X + j * d;
          double u = 0.0;
#pragma omp simd reduction(+ : u)
          for (std::int64_t a = 0; a < d; ++a) u += static_cast<double>(xj[a]) * Mw[static_cast<std::size_t>(a)];
#pragma omp simd
          for (std::int64_t a = 0; a < d; ++a) g[static_cast<std::size_t>(a)] += u * static_cast<double>(xj[a]);
        }
        for (std::int64_t p = 0; p < r; ++p) {
          const double wp = w[static_cast<std::size_t>(p)];
          double* out = acc.data() + d * p;
#pragma omp simd
          for (std::int64_t a = 0; a < d; ++a) out[a] += wp * g[static_cast<std::size_t>(a)];
        }
      } else {
        // E_i = w' w'^T + blockdiag(0, V_i): per row, z = M^T x_j, then X_i^T gets x_j (E_i z)^T.
        w[0] = 1.0;
        std::copy(w_own, w_own + r_, w.begin() + 1);
        const double* Vi = V_.data() + i * P_own;
        for (std::int64_t j = 0; j < m; ++j) {
          const T* xj = X + j * d;
          for (std::int64_t a = 0; a < d; ++a) row[static_cast<std::size_t>(a)] = static_cast<double>(xj[a]);
          for (std::int64_t p = 0; p < r; ++p) {
            const double* col = M + d * p;
            double s = 0.0;
#pragma omp simd reduction(+ : s)
            for (std::int64_t a = 0; a < d; ++a) s += col[a] * row[static_cast<std::size_t>(a)];
            z[static_cast<std::size_t>(p)] = s;
          }
          double wz = 0.0;
          for (std::int64_t p = 0; p < r; ++p) wz += w[static_cast<std::size_t>(p)] * z[static_cast<std::size_t>(p)];
          for (std::int64_t p = 0; p < r; ++p) ez[static_cast<std::size_t>(p)] = w[static_cast<std::size_t>(p)] * wz;
          for (std::int64_t p = 0, pq = 0; p < r_; ++p)  // V_i packed upper triangle, w's block
            for (std::int64_t q = p; q < r_; ++q, ++pq) {
              ez[static_cast<std::size_t>(p + 1)] += Vi[pq] * z[static_cast<std::size_t>(q + 1)];
              if (q != p) ez[static_cast<std::size_t>(q + 1)] += Vi[pq] * z[static_cast<std::size_t>(p + 1)];
            }
          for (std::int64_t p = 0; p < r; ++p) {
            const double c = ez[static_cast<std::size_t>(p)];
            double* out = acc.data() + d * p;
#pragma omp simd
            for (std::int64_t a = 0; a < d; ++a) out[a] += c * row[static_cast<std::size_t>(a)];
          }
        }
      }
    }
  }
  y.assign(static_cast<std::size_t>(dr), 0.0);
  for (const std::vector<double>& part : cg_parts_)
    for (std::int64_t e = 0; e < dr; ++e) y[static_cast<std::size_t>(e)] += part[static_cast<std::size_t>(e)];
}

// The members defined here, for both precisions (the class itself is instantiated in cpu_backend.cpp).
#define LRSMETA_CG_MEMBERS(T)                                                                               \
  template void CpuBackend<T>::accumulate_rhs(std::vector<double>&, std::vector<double>&);                   \
  template void CpuBackend<T>::apply_normal_operator(const std::vector<double>&, std::vector<double>&);
LRSMETA_CG_MEMBERS(float)
LRSMETA_CG_MEMBERS(double)
#undef LRSMETA_CG_MEMBERS

}  // namespace lrsmeta::cpu
