// Bad input gets a clear error naming the problem, never a crash or a silent wrong answer.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "lrsmeta/io.hpp"
#include "lrsmeta/lrsmeta.hpp"

namespace lrsmeta {
namespace {

Dataset<double> small_data() {
  SyntheticSpec s;
  s.tasks = 6;
  s.min_samples = s.max_samples = 8;
  s.d = 5;
  s.r = 2;
  s.k = 1;
  return generate_synthetic(s).data;
}

Options small_options() {
  Options o;
  o.rank = 2;
  o.sparsity = 1;
  o.iterations = 3;
  return o;
}

// Expect fit to throw lrsmeta::Error whose message contains `needle`.
template <typename T>
void expect_fit_error(const TaskDataView<T>& v, const Options& o, const std::string& needle) {
  try {
    fit(v, o);
    FAIL() << "no error; expected one mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
  }
}

TEST(BadInput, NonFiniteValuesAreNamedWithTheirPosition) {
  Dataset<double> d = small_data();
  d.X[3 * 5 + 2] = std::nan("");
  d.X[d.X.size() - 4] = std::numeric_limits<double>::infinity();  // a later one: the first is named (parallel scan)
  expect_fit_error(d.view(), small_options(), "X has a non-finite value (NaN or Inf) at row 3, column 2");
  d = small_data();
  d.y[7] = std::numeric_limits<double>::infinity();
  expect_fit_error(d.view(), small_options(), "y has a non-finite value (NaN or Inf) at row 7");
  Dataset<float> f;
  f.d = 2;
  f.X = {1, 2, 3, std::numeric_limits<float>::infinity()};
  f.y = {1, 2};
  f.task_offsets = {0, 2};
  Options o = small_options();
  o.rank = 1;
  expect_fit_error(f.view(), o, "X has a non-finite value");
}

TEST(BadInput, TaskOffsets) {
  Dataset<double> d = small_data();
  d.task_offsets[3] = d.task_offsets[2] - 1;
  expect_fit_error(d.view(), small_options(), "task_offsets decrease at task 2");
  d = small_data();
  d.task_offsets.back() = 40;
  expect_fit_error(d.view(), small_options(), "task_offsets end at 40 but there are 48 rows");
  d = small_data();
  d.task_offsets[0] = 1;
  expect_fit_error(d.view(), small_options(), "task_offsets[0] is 1");
}

TEST(BadInput, EmptyDataAndNegativeSizes) {
  Dataset<double> d = small_data();
  TaskDataView<double> v = d.view();
  v.t = 0;
  expect_fit_error(v, small_options(), "no tasks");
  v = d.view();
  v.d = 0;
  expect_fit_error(v, small_options(), "no features");
  v = d.view();
  v.n = -1;
  expect_fit_error(v, small_options(), "negative size");
  v = d.view();
  v.X = nullptr;
  expect_fit_error(v, small_options(), "X is null");
  v = d.view();
  v.y = nullptr;
  expect_fit_error(v, small_options(), "y is null");
  // All tasks empty (n = 0) is valid: every task keeps w = 0, b = 0.
  Dataset<double> none;
  none.d = 4;
  none.task_offsets = {0, 0, 0};
  const Model m = fit(none.view(), small_options());
  for (double w : m.W) EXPECT_EQ(w, 0.0);
}

TEST(BadInput, OptionsOutOfRange) {
  const Dataset<double> d = small_data();
  Options o = small_options();
  o.rank = 6;
  expect_fit_error(d.view(), o, "rank r = 6 exceeds the dimension d = 5");
  o = small_options();
  o.sparsity = 9;
  expect_fit_error(d.view(), o, "sparsity k = 9 exceeds the dimension d = 5");
  o = small_options();
  o.rank = -1;
  expect_fit_error(d.view(), o, "rank r = -1 is negative");
  o = small_options();
  o.sparsity = -2;
  expect_fit_error(d.view(), o, "sparsity k = -2 is negative");
  o = small_options();
  o.iterations = -1;
  expect_fit_error(d.view(), o, "iterations = -1 is negative");
  o = small_options();
  o.inner_iterations = 0;
  expect_fit_error(d.view(), o, "inner iterations");
  o = small_options();
  o.ridge = std::nan("");
  expect_fit_error(d.view(), o, "ridge");
  o = small_options();
  o.threads = -3;
  expect_fit_error(d.view(), o, "threads");
}

TEST(BadInput, RankPlusSparsityLargerThanATaskIsFine) {
  // r + k = 5 > m_i = 3: the ridge keeps each task's system well-posed.
  SyntheticSpec s;
  s.tasks = 40;
  s.min_samples = s.max_samples = 3;
  s.d = 8;
  s.r = 3;
  s.k = 2;
  const SyntheticData syn = generate_synthetic(s);
  Options o;
  o.rank = 3;
  o.sparsity = 2;
  o.iterations = 8;
  o.warm_start_iterations = 2;
  const Model m = fit(syn.data.view(), o);
  EXPECT_NO_THROW(m.validate());
}

TEST(BadInput, DeviceCudaWithoutTheBackendIsAClearError) {
  if (cuda_available()) GTEST_SKIP() << "this build has a usable CUDA backend";
  Options o = small_options();
  o.device = Device::cuda;
  expect_fit_error(small_data().view(), o, "device 'cuda' requested, but");  // the default model
  o.prior = Prior::none;
  expect_fit_error(small_data().view(), o, "device 'cuda' requested, but");
  o.device = Device::automatic;  // falls back to the CPU
  EXPECT_NO_THROW(fit(small_data().view(), o));
}

TEST(BadInput, PredictAndAdaptCheckShapes) {
  const Dataset<double> d = small_data();
  const Model m = fit(d.view(), small_options());
  TaskDataView<double> v = d.view();
  v.t = 3;
  v.n = d.task_offsets[3];
  EXPECT_THROW(predict(m, v), Error);
  Dataset<double> wide;
  wide.d = 6;
  wide.X.assign(12, 1.0);
  wide.y.assign(2, 1.0);
  wide.task_offsets = {0, 2};
  EXPECT_THROW(adapt(m, wide.view(), small_options()), Error);
  EXPECT_THROW(m.theta(6), Error);
  Model broken = m;
  broken.B_index[0] = 17;
  EXPECT_THROW(broken.validate(), Error);
  broken = m;
  broken.U[0] = std::nan("");
  EXPECT_THROW(broken.validate(), Error);
}

TEST(BadInput, NamesParse) {
  EXPECT_EQ(parse_variant("htp"), Variant::htp);
  EXPECT_EQ(parse_init("spectral"), Init::spectral);
  EXPECT_EQ(parse_device("auto"), Device::automatic);
  EXPECT_THROW(parse_variant("newton"), Error);
  EXPECT_THROW(parse_init("zeros"), Error);
  EXPECT_THROW(parse_device("tpu"), Error);
}

}  // namespace
}  // namespace lrsmeta
