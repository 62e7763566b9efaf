// lrsmeta._lrsmeta: the C++ library for Python (pybind11). NumPy arrays in and out; a C-contiguous
// float32 or float64 X reaches the library without a copy; the GIL is released while training.
// The estimator around it (LRSRegressor) is Python: python/lrsmeta/__init__.py.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "lrsmeta/io.hpp"
#include "lrsmeta/lrsmeta.hpp"
#include "lrsmeta/option_table.hpp"

namespace py = pybind11;
using namespace lrsmeta;

namespace {

// The address of the X the last fit or adapt handed to the library (tests check zero copy).
std::uintptr_t last_X_address = 0;

// The options from a dict keyed by the options table's names (the estimator maps its arguments to
// them): each value set as the table says, None leaving an option to the library.
Options options_from_dict(const py::dict& d) {
  Options o = default_options();
  for (const auto& item : d) {
    const std::string key = py::cast<std::string>(item.first);
    const py::handle v = item.second;
    const OptionSpec& spec = option_spec(key);
    const std::string shown = spec.python.empty() ? key : spec.python;
    if (v.is_none()) unset_option(o, key, shown);
    else if (py::isinstance<py::str>(v)) set_option(o, key, py::cast<std::string>(v), shown);
    else if (spec.type == OptionType::flag) set_option(o, key, py::cast<bool>(v) ? 1.0 : 0.0, shown);
    // Integers as text: exact whatever their size (a bool is an int in Python: scikit-learn's
    // checks pass warm_start=False). Anything else goes as a number, which an integer option takes
    // only where it is whole (2.5 is refused, not truncated).
    else if (spec.type == OptionType::integer && py::hasattr(v, "__index__"))
      set_option(o, key, py::cast<std::string>(py::str(v.attr("__index__")())), shown);
    else if (py::isinstance<py::float_>(v) || py::hasattr(v, "__float__")) set_option(o, key, py::cast<double>(v), shown);
    else throw Error(shown + " must be a number, not " + py::cast<std::string>(py::repr(v)));
  }
  // Ranges, in Python's names (fit checks them again, with the data).
  const std::string out_of_range = option_out_of_range(o, [](const OptionSpec& s) { return s.python.empty() ? s.name : s.python; });
  if (!out_of_range.empty()) throw Error(out_of_range);
  return o;
}

// The options table for the estimator: each option's names, type, default and help.
py::list option_table_list() {
  py::list out;
  for (const OptionSpec& s : option_table()) {
    py::dict row;
    row["name"] = s.name;
    row["python"] = s.python;
    row["cli"] = s.cli;
    row["type"] = s.type == OptionType::integer ? "integer" : s.type == OptionType::number ? "number" : s.type == OptionType::flag ? "flag" : "choice";
    row["group"] = s.group;
    row["choices"] = s.choices;
    row["unset"] = s.unset;
    row["unset_means"] = s.unset_means;
    row["help"] = s.help;
    row["default"] = s.default_value;
    row["low"] = s.low;
    row["high"] = s.high;
    row["low_open"] = s.low_open;
    row["high_open"] = s.high_open;
    out.append(row);
  }
  return out;
}

py::dict info_dict(const IterationInfo& h) {
  py::dict d;
  d["iteration"] = h.iteration;
  d["training_loss"] = h.training_loss;
  d["u_change"] = h.u_change;
  d["elapsed_seconds"] = h.elapsed_seconds;
  d["sparsity_in_effect"] = h.sparsity_in_effect;
  d["task_step_seconds"] = h.task_step_seconds;
  d["u_step_seconds"] = h.u_step_seconds;
  d["noise_variance"] = h.noise_variance;
  d["log_evidence"] = h.log_evidence;
  d["covariance_shrinkage"] = h.covariance_shrinkage;
  d["u_solver_steps"] = h.u_solver_steps;
  d["u_solver_residual"] = h.u_solver_residual;
  d["rank"] = h.rank;
  d["max_iterations"] = h.max_iterations;
  d["candidate"] = h.candidate;
  d["candidate_index"] = h.candidate_index;
  d["fold"] = h.fold;
  return d;
}

template <typename V>
py::array_t<typename V::value_type> to_numpy(const V& v, std::vector<py::ssize_t> shape) {
  py::array_t<typename V::value_type> out(shape);
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

// X (n x d) as the library takes it: the caller's buffer where it is C-contiguous float32 or
// float64 (no copy), else converted once to float64.
struct Rows {
  py::array array;
  bool single = false;
};
Rows rows_of(const py::array& X) {
  if (X.ndim() != 2) throw Error("X must be 2-d (n x d), has " + std::to_string(X.ndim()) + " dimensions");
  const bool c_contiguous = (X.flags() & py::array::c_style) != 0;
  if (c_contiguous && py::isinstance<py::array_t<float>>(X)) return {X, true};
  if (c_contiguous && py::isinstance<py::array_t<double>>(X)) return {X, false};
  return {py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(X), false};
}

template <typename T>
TaskDataView<T> view_of(const py::array& X, const py::array_t<T, py::array::c_style | py::array::forcecast>* y,
                        const py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>& offsets) {
  TaskDataView<T> v;
  v.X = static_cast<const T*>(X.data());
  v.y = y ? y->data() : nullptr;
  v.task_offsets = offsets.data();
  v.n = X.shape(0);
  v.d = X.shape(1);
  v.t = offsets.size() - 1;
  if (offsets.ndim() != 1 || offsets.size() < 2) throw Error("task offsets must be 1-d with at least 2 entries");
  if (y && (y->ndim() != 1 || y->shape(0) != v.n))
    throw Error("y must be 1-d with one value per row of X (" + std::to_string(v.n) + "), has shape " +
                (y->ndim() == 1 ? std::to_string(y->shape(0)) : std::to_string(y->ndim()) + "-d"));
  last_X_address = reinterpret_cast<std::uintptr_t>(v.X);
  return v;
}

// Train with the GIL released. The callback and Ctrl-C are served between outer iterations with
// the GIL taken back: a Python exception there (KeyboardInterrupt included) stops training and is
// raised once the library has unwound.
Model fit_any(const py::array& X_in, const py::array& y_in, const py::array& offsets_in, const py::dict& options,
              const std::optional<py::function>& callback) {
  const Rows rows = rows_of(X_in);
  const auto offsets = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>::ensure(offsets_in);
  if (!offsets) throw Error("task offsets must be integers");
  Options o = options_from_dict(options);
  std::optional<py::error_already_set> raised;
  FitControl control;
  control.on_iteration = [&](const IterationInfo& info) {
    if (!callback) return true;
    py::gil_scoped_acquire gil;
    try {
      const py::object answer = (*callback)(info_dict(info));
      return answer.is_none() || py::cast<bool>(answer);
    } catch (py::error_already_set& e) {
      raised.emplace(std::move(e));
      return false;
    }
  };
  control.stop = [&] {
    if (raised) return true;
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) {
      raised.emplace();
      return true;
    }
    return false;
  };
  Model model;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const auto y = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(y_in);
    if (!y) throw Error("y must be numbers");
    const TaskDataView<T> view = view_of<T>(rows.array, &y, offsets);
    py::gil_scoped_release release;
    try {
      model = fit(view, o, control);
    } catch (const Stopped&) {
      // raised below, with the GIL held
    }
  };
  if (rows.single) run(float{});
  else run(double{});
  if (raised) throw std::move(*raised);
  return model;
}

