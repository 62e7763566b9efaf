// The host side of the CUDA backend: memory planning, the stream, cuBLAS and cuSOLVER calls. The
// data, U and every task's (w, b) live on the device; inside the loop only scalars (the training
// loss, the change in U, a factorisation's status) come back to the host.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.hpp"
#include "core/noise.hpp"
#include "core/posterior.hpp"
#include "core/task_posterior.hpp"
#include "cuda/cuda_backend.hpp"
#include "core/task_step_rules.hpp"
#include "cuda/cuda_utils.hpp"
#include "cuda/device_direct_system.hpp"
#include "cuda/device_memory_plan.hpp"
#include "cuda/row_moments.hpp"
#include "kernels/device_kernels.hpp"

namespace lrsmeta {
namespace cuda {

namespace {

// The contribution bounds of a private release, as the kernels take them (none without one).
kernels::Bounds bounds_of(const core::PrivateRelease* release) {
  kernels::Bounds bounds;
  if (release) {
    bounds.enabled = true;
    bounds.clip_x = release->bounds.clip_x;
    bounds.clip_y = release->bounds.clip_y;
    bounds.clip_w = release->bounds.clip_w;
    bounds.max_samples = release->bounds.max_samples;
  }
  return bounds;
}

std::string mib(double bytes) { return std::to_string(static_cast<long long>(std::ceil(bytes / (1024.0 * 1024.0)))) + " MiB"; }

template <typename T>
class CudaBackend final : public core::Backend {
 public:
  CudaBackend(const TaskDataView<T>& data, const Options& options)
      : options_(options),
        d_(static_cast<int>(data.d)),
        r_(options.rank),
        k_(options.sparsity),
        t_(data.t),
        n_(data.n),
        cublas_(stream_.get()),
        cusolver_(stream_.get()),
        system_(stream_, cublas_, cusolver_) {
    host_offsets_.assign(data.task_offsets, data.task_offsets + t_ + 1);
    if (kernels::task_step_shared_bytes(d_, r_, k_) == 0)
      throw Error("CUDA backend: d = " + std::to_string(d_) + ", r = " + std::to_string(r_) + ", k = " + std::to_string(k_) +
                  " need more shared memory per task than a thread block has; use the CPU backend");
    const DeviceMemoryPlan plan = plan_device_memory(n_, t_, d_, r_, k_, static_cast<int>(sizeof(T)), options);
    chunk_ = plan.chunk;
    cg_chunk_ = plan.cg_chunk;
    prior_cg_chunk_ = plan.prior_cg_chunk;
    const double need = plan.bytes;
    std::size_t free_bytes = 0, total_bytes = 0;
    LRSMETA_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    if (need > 0.95 * static_cast<double>(free_bytes))
      throw Error("CUDA backend: the fit needs about " + mib(need) + " of device memory, " + mib(static_cast<double>(free_bytes)) +
                  " are free (of " + mib(static_cast<double>(total_bytes)) + "); use fewer tasks per run or --precision float");
    const cudaStream_t s = stream_.get();
    copy_to_device(X_, data.X, static_cast<std::size_t>(n_ * d_), s);
    copy_to_device(y_, data.y, static_cast<std::size_t>(n_), s);
    copy_to_device(offsets_, data.task_offsets, static_cast<std::size_t>(t_ + 1), s);
    Z_.resize(static_cast<std::size_t>(n_ * std::max(r_, 1)));
    target_.resize(static_cast<std::size_t>(std::max<std::int64_t>(n_, 1)));
    resid_.resize(static_cast<std::size_t>(std::max<std::int64_t>(n_, 1)));
    W_.resize(static_cast<std::size_t>(t_ * r_));
    B_value_.resize(static_cast<std::size_t>(t_ * k_));
    B_index_.resize(static_cast<std::size_t>(t_ * k_));
    task_sse_.resize(static_cast<std::size_t>(t_));
    info_.resize(1);  // cuSOLVER's status: the Cholesky and the QR of every U step write it
    if (W_.size()) LRSMETA_CUDA_CHECK(cudaMemsetAsync(W_.data(), 0, W_.size() * sizeof(double), s));
    if (B_value_.size()) {
      LRSMETA_CUDA_CHECK(cudaMemsetAsync(B_value_.data(), 0, B_value_.size() * sizeof(double), s));
      LRSMETA_CUDA_CHECK(cudaMemsetAsync(B_index_.data(), 0xff, B_index_.size() * sizeof(std::int32_t), s));  // -1
    }
    stream_.synchronize();
  }

