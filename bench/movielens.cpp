// bench/movielens: personalisation on real data. Each user is a task; a rating's
// features describe its movie. Baselines and lrsmeta's models are fitted by the same code, their
// hyperparameters chosen on a validation split carved from the training ratings, and compared on
// held-out test ratings, with all of each user's training ratings and with only 5, 10 or 20.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include <unistd.h>

#include "core/small_dense.hpp"
#include "lrsmeta/io.hpp"
#include "lrsmeta/lrsmeta.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace lrsmeta::bench {
namespace {

struct Rating {
  std::int64_t movie;
  double value;
  double year;  // NaN when unknown
  std::uint32_t genres;
};

struct Corpus {
  std::vector<std::string> genre_names;
  std::vector<std::int64_t> user_ids;
  std::vector<std::vector<Rating>> by_user;
};

Corpus load_ratings(const std::string& path, std::int64_t max_users) {
  const CsvTable table = read_csv_table(path);
  const std::size_t c_movie = table.column("movieId"), c_year = table.column("year"), c_genres = table.column("genres"),
                    c_user = table.column("userId"), c_rating = table.column("rating");
  auto number = [&](std::size_t row, std::size_t col, const char* what) {
    const std::string& s = table.rows[row][col];
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0' || !std::isfinite(v))
      throw Error(path + ": line " + std::to_string(table.lines[row]) + ": " + what + " '" + s + "' is not a number");
    return v;
  };
  // Genres: every name that occurs, in alphabetical order ("(no genres listed)" is no genre).
  std::map<std::string, int> genre_index;
  for (const auto& row : table.rows) {
    std::stringstream ss(row[c_genres]);
    std::string g;
    while (std::getline(ss, g, '|'))
      if (!g.empty() && g != "(no genres listed)") genre_index.emplace(g, 0);
  }
  if (genre_index.size() > 32) throw Error(path + ": more than 32 genres");
  Corpus corpus;
  for (auto& [name, index] : genre_index) {
    index = static_cast<int>(corpus.genre_names.size());
    corpus.genre_names.push_back(name);
  }
  std::map<std::int64_t, std::vector<Rating>> users;
  for (std::size_t i = 0; i < table.rows.size(); ++i) {
    const auto& row = table.rows[i];
    Rating r;
    r.movie = static_cast<std::int64_t>(number(i, c_movie, "movieId"));
    r.value = number(i, c_rating, "rating");
    char* end = nullptr;
    const double year = std::strtod(row[c_year].c_str(), &end);
    r.year = (!row[c_year].empty() && *end == '\0' && std::isfinite(year)) ? year : std::nan("");
    r.genres = 0;
    std::stringstream ss(row[c_genres]);
    std::string g;
    while (std::getline(ss, g, '|')) {
      const auto it = genre_index.find(g);
      if (it != genre_index.end()) r.genres |= 1u << it->second;
    }
    users[static_cast<std::int64_t>(number(i, c_user, "userId"))].push_back(r);
  }
  for (auto& [id, ratings] : users) {
    if (max_users > 0 && static_cast<std::int64_t>(corpus.user_ids.size()) >= max_users) break;
    corpus.user_ids.push_back(id);
    corpus.by_user.push_back(std::move(ratings));
  }
  if (corpus.user_ids.empty()) throw Error(path + ": no ratings");
  return corpus;
}

// Each user's ratings shuffled (seeded by the seed and the user id), then cut: the last 20% are
// the test set; of the rest (the training pool) the last 20% are the validation set.
struct Split {
  std::vector<std::vector<Rating>> pool, fit, validation, test;
};

Split split_ratings(const Corpus& corpus, std::uint64_t seed) {
  Split s;
  for (std::size_t u = 0; u < corpus.by_user.size(); ++u) {
    std::vector<Rating> r = corpus.by_user[u];
    std::mt19937_64 engine(seed * 0x9e3779b97f4a7c15ULL + static_cast<std::uint64_t>(corpus.user_ids[u]));
    for (std::size_t i = r.size(); i > 1; --i) std::swap(r[i - 1], r[engine() % i]);  // Fisher-Yates
    const std::size_t n = r.size();
    const std::size_t n_test = n >= 2 ? std::max<std::size_t>(1, static_cast<std::size_t>(std::lround(0.2 * n))) : 0;
    std::vector<Rating> pool(r.begin(), r.end() - static_cast<std::ptrdiff_t>(n_test));
    s.test.emplace_back(r.end() - static_cast<std::ptrdiff_t>(n_test), r.end());
    const std::size_t n_val = pool.size() >= 2 ? std::max<std::size_t>(1, static_cast<std::size_t>(std::lround(0.2 * pool.size()))) : 0;
    s.fit.emplace_back(pool.begin(), pool.end() - static_cast<std::ptrdiff_t>(n_val));
    s.validation.emplace_back(pool.end() - static_cast<std::ptrdiff_t>(n_val), pool.end());
    s.pool.push_back(std::move(pool));
  }
  return s;
}

std::vector<std::vector<Rating>> keep_first(const std::vector<std::vector<Rating>>& sets, std::int64_t n) {
  if (n <= 0) return sets;
  std::vector<std::vector<Rating>> out;
  for (const auto& s : sets) out.emplace_back(s.begin(), s.begin() + std::min<std::ptrdiff_t>(n, static_cast<std::ptrdiff_t>(s.size())));
  return out;
}

// Features of a rating, from statistics of the training ratings only: genre indicators, the year
// scaled ((year - 1990) / 20, 0 when unknown), the movie's mean training rating shrunk towards the
// global mean (by 5 pseudo-ratings) and centred on it, and a constant. Targets are centred on the
// global mean training rating.
struct FeatureBuilder {
  std::size_t genres = 0;
  double global_mean = 0;
  std::map<std::int64_t, std::pair<double, int>> movie_sum;  // sum and count of training ratings