template <typename F>
auto with_rows(const py::array& X_in, const py::array& offsets_in, F&& f) {
  const Rows rows = rows_of(X_in);
  const auto offsets = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>::ensure(offsets_in);
  if (!offsets) throw Error("task offsets must be integers");
  if (rows.single) return f(rows.array, offsets, float{});
  return f(rows.array, offsets, double{});
}

}  // namespace

PYBIND11_MODULE(_lrsmeta, m) {
  m.doc() = "lrsmeta's C++ library (use lrsmeta.LRSRegressor)";
  py::register_exception<Error>(m, "Error", PyExc_ValueError);
  m.attr("__version__") = version();

  py::class_<Model>(m, "Model")
      .def_property_readonly("d", [](const Model& x) { return x.d; })
      .def_property_readonly("r", [](const Model& x) { return x.r; })
      .def_property_readonly("k", [](const Model& x) { return x.k; })
      .def_property_readonly("t", [](const Model& x) { return x.t; })
      .def_property_readonly("U", [](const Model& x) { return to_numpy(x.U, {x.d, x.r}); })
      .def_property_readonly("W", [](const Model& x) { return to_numpy(x.W, {x.t, x.r}); })
      .def_property_readonly("B_index", [](const Model& x) { return to_numpy(x.B_index, {x.t, x.k}); })
      .def_property_readonly("B_value", [](const Model& x) { return to_numpy(x.B_value, {x.t, x.k}); })
      .def_property_readonly("beta", [](const Model& x) -> py::object {
        if (!x.has_prior()) return py::none();
        return to_numpy(x.beta, {x.d});
      })
      .def_property_readonly("Sigma", [](const Model& x) -> py::object {
        if (!x.has_prior()) return py::none();
        return to_numpy(x.Sigma, {x.r, x.r});
      })
      .def_property_readonly("noise_variance", [](const Model& x) { return x.noise_variance; })
      .def_property_readonly("feature_scales", [](const Model& x) -> py::object {
        if (x.feature_scales.empty()) return py::none();
        return to_numpy(x.feature_scales, {x.d});
      })
      .def_property_readonly("theta", [](const Model& x) { return to_numpy(x.theta_matrix(), {x.t, x.d}); })
      .def_property_readonly("history", [](const Model& x) {
        py::list out;
        for (const IterationInfo& h : x.history) out.append(info_dict(h));
        return out;
      })
      .def_property_readonly("privacy", [](const Model& x) {
        py::dict p;
        p["enabled"] = x.privacy.enabled;
        if (x.privacy.enabled) {
          p["epsilon"] = x.privacy.epsilon;
          p["delta"] = x.privacy.delta;
          p["rho"] = x.privacy.rho;
          p["noise_multiplier"] = x.privacy.noise_multiplier;
          p["releases"] = x.privacy.releases;
          p["fixed_seed"] = x.privacy.fixed_seed;
        }
        return p;
      })
      .def_property_readonly("notes", [](const Model& x) { return x.notes; })
      .def_property_readonly("converged", [](const Model& x) { return x.converged; })
      // model.json's text: the settings, the estimates, the choice and why (selection_ in Python).
      .def_property_readonly("description", [](const Model& x) { return model_json(x); })
      .def_property_readonly("population_theta", [](const Model& x) { return to_numpy(x.population_theta(), {x.d}); })
      .def_property("task_keys", [](const Model& x) { return x.task_keys; },
                    [](Model& x, const std::vector<std::string>& keys) { x.task_keys = keys; })
      // The features' names (a DataFrame's columns), kept in model.json; empty: none.
      .def_property("feature_names", [](const Model& x) { return x.feature_names; },
                    [](Model& x, const std::vector<std::string>& names) {
                      if (!names.empty() && static_cast<std::int64_t>(names.size()) != x.d)
                        throw Error("feature_names: " + std::to_string(names.size()) + " names for " + std::to_string(x.d) + " features");
                      x.feature_names = names;
                    });

  m.def("fit", &fit_any, py::arg("X"), py::arg("y"), py::arg("task_offsets"), py::arg("options"), py::arg("callback") = py::none(),
        "Train on rows grouped by task (task i owns rows task_offsets[i] to task_offsets[i+1]-1).");
  m.def(
      "predict_rows",
      [](const Model& model, const py::array& X_in, const py::array& task_in) {
        // Row j of X belongs to task task[j] (any order): no regrouping, no copy of X.
        const auto task = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>::ensure(task_in);
        const Rows rows = rows_of(X_in);
        auto run = [&](auto tag) {
          using T = decltype(tag);
          const py::array& X = rows.array;
          model.validate();
          const std::int64_t n = X.shape(0), d = X.shape(1);
          if (d != model.d) throw Error("X has " + std::to_string(d) + " features, the model " + std::to_string(model.d));
          if (!task || task.ndim() != 1 || task.shape(0) != n) throw Error("one task per row is needed");
          py::array_t<double> out(n);
          const T* x = static_cast<const T*>(X.data());
          const std::int64_t* ti = task.data();
          double* o = out.mutable_data();
          {
            py::gil_scoped_release release;
            // Task -1: a task the model has not seen, predicted with the population's parameters.
            const std::vector<double> population = model.population_theta();
            for (std::int64_t j = 0; j < n; ++j) {
              if (ti[j] < -1 || ti[j] >= model.t) throw Error("task index " + std::to_string(ti[j]) + " out of range");
              std::vector<double> own;
              const std::vector<double>& th = ti[j] < 0 ? population : (own = model.theta(ti[j]));
              double s = 0.0;
              for (std::int64_t a = 0; a < d; ++a) s += static_cast<double>(x[j * d + a]) * th[static_cast<std::size_t>(a)];
              o[j] = s;
            }
          }
          return out;
        };
        return rows.single ? run(float{}) : run(double{});
      },
      py::arg("model"), py::arg("X"), py::arg("task"));
  m.def(
      "adapt",
      [](const Model& model, const py::array& X_in, const py::array& y_in, const py::array& offsets_in, const py::dict& options) {
        Options o = model.options;
        const Options given = options_from_dict(options);
        o.threads = given.threads;
        o.device = Device::cpu;
        return with_rows(X_in, offsets_in, [&](const py::array& X, const auto& offsets, auto tag) {
          using T = decltype(tag);
          const auto y = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(y_in);
          if (!y) throw Error("y must be numbers");
          const TaskDataView<T> view = view_of<T>(X, &y, offsets);
          py::gil_scoped_release release;
          return adapt(model, view, o);
        });
      },
      py::arg("model"), py::arg("X"), py::arg("y"), py::arg("task_offsets"), py::arg("options"));
  m.def("save_model", static_cast<void (*)(const Model&, const std::string&)>(&save_model), py::arg("model"), py::arg("path"), py::call_guard<py::gil_scoped_release>());
  m.def("load_model", &load_model, py::arg("path"), py::call_guard<py::gil_scoped_release>());
  m.def(
      "option_values",
      [](const py::dict& options) {
        const Options o = options_from_dict(options);
        py::dict out;
        for (const OptionSpec& s : option_table()) out[py::str(s.name)] = option_value(o, s.name);
        return out;
      },
      py::arg("options"), "every option as text after setting `options` (the table's names) as fit does");
  m.def("blas_kernel_warning", [] { return blas_kernel_warning(); },
        "empty, or why OpenBLAS runs slower kernels than this processor can and which OPENBLAS_CORETYPE to set");
  m.def("option_table", &option_table_list, "the library's options: name, python, cli, type, group, choices, unset, help, default, range");
  m.def("last_X_address", [] { return last_X_address; }, "address of the X the last fit or adapt passed to the library");
}