  void set_U(const std::vector<double>& U) override {
    std::vector<double> colmajor(U.size());
    for (int a = 0; a < d_; ++a)
      for (int p = 0; p < r_; ++p) colmajor[static_cast<std::size_t>(a) + static_cast<std::size_t>(d_) * p] = U[static_cast<std::size_t>(a) * r_ + p];
    copy_to_device(U_, colmajor.data(), colmajor.size(), stream_.get());
    U_data_.resize(U.size());
    kernels::launch_store_U(U_.data(), d_, r_, U_data_.data(), stream_.get());
    stream_.synchronize();
  }

  std::vector<double> get_U() const override {
    std::vector<double> colmajor(static_cast<std::size_t>(d_) * r_), U(colmajor.size());
    // On the backend's (non-blocking) stream: a plain cudaMemcpy would not wait for it.
    if (!colmajor.empty())
      LRSMETA_CUDA_CHECK(cudaMemcpyAsync(colmajor.data(), U_.data(), colmajor.size() * sizeof(double), cudaMemcpyDeviceToHost,
                                         stream_.get()));
    stream_.synchronize();
    for (int a = 0; a < d_; ++a)
      for (int p = 0; p < r_; ++p) U[static_cast<std::size_t>(a) * r_ + p] = colmajor[static_cast<std::size_t>(a) + static_cast<std::size_t>(d_) * p];
    return U;
  }

  core::TaskStepTotals task_step_all(int k_in_effect) override {
    kernels::TaskStepArgs<T> args;
    args.X = X_.data();
    args.y = y_.data();
    args.offsets = offsets_.data();
    args.t = t_;
    args.d = d_;
    args.r = r_;
    args.k_slots = k_;
    const core::TaskStepSettings settings = core::task_step_settings(options_, k_in_effect);
    kernels::set_task_step_settings(args, settings);
    args.U = U_data_.data();
    if (has_prior_) set_prior_arguments(args, settings.k);
    args.Z = Z_.data();
    args.target = target_.data();
    args.resid = resid_.data();
    args.W = W_.data();
    args.B_index = B_index_.data();
    args.B_value = B_value_.data();
    args.task_sse = task_sse_.data();
    kernels::launch_task_step(args, stream_.get());
    double sse = 0.0;  // every entry is >= 0: the sum is the absolute sum
    if (t_ > 0) LRSMETA_CUBLAS_CHECK(cublasDasum(cublas_.get(), static_cast<int>(t_), task_sse_.data(), 1, &sse));
    core::TaskStepTotals totals;
    totals.sse = sse;
    totals.rows = n_;
    if (has_prior_) add_prior_totals(totals);
    return totals;
  }

  // cg's passes (the solver itself is the core's): each copies the d r vector in and the result out;
  // everything per task stays on the device.
  void accumulate_rhs(std::vector<double>& v, std::vector<double>& W_hat) override {
    const cudaStream_t s = stream_.get();
    const int rj = r_joint(), dr = d_ * rj;  // under the prior w' = (1, w_i): beta's column first
    v_.resize(static_cast<std::size_t>(dr));
    W_hat_.resize(static_cast<std::size_t>(rj) * rj);
    LRSMETA_CUDA_CHECK(cudaMemsetAsync(v_.data(), 0, v_.size() * sizeof(double), s));
    LRSMETA_CUDA_CHECK(cudaMemsetAsync(W_hat_.data(), 0, W_hat_.size() * sizeof(double), s));
    Qc_.resize(static_cast<std::size_t>(cg_chunk_) * d_);
    Wc_.resize(static_cast<std::size_t>(cg_chunk_) * rj);
    Wm_.resize(static_cast<std::size_t>(cg_chunk_) * rj);
    const double one = 1.0, zero = 0.0;
    for (std::int64_t first = 0; first < t_; first += cg_chunk_) {
      const std::int64_t count = std::min(cg_chunk_, t_ - first);
      kernels::launch_pack_chunk<T>(X_.data(), y_.data(), offsets_.data(), first, count, d_, r_, k_, W_.data(), B_index_.data(),
                                    B_value_.data(), kernels::Bounds{}, nullptr, nullptr, Qc_.data(), Wc_.data(),
                                    static_cast<int>(max_rows(first, count)), s, has_prior_ ? V_.data() : nullptr, Wm_.data());
      // v (column-major d x r') += Q_cm (d x count) Wc_cm^T; W_hat (r' x r') += Wm_cm (r' x count) Wc_cm^T.
      LRSMETA_CUBLAS_CHECK(cublasDgemm(cublas_.get(), CUBLAS_OP_N, CUBLAS_OP_T, d_, rj, static_cast<int>(count), &one,
                                       Qc_.data(), d_, Wc_.data(), rj, &one, v_.data(), d_));
      LRSMETA_CUBLAS_CHECK(cublasDgemm(cublas_.get(), CUBLAS_OP_N, CUBLAS_OP_T, rj, rj, static_cast<int>(count), &one,
                                       Wm_.data(), rj, Wc_.data(), rj, &one, W_hat_.data(), rj));
    }
    // Under the prior W_hat's w block also holds sum_i m_i V_i: one GEMV over the tasks' V_i.
    const bool covariances = has_prior_ && r_ > 0;
    if (covariances) {
      if (task_rows_.size() != static_cast<std::size_t>(t_)) {
        std::vector<double> rows(static_cast<std::size_t>(t_));
        for (std::int64_t i = 0; i < t_; ++i)
          rows[static_cast<std::size_t>(i)] = static_cast<double>(host_offsets_[static_cast<std::size_t>(i + 1)] - host_offsets_[static_cast<std::size_t>(i)]);
        copy_to_device(task_rows_, rows.data(), rows.size(), s);
      }
      const int rr = r_ * r_;
      V_sum_.resize(static_cast<std::size_t>(rr));
      LRSMETA_CUBLAS_CHECK(cublasDgemv(cublas_.get(), CUBLAS_OP_N, rr, static_cast<int>(t_), &one, V_.data(), rr, task_rows_.data(), 1,
                                       &zero, V_sum_.data(), 1));
      sum_over_gpus(V_sum_);
    }
    sum_over_gpus(v_);
    sum_over_gpus(W_hat_);
    copy_to_host(v, v_);
    copy_to_host(W_hat, W_hat_);
    if (covariances) {
      std::vector<double> V_sum;
      copy_to_host(V_sum, V_sum_);
      for (int p = 0; p < r_; ++p)
        for (int q = 0; q < r_; ++q)
          W_hat[static_cast<std::size_t>(p + 1) * rj + q + 1] += V_sum[static_cast<std::size_t>(p) * r_ + q];
    }
  }

