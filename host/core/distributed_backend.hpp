// A backend over many processes: each process's backend holds its shard of the tasks, and this
// wrapper sums what the algorithm reads from them (the task steps' totals, G and v, cg's passes,
// the data's moments) over the communicator, so that the core runs unchanged (docs/design.md section 9).
// The solves are the core's: rank 0's, sent to all (host/core/u_solver.cpp).
#pragma once

#include <cstdint>
#include <memory>

#include "core/backend.hpp"

namespace lrsmeta::core {

// local: this process's backend over its `local_rows` rows.
std::unique_ptr<Backend> make_distributed_backend(std::unique_ptr<Backend> local, Communicator& communicator,
                                                  std::int64_t local_rows);

// Collective: what every checkpoint of a fit over many processes says of the whole fit, into
// `header`: its data's sizes, a fingerprint of the shards' fingerprints in rank order, the
// processes, the options asked. Each checkpoint holds the tasks of the process it came from.
template <typename T>
void fill_distributed_checkpoint_header(Checkpoint& header, const TaskDataView<T>& data, const Options& asked, Communicator& communicator);

}  // namespace lrsmeta::core
