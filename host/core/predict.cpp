// Using a trained model: adapting it to new tasks, predicting, and evaluating on held-out rows.
#include <cmath>
#include <string>
#include <vector>

#include "core/backend.hpp"
#include "core/feature_scaling.hpp"
#include "core/prior.hpp"
#include "lrsmeta/lrsmeta.hpp"

namespace lrsmeta {

namespace {

template <typename T>
Model adapt_as_given(const Model& model, const TaskDataView<T>& data, const Options& options) {
  Options o = options;
  o.rank = static_cast<int>(model.r);
  o.sparsity = static_cast<int>(model.k);
  o.rank_candidates.clear();
  o.sparsity_candidates.clear();
  validate(o, data.d);
  std::unique_ptr<core::Backend> backend = core::make_backend(data, o);
  backend->set_U(model.U);
  core::PriorState prior;
  if (model.has_prior()) {  // the new tasks' posterior modes under the trained model's prior
    prior.beta = model.beta;
    prior.Sigma = model.Sigma;
    prior.noise_variance = model.noise_variance;
    prior.support_threshold = model.support_threshold;
    prior.inclusion_probability = model.support_inclusion_probability;
    prior.average_supports = prior.inclusion_probability > 0;
    core::refresh_precisions(prior, model.sparse_prior_variance);
    backend->set_prior(&prior);
  }
  backend->task_step_all(static_cast<int>(model.k));
  // The trained model's shared parts (U, the prior, the features, the options) with the new
  // tasks' own; what belongs to the training run (its tasks, history, choice) does not carry over.
  Model out = model;
  out.t = data.t;
  out.task_keys.clear();
  out.history.clear();
  out.selection = SelectionReport{};
  out.notes.clear();
  out.privacy = PrivacyReport{};
  backend->export_task_parameters(out);
  return out;
}

}  // namespace

// A model fitted at a common scale (feature_scales) adapts there too: the new tasks' features are
// scaled by the same factors, and the model mapped back.
template <typename T>
Model adapt(const Model& model, const TaskDataView<T>& data, const Options& options) {
  model.validate();
  validate(data, true);
  if (data.d != model.d)
    throw Error("adapt: the data has d = " + std::to_string(data.d) + " features, the model d = " + std::to_string(model.d));
  if (model.feature_scales.empty()) return adapt_as_given(model, data, options);
  Model unit = model;
  core::to_common_scale(unit);
  const core::ScaledFeatures<T> scaled(data, model.feature_scales);
  Model out = adapt_as_given(unit, scaled.view, options);
  core::from_common_scale(out, model.feature_scales);
  return out;
}
template Model adapt(const Model&, const TaskDataView<float>&, const Options&);
template Model adapt(const Model&, const TaskDataView<double>&, const Options&);

template <typename T>
std::vector<double> predict(const Model& model, const TaskDataView<T>& data) {
  model.validate();
  validate(data, false);
  if (data.d != model.d)
    throw Error("predict: the data has d = " + std::to_string(data.d) + " features, the model d = " + std::to_string(model.d));
  if (data.t != model.t)
    throw Error("predict: the data has " + std::to_string(data.t) + " tasks, the model " + std::to_string(model.t) +
                " (use adapt for new tasks)");
  std::vector<double> out(static_cast<std::size_t>(data.n));
#pragma omp parallel for schedule(dynamic, 64)
  for (std::int64_t i = 0; i < data.t; ++i) {
    if (data.task_size(i) == 0) continue;
    const std::vector<double> th = model.theta(i);
    for (std::int64_t j = data.task_offsets[i]; j < data.task_offsets[i + 1]; ++j) {
      double s = 0;
      for (std::int64_t a = 0; a < data.d; ++a) s += static_cast<double>(data.X[j * data.d + a]) * th[static_cast<std::size_t>(a)];
      out[static_cast<std::size_t>(j)] = s;
    }
  }
  return out;
}
template std::vector<double> predict(const Model&, const TaskDataView<float>&);
template std::vector<double> predict(const Model&, const TaskDataView<double>&);

template <typename T>
Evaluation evaluate(const Model& model, const TaskDataView<T>& data) {
  if (data.y == nullptr && data.n > 0) throw Error("evaluate: the data has no targets y");
  const std::vector<double> pred = predict(model, data);
  Evaluation ev;
  ev.task_mse.assign(static_cast<std::size_t>(data.t), std::nan(""));
  double total = 0;
  for (std::int64_t i = 0; i < data.t; ++i) {
    const std::int64_t m = data.task_size(i);
    if (m == 0) continue;
    double s = 0;
    for (std::int64_t j = data.task_offsets[i]; j < data.task_offsets[i + 1]; ++j) {
      const double e = static_cast<double>(data.y[j]) - pred[static_cast<std::size_t>(j)];
      s += e * e;
    }
    total += s;
    ev.task_mse[static_cast<std::size_t>(i)] = s / static_cast<double>(m);
  }
  ev.rows = data.n;
  ev.mse = data.n > 0 ? total / static_cast<double>(data.n) : std::nan("");
  return ev;
}
template Evaluation evaluate(const Model&, const TaskDataView<float>&);
template Evaluation evaluate(const Model&, const TaskDataView<double>&);

}  // namespace lrsmeta