  void apply_normal_operator(const std::vector<double>& x, std::vector<double>& y) override {
    const cudaStream_t s = stream_.get();
    const std::size_t dr = static_cast<std::size_t>(d_) * r_joint();
    if (x.size() != dr) throw Error("CUDA backend: the U step's vector has the wrong size");
    copy_to_device(iterate_, x.data(), dr, s);
    product_.resize(dr);
    LRSMETA_CUDA_CHECK(cudaMemsetAsync(product_.data(), 0, dr * sizeof(double), s));
    const double one = 1.0;
    if (has_prior_) {
      // E_i = w' w'^T + blockdiag(0, V_i): each task's X_i^T X_i M E_i (d x r') from the kernel, summed
      // over the chunk's tasks by one GEMV.
      prior_out_.resize(static_cast<std::size_t>(prior_cg_chunk_) * dr);
      for (std::int64_t first = 0; first < t_; first += prior_cg_chunk_) {
        const std::int64_t count = std::min(prior_cg_chunk_, t_ - first);
        kernels::launch_prior_normal_operator<T>(X_.data(), offsets_.data(), first, count, d_, r_, W_.data(), V_.data(),
                                                 iterate_.data(), prior_out_.data(), s);
        LRSMETA_CUBLAS_CHECK(cublasDgemv(cublas_.get(), CUBLAS_OP_N, static_cast<int>(dr), static_cast<int>(count), &one,
                                         prior_out_.data(), static_cast<int>(dr), ones_.data(), 1, &one, product_.data(), 1));
      }
    } else {
      Mw_.resize(static_cast<std::size_t>(cg_chunk_) * d_);
      g_.resize(static_cast<std::size_t>(cg_chunk_) * d_);
      for (std::int64_t first = 0; first < t_; first += cg_chunk_) {
        const std::int64_t count = std::min(cg_chunk_, t_ - first);
        kernels::launch_normal_operator<T>(X_.data(), offsets_.data(), first, count, d_, r_, W_.data(), iterate_.data(), Mw_.data(),
                                           g_.data(), s);
        // product (column-major d x r) += g_cm (d x count) W_chunk_cm^T; W_ (t x r row-major) is
        // column-major r x t, so the chunk's w's are r x count with leading dimension r.
        LRSMETA_CUBLAS_CHECK(cublasDgemm(cublas_.get(), CUBLAS_OP_N, CUBLAS_OP_T, d_, r_, static_cast<int>(count), &one, g_.data(),
                                         d_, W_.data() + first * r_, r_, &one, product_.data(), d_));
      }
    }
    sum_over_gpus(product_);
    copy_to_host(y, product_);
  }

