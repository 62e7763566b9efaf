/* lrsmeta C API: for callers from C and from other languages (FFI).
 *
 * Handles are opaque; every function returns an lrsmeta_status, and on failure
 * lrsmeta_last_error() gives a message for the calling thread. Arrays are row-major (C order).
 * Functions that create a handle (lrsmeta_model** out) set *out to NULL when they fail; a handle
 * is released with its _destroy function (NULL is allowed). */
#ifndef LRSMETA_LRSMETA_H
#define LRSMETA_LRSMETA_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define LRSMETA_C_API __declspec(dllexport)
#else
#define LRSMETA_C_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lrsmeta_status {
  LRSMETA_OK = 0,
  LRSMETA_INVALID_ARGUMENT = 1, /* bad data, bad option, null pointer */
  LRSMETA_IO_ERROR = 2,         /* a file could not be read or written */
  LRSMETA_RUNTIME_ERROR = 3,    /* anything else (e.g. a numerical failure, out of memory) */
} lrsmeta_status;

typedef struct lrsmeta_options lrsmeta_options;
typedef struct lrsmeta_model lrsmeta_model;

/* Message of the last failed call on this thread ("" if none). Valid until the next call. */
LRSMETA_C_API const char* lrsmeta_last_error(void);
LRSMETA_C_API const char* lrsmeta_version(void);

/* Options start at the library defaults. Every option of the library's options table
 * (lrsmeta/option_table.hpp; docs/options.md lists them) is set by its name: integers and flags
 * ("private", "standardize", "population_prior": 0 or 1) with set_int, numbers with set_double (or
 * set_int), and any option from text with set_string ("pursuit", "kfold", "3", and "auto" for
 * "rank", "sparsity", "sparse_prior_scale", "support_threshold" and "covariance_shrinkage", which the
 * fit then estimates or chooses). Ranges are checked by the fit. "noise_seed" makes the private noise
 * reproducible and voids the guarantee. */
LRSMETA_C_API lrsmeta_status lrsmeta_options_create(lrsmeta_options** out);
LRSMETA_C_API void lrsmeta_options_destroy(lrsmeta_options* options);
LRSMETA_C_API lrsmeta_status lrsmeta_options_set_int(lrsmeta_options* options, const char* name, int64_t value);
LRSMETA_C_API lrsmeta_status lrsmeta_options_set_double(lrsmeta_options* options, const char* name, double value);
LRSMETA_C_API lrsmeta_status lrsmeta_options_set_string(lrsmeta_options* options, const char* name, const char* value);
/* The options table: its size, the i-th option's name (NULL past the end), and an option's value as
 * text ("auto" where the fit chooses it, "" where it is unset; NULL on error). The text stays valid
 * until the next call of lrsmeta_options_get on this thread. */
LRSMETA_C_API size_t lrsmeta_option_count(void);
LRSMETA_C_API const char* lrsmeta_option_name(size_t i);
LRSMETA_C_API const char* lrsmeta_options_get(const lrsmeta_options* options, const char* name);

/* Train on ragged task data: X (n x d), y (n), task_offsets (t + 1). */
LRSMETA_C_API lrsmeta_status lrsmeta_fit_f64(const double* X, const double* y, const int64_t* task_offsets,
                                             int64_t n, int64_t d, int64_t t, const lrsmeta_options* options,
                                             lrsmeta_model** out);
LRSMETA_C_API lrsmeta_status lrsmeta_fit_f32(const float* X, const float* y, const int64_t* task_offsets,
                                             int64_t n, int64_t d, int64_t t, const lrsmeta_options* options,
                                             lrsmeta_model** out);
/* The same, calling `callback` after every outer iteration (it may be NULL); a callback that returns
 * 0 stops training after that iteration (a final task step still runs). */
typedef struct lrsmeta_iteration {
  int iteration;          /* 1-based */
  double training_loss;   /* mean squared training residual */
  double u_change;        /* ||(I - U_old U_old^T) U_new||_F */
  double elapsed_seconds;
} lrsmeta_iteration;
typedef int (*lrsmeta_iteration_callback)(const lrsmeta_iteration* info, void* user_data);
LRSMETA_C_API lrsmeta_status lrsmeta_fit_f64_callback(const double* X, const double* y, const int64_t* task_offsets,
                                                      int64_t n, int64_t d, int64_t t, const lrsmeta_options* options,
                                                      lrsmeta_iteration_callback callback, void* user_data,
                                                      lrsmeta_model** out);
LRSMETA_C_API lrsmeta_status lrsmeta_fit_f32_callback(const float* X, const float* y, const int64_t* task_offsets,
                                                      int64_t n, int64_t d, int64_t t, const lrsmeta_options* options,
                                                      lrsmeta_iteration_callback callback, void* user_data,
                                                      lrsmeta_model** out);
/* New tasks with U fixed (options may be NULL for the defaults). */
LRSMETA_C_API lrsmeta_status lrsmeta_adapt_f64(const lrsmeta_model* model, const double* X, const double* y,
                                               const int64_t* task_offsets, int64_t n, int64_t d, int64_t t,
                                               const lrsmeta_options* options, lrsmeta_model** out);
/* predictions (n) for every row; data must have the model's t tasks. */
LRSMETA_C_API lrsmeta_status lrsmeta_predict_f64(const lrsmeta_model* model, const double* X,
                                                 const int64_t* task_offsets, int64_t n, int64_t d, int64_t t,
                                                 double* predictions);
/* Mean squared error over all rows. */
LRSMETA_C_API lrsmeta_status lrsmeta_evaluate_f64(const lrsmeta_model* model, const double* X, const double* y,
                                                  const int64_t* task_offsets, int64_t n, int64_t d, int64_t t,
                                                  double* mse);

LRSMETA_C_API void lrsmeta_model_destroy(lrsmeta_model* model);
LRSMETA_C_API lrsmeta_status lrsmeta_model_dims(const lrsmeta_model* model, int64_t* d, int64_t* r, int64_t* k,
                                                int64_t* t);
/* Copy out U (d x r), W (t x r), B_index (t x k, -1 = unused slot), B_value (t x k). */
LRSMETA_C_API lrsmeta_status lrsmeta_model_get_U(const lrsmeta_model* model, double* U);
LRSMETA_C_API lrsmeta_status lrsmeta_model_get_W(const lrsmeta_model* model, double* W);
LRSMETA_C_API lrsmeta_status lrsmeta_model_get_B(const lrsmeta_model* model, int32_t* B_index, double* B_value);
/* Outer iterations run, and the privacy spent (epsilon is infinite for a private fit without noise;
 * private is 0 and epsilon, delta 0 for a plain fit). Any pointer may be NULL. */
LRSMETA_C_API lrsmeta_status lrsmeta_model_training(const lrsmeta_model* model, int64_t* iterations, int* private_fit,
                                                    double* epsilon, double* delta);
LRSMETA_C_API lrsmeta_status lrsmeta_model_save(const lrsmeta_model* model, const char* path);
LRSMETA_C_API lrsmeta_status lrsmeta_model_load(const char* path, lrsmeta_model** out);

#ifdef __cplusplus
}
#endif

#endif /* LRSMETA_LRSMETA_H */
