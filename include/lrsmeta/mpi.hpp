// Training over many processes with MPI: the communicator of MPI_COMM_WORLD, behind lrsmeta's
// Communicator interface (no MPI type here). Available where the library was built with MPI
// (CMake option LRSMETA_MPI); elsewhere mpi_world() throws.
#pragma once

#include <string>

#include "lrsmeta/lrsmeta.hpp"

namespace lrsmeta {

// Whether this library was built with MPI.
LRSMETA_API bool mpi_built();
// Whether this process was started by an MPI launcher (mpirun or mpiexec of Open MPI or MPICH,
// srun), judged by the environment variables they set.
LRSMETA_API bool launched_by_mpi();
// The processes of MPI_COMM_WORLD. Initialises MPI on first use (finalised when the program
// exits); throws Error where the library has no MPI.
LRSMETA_API Communicator& mpi_world();
// Ends every process of the job (MPI_Abort) after printing `message` on this one's stderr: for an
// error that strikes one process where the others may wait in a collective operation.
[[noreturn]] LRSMETA_API void mpi_abort(const std::string& message, int exit_code);

}  // namespace lrsmeta
