// The C API: a thin layer that turns exceptions into status codes and a thread-local message.
#include "lrsmeta/lrsmeta.h"

#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "lrsmeta/io.hpp"
#include "lrsmeta/lrsmeta.hpp"
#include "lrsmeta/option_table.hpp"

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
  return guarded([&] {
    auto created = std::make_unique<lrsmeta_options>();
    created->value = lrsmeta::default_options();
    *out = created.release();
  });
}
void lrsmeta_options_destroy(lrsmeta_options* options) { std::unique_ptr<lrsmeta_options> owned(options); }

// The setters go through the options table (lrsmeta/option_table.hpp): every option the table
// lists, under its name, with its checks.
lrsmeta_status lrsmeta_options_set_int(lrsmeta_options* options, const char* name, int64_t value) {
  LRSMETA_REQUIRE(options);
  LRSMETA_REQUIRE(name);
  return guarded([&] {
    const lrsmeta::OptionSpec& spec = lrsmeta::option_spec(name);
    if (spec.type == lrsmeta::OptionType::flag) lrsmeta::set_option(options->value, name, value != 0 ? 1.0 : 0.0);
    else if (spec.type == lrsmeta::OptionType::number) lrsmeta::set_option(options->value, name, static_cast<double>(value));
    else lrsmeta::set_option_integer(options->value, name, value);  // a choice: refused, naming what it takes
  });
}

lrsmeta_status lrsmeta_options_set_double(lrsmeta_options* options, const char* name, double value) {
  LRSMETA_REQUIRE(options);
  LRSMETA_REQUIRE(name);
  return guarded([&] { lrsmeta::set_option(options->value, name, value); });
}

lrsmeta_status lrsmeta_options_set_string(lrsmeta_options* options, const char* name, const char* value) {
  LRSMETA_REQUIRE(options);
  LRSMETA_REQUIRE(name);
  LRSMETA_REQUIRE(value);
  return guarded([&] { lrsmeta::set_option(options->value, name, std::string(value)); });
}

size_t lrsmeta_option_count(void) { return lrsmeta::option_table().size(); }
const char* lrsmeta_option_name(size_t i) {
  const auto& table = lrsmeta::option_table();
  return i < table.size() ? table[i].name.c_str() : nullptr;
}
const char* lrsmeta_options_get(const lrsmeta_options* options, const char* name) {
  thread_local std::string text;
  if (!options || !name) {
    fail(LRSMETA_INVALID_ARGUMENT, !options ? "options is NULL" : "name is NULL");
    return nullptr;
  }
  const lrsmeta_status status = guarded([&] { text = lrsmeta::option_value(options->value, name); });
  return status == LRSMETA_OK ? text.c_str() : nullptr;
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
