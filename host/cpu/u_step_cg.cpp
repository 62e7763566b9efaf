// The CPU backend's two passes for the U step by conjugate gradients (docs/design.md section 8; the
// solver itself is the core's, host/core/u_solver.cpp): the normal equations (G + lambda I)
// vec(U~) = v solved without forming G. G = sum_i E_i kron X_i^T X_i, so a product G x is one pass
// over the tasks, each adding X_i^T X_i M E_i (M: x as a d x r' matrix, E_i = E[w'_i w'_i^T]);
// memory is a few d r' vectors per thread, whatever d r'.
#include <omp.h>

#include <algorithm>
#include <type_traits>

#include "cpu/cpu_backend.hpp"
#include "cpu/task_step.hpp"

namespace lrsmeta::cpu {

namespace {
// out (d x r, column-major) += q w^T: a task's share of a d x r sum.
template <typename V>
void add_outer_product(double* out, std::int64_t d, const double* w, std::int64_t r, const V* q) {
  for (std::int64_t p = 0; p < r; ++p) {
    const double wp = w[p];
    double* column = out + d * p;
#pragma omp simd
    for (std::int64_t a = 0; a < d; ++a) column[a] += wp * static_cast<double>(q[a]);
  }
}
}  // namespace

// w' = (1, w_i) under the prior, w_i without; returns r'.
template <typename T>
std::int64_t CpuBackend<T>::extended_w(std::int64_t i, double* w) const {
  const double* w_own = W_.data() + i * r_;
  if (!has_prior_) {
    std::copy(w_own, w_own + r_, w);
    return r_;
  }
  w[0] = 1.0;
  std::copy(w_own, w_own + r_, w + 1);
  return r_ + 1;
}

// Task i's share of v (dr', column-major) and W_hat (r' x r') in `part`: v += w' kron X_i^T (y_i -
// X_i b_i), W_hat += m_i E_i, E_i = w' w'^T (+ V_i on w's block under the prior).
template <typename T>
void CpuBackend<T>::rhs_of_task(std::int64_t i, double* part, CgScratch& s) const {
  const std::int64_t d = d_, row0 = data_.task_offsets[i], m = data_.task_offsets[i + 1] - row0;
  const std::int64_t r = extended_w(i, s.w.data()), dr = d * r;
  double* q = s.q.data();
  std::fill(q, q + d, 0.0);
  const std::int32_t* bi = B_index_.data() + i * k_;
  const double* bv = B_value_.data() + i * k_;
  if (static_cast<std::int64_t>(s.e.size()) < m) s.e.resize(static_cast<std::size_t>(m));
  double* e = s.e.data();  // y_i - X_i b_i
  for (std::int64_t j = 0; j < m; ++j) {
    const T* x = data_.X + (row0 + j) * d;
    double ej = static_cast<double>(data_.y[row0 + j]);
    for (int c = 0; c < k_; ++c)
      if (bi[c] >= 0) ej -= static_cast<double>(x[bi[c]]) * bv[c];
    e[j] = ej;
  }
  task_detail::add_transposed_product(data_.X + row0 * d, d, static_cast<int>(m), 0, d_, e, q);  // q = X_i^T e
  add_outer_product(part, d, s.w.data(), r, q);
  double* Wh = part + dr;
  const std::int64_t P_own = static_cast<std::int64_t>(r_) * (r_ + 1) / 2;
  const double* Vi = has_prior_ ? V_.data() + i * P_own : nullptr;
  const double* w = s.w.data();
  const double mi = static_cast<double>(m);
  for (std::int64_t p = 0; p < r; ++p) {  // branch-free rows: this runs for every task
    const double mw = mi * w[p];
    double* row = Wh + p * r;
#pragma omp simd
    for (std::int64_t c = 0; c < r; ++c) row[c] += mw * w[c];
  }
  if (Vi)  // V_i on w's block (after beta's row and column)
    for (std::int64_t p = 0, pq = 0; p < r_; ++p)
      for (std::int64_t c = p; c < r_; ++c, ++pq) {
        Wh[(p + 1) * r + c + 1] += mi * Vi[pq];
        if (c != p) Wh[(c + 1) * r + p + 1] += mi * Vi[pq];
      }
}

// Task i's share of G x: acc += X_i^T X_i M E_i (M: x as d x r', column-major).
template <typename T>
void CpuBackend<T>::operator_of_task(std::int64_t i, const double* M, double* acc, CgScratch& s) const {
  const std::int64_t d = d_, row0 = data_.task_offsets[i], m = data_.task_offsets[i + 1] - row0;
  const std::int64_t r = extended_w(i, s.w.data());
  const double* w = s.w.data();
  const T* X = data_.X + row0 * d;
  if (!has_prior_) {
    // E_i = w w^T: X_i^T X_i M w w^T = (X_i^T X_i (M w)) w^T, two passes over the task's rows.
    // Those two run in the data's precision T, as the direct solve forms X_i^T X_i (float data:
    // twice the lanes, and no widening of every entry of X twice; the error is float's, as G's
    // there); M w and the sum over the tasks are in double.
    double* __restrict Mw = s.Mw.data();
    std::fill(Mw, Mw + d, 0.0);
    for (std::int64_t p = 0; p < r; ++p) {
      const double wp = w[p];
      const double* col = M + d * p;
#pragma omp simd
      for (std::int64_t a = 0; a < d; ++a) Mw[a] += col[a] * wp;
    }
    T* __restrict Mw_t = s.Mw_data.data();
    for (std::int64_t a = 0; a < d; ++a) Mw_t[a] = static_cast<T>(Mw[a]);
    // g = X_i^T (X_i Mw), four rows at a time: four independent dot products (a single one waits
    // on its own additions) and one pass over g for the four updates.
    T* __restrict g = s.g_data.data();
    std::fill(g, g + d, T(0));
    std::int64_t j = 0;
    for (; j + 4 <= m; j += 4) {
      const T* __restrict x0 = X + j * d;
      const T* __restrict x1 = x0 + d;
      const T* __restrict x2 = x1 + d;
      const T* __restrict x3 = x2 + d;
      T u0 = 0, u1 = 0, u2 = 0, u3 = 0;
#pragma omp simd reduction(+ : u0, u1, u2, u3)
      for (std::int64_t a = 0; a < d; ++a) {
        const T c = Mw_t[a];
        u0 += x0[a] * c;
        u1 += x1[a] * c;
        u2 += x2[a] * c;
        u3 += x3[a] * c;
      }
#pragma omp simd
      for (std::int64_t a = 0; a < d; ++a) g[a] += u0 * x0[a] + u1 * x1[a] + u2 * x2[a] + u3 * x3[a];
    }
    for (; j < m; ++j) {
      const T* __restrict xj = X + j * d;
      T u = 0;
#pragma omp simd reduction(+ : u)
      for (std::int64_t a = 0; a < d; ++a) u += xj[a] * Mw_t[a];
#pragma omp simd
      for (std::int64_t a = 0; a < d; ++a) g[a] += u * xj[a];
    }
    add_outer_product(acc, d, w, r, g);
    return;
  }
  // E_i = w' w'^T + blockdiag(0, V_i), of rank up to r': X_i^T (X_i M) E_i by two small GEMMs in
  // the data's precision (as the direct solve forms X_i^T X_i), with E_i applied between them in
  // double: 2 m d r' multiply-adds a task at GEMM's rate (per-row dot products ran at about a fifth
  // of it). M in the data's precision (s.M_data) is the pass's, converted once.
  const std::int64_t P_own = static_cast<std::int64_t>(r_) * (r_ + 1) / 2;
  const double* Vi = V_.data() + i * P_own;
  double* E = s.E.data();  // r' x r', row-major
  for (std::int64_t p = 0; p < r; ++p)
    for (std::int64_t c = 0; c < r; ++c) E[p * r + c] = w[p] * w[c];
  for (std::int64_t p = 0, pq = 0; p < r_; ++p)  // V_i packed upper triangle, on w's block
    for (std::int64_t q = p; q < r_; ++q, ++pq) {
      E[(p + 1) * r + q + 1] += Vi[pq];
      if (q != p) E[(q + 1) * r + p + 1] += Vi[pq];
    }
  if (static_cast<std::int64_t>(s.XM.size()) < m * r) {
    s.XM.resize(static_cast<std::size_t>(m * r));
    s.XME.resize(s.XM.size());
  }
  T* XM = s.XM.data();
  T* XME = s.XME.data();
  const int mi = static_cast<int>(m), ri = static_cast<int>(r), di = static_cast<int>(d);
  linalg::gemm_nt(mi, ri, di, X, s.M_data, XM);  // X_i M: m x r'
  // X_i M E_i by a GEMM in double (float data: X_i M widened, the product narrowed): a dot product
  // per entry waited on its own additions, about a fifth of the pass.
  if constexpr (std::is_same_v<T, double>) {
    linalg::gemm_nn(mi, ri, ri, XM, E, XME);
  } else {
    if (s.XM_wide.size() < static_cast<std::size_t>(m * r)) {
      s.XM_wide.resize(static_cast<std::size_t>(m * r));
      s.XME_wide.resize(s.XM_wide.size());
    }
    double* XMw = s.XM_wide.data();
    double* XMEw = s.XME_wide.data();
    for (std::int64_t e = 0; e < m * r; ++e) XMw[e] = static_cast<double>(XM[e]);
    linalg::gemm_nn(mi, ri, ri, XMw, E, XMEw);
    for (std::int64_t e = 0; e < m * r; ++e) XME[e] = static_cast<T>(XMEw[e]);
  }
  T* product = s.product.data();  // (X_i M E_i)^T X_i: r' x d, the layout of acc
  linalg::gemm_tn(ri, di, mi, XME, X, product);
  for (std::int64_t e = 0; e < d * r; ++e) acc[e] += static_cast<double>(product[e]);
}

// Task i's share of cg's start, right after its task step (ws holds that step's residual e_i):
// v and W_hat, then in `third` either the residual's share X_i^T e_i w_i^T (residual_from_tasks:
// no prior, x0 the task steps' U) or G_i x0 (M_data in s: x0 in the data's precision).
template <typename T>
void CpuBackend<T>::start_of_task(std::int64_t i, const TaskWorkspace& ws, bool residual_from_tasks, const double* x0,
                                  double* part, CgScratch& s) const {
  const std::int64_t r = r_ + (has_prior_ ? 1 : 0), dr = static_cast<std::int64_t>(d_) * r;
  rhs_of_task(i, part, s);
  double* third = part + dr + r * r;
  if (!residual_from_tasks) {
    operator_of_task(i, x0, third, s);
    return;
  }
  const std::int64_t row0 = data_.task_offsets[i];
  const int m = static_cast<int>(data_.task_offsets[i + 1] - row0);
  const double* Xte = ws.corr.data();  // X_i^T e_i, where the task step's last one was of e_i
  if (!ws.corr_is_of_final_residual) {
    task_detail::correlation(data_.X + row0 * d_, m, d_, ws.resid.data(), s.q.data());
    Xte = s.q.data();
  }
  add_outer_product(third, d_, W_.data() + i * r_, r_, Xte);
}

// One parallel pass over the tasks: with `rhs`, v and W_hat; with x, G x; both from one reading of
// each task's rows (the second use finds them in cache). Per-thread sums are added in thread order:
// reproducible for a thread count.
template <typename T>
void CpuBackend<T>::cg_pass(std::vector<double>* v, std::vector<double>* W_hat, const std::vector<double>* x,
                            std::vector<double>* y) {
  const std::int64_t d = d_, r = r_ + (has_prior_ ? 1 : 0), dr = d * r;
  if (x && static_cast<std::int64_t>(x->size()) != dr) throw Error("CPU backend: the U step's vector has the wrong size");
  const std::int64_t rhs_size = v ? dr + r * r : 0, product_size = x ? dr : 0;
  const int n_threads = threads_;
  cg_parts_.resize(static_cast<std::size_t>(n_threads));
  const std::vector<T> M_data = x && has_prior_ ? std::vector<T>(x->begin(), x->end()) : std::vector<T>();  // the prior's operator reads it
  linalg::BlasThreads single_threaded_blas(1);
#pragma omp parallel num_threads(n_threads)
  {
    std::vector<double>& part = cg_parts_[static_cast<std::size_t>(omp_get_thread_num())];
    part.assign(static_cast<std::size_t>(rhs_size + product_size), 0.0);  // v, W_hat, then G x
    CgScratch scratch(d, r);
    scratch.M_data = M_data.data();
#pragma omp for schedule(static)
    for (std::int64_t i = 0; i < t_; ++i) {
      if (data_.task_offsets[i + 1] == data_.task_offsets[i]) continue;
      if (v) rhs_of_task(i, part.data(), scratch);
      if (x) operator_of_task(i, x->data(), part.data() + rhs_size, scratch);
    }
  }
  std::vector<double> total(static_cast<std::size_t>(rhs_size + product_size), 0.0);
  for (const std::vector<double>& part : cg_parts_)
    for (std::size_t e = 0; e < total.size(); ++e) total[e] += part[e];
  if (v) {
    v->assign(total.begin(), total.begin() + dr);
    W_hat->assign(total.begin() + dr, total.begin() + rhs_size);
  }
  if (x) y->assign(total.begin() + rhs_size, total.end());
}

template <typename T>
void CpuBackend<T>::accumulate_rhs(std::vector<double>& v, std::vector<double>& W_hat) {
  cg_pass(&v, &W_hat, nullptr, nullptr);
}

template <typename T>
void CpuBackend<T>::apply_normal_operator(const std::vector<double>& x, std::vector<double>& y) {
  cg_pass(nullptr, nullptr, &x, &y);
}

template <typename T>
void CpuBackend<T>::accumulate_rhs_and_apply(const std::vector<double>& x0, std::vector<double>& v,
                                             std::vector<double>& W_hat, std::vector<double>& G_x0) {
  cg_pass(&v, &W_hat, &x0, &G_x0);
}

// The members defined here, for both precisions (the class itself is instantiated in cpu_backend.cpp).
#define LRSMETA_CG_MEMBERS(T)                                                                               \
  template void CpuBackend<T>::start_of_task(std::int64_t, const TaskWorkspace&, bool, const double*, double*, CgScratch&) const; \
  template void CpuBackend<T>::accumulate_rhs(std::vector<double>&, std::vector<double>&);                   \
  template void CpuBackend<T>::apply_normal_operator(const std::vector<double>&, std::vector<double>&);      \
  template void CpuBackend<T>::accumulate_rhs_and_apply(const std::vector<double>&, std::vector<double>&,    \
                                                        std::vector<double>&, std::vector<double>&);
LRSMETA_CG_MEMBERS(float)
LRSMETA_CG_MEMBERS(double)
#undef LRSMETA_CG_MEMBERS

}  // namespace lrsmeta::cpu
