// A Communicator whose processes are threads of this test (one object per thread, sharing a
// Group): the core's fit over many processes checked in one process, under the sanitizers too,
// without MPI. Sums are taken in rank order by rank 0, as a reduce followed by a broadcast would.
#pragma once

#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "lrsmeta/lrsmeta.hpp"

namespace lrsmeta::testing {

class ThreadGroup {
 public:
  explicit ThreadGroup(int size) : size_(size), pointers_(static_cast<std::size_t>(size)), counts_(static_cast<std::size_t>(size)),
                                   texts_(static_cast<std::size_t>(size)) {}
  int size() const { return size_; }
  void barrier() {
    std::unique_lock<std::mutex> lock(mutex_);
    const unsigned generation = generation_;
    if (++waiting_ == size_) {
      waiting_ = 0;
      ++generation_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return generation_ != generation; });
    }
  }
  std::vector<const void*> pointers_;
  std::vector<std::size_t> counts_;
  std::vector<std::string> texts_;
  std::vector<double> doubles_;
  std::vector<std::int64_t> integers_;

 private:
  int size_;
  std::mutex mutex_;
  std::condition_variable cv_;
  int waiting_ = 0;
  unsigned generation_ = 0;
};

class ThreadCommunicator final : public Communicator {
 public:
  ThreadCommunicator(ThreadGroup& group, int rank) : g_(group), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return g_.size(); }
  void sum(double* values, std::size_t count) override { sum_as(values, count, g_.doubles_); }
  void sum(std::int64_t* values, std::size_t count) override { sum_as(values, count, g_.integers_); }
  void broadcast(double* values, std::size_t count, int root) override {
    g_.pointers_[static_cast<std::size_t>(rank_)] = values;
    g_.barrier();
    if (rank_ != root) std::memcpy(values, g_.pointers_[static_cast<std::size_t>(root)], count * sizeof(double));
    g_.barrier();
  }
  void broadcast(std::string& text, int root) override {
    g_.texts_[static_cast<std::size_t>(rank_)] = text;
    g_.barrier();
    text = g_.texts_[static_cast<std::size_t>(root)];
    g_.barrier();
  }
  void stream_to_root(const char* bytes, std::size_t count,
                      const std::function<void(int, const char*, std::size_t)>& sink) override {
    g_.pointers_[static_cast<std::size_t>(rank_)] = bytes;
    g_.counts_[static_cast<std::size_t>(rank_)] = count;
    g_.barrier();
    if (rank_ == 0)
      for (int q = 0; q < size(); ++q) {
        const char* from = static_cast<const char*>(g_.pointers_[static_cast<std::size_t>(q)]);
        const std::size_t total = g_.counts_[static_cast<std::size_t>(q)];
        for (std::size_t at = 0; at < total; at += 5)  // small pieces: the sink must join them
          sink(q, from + at, std::min<std::size_t>(5, total - at));
      }
    g_.barrier();
  }
  std::string first_error(const std::string& message) override {
    g_.texts_[static_cast<std::size_t>(rank_)] = message;
    g_.barrier();
    std::string first;
    for (int q = 0; q < size(); ++q)
      if (!g_.texts_[static_cast<std::size_t>(q)].empty()) {
        first = "rank " + std::to_string(q) + ": " + g_.texts_[static_cast<std::size_t>(q)];
        break;
      }
    g_.barrier();
    return first;
  }

 private:
  template <typename T>
  void sum_as(T* values, std::size_t count, std::vector<T>& total) {
    g_.pointers_[static_cast<std::size_t>(rank_)] = values;
    g_.barrier();
    if (rank_ == 0) {
      total.assign(count, T(0));
      for (int q = 0; q < size(); ++q) {
        const T* from = static_cast<const T*>(g_.pointers_[static_cast<std::size_t>(q)]);
        for (std::size_t e = 0; e < count; ++e) total[e] += from[e];
      }
    }
    g_.barrier();
    std::memcpy(values, total.data(), count * sizeof(T));
    g_.barrier();
  }
  ThreadGroup& g_;
  int rank_;
};

// Runs body(communicator) on `size` threads, one per rank; rethrows the first exception.
inline void run_ranks(int size, const std::function<void(Communicator&)>& body) {
  ThreadGroup group(size);
  std::vector<std::thread> threads;
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(size));
  for (int q = 0; q < size; ++q)
    threads.emplace_back([&, q] {
      ThreadCommunicator comm(group, q);
      try {
        body(comm);
      } catch (...) {
        errors[static_cast<std::size_t>(q)] = std::current_exception();
      }
    });
  for (std::thread& t : threads) t.join();
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
}

// Runs body on `size` ranks as run_ranks does and returns the messages of the CollectiveErrors
// they threw, one per rank that threw one (any other exception is rethrown).
inline std::vector<std::string> collective_errors(int size, const std::function<void(Communicator&)>& body) {
  std::mutex lock;
  std::vector<std::string> messages;
  run_ranks(size, [&](Communicator& comm) {
    try {
      body(comm);
    } catch (const CollectiveError& e) {
      std::lock_guard<std::mutex> guard(lock);
      messages.push_back(e.what());
    }
  });
  return messages;
}

}  // namespace lrsmeta::testing