  FeatureBuilder(const Corpus& corpus, const std::vector<std::vector<Rating>>& training) : genres(corpus.genre_names.size()) {
    double sum = 0;
    std::int64_t count = 0;
    for (const auto& user : training)
      for (const Rating& r : user) {
        sum += r.value;
        ++count;
        auto& [s, c] = movie_sum[r.movie];
        s += r.value;
        ++c;
      }
    global_mean = count > 0 ? sum / static_cast<double>(count) : 0.0;
  }
  std::int64_t dim() const { return static_cast<std::int64_t>(genres) + 3; }
  // own_rating: a training rating leaves itself out of its movie's mean (without this the feature
  // carries the target on training rows, most for movies rated once or twice, and every model
  // that fits its coefficient freely overfits it).
  void features(const Rating& r, double* x, bool own_rating) const {
    for (std::size_t g = 0; g < genres; ++g) x[g] = (r.genres >> g) & 1u ? 1.0 : 0.0;
    x[genres] = std::isnan(r.year) ? 0.0 : (r.year - 1990.0) / 20.0;
    const auto it = movie_sum.find(r.movie);
    constexpr double kPseudoRatings = 5.0;
    const double own = own_rating ? r.value : 0.0, own_count = own_rating ? 1.0 : 0.0;
    const double shrunk = it == movie_sum.end()
                              ? global_mean
                              : (it->second.first - own + kPseudoRatings * global_mean) / (it->second.second - own_count + kPseudoRatings);
    x[genres + 1] = shrunk - global_mean;
    x[genres + 2] = 1.0;
  }
  Dataset<double> dataset(const std::vector<std::vector<Rating>>& users, bool training) const {
    Dataset<double> ds;
    ds.d = dim();
    ds.task_offsets.assign(1, 0);
    for (const auto& user : users) {
      for (const Rating& r : user) {
        const std::size_t at = ds.X.size();
        ds.X.resize(at + static_cast<std::size_t>(ds.d));
        features(r, ds.X.data() + at, training);
        ds.y.push_back(r.value - global_mean);
      }
      ds.task_offsets.push_back(static_cast<std::int64_t>(ds.y.size()));
    }
    return ds;
  }
};

double rmse(const std::vector<double>& pred, const Dataset<double>& eval) {
  double s = 0;
  for (std::size_t j = 0; j < pred.size(); ++j) s += (pred[j] - eval.y[j]) * (pred[j] - eval.y[j]);
  return pred.empty() ? std::nan("") : std::sqrt(s / static_cast<double>(pred.size()));
}

// Ridge solve (A + lambda I) x = b for a small d x d system.
std::vector<double> ridge_solve(std::vector<double> A, std::vector<double> b, double lambda) {
  const int d = static_cast<int>(b.size());
  for (int a = 0; a < d; ++a) A[static_cast<std::size_t>(a) * d + a] += lambda;
  std::vector<double> L(A.size());
  if (!detail::ridge_cholesky(A.data(), d, 1e-12, L.data())) return std::vector<double>(b.size(), 0.0);
  detail::cholesky_solve(L.data(), d, b.data());
  return b;
}

// A = X^T X and b = X^T y over rows row0 .. row1 - 1 (the ridge baselines' normal equations).
void normal_equations(const Dataset<double>& data, std::int64_t row0, std::int64_t row1, std::vector<double>& A,
                      std::vector<double>& b) {
  const std::int64_t d = data.d;
  A.assign(static_cast<std::size_t>(d * d), 0.0);
  b.assign(static_cast<std::size_t>(d), 0.0);
  for (std::int64_t j = row0; j < row1; ++j) {
    const double* x = data.X.data() + j * d;
    for (std::int64_t a = 0; a < d; ++a) {
      b[static_cast<std::size_t>(a)] += x[a] * data.y[static_cast<std::size_t>(j)];
      for (std::int64_t c = 0; c < d; ++c) A[static_cast<std::size_t>(a * d + c)] += x[a] * x[c];
    }
  }
}

// A method: fit on training data, predict the rows of evaluation data (same users, same order).
struct Method {
  std::string name;
  std::vector<json> grid;  // hyperparameter settings
  std::function<std::vector<double>(const Dataset<double>&, const Dataset<double>&, const json&, Model*)> fit_predict;
  std::function<double(const json&, std::int64_t d)> storage;  // numbers stored per user
};

std::vector<double> per_task_predict(const Dataset<double>& eval, const std::vector<std::vector<double>>& theta) {
  std::vector<double> pred(eval.y.size());
  for (std::int64_t i = 0; i < eval.t(); ++i)
    for (std::int64_t j = eval.task_offsets[i]; j < eval.task_offsets[i + 1]; ++j) {
      double s = 0;
      for (std::int64_t a = 0; a < eval.d; ++a) s += eval.X[static_cast<std::size_t>(j * eval.d + a)] * theta[static_cast<std::size_t>(i)][static_cast<std::size_t>(a)];
      pred[static_cast<std::size_t>(j)] = s;
    }
  return pred;
}

// lme4's lmer (R), run by bench/peers/lme4_fit.R on CSVs of the rows: the features but the constant
// (lmer adds its own intercept), named g1..g19, year and movie_mean.
std::vector<double> lme4_fit_predict(const std::string& script, const std::string& random_effects, const Dataset<double>& train,
                                     const Dataset<double>& eval) {
  static int calls = 0;
  const fs::path folder = fs::temp_directory_path() / ("lrsmeta-movielens-lme4-" + std::to_string(::getpid()) + "-" + std::to_string(calls++));
  fs::create_directories(folder);
  const std::int64_t d = train.d, used = d - 1;  // the last feature is the constant
  auto write = [&](const Dataset<double>& ds, const fs::path& path) {
    std::ostringstream out;
    out.precision(17);
    out << "group,y";
    for (std::int64_t a = 0; a < used; ++a) out << "," << (a + 2 < used ? "g" + std::to_string(a + 1) : a + 2 == used ? "year" : "movie_mean");
    out << "\n";
    for (std::int64_t i = 0; i < ds.t(); ++i)
      for (std::int64_t j = ds.task_offsets[i]; j < ds.task_offsets[i + 1]; ++j) {
        out << i << "," << ds.y[static_cast<std::size_t>(j)];
        for (std::int64_t a = 0; a < used; ++a) out << "," << ds.X[static_cast<std::size_t>(j * d + a)];
        out << "\n";
      }
    write_text_file_atomically(path.string(), out.str());
  };
  write(train, folder / "train.csv");
  write(eval, folder / "test.csv");
  const fs::path predictions = folder / "predictions.txt";
  const std::string command = "Rscript '" + script + "' '" + (folder / "train.csv").string() + "' '" + (folder / "test.csv").string() +
                              "' 'y ~ . + (" + random_effects + " | group)' '" + predictions.string() + "' > '" + (folder / "log.txt").string() + "' 2>&1";
  const int status = std::system(command.c_str());
  std::vector<double> pred;
  std::ifstream in(predictions);
  for (double v; in >> v;) pred.push_back(v);
  fs::remove_all(folder);
  if (status != 0 || pred.size() != eval.y.size())
    throw Error("benchmark movielens: lme4 (" + script + ") failed or returned " + std::to_string(pred.size()) + " predictions for " +
                std::to_string(eval.y.size()) + " rows");
  return pred;
}

// Whether Rscript runs and has lme4, and the script is there.
bool lme4_usable(const std::string& script) {
  return fs::is_regular_file(script) && std::system("Rscript -e 'suppressPackageStartupMessages(library(lme4))' > /dev/null 2>&1") == 0;
}

std::vector<Method> methods(int iterations, int threads, const std::string& lme4_script) {
  std::vector<Method> out;
  out.push_back({"global mean", {json::object()},
                 [](const Dataset<double>&, const Dataset<double>& eval, const json&, Model*) {
                   return std::vector<double>(eval.y.size(), 0.0);  // targets are centred on the training mean
                 },
                 [](const json&, std::int64_t) { return 0.0; }});
  std::vector<json> lambdas;
  for (double l : {0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5}) lambdas.push_back({{"lambda", l}});
  out.push_back({"global ridge", lambdas,
                 [](const Dataset<double>& train, const Dataset<double>& eval, const json& h, Model*) {
                   std::vector<double> A, b;
                   normal_equations(train, 0, train.n(), A, b);
                   const std::vector<double> theta = ridge_solve(A, b, h.at("lambda").get<double>());
                   return per_task_predict(eval, std::vector<std::vector<double>>(static_cast<std::size_t>(eval.t()), theta));
                 },
                 [](const json&, std::int64_t) { return 0.0; }});
  std::vector<json> user_lambdas;
  for (double l : {0.3, 1.0, 3.0, 10.0, 30.0, 100.0}) user_lambdas.push_back({{"lambda", l}});
  out.push_back({"per-user ridge", user_lambdas,
                 [](const Dataset<double>& train, const Dataset<double>& eval, const json& h, Model*) {
                   std::vector<std::vector<double>> theta;
                   std::vector<double> A, b;
                   for (std::int64_t i = 0; i < train.t(); ++i) {
                     normal_equations(train, train.task_offsets[i], train.task_offsets[i + 1], A, b);
                     theta.push_back(ridge_solve(A, b, h.at("lambda").get<double>()));
                   }
                   return per_task_predict(eval, theta);
                 },
                 [](const json&, std::int64_t d) { return static_cast<double>(d); }});
  // Per-user ridge shrunk towards the global fit: theta_i = argmin ||y_i - X_i theta||^2 +
  // lambda ||theta - theta_global||^2, theta_global the global least-squares fit (a tiny ridge).
  out.push_back({"per-user ridge shrunk to global", user_lambdas,
                 [](const Dataset<double>& train, const Dataset<double>& eval, const json& h, Model*) {
                   const std::int64_t d = train.d;
                   const double lambda = h.at("lambda").get<double>();
                   std::vector<double> A, b;
                   normal_equations(train, 0, train.n(), A, b);
                   const std::vector<double> global = ridge_solve(A, b, 1e-3);
                   std::vector<std::vector<double>> theta;
                   for (std::int64_t i = 0; i < train.t(); ++i) {
                     normal_equations(train, train.task_offsets[i], train.task_offsets[i + 1], A, b);
                     for (std::int64_t a = 0; a < d; ++a) b[static_cast<std::size_t>(a)] += lambda * global[static_cast<std::size_t>(a)];
                     theta.push_back(ridge_solve(A, b, lambda));
                   }
                   return per_task_predict(eval, theta);
                 },
                 [](const json&, std::int64_t d) { return static_cast<double>(d); }});
  // lrsmeta's models. With prior auto (the default) only r and k are on the grid: the b prior's
  // scale and support threshold are chosen by the library itself on validation rows carved from
  // the training rows it is given.
  auto lrs = [iterations, threads](const Dataset<double>& train, const Dataset<double>& eval, const json& h, Model* keep) {
    Options o;
    o.prior = parse_prior(h.value("prior", std::string("auto")));
    if (h.contains("r")) o.rank = h.at("r").get<int>();
    if (h.contains("k")) o.sparsity = h.at("k").get<int>();
    if (h.value("rank_auto", false)) o.rank_candidates = default_rank_candidates(train.d);
    if (h.value("sparsity_auto", false)) o.sparsity_candidates = default_sparsity_candidates(train.d);
    if (h.contains("task_ridge")) o.task_ridge = h.at("task_ridge").get<double>();
    if (h.contains("select")) o.selection = parse_selection(h.at("select").get<std::string>());
    if (h.contains("covariance_shrinkage")) o.covariance_shrinkage = h.at("covariance_shrinkage").get<double>();
    if (h.contains("low_rank_basis")) o.low_rank_basis = parse_low_rank_basis(h.at("low_rank_basis").get<std::string>());
    if (h.contains("population_prior")) o.population_prior = h.at("population_prior").get<bool>();
    o.iterations = h.value("iterations", iterations);
    o.warm_start_iterations = std::min(5, o.iterations / 3);
    o.threads = threads;
    o.seed = 7;
    Model model = fit(train.view(), o);
    const std::vector<double> pred = predict(model, eval.view());
    if (keep) *keep = std::move(model);
    return pred;
  };
  auto grid = [](std::vector<int> ranks, std::vector<int> sparsities) {
    std::vector<json> g;
    for (int r : ranks)
      for (int k : sparsities) g.push_back({{"r", r}, {"k", k}});
    return g;
  };
  auto stored = [](const json& h, std::int64_t) {
    return h.at("r").get<double>() + 2.0 * h.at("k").get<double>();
  };
  // The classical mixed model: Sigma by maximum likelihood (no shrinkage).
  out.push_back({"mixed effects (r = d and k = 0)", {json{{"r", 22}, {"k", 0}, {"covariance_shrinkage", 0.0}, {"iterations", 400}}}, lrs, stored});
  if (!lme4_script.empty()) {
    out.push_back({"lme4 lmer, random intercept", {json::object()},
                   [lme4_script](const Dataset<double>& train, const Dataset<double>& eval, const json&, Model*) {
                     return lme4_fit_predict(lme4_script, "1", train, eval);
                   },
                   [](const json&, std::int64_t) { return 1.0; }});
    out.push_back({"lme4 lmer, random intercept and movie-mean slope", {json::object()},
                   [lme4_script](const Dataset<double>& train, const Dataset<double>& eval, const json&, Model*) {
                     return lme4_fit_predict(lme4_script, "1 + movie_mean", train, eval);
                   },
                   [](const json&, std::int64_t) { return 2.0; }});
  }
  // lme4's random intercept in lrsmeta: U held at the constant feature's axis, beta unpenalised.
  out.push_back({"random intercept (lrsmeta: U held at the constant feature)",
                 {json{{"r", 1}, {"k", 0}, {"low_rank_basis", "intercept"}, {"population_prior", false}}}, lrs, stored});
  out.push_back({"low-rank only (k = 0)", grid({1, 2, 3, 5, 8}, {0}), lrs, stored});
  out.push_back({"sparse only (r = 0)", grid({0}, {1, 2, 3, 5}), lrs, stored});
  out.push_back({"LRS", grid({1, 2, 3, 5, 8}, {1, 2, 3}), lrs, stored});
  out.push_back({"LRS (r and k auto: the default)", {json{{"rank_auto", true}, {"sparsity_auto", true}}}, lrs,
                 [](const json&, std::int64_t) { return 0.0; }});
  out.push_back({"LRS (r and k auto on validation rows)", {json{{"rank_auto", true}, {"sparsity_auto", true}, {"select", "validation"}}}, lrs,
                 [](const json&, std::int64_t) { return 0.0; }});
  std::vector<json> paper;
  for (int r : {1, 2, 3, 5, 8})
    for (int k : {1, 2, 3})
      for (double tr : {0.01, 0.1, 1.0, 10.0, 100.0}) paper.push_back({{"prior", "none"}, {"r", r}, {"k", k}, {"task_ridge", tr}});
  out.push_back({"AMHT-LRS (prior none)", paper, lrs, stored});
  return out;
}

void run_gnuplot(const fs::path& out, const std::string& script_name, const std::string& script) {
  const fs::path script_path = out / script_name;
  write_text_file_atomically(script_path.string(), script);
  const std::string command = "cd '" + out.string() + "' && gnuplot '" + script_name + "' 2> gnuplot.log";
  if (std::system(command.c_str()) != 0)
    throw Error("gnuplot failed on " + script_path.string() + " (see " + (out / "gnuplot.log").string() +
                "; install it with scripts/install-deps.sh, or pass --no-plots)");
  std::error_code ec;
  if (fs::file_size(out / "gnuplot.log", ec) == 0) fs::remove(out / "gnuplot.log", ec);
}

}  // namespace

