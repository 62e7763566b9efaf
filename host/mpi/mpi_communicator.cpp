// lrsmeta's Communicator over MPI_COMM_WORLD, built into the module liblrsmeta_mpi.so. Every MPI
// call's status is checked and becomes an Error naming the call and MPI's message.
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <string>
#include <vector>

#include "backends/module_interface.hpp"
#include "lrsmeta/mpi.hpp"

namespace lrsmeta {
namespace {

void check(int status, const char* call) {
  if (status == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(status, text, &length);
  throw Error(std::string("MPI: ") + call + " failed with code " + std::to_string(status) + " (" + std::string(text, static_cast<std::size_t>(length)) + ")");
}
#define LRSMETA_MPI_CHECK(call) check((call), #call)

// MPI counts are int: large arrays go in pieces of at most this many elements.
constexpr std::size_t kMaxPiece = std::size_t{1} << 28;
constexpr int kStreamTag = 7301;

class MpiWorld final : public Communicator {
 public:
  MpiWorld() {
    int initialised = 0;
    LRSMETA_MPI_CHECK(MPI_Initialized(&initialised));
    if (!initialised) {
      int provided = 0;
      // One thread calls MPI (the fit's); OpenMP threads never do.
      LRSMETA_MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided));
      owns_mpi_ = true;
    }
    // Errors come back as codes (checked above), not as the default abort.
    LRSMETA_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    LRSMETA_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
    LRSMETA_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
  }
  ~MpiWorld() override {
    int finalised = 0;
    MPI_Finalized(&finalised);
    if (owns_mpi_ && !finalised) MPI_Finalize();  // errors at exit cannot be reported
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  // Reduce to rank 0, then broadcast: every process gets rank 0's bits (an all-reduce may round
  // differently on different processes, and the processes take decisions on these sums together).
  void sum(double* values, std::size_t count) override { sum_as(values, count, MPI_DOUBLE); }
  void sum(std::int64_t* values, std::size_t count) override { sum_as(values, count, MPI_INT64_T); }

  void broadcast(double* values, std::size_t count, int root) override {
    for (std::size_t at = 0; at < count; at += kMaxPiece)
      LRSMETA_MPI_CHECK(MPI_Bcast(values + at, static_cast<int>(std::min(kMaxPiece, count - at)), MPI_DOUBLE, root, MPI_COMM_WORLD));
  }
  void broadcast(std::string& text, int root) override {
    std::int64_t length = static_cast<std::int64_t>(text.size());
    LRSMETA_MPI_CHECK(MPI_Bcast(&length, 1, MPI_INT64_T, root, MPI_COMM_WORLD));
    text.resize(static_cast<std::size_t>(length));
    for (std::size_t at = 0; at < text.size(); at += kMaxPiece)
      LRSMETA_MPI_CHECK(MPI_Bcast(&text[at], static_cast<int>(std::min(kMaxPiece, text.size() - at)), MPI_CHAR, root, MPI_COMM_WORLD));
  }

  void stream_to_root(const char* bytes, std::size_t count,
                      const std::function<void(int, const char*, std::size_t)>& sink) override {
    constexpr std::size_t kPiece = std::size_t{16} << 20;
    if (rank_ != 0) {
      std::uint64_t total = count;
      LRSMETA_MPI_CHECK(MPI_Send(&total, 1, MPI_UINT64_T, 0, kStreamTag, MPI_COMM_WORLD));
      for (std::size_t at = 0; at < count; at += kPiece)
        LRSMETA_MPI_CHECK(MPI_Send(bytes + at, static_cast<int>(std::min(kPiece, count - at)), MPI_BYTE, 0, kStreamTag, MPI_COMM_WORLD));
      return;
    }
    for (std::size_t at = 0; at < count; at += kPiece) sink(0, bytes + at, std::min(kPiece, count - at));
    std::vector<char> piece;
    for (int from = 1; from < size_; ++from) {
      std::uint64_t total = 0;
      LRSMETA_MPI_CHECK(MPI_Recv(&total, 1, MPI_UINT64_T, from, kStreamTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
      for (std::uint64_t at = 0; at < total; at += kPiece) {
        const std::size_t size = static_cast<std::size_t>(std::min<std::uint64_t>(kPiece, total - at));
        piece.resize(size);
        LRSMETA_MPI_CHECK(MPI_Recv(piece.data(), static_cast<int>(size), MPI_BYTE, from, kStreamTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        sink(from, piece.data(), size);
      }
    }
  }

  std::string first_error(const std::string& message) override {
    int mine = message.empty() ? size_ : rank_, first = size_;
    LRSMETA_MPI_CHECK(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
    if (first == size_) return std::string();
    std::string text = rank_ == first ? message : std::string();
    broadcast(text, first);
    return "rank " + std::to_string(first) + ": " + text;
  }

 private:
  template <typename T>
  void sum_as(T* values, std::size_t count, MPI_Datatype type) {
    std::vector<T> total(rank_ == 0 ? std::min(kMaxPiece, count) : 0);
    for (std::size_t at = 0; at < count; at += kMaxPiece) {
      const int piece = static_cast<int>(std::min(kMaxPiece, count - at));
      LRSMETA_MPI_CHECK(MPI_Reduce(values + at, rank_ == 0 ? total.data() : nullptr, piece, type, MPI_SUM, 0, MPI_COMM_WORLD));
      if (rank_ == 0) std::copy(total.begin(), total.begin() + piece, values + at);
      LRSMETA_MPI_CHECK(MPI_Bcast(values + at, piece, type, 0, MPI_COMM_WORLD));
    }
  }

  int rank_ = 0, size_ = 1;
  bool owns_mpi_ = false;
};

Communicator& world() {
  static MpiWorld processes;
  return processes;
}

[[noreturn]] void abort_all(const std::string& message, int exit_code) {
  std::fprintf(stderr, "%s\n", message.c_str());
  std::fflush(stderr);
  int initialised = 0;
  MPI_Initialized(&initialised);
  if (initialised) MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);
}

}  // namespace
}  // namespace lrsmeta

// The entry point of liblrsmeta_mpi.so (host/backends/module_interface.hpp).
extern "C" const lrsmeta::backends::MpiModule* lrsmeta_mpi_module() {
  static const lrsmeta::backends::MpiModule table{lrsmeta::backends::this_build_stamp(), &lrsmeta::world,
                                                  &lrsmeta::abort_all};
  return &table;
}
