// Built when lrsmeta is configured without the CUDA backend: asking for the GPU is a clear error.
#include "core/backend.hpp"

namespace lrsmeta {

bool cuda_available() { return false; }

namespace core {
template <typename T>
std::unique_ptr<Backend> make_cuda_backend(const TaskDataView<T>&, const Options&) {
  throw Error("device 'cuda' requested, but this build of lrsmeta has no CUDA backend; use --device cpu or auto");
}
template std::unique_ptr<Backend> make_cuda_backend(const TaskDataView<float>&, const Options&);
template std::unique_ptr<Backend> make_cuda_backend(const TaskDataView<double>&, const Options&);
}  // namespace core

}  // namespace lrsmeta