  double orthonormalise_U(const std::vector<double>& U_tilde, std::vector<double>* R) override {
    if (r_ == 0) return 0.0;
    if (U_tilde.size() != static_cast<std::size_t>(d_) * r_) throw Error("CUDA backend: U~ has the wrong size");
    copy_to_device(v_, U_tilde.data(), U_tilde.size(), stream_.get());
    if (R) copy_to_device(U_tilde_, U_tilde.data(), U_tilde.size(), stream_.get());
    orthonormalise_and_swap();
    if (R) {  // R = Q^T U~ (column-major r x r in C_), then row-major on the host
      const double one = 1.0, zero = 0.0;
      C_.resize(static_cast<std::size_t>(r_) * r_);
      LRSMETA_CUBLAS_CHECK(cublasDgemm(cublas_.get(), CUBLAS_OP_T, CUBLAS_OP_N, r_, r_, d_, &one, U_.data(), d_, U_tilde_.data(),
                                       d_, &zero, C_.data(), r_));
      std::vector<double> column_major;
      copy_to_host(column_major, C_);
      R->assign(column_major.size(), 0.0);
      for (int p = 0; p < r_; ++p)
        for (int q = 0; q < r_; ++q)
          (*R)[static_cast<std::size_t>(p) * r_ + q] = column_major[static_cast<std::size_t>(p) + static_cast<std::size_t>(r_) * q];
    }
    stream_.synchronize();
    return last_change_;
  }

  // One process: G and v are formed, noised and factored on the device; the core's solve policy
  // runs on them (core::DirectSystem) and only scalars and the solution come back.
  core::DirectSystem* direct_system_in_place(const PrivacyOptions* bounds) override {
    if (r_joint() == 0) return nullptr;
    core::PrivateRelease release;
    if (bounds) release.bounds = *bounds;
    accumulate_on_device(bounds ? &release : nullptr);
    return &system_;
  }

  // Over many processes: the device's G and v (summed over the GPUs by NCCL where it joined them),
  // copied to the host for rank 0's solve.
  void accumulate_normal_equations(std::vector<double>& G, std::vector<double>& v, const PrivacyOptions* bounds) override {
    core::PrivateRelease release;
    if (bounds) release.bounds = *bounds;
    accumulate_on_device(bounds ? &release : nullptr);
    sum_over_gpus(system_.G());
    sum_over_gpus(system_.v());
    copy_to_host(G, system_.G());
    copy_to_host(v, system_.v());
  }

  // G_ (d r x d r, column-major) and v_ from every task's (w, b), bounded under a release.
  void accumulate_on_device(const core::PrivateRelease* release) {
    const cudaStream_t s = stream_.get();
    const int rj = r_joint(), P = rj * (rj + 1) / 2, Q = d_ * (d_ + 1) / 2, dr = d_ * rj;
    M_.resize(static_cast<std::size_t>(P) * Q);
    v_.resize(static_cast<std::size_t>(dr));
    LRSMETA_CUDA_CHECK(cudaMemsetAsync(M_.data(), 0, M_.size() * sizeof(double), s));
    LRSMETA_CUDA_CHECK(cudaMemsetAsync(v_.data(), 0, v_.size() * sizeof(double), s));
    Wp_.resize(static_cast<std::size_t>(chunk_) * P);
    Sp_.resize(static_cast<std::size_t>(chunk_) * Q);
    Qc_.resize(static_cast<std::size_t>(chunk_) * d_);
    Wc_.resize(static_cast<std::size_t>(chunk_) * rj);
    if constexpr (std::is_same_v<T, float>) chunk_product_.resize(static_cast<std::size_t>(P) * Q);
    const kernels::Bounds bounds = bounds_of(release);
    const double one = 1.0;
    for (std::int64_t first = 0; first < t_; first += chunk_) {
      const std::int64_t count = std::min(chunk_, t_ - first);
      std::int64_t most_rows = max_rows(first, count);
      if (bounds.enabled) most_rows = std::min<std::int64_t>(most_rows, bounds.max_samples);
      kernels::launch_pack_chunk(X_.data(), y_.data(), offsets_.data(), first, count, d_, r_, k_, W_.data(),
                                 B_index_.data(), B_value_.data(), bounds, Wp_.data(), Sp_.data(), Qc_.data(),
                                 Wc_.data(), static_cast<int>(most_rows), s, has_prior_ ? V_.data() : nullptr);
      // Row-major M (P x Q) is column-major (Q x P): M_cm += Sp_cm (Q x count) Wp_cm^T (count x P).
      if constexpr (std::is_same_v<T, double>) {
        LRSMETA_CUBLAS_CHECK(cublasDgemm(cublas_.get(), CUBLAS_OP_N, CUBLAS_OP_T, Q, P, static_cast<int>(count), &one,
                                         Sp_.data(), Q, Wp_.data(), P, &one, M_.data(), Q));
      } else {
        const float onef = 1.0f, zerof = 0.0f;
        LRSMETA_CUBLAS_CHECK(cublasSgemm(cublas_.get(), CUBLAS_OP_N, CUBLAS_OP_T, Q, P, static_cast<int>(count), &onef,
                                         Sp_.data(), Q, Wp_.data(), P, &zerof, chunk_product_.data(), Q));
        kernels::launch_add_float_to_double(chunk_product_.data(), M_.data(), M_.size(), s);
      }
      // v (column-major d x r', i.e. vec order a + d p) += Q_cm (d x count) Wc_cm^T (count x r').
      LRSMETA_CUBLAS_CHECK(cublasDgemm(cublas_.get(), CUBLAS_OP_N, CUBLAS_OP_T, d_, rj, static_cast<int>(count), &one,
                                       Qc_.data(), d_, Wc_.data(), rj, &one, v_.data(), d_));
    }
    system_.set_unknowns(dr);
    kernels::launch_unpack_gram(M_.data(), d_, rj, system_.G().data(), s);
  }

