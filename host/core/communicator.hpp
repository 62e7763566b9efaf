// The communicator of a fit in one process (FitControl::communicator left null), and helpers the
// core uses on any communicator.
#pragma once

#include <string>
#include <vector>

#include "lrsmeta/lrsmeta.hpp"

namespace lrsmeta::core {

// Size 1: sums and broadcasts leave the values as they are.
class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void sum(double*, std::size_t) override {}
  void sum(std::int64_t*, std::size_t) override {}
  void broadcast(double*, std::size_t, int) override {}
  void broadcast(std::string&, int) override {}
  void stream_to_root(const char* bytes, std::size_t count,
                      const std::function<void(int, const char*, std::size_t)>& sink) override {
    if (count > 0) sink(0, bytes, count);
  }
  std::string first_error(const std::string& message) override { return message.empty() ? message : "rank 0: " + message; }
};

inline void sum(Communicator& comm, std::vector<double>& values) { comm.sum(values.data(), values.size()); }
inline void broadcast(Communicator& comm, std::vector<double>& values, int root = 0) {
  comm.broadcast(values.data(), values.size(), root);
}
// Every process learns whether any process says true (a decision all must take together).
inline bool any(Communicator& comm, bool mine) {
  std::int64_t flag = mine ? 1 : 0;
  comm.sum(&flag, 1);
  return flag > 0;
}
// Rank 0's decision, on every process (where values computed on each could differ in rounding).
inline bool rank0_says(Communicator& comm, bool mine) {
  double flag = mine ? 1.0 : 0.0;
  comm.broadcast(&flag, 1, 0);
  return flag != 0.0;
}

}  // namespace lrsmeta::core
