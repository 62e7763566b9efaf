// Built against the installed headers and shared library only.
#include <lrsmeta/io.hpp>
#include <lrsmeta/lrsmeta.hpp>
#include <lrsmeta/option_table.hpp>

#include <cstdio>
#include <string>

int main() {
  lrsmeta::SyntheticSpec spec;
  spec.tasks = 300;
  spec.min_samples = spec.max_samples = 40;
  spec.d = 20;
  spec.r = 2;
  spec.k = 1;
  const lrsmeta::SyntheticData truth = lrsmeta::generate_synthetic(spec);
  // The options table is installed and exported: the options set by name, as the CLI sets them.
  lrsmeta::Options options = lrsmeta::default_options();
  lrsmeta::set_option(options, "rank", std::string("2"));
  lrsmeta::set_option(options, "sparsity", std::string("1"));
  if (lrsmeta::option_value(options, "rank") != "2" || lrsmeta::option_table().empty()) return 3;
  const lrsmeta::Model model = lrsmeta::fit(truth.data.view(), options);
  const double err = lrsmeta::relative_error(model.theta_matrix(), truth.theta());
  std::printf("lrsmeta %s: relative parameter error %.3g\n", lrsmeta::version(), err);
  try {
    options.rank = 99;
    lrsmeta::fit(truth.data.view(), options);
    return 2;
  } catch (const lrsmeta::Error& e) {
    std::printf("bad input reported: %s\n", e.what());
  }
  return err < 1e-8 ? 0 : 1;
}
