#include "core/distributed_backend.hpp"

#include <initializer_list>
#include <utility>

#include "core/communicator.hpp"
#include "core/fingerprint.hpp"

namespace lrsmeta::core {
namespace {

class DistributedBackend final : public Backend {
 public:
  DistributedBackend(std::unique_ptr<Backend> local, Communicator& comm, std::int64_t local_rows)
      : local_(std::move(local)), comm_(comm), rows_(local_rows) {
    total_rows_ = rows_;
    comm_.sum(&total_rows_, 1);
    // Where every process's backend can (GPUs with NCCL), the U step's large sums stay on the
    // devices; one process that cannot (a CPU, a build without NCCL) sends them all through MPI.
    in_place_ = !any(comm_, !local_->can_sum_in_place());
    if (in_place_) local_->sum_in_place_over(comm_);
  }

  void set_U(const std::vector<double>& U) override { local_->set_U(U); }
  std::vector<double> get_U() const override { return local_->get_U(); }

  TaskStepTotals task_step_all(int k_in_effect) override {
    TaskStepTotals totals = local_->task_step_all(k_in_effect);
    sum_totals(totals, nullptr);
    return totals;
  }
  // The totals and cg's start in one sum (the start is summed already where the backends sum in place).
  TaskStepTotals task_step_all_with_u_start(int k_in_effect, UStepStart& start) override {
    TaskStepTotals totals = local_->task_step_all_with_u_start(k_in_effect, start);
    sum_totals(totals, in_place_ ? nullptr : &start);
    return totals;
  }

  void accumulate_normal_equations(std::vector<double>& G, std::vector<double>& v, const PrivacyOptions* bounds) override {
    local_->accumulate_normal_equations(G, v, bounds);
    if (in_place_) return;
    sum(comm_, G);
    sum(comm_, v);
  }
  // (No direct system in place: over many processes rank 0 solves on the host.)

  void accumulate_rhs(std::vector<double>& v, std::vector<double>& W_hat) override {
    local_->accumulate_rhs(v, W_hat);
    if (in_place_) return;
    sum(comm_, v);
    sum(comm_, W_hat);
  }
  void apply_normal_operator(const std::vector<double>& x, std::vector<double>& y) override {
    local_->apply_normal_operator(x, y);
    if (!in_place_) sum(comm_, y);
  }
  void accumulate_rhs_and_apply(const std::vector<double>& x0, std::vector<double>& v, std::vector<double>& W_hat,
                                std::vector<double>& G_x0) override {
    local_->accumulate_rhs_and_apply(x0, v, W_hat, G_x0);
    if (in_place_) return;
    std::vector<double> packed;  // one sum for the three
    sum_packed({&v, &W_hat, &G_x0}, packed);
  }
  double orthonormalise_U(const std::vector<double>& U_tilde, std::vector<double>* R) override {
    return local_->orthonormalise_U(U_tilde, R);
  }

  // Without a release the local moment is normalised by the local rows: undone, summed, and
  // normalised by all rows. With one it is an unnormalised sum already.
  std::vector<double> spectral_moment(const PrivateRelease* release) override {
    std::vector<double> M = local_->spectral_moment(release);
    if (!release)  // a shard of tasks without rows adds nothing (its own normalisation divided by 0)
      for (double& x : M) x = rows_ > 0 ? x * static_cast<double>(rows_) : 0.0;
    sum(comm_, M);
    if (!release && total_rows_ > 0)
      for (double& x : M) x /= static_cast<double>(total_rows_);
    return M;
  }

  void export_task_parameters(Model& model) const override { local_->export_task_parameters(model); }
  void import_task_parameters(const Model& model) override { local_->import_task_parameters(model); }
  void set_prior(const PriorState* prior) override { local_->set_prior(prior); }

  DataMoments data_moments() override {
    DataMoments m = local_->data_moments();
    sum(comm_, m.XtX);
    sum(comm_, m.Xty);
    comm_.sum(&m.yty, 1);
    comm_.sum(&m.rows, 1);
    return m;
  }

 private:
  // Sums the vectors over the processes in one collective call (`packed` holds what other numbers
  // the caller put first, summed with them).
  void sum_packed(std::initializer_list<std::vector<double>*> parts, std::vector<double>& packed) {
    const std::size_t head = packed.size();
    for (const std::vector<double>* p : parts) packed.insert(packed.end(), p->begin(), p->end());
    sum(comm_, packed);
    std::size_t at = head;
    for (std::vector<double>* p : parts)
      for (double& x : *p) x = packed[at++];
  }
  // The task steps' totals (and cg's start, where given) summed in one call; the row count travels as
  // a double (exact below 2^53 rows).
  void sum_totals(TaskStepTotals& totals, UStepStart* start) {
    std::vector<double> packed{totals.sse, totals.effective_params, totals.effective_params_b, static_cast<double>(totals.rows),
                               totals.log_evidence, totals.b_square_sum, static_cast<double>(totals.b_count)};
    if (start)
      sum_packed({&totals.w_second_moment, &totals.w_sum, &start->v, &start->W_hat, &start->residual}, packed);
    else
      sum_packed({&totals.w_second_moment, &totals.w_sum}, packed);
    totals.sse = packed[0];
    totals.effective_params = packed[1];
    totals.effective_params_b = packed[2];
    totals.rows = static_cast<std::int64_t>(packed[3]);
    totals.log_evidence = packed[4];
    totals.b_square_sum = packed[5];
    totals.b_count = static_cast<std::int64_t>(packed[6]);
  }

  std::unique_ptr<Backend> local_;
  Communicator& comm_;
  std::int64_t rows_ = 0, total_rows_ = 0;
  bool in_place_ = false;  // the local backend sums the U step's sums itself
};

}  // namespace

template <typename T>
void fill_distributed_checkpoint_header(Checkpoint& header, const TaskDataView<T>& data, const Options& asked, Communicator& comm) {
  std::vector<std::int64_t> prints(static_cast<std::size_t>(comm.size()) + 2, 0);
  prints[static_cast<std::size_t>(comm.rank())] = static_cast<std::int64_t>(data_fingerprint(data));
  prints[prints.size() - 2] = data.n;
  prints[prints.size() - 1] = data.t;
  comm.sum(prints.data(), prints.size());
  header.asked = asked;
  header.n = prints[prints.size() - 2];
  header.d = data.d;
  header.t = prints[prints.size() - 1];
  header.value_bytes = static_cast<int>(sizeof(T));
  header.data_fingerprint = content_hash(prints.data(), static_cast<std::size_t>(comm.size()) * sizeof(std::int64_t));
  header.processes = comm.size();
}
template void fill_distributed_checkpoint_header(Checkpoint&, const TaskDataView<float>&, const Options&, Communicator&);
template void fill_distributed_checkpoint_header(Checkpoint&, const TaskDataView<double>&, const Options&, Communicator&);

std::unique_ptr<Backend> make_distributed_backend(std::unique_ptr<Backend> local, Communicator& communicator,
                                                  std::int64_t local_rows) {
  return std::make_unique<DistributedBackend>(std::move(local), communicator, local_rows);
}

}  // namespace lrsmeta::core
