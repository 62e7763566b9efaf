// The CPU backend's direct U step sums: G = sum_i E[w'_i w'_i^T] kron X_i^T X_i and v, per chunk of
// tasks as packed Grams and one GEMM (core/backend.hpp, accumulate_normal_equations).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "cpu/cpu_backend.hpp"
#include "cpu/task_step.hpp"
#include "linalg/blas_lapack.hpp"

namespace lrsmeta::cpu {

namespace {

// Add the packed upper triangle of x_j x_j^T over the m rows of one task to sp (d(d+1)/2), four
// rows at a time so that each pass over the packed row updates it with four FMAs per load/store.
template <typename S>
void add_packed_gram(const S* __restrict rows, std::int64_t m, std::int64_t d, S* __restrict sp) {
  std::int64_t j = 0;
  for (; j + 4 <= m; j += 4) {
    const S* x0 = rows + j * d;
    const S* x1 = x0 + d;
    const S* x2 = x1 + d;
    const S* x3 = x2 + d;
    S* row = sp;
    for (std::int64_t a = 0; a < d; ++a) {
      const S c0 = x0[a], c1 = x1[a], c2 = x2[a], c3 = x3[a];
      const std::int64_t len = d - a;
#pragma omp simd
      for (std::int64_t b = 0; b < len; ++b) row[b] += c0 * x0[a + b] + c1 * x1[a + b] + c2 * x2[a + b] + c3 * x3[a + b];
      row += len;
    }
  }
  for (; j < m; ++j) {
    const S* x0 = rows + j * d;
    S* row = sp;
    for (std::int64_t a = 0; a < d; ++a) {
      const S c0 = x0[a];
      const std::int64_t len = d - a;
#pragma omp simd
      for (std::int64_t b = 0; b < len; ++b) row[b] += c0 * x0[a + b];
      row += len;
    }
  }
}

}  // namespace

template <typename T>
void CpuBackend<T>::accumulate_normal_equations(std::vector<double>& G, std::vector<double>& v,
                                                const PrivacyOptions* bounds) {
  // With a prior, w'_i = (1, w_i) and the unknowns are [beta, U]: one more block, beta's first.
  const bool augmented = has_prior_;
  if (augmented && bounds) throw Error("CPU backend: the private U step takes no prior");
  const std::int64_t d = d_, r = r_ + (augmented ? 1 : 0), dr = d * r;
  const std::int64_t P = r * (r + 1) / 2, Q = d * (d + 1) / 2;
  const std::int64_t P_own = static_cast<std::int64_t>(r_) * (r_ + 1) / 2;
  const std::int64_t n_chunks = (t_ + kTasksPerChunk - 1) / kTasksPerChunk;
  const int n_threads = static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(threads_, n_chunks)));
  // Per thread: M (P x Q) += Wp^T Sp over its chunks, where row i of Wp holds w_i w_i^T (packed) and
  // row i of Sp holds X_i^T X_i (packed). M[pq, ab] is then entry (a, b) of block (p, q) of G.
  // Wp, Sp and the chunk product are in the data's precision T (float data: SGEMM, twice the
  // rate); every chunk's product is added into M in double.
  if (scratch_.size() < static_cast<std::size_t>(n_threads)) scratch_.resize(static_cast<std::size_t>(n_threads));
  linalg::BlasThreads single_threaded_blas(1);
  // The tasks' Grams are the data's: where they fit (keeps_task_grams) the first U step forms them
  // into task_grams_ and later ones read them there; else each chunk forms its own in Sp (the
  // privacy bounds clip rows: formed each time there).
  const bool kept = !bounds && keeps_task_grams(data_.n, t_, d);
  const bool form_grams = !kept || task_grams_.empty();
  if (kept && task_grams_.empty()) task_grams_.assign(static_cast<std::size_t>(t_ * Q), T(0));