  std::vector<double> spectral_moment(const core::PrivateRelease* release) override {
    return device_spectral_moment(X_.data(), y_.data(), offsets_.data(), t_, n_, d_, bounds_of(release), release == nullptr, stream_,
                                  cublas_);
  }

  void import_task_parameters(const Model& model) override {
    if (model.W.size() != W_.size() || model.B_index.size() != B_index_.size() || model.B_value.size() != B_value_.size())
      throw Error("CUDA backend: the task parameters have the wrong size");
    copy_to_device(W_, model.W.data(), model.W.size(), stream_.get());
    copy_to_device(B_index_, model.B_index.data(), model.B_index.size(), stream_.get());
    copy_to_device(B_value_, model.B_value.data(), model.B_value.size(), stream_.get());
    stream_.synchronize();
  }

  // The empirical-Bayes prior: the task steps run in whitened coordinates (core/posterior.hpp) and
  // the kernel maps each task's w and V back; the U step solves for [beta, U~] with V in G.
  void set_prior(const core::PriorState* prior) override {
    has_prior_ = prior != nullptr;
    if (!prior) return;
    if (prior->beta.size() != static_cast<std::size_t>(d_) || prior->Sigma.size() != static_cast<std::size_t>(r_) * r_)
      throw Error("CUDA backend: the prior has the wrong size");
    if (kernels::task_step_shared_bytes(d_, r_, k_, true) == 0)
      throw Error("CUDA backend: d = " + std::to_string(d_) + ", r = " + std::to_string(r_) + ", k = " + std::to_string(k_) +
                  " need more shared memory per task under the prior than a thread block has; use the CPU backend");
    if (options_.u_solver == USolver::cg && kernels::prior_normal_operator_shared_bytes(r_) == 0)
      throw Error("CUDA backend: cg's U step under the prior takes r up to about 75 on the GPU (r = " + std::to_string(r_) +
                  "); use --u-solver direct, or --device cpu");
    prior_ = *prior;
    const cudaStream_t s = stream_.get();
    copy_to_device(beta_, prior_.beta.data(), prior_.beta.size(), s);
    // Sigma's factor L (r x r, row-major), for the whitened basis U L and the kernel's mapping back.
    const std::vector<double> L = core::whitening_factor(prior_.Sigma, r_);
    copy_to_device(whitening_, L.data(), L.size(), s);
    // Whitened: v's prior precision is s2 I and its covariance I.
    std::vector<double> precision(static_cast<std::size_t>(r_) * r_, 0.0), identity(precision.size(), 0.0);
    for (int p = 0; p < r_; ++p) {
      precision[static_cast<std::size_t>(p) * r_ + p] = prior_.noise_variance;
      identity[static_cast<std::size_t>(p) * r_ + p] = 1.0;
    }
    copy_to_device(w_precision_, precision.data(), precision.size(), s);
    copy_to_device(w_covariance_, identity.data(), identity.size(), s);
    // Never empty, even at r = 0: the packing kernel reads "V given" as "the joint [beta, U] system".
    V_.resize(std::max<std::size_t>(static_cast<std::size_t>(t_) * r_ * r_, 1));
    stats_.resize(static_cast<std::size_t>(t_) * core::kPosteriorStats);
    response_.resize(static_cast<std::size_t>(std::max<std::int64_t>(n_, 1)));
    const std::vector<double> ones(static_cast<std::size_t>(std::max<std::int64_t>(t_, 1)), 1.0);
    copy_to_device(ones_, ones.data(), ones.size(), s);
    stream_.synchronize();
  }
  core::DataMoments data_moments() override { return device_data_moments(X_.data(), y_.data(), n_, d_, stream_, cublas_); }