// The benchmark's options, parsed into Args.
struct Args {
  std::string data = "data/movielens/ratings.csv";
  std::string out = "movielens-benchmark";
  std::uint64_t seed = 1;
  std::int64_t max_users = 0;
  int iterations = 30;
  int threads = 0;
  bool no_plots = false;
  std::string lme4_script = "bench/peers/lme4_fit.R";
  std::vector<std::int64_t> regimes{5, 10, 20, 0};
};

void add_options(CLI::App& app, Args& args) {
  Args* a = &args;
  CLI::App* cmd = &app;
  cmd->add_option("--data", a->data, "ratings.csv (movieId, title, year, genres, userId, rating, timestamp)")->capture_default_str();
  cmd->add_option("--out,-o", a->out, "folder for the table (JSON, CSV) and plots")->capture_default_str();
  cmd->add_option("--seed", a->seed, "seed of the per-user train/validation/test split")->capture_default_str();
  cmd->add_option("--max-users", a->max_users, "use only the first N users by id (0: all)")->capture_default_str();
  cmd->add_option("--iterations", a->iterations, "outer iterations of the lrsmeta models")->capture_default_str();
  cmd->add_option("--threads", a->threads, "CPU threads (0: all cores)");
  cmd->add_option("--regimes", a->regimes, "training ratings kept per user (0: all)")->capture_default_str();
  cmd->add_flag("--no-plots", a->no_plots, "skip the gnuplot plots");
  cmd->add_option("--lme4-script", a->lme4_script, "R script that fits lme4's lmer (its rows are left out where Rscript or lme4 is missing)")
      ->capture_default_str();
}

