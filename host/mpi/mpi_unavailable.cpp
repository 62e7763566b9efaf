// lrsmeta/mpi.hpp in a library built without MPI (LRSMETA_MPI off, or no MPI found).
#include <cstdio>
#include <cstdlib>

#include "lrsmeta/mpi.hpp"

namespace lrsmeta {

bool mpi_built() { return false; }

Communicator& mpi_world() {
  throw Error("this lrsmeta was built without MPI (install libopenmpi-dev and rebuild, with -DLRSMETA_MPI=ON)");
}

void mpi_abort(const std::string& message, int exit_code) {
  std::fprintf(stderr, "%s\n", message.c_str());
  std::_Exit(exit_code);
}

}  // namespace lrsmeta