  void export_task_parameters(Model& model) const override {
    model.W.resize(W_.size());
    model.B_index.resize(B_index_.size());
    model.B_value.resize(B_value_.size());
    const cudaStream_t s = stream_.get();
    if (!model.W.empty())
      LRSMETA_CUDA_CHECK(cudaMemcpyAsync(model.W.data(), W_.data(), W_.size() * sizeof(double), cudaMemcpyDeviceToHost, s));
    if (!model.B_index.empty()) {
      LRSMETA_CUDA_CHECK(cudaMemcpyAsync(model.B_index.data(), B_index_.data(), B_index_.size() * sizeof(std::int32_t),
                                         cudaMemcpyDeviceToHost, s));
      LRSMETA_CUDA_CHECK(cudaMemcpyAsync(model.B_value.data(), B_value_.data(), B_value_.size() * sizeof(double),
                                         cudaMemcpyDeviceToHost, s));
    }
    stream_.synchronize();
  }

 #ifdef LRSMETA_HAVE_NCCL
  // NCCL takes one process a GPU: where the launcher put more processes on this node than it has
  // GPUs (they share one), the sums go through MPI instead.
  bool can_sum_in_place() const override {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess) {
      cudaGetLastError();
      return false;
    }
    for (const char* name : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"})
      if (const char* value = std::getenv(name)) return std::atoi(value) <= devices;
    return false;  // the processes on this node are unknown: a shared GPU cannot be ruled out
  }
  // Collective: rank 0's NCCL id goes to every process (through the fit's communicator), and each
  // joins the GPUs' NCCL communicator with it.
  void sum_in_place_over(Communicator& processes) override {
    ncclUniqueId id{};
    if (processes.rank() == 0) LRSMETA_NCCL_CHECK(ncclGetUniqueId(&id));
    std::string bytes(reinterpret_cast<const char*>(&id), sizeof id);
    processes.broadcast(bytes, 0);
    if (bytes.size() != sizeof id) throw Error("CUDA backend: the NCCL id has the wrong size");
    std::memcpy(&id, bytes.data(), sizeof id);
    nccl_ = std::make_unique<NcclCommunicator>(processes.size(), id, processes.rank());
  }
#endif

 private:
  // With NCCL joined: `buffer` summed over the processes' GPUs, in place, on the backend's stream
  // (every process gets the same values). Without: nothing (the host sums, or there is one process).
  void sum_over_gpus(DeviceBuffer<double>& buffer) {
#ifdef LRSMETA_HAVE_NCCL
    if (nccl_ && buffer.size() > 0)
      LRSMETA_NCCL_CHECK(ncclAllReduce(buffer.data(), buffer.data(), buffer.size(), ncclDouble, ncclSum, nccl_->get(), stream_.get()));
#else
    (void)buffer;
#endif
  }

  // The task step's prior (core::task_prior_of, as the CPU's task steps see it) and the whitened
  // basis U L (d x r) in the data's precision, formed on the device: U L = U_cm (L as stored, read
  // column-major, is L^T; op T makes it L), then stored row-major as the task step reads U.
  template <typename Args>
  void set_prior_arguments(Args& args, int k_in_effect) {
    const cudaStream_t s = stream_.get();
    U_whitened_.resize(static_cast<std::size_t>(d_) * r_);
    if (r_ > 0) {
      const double one = 1.0, zero = 0.0;
      D_.resize(static_cast<std::size_t>(d_) * r_);
      LRSMETA_CUBLAS_CHECK(cublasDgemm(cublas_.get(), CUBLAS_OP_N, CUBLAS_OP_T, d_, r_, r_, &one, U_.data(), d_, whitening_.data(), r_,
                                       &zero, D_.data(), d_));
      kernels::launch_store_U(D_.data(), d_, r_, U_whitened_.data(), s);
    }
    args.U = U_whitened_.data();
    kernels::set_task_prior(args, core::task_prior_of(prior_, d_, k_in_effect, beta_.data(), w_precision_.data(), w_covariance_.data()));
    args.response = response_.data();
    args.V = V_.data();
    args.posterior_stats = stats_.data();
    args.whitening = whitening_.data();
  }

