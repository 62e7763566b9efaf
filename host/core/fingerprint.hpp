// A fast 64-bit hash of bytes, to tell whether a resume sees the data its checkpoint was made on
// and whether a checkpoint's files are intact. Not cryptographic: it catches accidents (other data,
// a truncated or damaged file), not an adversary.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lrsmeta/lrsmeta.hpp"

namespace lrsmeta::core {

// Hash of `bytes` bytes at `data`. Blocks of 1 MiB are hashed in parallel (OpenMP) and combined in
// order, so the value does not depend on the thread count.
std::uint64_t content_hash(const void* data, std::size_t bytes);

// Hash of a data set's offsets, y and X together (one parallel pass over X).
template <typename T>
std::uint64_t data_fingerprint(const TaskDataView<T>& data);

}  // namespace lrsmeta::core