#pragma omp parallel num_threads(n_threads)
  {
    GramScratch& sc = scratch_[static_cast<std::size_t>(omp_get_thread_num())];
    sc.M.assign(static_cast<std::size_t>(P * Q), 0.0);
    sc.v.assign(static_cast<std::size_t>(dr), 0.0);
    sc.Wp.resize(static_cast<std::size_t>(kTasksPerChunk * P));
    if (!kept) sc.Sp.resize(static_cast<std::size_t>(kTasksPerChunk * Q));
    if constexpr (!std::is_same_v<T, double>) sc.chunk_product.resize(static_cast<std::size_t>(P * Q));
    std::vector<double> q(static_cast<std::size_t>(d));
    std::vector<double> w_used(static_cast<std::size_t>(std::max<std::int64_t>(r, 1)));
    // Static schedule: each thread sums a fixed set of chunks, so a run is reproducible for a
    // given thread count (floating-point sums depend on their order).
#pragma omp for schedule(static)
    for (std::int64_t c = 0; c < n_chunks; ++c) {
      const std::int64_t first = c * kTasksPerChunk;
      const std::int64_t count = std::min(kTasksPerChunk, t_ - first);
      for (std::int64_t l = 0; l < count; ++l) {
        const std::int64_t i = first + l;
        const std::int64_t row0 = data_.task_offsets[i], row1 = data_.task_offsets[i + 1];
        // The task's contribution: its rows, w_i and residuals, bounded under privacy.
        const T* rows = data_.X + row0 * d;
        std::int64_t m = row1 - row0;
        double* w = w_used.data();
        const double* w_own = W_.data() + i * r_;
        double w_scale = 1.0;
        if (bounds) {
          m = std::min<std::int64_t>(m, bounds->max_samples);
          sc.clipped_rows.resize(static_cast<std::size_t>(std::max<std::int64_t>(m, 1) * d));
          for (std::int64_t j = 0; j < m; ++j) {
            const T* x = rows + j * d;
            double norm2 = 0;
            for (std::int64_t a = 0; a < d; ++a) norm2 += static_cast<double>(x[a]) * static_cast<double>(x[a]);
            const double norm = std::sqrt(norm2);
            const double scale = norm > bounds->clip_x ? bounds->clip_x / norm : 1.0;
            T* out = sc.clipped_rows.data() + j * d;
            for (std::int64_t a = 0; a < d; ++a) out[a] = static_cast<T>(static_cast<double>(x[a]) * scale);
          }
          rows = sc.clipped_rows.data();
          double wn2 = 0;
          for (std::int64_t p = 0; p < r; ++p) wn2 += w_own[p] * w_own[p];
          const double wn = std::sqrt(wn2);
          w_scale = wn > bounds->clip_w ? bounds->clip_w / wn : 1.0;
        }
        T* wp = sc.Wp.data() + l * P;
        if (augmented) {
          // E[w' w'^T] = w' w'^T + blockdiag(0, V_i).
          w[0] = 1.0;
          for (std::int64_t p = 0; p < r_; ++p) w[p + 1] = w_own[p];
          const double* Vi = V_.data() + i * P_own;
          for (std::int64_t p = 0, pq = 0, pv = 0; p < r; ++p)
            for (std::int64_t qq = p; qq < r; ++qq, ++pq) wp[pq] = static_cast<T>(w[p] * w[qq] + (p > 0 ? Vi[pv++] : 0.0));
        } else {
          for (std::int64_t p = 0; p < r; ++p) w[p] = w_own[p] * w_scale;
          for (std::int64_t p = 0, pq = 0; p < r; ++p)
            for (std::int64_t qq = p; qq < r; ++qq) wp[pq++] = static_cast<T>(w[p] * w[qq]);
        }
        if (form_grams) {
          T* sp = kept ? task_grams_.data() + i * Q : sc.Sp.data() + l * Q;
          std::fill(sp, sp + Q, T(0));
          add_packed_gram(rows, m, d, sp);
        }
        // q = X_i^T (y_i - X_i b_i), then v block p += w_p q.
        std::fill(q.begin(), q.end(), 0.0);
        const std::int32_t* bi = B_index_.data() + i * k_;
        const double* bv = B_value_.data() + i * k_;
        for (std::int64_t j = 0; j < m; ++j) {
          const T* xr = rows + j * d;
          double e = static_cast<double>(data_.y[row0 + j]);
          for (int s = 0; s < k_; ++s)
            if (bi[s] >= 0) e -= static_cast<double>(xr[bi[s]]) * bv[s];
          if (bounds) e = std::clamp(e, -bounds->clip_y, bounds->clip_y);
#pragma omp simd
          for (std::int64_t a = 0; a < d; ++a) q[static_cast<std::size_t>(a)] += static_cast<double>(xr[a]) * e;
        }
        for (std::int64_t p = 0; p < r; ++p)
          for (std::int64_t a = 0; a < d; ++a) sc.v[static_cast<std::size_t>(a + d * p)] += w[p] * q[static_cast<std::size_t>(a)];
      }
      const T* Sp = kept ? task_grams_.data() + first * Q : sc.Sp.data();  // the chunk's Grams, one row a task
      if constexpr (std::is_same_v<T, double>) {
        linalg::gemm(true, false, static_cast<int>(P), static_cast<int>(Q), static_cast<int>(count), 1.0, sc.Wp.data(),
             static_cast<int>(P), Sp, static_cast<int>(Q), 1.0, sc.M.data(), static_cast<int>(Q));
      } else {
        linalg::gemm_tn(static_cast<int>(P), static_cast<int>(Q), static_cast<int>(count), sc.Wp.data(), Sp,
                sc.chunk_product.data());
        const float* cp = sc.chunk_product.data();
        double* M = sc.M.data();
#pragma omp simd
        for (std::int64_t e = 0; e < P * Q; ++e) M[e] += static_cast<double>(cp[e]);
      }
    }
  }
  // Reduce the per-thread sums, then unpack M into the full symmetric G.
  std::vector<double>& M = scratch_[0].M;
  for (int th = 1; th < n_threads; ++th) {
    const std::vector<double>& Mt = scratch_[static_cast<std::size_t>(th)].M;
    for (std::size_t e = 0; e < M.size(); ++e) M[e] += Mt[e];
    for (std::int64_t e = 0; e < dr; ++e) scratch_[0].v[static_cast<std::size_t>(e)] += scratch_[static_cast<std::size_t>(th)].v[static_cast<std::size_t>(e)];
  }
  v = scratch_[0].v;
  G.assign(static_cast<std::size_t>(dr * dr), 0.0);
  for (std::int64_t p = 0, pq = 0; p < r; ++p)
    for (std::int64_t qq = p; qq < r; ++qq, ++pq) {
      const double* m = M.data() + pq * Q;
      for (std::int64_t a = 0, ab = 0; a < d; ++a)
        for (std::int64_t b = a; b < d; ++b, ++ab) {
          const double value = m[ab];
          // Block (p, qq) holds S_ab at (a, b) and (b, a); block (qq, p) is its transpose.
          const std::int64_t rows[2] = {a + d * p, b + d * p};
          const std::int64_t cols[2] = {b + d * qq, a + d * qq};
          for (int s = 0; s < 2; ++s) {
            G[static_cast<std::size_t>(rows[s] + dr * cols[s])] = value;
            G[static_cast<std::size_t>(cols[s] + dr * rows[s])] = value;
          }
        }
    }
}

template void CpuBackend<float>::accumulate_normal_equations(std::vector<double>&, std::vector<double>&, const PrivacyOptions*);
template void CpuBackend<double>::accumulate_normal_equations(std::vector<double>&, std::vector<double>&, const PrivacyOptions*);

}  // namespace lrsmeta::cpu