  // The M-step's sums over the tasks, by cuBLAS on the device: sum E[w w^T] = W^T W + sum V_i, sum
  // w_i, and the posterior statistics; r x r and a few numbers come back.
  void add_prior_totals(core::TaskStepTotals& totals) {
    const cudaStream_t s = stream_.get();
    const double one = 1.0, zero = 0.0;
    const int t = static_cast<int>(t_), rr = r_ * r_;
    sums_.resize(static_cast<std::size_t>(rr + rr + r_ + core::kPosteriorStats));
    double* second = sums_.data();           // W^T W (upper), r x r column-major
    double* v_sum = second + rr;             // sum V_i, r x r
    double* w_sum = v_sum + rr;              // r
    double* stats = w_sum + r_;              // kPosteriorStats
    LRSMETA_CUDA_CHECK(cudaMemsetAsync(sums_.data(), 0, sums_.size() * sizeof(double), s));
    if (t > 0) {
      if (r_ > 0) {
        // W (t x r row-major) is column-major r x t: W_cm W_cm^T is sum_i w_i w_i^T.
        LRSMETA_CUBLAS_CHECK(cublasDsyrk(cublas_.get(), CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_N, r_, t, &one, W_.data(), r_, &zero,
                                         second, r_));
        LRSMETA_CUBLAS_CHECK(cublasDgemv(cublas_.get(), CUBLAS_OP_N, rr, t, &one, V_.data(), rr, ones_.data(), 1, &zero, v_sum, 1));
        LRSMETA_CUBLAS_CHECK(cublasDgemv(cublas_.get(), CUBLAS_OP_N, r_, t, &one, W_.data(), r_, ones_.data(), 1, &zero, w_sum, 1));
      }
      LRSMETA_CUBLAS_CHECK(cublasDgemv(cublas_.get(), CUBLAS_OP_N, core::kPosteriorStats, t, &one, stats_.data(),
                                       core::kPosteriorStats, ones_.data(), 1, &zero, stats, 1));
    }
    std::vector<double> host;
    copy_to_host(host, sums_);
    totals.w_second_moment.assign(static_cast<std::size_t>(rr), 0.0);
    totals.w_sum.assign(host.begin() + 2 * rr, host.begin() + 2 * rr + r_);
    for (int p = 0; p < r_; ++p)
      for (int q = p; q < r_; ++q)  // column-major upper (p, q) at p + r q; V_i row-major and symmetric
        totals.w_second_moment[static_cast<std::size_t>(p) * r_ + q] =
            host[static_cast<std::size_t>(p) + static_cast<std::size_t>(r_) * q] + host[static_cast<std::size_t>(rr + p * r_ + q)];
    core::symmetrise_upper(totals.w_second_moment.data(), r_);
    const double* st = host.data() + 2 * rr + r_;
    totals.effective_params = st[0];
    totals.effective_params_b = st[1];
    totals.log_evidence = st[2];
    totals.b_square_sum = st[3];
    totals.b_count = static_cast<std::int64_t>(std::llround(st[4]));
  }

  // The U step's columns per feature: r, and beta's under the prior.
  int r_joint() const { return r_ + (has_prior_ ? 1 : 0); }

  // The most rows any task of tasks first .. first + count - 1 has (sizes a kernel's shared memory).
  std::int64_t max_rows(std::int64_t first, std::int64_t count) const {
    std::int64_t most = 0;
    for (std::int64_t i = first; i < first + count; ++i)
      most = std::max(most, host_offsets_[static_cast<std::size_t>(i + 1)] - host_offsets_[static_cast<std::size_t>(i)]);
    return most;
  }

  void copy_to_host(std::vector<double>& host, const DeviceBuffer<double>& device) const { cuda::copy_to_host(host, device, stream_); }

