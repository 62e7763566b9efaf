/* The C API used from plain C (compiled as C11): train, inspect, predict, save, load, errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lrsmeta/lrsmeta.h"

/* Deterministic pseudo-random numbers in [-1, 1] (no dependency on the C library's rand). */
static double next_value(unsigned long long* state) {
  *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
  return (double)(*state >> 11) / 4503599627370496.0 - 1.0;
}

#define CHECK(cond, ...)                    \
  do {                                      \
    if (!(cond)) {                          \
      snprintf(message, size, __VA_ARGS__); \
      goto done;                            \
    }                                       \
  } while (0)

/* Counts iterations and asks to stop after the third. */
static int stop_after_three(const lrsmeta_iteration* info, void* user_data) {
  int* calls = (int*)user_data;
  ++*calls;
  return info->iteration < 3 && isfinite(info->training_loss);
}

/* Returns 0 on success; otherwise writes what failed to message. */
int c_api_train_predict_save_load(const char* folder, char* message, size_t size) {
  enum { T = 200, M = 30, D = 12 };
  int result = 1;
  double* X = malloc(sizeof(double) * T * M * D);
  double* y = malloc(sizeof(double) * T * M);
  double* pred = malloc(sizeof(double) * T * M);
  double* pred2 = malloc(sizeof(double) * T * M);
  int64_t offsets[T + 1];
  double U[D * 2], W[T * 2], Bv[T];
  int32_t Bi[T];
  lrsmeta_options* opts = NULL;
  lrsmeta_model* model = NULL;
  lrsmeta_model* loaded = NULL;
  lrsmeta_model* failed = NULL; /* failed calls must leave NULL here */
  unsigned long long state = 42;
  int64_t d, r, k, t;
  double mse = -1;
  double u0[D], u1[D], dot = 0, n0 = 0, n1 = 0;
  for (int i = 0; i <= T; ++i) offsets[i] = (int64_t)i * M;
  /* Tasks share a random (incoherent) 2-D subspace span(u0, u1), plus one task-specific
     coordinate 2 + i % 4 in b. */
  for (int a = 0; a < D; ++a) u0[a] = next_value(&state), u1[a] = next_value(&state);
  for (int a = 0; a < D; ++a) n0 += u0[a] * u0[a];
  for (int a = 0; a < D; ++a) u0[a] /= sqrt(n0), dot += u0[a] * u1[a];
  for (int a = 0; a < D; ++a) u1[a] -= dot * u0[a], n1 += u1[a] * u1[a];
  for (int a = 0; a < D; ++a) u1[a] /= sqrt(n1);
  for (int i = 0; i < T; ++i) {
    const double w0 = 2 * next_value(&state), w1 = 2 * next_value(&state);
    for (int j = 0; j < M; ++j) {
      double* x = X + ((size_t)i * M + j) * D;
      double s = 0;
      for (int a = 0; a < D; ++a) x[a] = next_value(&state), s += x[a] * (w0 * u0[a] + w1 * u1[a]);
      y[i * M + j] = s + x[2 + i % 4];
    }
  }
  CHECK(lrsmeta_options_create(&opts) == LRSMETA_OK, "options_create");
  CHECK(lrsmeta_options_set_int(opts, "rank", 2) == LRSMETA_OK, "set rank");
  CHECK(lrsmeta_options_set_int(opts, "sparsity", 1) == LRSMETA_OK, "set sparsity");
  CHECK(lrsmeta_options_set_int(opts, "iterations", 40) == LRSMETA_OK, "set iterations");
  CHECK(lrsmeta_options_set_string(opts, "variant", "pursuit") == LRSMETA_OK, "set variant");
  CHECK(lrsmeta_options_set_double(opts, "ridge", 0.0) == LRSMETA_OK, "set ridge");
  CHECK(lrsmeta_options_set_string(opts, "variant", "newton") == LRSMETA_INVALID_ARGUMENT, "bad variant accepted");
  CHECK(strstr(lrsmeta_last_error(), "newton") != NULL, "message lacks the bad name: %s", lrsmeta_last_error());
  CHECK(lrsmeta_options_set_int(opts, "colour", 1) == LRSMETA_INVALID_ARGUMENT, "unknown option accepted");

  CHECK(lrsmeta_fit_f64(X, y, offsets, T * M, D, T, opts, &model) == LRSMETA_OK, "fit: %s", lrsmeta_last_error());
  CHECK(lrsmeta_model_dims(model, &d, &r, &k, &t) == LRSMETA_OK && d == D && r == 2 && k == 1 && t == T, "dims");
  CHECK(lrsmeta_model_get_U(model, U) == LRSMETA_OK && lrsmeta_model_get_W(model, W) == LRSMETA_OK, "get U/W");
  CHECK(lrsmeta_model_get_B(model, Bi, Bv) == LRSMETA_OK, "get B");
  for (int i = 0; i < T; ++i) CHECK(Bi[i] == 2 + i % 4, "task %d: b index %d, expected %d", i, Bi[i], 2 + i % 4);
  CHECK(lrsmeta_evaluate_f64(model, X, y, offsets, T * M, D, T, &mse) == LRSMETA_OK, "evaluate");
  CHECK(mse < 1e-16, "training MSE %g on noiseless data", mse);
  CHECK(lrsmeta_predict_f64(model, X, offsets, T * M, D, T, pred) == LRSMETA_OK, "predict");
  for (int j = 0; j < T * M; ++j) CHECK(fabs(pred[j] - y[j]) < 1e-7, "prediction %d off", j);

  CHECK(lrsmeta_model_save(model, folder) == LRSMETA_OK, "save: %s", lrsmeta_last_error());
  CHECK(lrsmeta_model_load(folder, &loaded) == LRSMETA_OK, "load: %s", lrsmeta_last_error());
  CHECK(lrsmeta_predict_f64(loaded, X, offsets, T * M, D, T, pred2) == LRSMETA_OK, "predict (loaded)");
  CHECK(memcmp(pred, pred2, sizeof(double) * T * M) == 0, "loaded model predicts differently");

  /* A callback that stops training; a private fit reports what it spent. */
  {
    int calls = 0, private_fit = -1;
    int64_t iterations = 0;
    double eps = -1, delta = -1;
    CHECK(lrsmeta_fit_f64_callback(X, y, offsets, T * M, D, T, opts, stop_after_three, &calls, &failed) == LRSMETA_OK,
          "fit with callback: %s", lrsmeta_last_error());
    CHECK(calls == 3, "callback called %d times, expected 3", calls);
    CHECK(lrsmeta_model_training(failed, &iterations, &private_fit, &eps, &delta) == LRSMETA_OK && iterations == 3 &&
              private_fit == 0, "training report of the stopped fit");
    lrsmeta_model_destroy(failed);
    failed = NULL;
    CHECK(lrsmeta_options_set_int(opts, "private", 1) == LRSMETA_OK, "set private");
    CHECK(lrsmeta_options_set_double(opts, "epsilon", 4.0) == LRSMETA_OK, "set epsilon");
    CHECK(lrsmeta_options_set_double(opts, "delta", 1e-6) == LRSMETA_OK, "set delta");
    CHECK(lrsmeta_options_set_int(opts, "iterations", 5) == LRSMETA_OK, "set iterations");
    CHECK(lrsmeta_fit_f64(X, y, offsets, T * M, D, T, opts, &failed) == LRSMETA_OK, "private fit: %s", lrsmeta_last_error());
    CHECK(lrsmeta_model_training(failed, &iterations, &private_fit, &eps, &delta) == LRSMETA_OK && private_fit == 1 &&
              eps <= 4.0 && eps > 3.99 && delta == 1e-6, "privacy report: private %d, epsilon %g", private_fit, eps);
    lrsmeta_model_destroy(failed);
    failed = NULL;
    CHECK(lrsmeta_options_set_int(opts, "private", 0) == LRSMETA_OK, "unset private");
  }

  /* The prior's options, and r and k chosen on validation rows. */
  {
    lrsmeta_model* chosen = NULL;
    CHECK(lrsmeta_options_set_string(opts, "prior", "none") == LRSMETA_OK, "set prior none");
    CHECK(lrsmeta_options_set_string(opts, "prior", "flat") == LRSMETA_INVALID_ARGUMENT, "bad prior accepted");
    CHECK(lrsmeta_options_set_string(opts, "prior", "auto") == LRSMETA_OK, "set prior auto");
    CHECK(lrsmeta_options_set_double(opts, "sparse_prior_scale", 0.1) == LRSMETA_OK, "set sparse_prior_scale");
    CHECK(lrsmeta_options_set_double(opts, "relative_tolerance", 1e-5) == LRSMETA_OK, "set relative_tolerance");
    CHECK(lrsmeta_options_set_string(opts, "rank", "auto") == LRSMETA_OK, "set rank auto");
    CHECK(lrsmeta_options_set_string(opts, "rank", "three") == LRSMETA_INVALID_ARGUMENT, "rank 'three' accepted");
    CHECK(strstr(lrsmeta_last_error(), "three") != NULL, "message lacks the bad value: %s", lrsmeta_last_error());
    CHECK(lrsmeta_options_set_int(opts, "iterations", 10) == LRSMETA_OK, "set iterations");
    CHECK(lrsmeta_fit_f64(X, y, offsets, T * M, D, T, opts, &chosen) == LRSMETA_OK, "fit with rank auto: %s", lrsmeta_last_error());
    CHECK(lrsmeta_model_dims(chosen, &d, &r, &k, &t) == LRSMETA_OK && r >= 0 && r <= D && k == 1, "dims of the chosen model");
    lrsmeta_model_destroy(chosen);
    chosen = NULL;
    /* The same choice on 3 folds of each task's rows. */
    CHECK(lrsmeta_options_set_string(opts, "selection", "kfold") == LRSMETA_OK, "set selection kfold");
    CHECK(lrsmeta_options_set_int(opts, "folds", 3) == LRSMETA_OK, "set folds");
    CHECK(lrsmeta_fit_f64(X, y, offsets, T * M, D, T, opts, &chosen) == LRSMETA_OK, "fit by kfold: %s", lrsmeta_last_error());
    CHECK(lrsmeta_model_dims(chosen, &d, &r, &k, &t) == LRSMETA_OK && r >= 0 && r <= D && k == 1, "dims of the kfold model");
    lrsmeta_model_destroy(chosen);
    CHECK(lrsmeta_options_set_int(opts, "folds", 1) == LRSMETA_OK, "set folds 1 (checked by the fit)");
    CHECK(lrsmeta_fit_f64(X, y, offsets, T * M, D, T, opts, &failed) == LRSMETA_INVALID_ARGUMENT, "1 fold accepted");
    CHECK(strstr(lrsmeta_last_error(), "folds") != NULL, "message lacks folds: %s", lrsmeta_last_error());
    CHECK(lrsmeta_options_set_int(opts, "folds", 5) == LRSMETA_OK, "set folds back");
    CHECK(lrsmeta_options_set_string(opts, "selection", "evidence") == LRSMETA_OK, "set selection back");
    CHECK(lrsmeta_options_set_int(opts, "rank", 2) == LRSMETA_OK, "set rank 2 again");
  }

  /* Errors: codes and messages, no crash. */
  offsets[3] = 1;
  CHECK(lrsmeta_fit_f64(X, y, offsets, T * M, D, T, opts, &failed) == LRSMETA_INVALID_ARGUMENT, "bad offsets accepted");
  CHECK(failed == NULL, "failed fit left a handle");
  CHECK(strstr(lrsmeta_last_error(), "task_offsets") != NULL, "message: %s", lrsmeta_last_error());
  CHECK(lrsmeta_fit_f64(X, y, NULL, T * M, D, T, opts, &failed) == LRSMETA_INVALID_ARGUMENT, "NULL offsets accepted");
  CHECK(lrsmeta_model_load("/nonexistent/model", &failed) == LRSMETA_IO_ERROR, "missing model loaded");
  CHECK(failed == NULL, "failed load left a handle");
  CHECK(strlen(lrsmeta_version()) > 0, "version");
  result = 0;
done:
  lrsmeta_model_destroy(failed);
  lrsmeta_model_destroy(model);
  lrsmeta_model_destroy(loaded);
  lrsmeta_options_destroy(opts);
  free(X);
  free(y);
  free(pred);
  free(pred2);
  return result;
}
