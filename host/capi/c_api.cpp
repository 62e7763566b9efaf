// The C API: a thin layer that turns exceptions into status codes and a thread-local message.
#include "lrsmeta/lrsmeta.h"

#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "lrsmeta/io.hpp"
#include "lrsmeta/lrsmeta.hpp"

struct lrsmeta_options {
  lrsmeta::Options value;
};
struct lrsmeta_model {
  lrsmeta::Model value;
};

namespace {
thread_local std::string last_error;

lrsmeta_status fail(lrsmeta_status status, const std::string& message) {
  last_error = message;
  return status;
}

// Run f, mapping exceptions to status codes. File errors are reported by the I/O layer with the
// path first; they are told apart by the calling function (io = true).
template <typename F>
lrsmeta_status guarded(F&& f, bool io = false) {
  try {
    last_error.clear();
    f();
    return LRSMETA_OK;
  } catch (const lrsmeta::Error& e) {
    return fail(io ? LRSMETA_IO_ERROR : LRSMETA_INVALID_ARGUMENT, e.what());
  } catch (const std::bad_alloc&) {
    return fail(LRSMETA_RUNTIME_ERROR, "out of memory");
  } catch (const std::exception& e) {
    return fail(LRSMETA_RUNTIME_ERROR, e.what());
  } catch (...) {
    return fail(LRSMETA_RUNTIME_ERROR, "unknown error");
  }
}

#define LRSMETA_REQUIRE(ptr)                                                      \
  do {                                                                            \
    if ((ptr) == nullptr) return fail(LRSMETA_INVALID_ARGUMENT, #ptr " is NULL"); \
  } while (0)

template <typename T>
lrsmeta::TaskDataView<T> view(const T* X, const T* y, const int64_t* offsets, int64_t n, int64_t d, int64_t t) {
  lrsmeta::TaskDataView<T> v;
  v.X = X;
  v.y = y;
  v.task_offsets = offsets;
  v.n = n;
  v.d = d;
  v.t = t;
  return v;
}

template <typename T>
lrsmeta_status fit_any(const T* X, const T* y, const int64_t* offsets, int64_t n, int64_t d, int64_t t,
                       const lrsmeta_options* options, lrsmeta_iteration_callback callback, void* user_data,
                       lrsmeta_model** out) {
  LRSMETA_REQUIRE(out);
  LRSMETA_REQUIRE(offsets);
  *out = nullptr;
  return guarded([&] {
    const lrsmeta::Options o = options ? options->value : lrsmeta::Options{};
    lrsmeta::IterationCallback on_iteration;
    if (callback)
      on_iteration = [callback, user_data](const lrsmeta::IterationInfo& info) {
        const lrsmeta_iteration c{info.iteration, info.training_loss, info.u_change, info.elapsed_seconds};
        return callback(&c, user_data) != 0;
      };
    auto model = std::make_unique<lrsmeta_model>();
    model->value = lrsmeta::fit(view(X, y, offsets, n, d, t), o, on_iteration);
    *out = model.release();
  });
}
}  // namespace

extern "C" {

const char* lrsmeta_last_error(void) { return last_error.c_str(); }
const char* lrsmeta_version(void) { return LRSMETA_VERSION_STRING; }

lrsmeta_status lrsmeta_options_create(lrsmeta_options** out) {
  LRSMETA_REQUIRE(out);
  return guarded([&] { *out = std::make_unique<lrsmeta_options>().release(); });
}
void lrsmeta_options_destroy(lrsmeta_options* options) { std::unique_ptr<lrsmeta_options> owned(options); }

lrsmeta_status lrsmeta_options_set_int(lrsmeta_options* options, const char* name, int64_t value) {
  LRSMETA_REQUIRE(options);
  LRSMETA_REQUIRE(name);
  lrsmeta::Options& o = options->value;
  const std::string key(name);
  const bool fits_int = value >= INT32_MIN && value <= INT32_MAX;
  if (key == "private") {
    o.privacy.enabled = value != 0;
    return LRSMETA_OK;
  }
  if (key == "noise_seed") {  // a fixed noise seed: reproducible, and no privacy guarantee
    o.privacy.fixed_seed = true;
    o.privacy.noise_seed = static_cast<std::uint64_t>(value);
    return LRSMETA_OK;
  }
  if (key == "population_prior") {
    o.population_prior = value != 0;
    return LRSMETA_OK;
  }
  if (key == "standardize") {
    o.standardize = value != 0;
    return LRSMETA_OK;
  }
  if (key == "selection_tasks") {
    o.selection_tasks = value;  // checked by the fit
    return LRSMETA_OK;
  }
  if (key == "seed") {
    if (value < 0) return fail(LRSMETA_INVALID_ARGUMENT, "option seed must be >= 0");
    o.seed = static_cast<std::uint64_t>(value);
    return LRSMETA_OK;
  }
  int* field = key == "rank" ? &o.rank
               : key == "sparsity" ? &o.sparsity
               : key == "iterations" ? &o.iterations
               : key == "inner_iterations" ? &o.inner_iterations
               : key == "warm_start_iterations" ? &o.warm_start_iterations
               : key == "threads" ? &o.threads
               : key == "max_samples" ? &o.privacy.max_samples
               : key == "cg_max_steps" ? &o.cg_max_steps
               : key == "folds" ? &o.folds
               : nullptr;
  if (!field) return fail(LRSMETA_INVALID_ARGUMENT, "unknown integer option '" + key + "'");
  if (!fits_int) return fail(LRSMETA_INVALID_ARGUMENT, "option " + key + " out of range");
  *field = static_cast<int>(value);
  return LRSMETA_OK;
}

lrsmeta_status lrsmeta_options_set_double(lrsmeta_options* options, const char* name, double value) {
  LRSMETA_REQUIRE(options);
  LRSMETA_REQUIRE(name);
  lrsmeta::Options& o = options->value;
  const std::string key(name);
  double* field = key == "ridge" ? &o.ridge
                  : key == "task_ridge" ? &o.task_ridge
                  : key == "step_size" ? &o.step_size
                  : key == "tolerance" ? &o.tolerance
                  : key == "relative_tolerance" ? &o.relative_tolerance
                  : key == "sparse_prior_scale" ? &o.sparse_prior_scale
                  : key == "support_threshold" ? &o.support_threshold
                  : key == "covariance_shrinkage" ? &o.covariance_shrinkage
                  : key == "validation_fraction" ? &o.validation_fraction
                  : key == "selection_tolerance" ? &o.selection_tolerance
                  : key == "cg_tolerance" ? &o.cg_tolerance
                  : key == "cg_forcing" ? &o.cg_forcing
                  : key == "epsilon" ? &o.privacy.epsilon
                  : key == "delta" ? &o.privacy.delta
                  : key == "clip_x" ? &o.privacy.clip_x
                  : key == "clip_y" ? &o.privacy.clip_y
                  : key == "clip_w" ? &o.privacy.clip_w
                  : key == "noise_multiplier" ? &o.privacy.noise_multiplier
                  : nullptr;
  if (!field) return fail(LRSMETA_INVALID_ARGUMENT, "unknown number option '" + key + "'");
  *field = value;
  return LRSMETA_OK;
}

lrsmeta_status lrsmeta_options_set_string(lrsmeta_options* options, const char* name, const char* value) {
  LRSMETA_REQUIRE(options);
  LRSMETA_REQUIRE(name);
  LRSMETA_REQUIRE(value);
  const std::string key(name);
  return guarded([&] {
    if (key == "variant") options->value.variant = lrsmeta::parse_variant(value);
    else if (key == "init") options->value.init = lrsmeta::parse_init(value);
    else if (key == "device") options->value.device = lrsmeta::parse_device(value);
    else if (key == "prior") options->value.prior = lrsmeta::parse_prior(value);
    else if (key == "u_solver") options->value.u_solver = lrsmeta::parse_u_solver(value);
    else if (key == "selection") options->value.selection = lrsmeta::parse_selection(value);
    else if ((key == "rank" || key == "sparsity") && std::string(value) != "auto")
      throw lrsmeta::Error("option " + key + ": the only string value is \"auto\" (a number goes through "
                           "lrsmeta_options_set_int), not '" + value + "'");
    else if (key == "rank" || key == "sparsity")  // the fit tries the default candidates for the data's d
      (key == "rank" ? options->value.rank : options->value.sparsity) = lrsmeta::Options::kAuto;
    else throw lrsmeta::Error("unknown string option '" + key + "'");
  });
}

lrsmeta_status lrsmeta_fit_f64(const double* X, const double* y, const int64_t* task_offsets, int64_t n, int64_t d,
                               int64_t t, const lrsmeta_options* options, lrsmeta_model** out) {
  return fit_any(X, y, task_offsets, n, d, t, options, nullptr, nullptr, out);
}
lrsmeta_status lrsmeta_fit_f32(const float* X, const float* y, const int64_t* task_offsets, int64_t n, int64_t d,
                               int64_t t, const lrsmeta_options* options, lrsmeta_model** out) {
  return fit_any(X, y, task_offsets, n, d, t, options, nullptr, nullptr, out);
}
lrsmeta_status lrsmeta_fit_f64_callback(const double* X, const double* y, const int64_t* task_offsets, int64_t n,
                                        int64_t d, int64_t t, const lrsmeta_options* options,
                                        lrsmeta_iteration_callback callback, void* user_data, lrsmeta_model** out) {
  return fit_any(X, y, task_offsets, n, d, t, options, callback, user_data, out);
}
lrsmeta_status lrsmeta_fit_f32_callback(const float* X, const float* y, const int64_t* task_offsets, int64_t n,
                                        int64_t d, int64_t t, const lrsmeta_options* options,
                                        lrsmeta_iteration_callback callback, void* user_data, lrsmeta_model** out) {
  return fit_any(X, y, task_offsets, n, d, t, options, callback, user_data, out);
}

lrsmeta_status lrsmeta_adapt_f64(const lrsmeta_model* model, const double* X, const double* y,
                                 const int64_t* task_offsets, int64_t n, int64_t d, int64_t t,
                                 const lrsmeta_options* options, lrsmeta_model** out) {
  LRSMETA_REQUIRE(model);
  LRSMETA_REQUIRE(out);
  LRSMETA_REQUIRE(task_offsets);
  *out = nullptr;
  return guarded([&] {
    const lrsmeta::Options o = options ? options->value : model->value.options;
    auto adapted = std::make_unique<lrsmeta_model>();
    adapted->value = lrsmeta::adapt(model->value, view(X, y, task_offsets, n, d, t), o);
    *out = adapted.release();
  });
}

lrsmeta_status lrsmeta_predict_f64(const lrsmeta_model* model, const double* X, const int64_t* task_offsets,
                                   int64_t n, int64_t d, int64_t t, double* predictions) {
  LRSMETA_REQUIRE(model);
  LRSMETA_REQUIRE(task_offsets);
  LRSMETA_REQUIRE(predictions);
  return guarded([&] {
    const std::vector<double> p = lrsmeta::predict(model->value, view<double>(X, nullptr, task_offsets, n, d, t));
    std::copy(p.begin(), p.end(), predictions);
  });
}

lrsmeta_status lrsmeta_evaluate_f64(const lrsmeta_model* model, const double* X, const double* y,
                                    const int64_t* task_offsets, int64_t n, int64_t d, int64_t t, double* mse) {
  LRSMETA_REQUIRE(model);
  LRSMETA_REQUIRE(task_offsets);
  LRSMETA_REQUIRE(mse);
  return guarded([&] { *mse = lrsmeta::evaluate(model->value, view(X, y, task_offsets, n, d, t)).mse; });
}

void lrsmeta_model_destroy(lrsmeta_model* model) { std::unique_ptr<lrsmeta_model> owned(model); }

lrsmeta_status lrsmeta_model_dims(const lrsmeta_model* model, int64_t* d, int64_t* r, int64_t* k, int64_t* t) {
  LRSMETA_REQUIRE(model);
  if (d) *d = model->value.d;
  if (r) *r = model->value.r;
  if (k) *k = model->value.k;
  if (t) *t = model->value.t;
  return LRSMETA_OK;
}
lrsmeta_status lrsmeta_model_get_U(const lrsmeta_model* model, double* U) {
  LRSMETA_REQUIRE(model);
  LRSMETA_REQUIRE(U);
  std::copy(model->value.U.begin(), model->value.U.end(), U);
  return LRSMETA_OK;
}
lrsmeta_status lrsmeta_model_get_W(const lrsmeta_model* model, double* W) {
  LRSMETA_REQUIRE(model);
  LRSMETA_REQUIRE(W);
  std::copy(model->value.W.begin(), model->value.W.end(), W);
  return LRSMETA_OK;
}
lrsmeta_status lrsmeta_model_get_B(const lrsmeta_model* model, int32_t* B_index, double* B_value) {
  LRSMETA_REQUIRE(model);
  if (B_index) std::copy(model->value.B_index.begin(), model->value.B_index.end(), B_index);
  if (B_value) std::copy(model->value.B_value.begin(), model->value.B_value.end(), B_value);
  return LRSMETA_OK;
}
lrsmeta_status lrsmeta_model_training(const lrsmeta_model* model, int64_t* iterations, int* private_fit, double* epsilon,
                                      double* delta) {
  LRSMETA_REQUIRE(model);
  const lrsmeta::Model& m = model->value;
  if (iterations) *iterations = static_cast<int64_t>(m.history.size());
  if (private_fit) *private_fit = m.privacy.enabled ? 1 : 0;
  if (epsilon) *epsilon = m.privacy.enabled ? m.privacy.epsilon : 0.0;
  if (delta) *delta = m.privacy.enabled ? m.privacy.delta : 0.0;
  return LRSMETA_OK;
}

lrsmeta_status lrsmeta_model_save(const lrsmeta_model* model, const char* path) {
  LRSMETA_REQUIRE(model);
  LRSMETA_REQUIRE(path);
  return guarded([&] { lrsmeta::save_model(model->value, path); }, true);
}
lrsmeta_status lrsmeta_model_load(const char* path, lrsmeta_model** out) {
  LRSMETA_REQUIRE(path);
  LRSMETA_REQUIRE(out);
  *out = nullptr;
  return guarded([&] {
    auto model = std::make_unique<lrsmeta_model>();
    model->value = lrsmeta::load_model(path);
    *out = model.release();
  }, true);
}

}  // extern "C"
