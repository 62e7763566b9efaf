// The CUDA backend (kernels/ and host/cuda), built into the module liblrsmeta_cuda.so: the library
// reaches it through host/backends/registry.cpp only.
#pragma once

#include <memory>
#include <string>

#include "core/backend.hpp"

namespace lrsmeta {
namespace cuda {
// Whether a GPU can be used; where not, *why says what the runtime said.
bool device_usable(std::string* why = nullptr);
}  // namespace cuda

namespace core {
template <typename T>
std::unique_ptr<Backend> make_cuda_backend(const TaskDataView<T>& data, const Options& options);
}  // namespace core
}  // namespace lrsmeta