  // v_ holds U~ (d x r, column-major): replace it by its Q factor, measure the change from U_ and
  // make it the new U.
  void orthonormalise_and_swap() {
    const cudaStream_t s = stream_.get();
    int lwork_qr = 0, lwork_q = 0;
    tau_.resize(static_cast<std::size_t>(r_));
    LRSMETA_CUSOLVER_CHECK(cusolverDnDgeqrf_bufferSize(cusolver_.get(), d_, r_, v_.data(), d_, &lwork_qr));
    LRSMETA_CUSOLVER_CHECK(cusolverDnDorgqr_bufferSize(cusolver_.get(), d_, r_, r_, v_.data(), d_, tau_.data(), &lwork_q));
    work_.resize(static_cast<std::size_t>(std::max({lwork_qr, lwork_q, 1})));
    LRSMETA_CUSOLVER_CHECK(cusolverDnDgeqrf(cusolver_.get(), d_, r_, v_.data(), d_, tau_.data(), work_.data(),
                                            static_cast<int>(work_.size()), info_.data()));
    LRSMETA_CUSOLVER_CHECK(cusolverDnDorgqr(cusolver_.get(), d_, r_, r_, v_.data(), d_, tau_.data(), work_.data(),
                                            static_cast<int>(work_.size()), info_.data()));
    // ||U_new - U_old (U_old^T U_new)||_F.
    const double one = 1.0, zero = 0.0, minus_one = -1.0;
    C_.resize(static_cast<std::size_t>(r_) * r_);
    D_.resize(v_.size());
    LRSMETA_CUBLAS_CHECK(cublasDgemm(cublas_.get(), CUBLAS_OP_T, CUBLAS_OP_N, r_, r_, d_, &one, U_.data(), d_, v_.data(), d_,
                                     &zero, C_.data(), r_));
    LRSMETA_CUDA_CHECK(cudaMemcpyAsync(D_.data(), v_.data(), v_.size() * sizeof(double), cudaMemcpyDeviceToDevice, s));
    LRSMETA_CUBLAS_CHECK(cublasDgemm(cublas_.get(), CUBLAS_OP_N, CUBLAS_OP_N, d_, r_, r_, &minus_one, U_.data(), d_, C_.data(),
                                     r_, &one, D_.data(), d_));
    LRSMETA_CUBLAS_CHECK(cublasDnrm2(cublas_.get(), static_cast<int>(D_.size()), D_.data(), 1, &last_change_));
    std::swap(U_, v_);
    kernels::launch_store_U(U_.data(), d_, r_, U_data_.data(), s);
  }

  Options options_;
  int d_, r_, k_;
  std::int64_t t_, n_, chunk_ = 1, cg_chunk_ = 1, prior_cg_chunk_ = 1;
  std::vector<std::int64_t> host_offsets_;
  Stream stream_;
  CublasHandle cublas_;
  CusolverHandle cusolver_;
  DeviceBuffer<T> X_, y_, U_data_, Wp_, Sp_;
  DeviceBuffer<std::int64_t> offsets_;
  DeviceBuffer<double> U_, Z_, target_, resid_, W_, B_value_, task_sse_;
  DeviceBuffer<double> U_tilde_;  // orthonormalise_U's U~, kept for R
  DeviceBuffer<double> Qc_, Wc_, M_, work_, tau_, C_, D_;
  DeviceDirectSystem system_;  // G and v of the direct U step
  DeviceBuffer<double>& v_ = system_.v();  // v, then the U~ solved for (orthonormalise_and_swap)
  DeviceBuffer<double> Wm_, W_hat_, iterate_, product_, Mw_, g_;  // cg's
  DeviceBuffer<double> prior_out_, task_rows_, V_sum_;              // cg's under the prior
  DeviceBuffer<float> chunk_product_;
  // The prior's (set_prior): beta, v's prior, V_i (t x r x r) and the statistics (t x 5) per task,
  // y - X beta per row, the whitened basis and L, ones for the sums over tasks, the sums.
  bool has_prior_ = false;
  core::PriorState prior_;
  DeviceBuffer<double> beta_, w_precision_, w_covariance_, V_, stats_, response_, whitening_, ones_, sums_;
  DeviceBuffer<T> U_whitened_;
  DeviceBuffer<std::int32_t> B_index_;
  DeviceBuffer<int> info_;
  double last_change_ = 0.0;
#ifdef LRSMETA_HAVE_NCCL
  std::unique_ptr<NcclCommunicator> nccl_;  // the fit's GPUs, where every process trains on one
#endif
};

}  // namespace
}  // namespace cuda

namespace core {
template <typename T>
std::unique_ptr<Backend> make_cuda_backend(const TaskDataView<T>& data, const Options& options) {
  std::string why;
  if (!cuda::device_usable(&why)) throw Error("device 'cuda' requested, but no usable CUDA device: " + why);
  // Started by an MPI launcher with several processes a node: one GPU each, by the process's rank
  // on its node (Open MPI, MPICH and Slurm say it), round robin over the node's GPUs.
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"})
    if (const char* value = std::getenv(name)) {
      int count = 0;
      LRSMETA_CUDA_CHECK(cudaGetDeviceCount(&count));
      LRSMETA_CUDA_CHECK(cudaSetDevice(std::atoi(value) % count));
      break;
    }
  return std::make_unique<cuda::CudaBackend<T>>(data, options);
}
template std::unique_ptr<Backend> make_cuda_backend(const TaskDataView<float>&, const Options&);
template std::unique_ptr<Backend> make_cuda_backend(const TaskDataView<double>&, const Options&);
}  // namespace core

}  // namespace lrsmeta