void run(const Args& args) {
  const Args* a = &args;
    const Corpus corpus = load_ratings(a->data, a->max_users);
    const Split split = split_ratings(corpus, a->seed);
    std::size_t total = 0, pool_total = 0;
    for (std::size_t u = 0; u < corpus.by_user.size(); ++u) {
      total += corpus.by_user[u].size();
      pool_total += split.pool[u].size();
    }
    const double mean_pool = static_cast<double>(pool_total) / static_cast<double>(corpus.by_user.size());
    std::cout << "MovieLens: " << total << " ratings of " << corpus.by_user.size() << " users; features: "
              << corpus.genre_names.size() << " genres, year, movie mean, constant (d = " << corpus.genre_names.size() + 3
              << "); split seed " << a->seed << "\n";
    const bool with_lme4 = lme4_usable(a->lme4_script);
    const std::string lme4_note = with_lme4 ? "" : "lme4 rows left out: no Rscript with lme4, or no " + a->lme4_script +
                                                   " (Debian: apt-get install r-base-core r-cran-lme4; run from the source tree)";
    if (!with_lme4) std::cout << "note: " << lme4_note << "\n";
    const std::vector<Method> all = methods(a->iterations, a->threads, with_lme4 ? a->lme4_script : std::string());
    json rows = json::array();
    std::map<std::string, std::map<std::int64_t, double>> table;
    std::map<std::int64_t, std::vector<IterationInfo>> lrs_history;
    std::map<std::string, double> storage_all;
    for (std::int64_t regime : a->regimes) {
      // Selection: fit on the fit part (first `regime` ratings of it), score on validation.
      const auto fit_sets = keep_first(split.fit, regime);
      const FeatureBuilder select_features(corpus, fit_sets);
      const Dataset<double> select_train = select_features.dataset(fit_sets, true);
      const Dataset<double> select_eval = select_features.dataset(split.validation, false);
      // Final: fit on the pool (first `regime` ratings of it), score on test.
      const auto final_sets = keep_first(split.pool, regime);
      const FeatureBuilder final_features(corpus, final_sets);
      const Dataset<double> final_train = final_features.dataset(final_sets, true);
      const Dataset<double> final_eval = final_features.dataset(split.test, false);
      for (const Method& m : all) {
        json best;
        double best_rmse = INFINITY;
        for (const json& h : m.grid) {
          const double score = rmse(m.fit_predict(select_train, select_eval, h, nullptr), select_eval);
          if (score < best_rmse) {
            best_rmse = score;
            best = h;
          }
        }
        Model model;
        const double test = rmse(m.fit_predict(final_train, final_eval, best, &model), final_eval);
        if (m.name == "LRS") lrs_history[regime] = model.history;
        // lrsmeta's models store r + 2k numbers per user (what the fit chose, where it chose).
        const double storage = model.d > 0 ? static_cast<double>(model.r + 2 * model.k) : m.storage(best, final_train.d);
        if (model.d > 0 && model.has_prior()) {
          best["fitted_r"] = model.r;
          best["fitted_k"] = model.k;
          if (model.k > 0) best["sparse_prior_scale"] = model.options.sparse_prior_scale;
          if (model.k > 0) best["support_threshold"] = model.support_threshold;
        }
        table[m.name][regime] = test;
        if (regime == 0) storage_all[m.name] = storage;
        rows.push_back({{"method", m.name},
                        {"training_ratings_per_user", regime == 0 ? json("all") : json(regime)},
                        {"test_rmse", test},
                        {"validation_rmse", best_rmse},
                        {"hyperparameters", best},
                        {"storage_per_user", storage}});
        std::fprintf(stderr, "  %-22s %-4s test RMSE %.4f (validation %.4f) %s\n", m.name.c_str(),
                     regime == 0 ? "all" : std::to_string(regime).c_str(), test, best_rmse, best.dump().c_str());
      }
    }
    // The table: a row per method, a column per regime.
    std::ostringstream text;
    text << "| method |";
    for (std::int64_t regime : a->regimes) text << (regime == 0 ? " all ratings" : " " + std::to_string(regime) + " ratings") << " |";
    text << " numbers stored per user |\n|---|";
    for (std::size_t i = 0; i < a->regimes.size(); ++i) text << "---|";
    text << "---|\n";
    char buf[64];
    for (const Method& m : all) {
      text << "| " << m.name << " |";
      for (std::int64_t regime : a->regimes) {
        std::snprintf(buf, sizeof buf, " %.4f |", table[m.name][regime]);
        text << buf;
      }
      const auto st = storage_all.find(m.name);
      text << " " << (st == storage_all.end() ? std::string("-") : std::to_string(static_cast<long long>(st->second))) << " |\n";
    }
    if (!with_lme4) text << "\n" << lme4_note << "\n";
    std::cout << "test RMSE (hyperparameters chosen on validation ratings carved from training):\n" << text.str();
    fs::create_directories(a->out);
    const fs::path out(a->out);
    write_text_file_atomically((out / "results.json").string(),
                               json{{"data", a->data},
                                    {"users", corpus.by_user.size()},
                                    {"ratings", total},
                                    {"seed", a->seed},
                                    {"features", {{"genres", corpus.genre_names}, {"d", corpus.genre_names.size() + 3}}},
                                    {"mean_training_ratings_per_user", mean_pool},
                                    {"results", rows}}
                                       .dump(2) + "\n");
    std::ostringstream csv;
    csv << "method,training_ratings_per_user,test_rmse,validation_rmse,storage_per_user,hyperparameters\n";
    for (const json& r : rows) {
      std::string hp = r.at("hyperparameters").dump();
      std::string quoted;
      for (char c : hp) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
      csv << r.at("method").get<std::string>() << "," << r.at("training_ratings_per_user").dump() << "," << r.at("test_rmse")
          << "," << r.at("validation_rmse") << "," << r.at("storage_per_user") << ",\"" << quoted << "\"\n";
    }
    write_text_file_atomically((out / "results.csv").string(), csv.str());
    write_text_file_atomically((out / "table.md").string(), text.str());
    // Plot data: RMSE against training ratings per user ("all" at the mean pool size), and each
    // method's distance from the best of its regime (the figure: the methods differ by thousandths
    // where the baselines differ by tenths).
    std::ostringstream dat;
    dat << "# ratings per user; each method's test RMSE; then each method's test RMSE minus the best of its row\n";
    dat << "ratings_per_user";  // a header row, read by gnuplot's columnheader
    for (int twice = 0; twice < 2; ++twice)
      for (const Method& m : all) dat << " \"" << m.name << "\"";
    dat << "\n";
    std::vector<std::int64_t> sorted = a->regimes;
    std::sort(sorted.begin(), sorted.end(), [](std::int64_t x, std::int64_t y) { return (x == 0 ? INT64_MAX : x) < (y == 0 ? INT64_MAX : y); });
    for (std::int64_t regime : sorted) {
      dat << (regime == 0 ? mean_pool : static_cast<double>(regime));
      double best = INFINITY;
      for (const Method& m : all) best = std::min(best, table[m.name][regime]);
      for (const Method& m : all) dat << " " << table[m.name][regime];
      for (const Method& m : all) dat << " " << table[m.name][regime] - best;
      dat << "\n";
    }
    write_text_file_atomically((out / "rmse_vs_ratings.dat").string(), dat.str());
    std::ostringstream loss;
    for (std::int64_t regime : sorted) {
      loss << "# regime " << (regime == 0 ? std::string("all") : std::to_string(regime)) << "\n";
      for (const IterationInfo& h : lrs_history[regime]) loss << h.iteration << " " << h.training_loss << "\n";
      loss << "\n\n";
    }
    write_text_file_atomically((out / "training_loss.dat").string(), loss.str());
    if (!a->no_plots) {
      // Thirteen distinct colours (no cycle), point and dash types; the key below the plot, not over
      // it; the y axis the distance from the best method of each regime, so that the thousandths
      // that separate the methods show (the baselines far behind run off the top; the table has
      // every number).
      std::ostringstream p1;
      const char* colours[] = {"#000000", "#e69f00", "#56b4e9", "#009e73", "#d55e00", "#0072b2",
                               "#cc79a7", "#7f7f7f", "#b8860b", "#8b0000", "#2e8b57", "#4b0082", "#ff1493"};
      p1 << "set terminal pngcairo size 900,700 font 'sans,11'\nset output 'rmse_vs_ratings.png'\n";
      for (std::size_t i = 0; i < all.size(); ++i)
        p1 << "set linetype " << i + 1 << " lc rgb '" << colours[i % 13] << "' lw 2 pt " << (i % 13) + 1 << " dt " << (i / 6) + 1 << "\n";
      p1 << "set title \"MovieLens: test RMSE behind the best method of each column\\n(lines off the top are further behind: table.md has every number)\"\n"
         << "set xlabel 'training ratings per user (log scale; rightmost: all, mean " << static_cast<int>(mean_pool) << ")'\n"
         << "set ylabel 'test RMSE minus the best of each column'\nset logscale x\nset xrange [4:" << static_cast<int>(mean_pool * 1.3) + 1
         << "]\nset yrange [-0.002:0.05]\nset key below maxrows 4 width -4\nset grid\n"
         << "plot for [c=" << all.size() + 2 << ":" << 2 * all.size() + 1
         << "] 'rmse_vs_ratings.dat' using 1:c with linespoints title columnheader(c)\n";
      run_gnuplot(out, "rmse_vs_ratings.gp", p1.str());
      std::ostringstream p2;
      p2 << "set terminal pngcairo size 900,560 font 'sans,11'\nset output 'training_loss.png'\n"
         << "set title 'MovieLens: LRS training loss (mean squared residual) per outer iteration'\n"
         << "set xlabel 'outer iteration'\nset ylabel 'training MSE'\nset grid\nset key below horizontal\n"
         << "plot ";
      for (std::size_t i = 0; i < sorted.size(); ++i)
        p2 << (i ? ", " : "") << "'training_loss.dat' index " << i << " using 1:2 with linespoints lw 2 title '"
           << (sorted[i] == 0 ? std::string("all ratings") : std::to_string(sorted[i]) + " ratings") << "'";
      p2 << "\n";
      run_gnuplot(out, "training_loss.gp", p2.str());
    }
    std::cout << "wrote " << (out / "results.json").string() << ", results.csv, table.md"
              << (a->no_plots ? "" : ", rmse_vs_ratings.png, training_loss.png") << "\n";
}

}  // namespace lrsmeta::bench

int main(int argc, char** argv) {
  CLI::App app{"movielens: personalised rating prediction on the bundled MovieLens ratings, baselines against LRS"};
  lrsmeta::bench::Args args;
  lrsmeta::bench::add_options(app, args);
  try {
    app.parse(argc, argv);
    // Times taken with OpenBLAS's generic kernels are not this library's (docs/building.md).
    if (const std::string slow_blas = lrsmeta::blas_kernel_warning(); !slow_blas.empty()) std::cerr << "warning: " << slow_blas << "\n";
    lrsmeta::bench::run(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::cerr << "movielens: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
