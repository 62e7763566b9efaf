// Training over many processes with MPI: the communicator of MPI_COMM_WORLD, behind lrsmeta's
// Communicator interface (no MPI type here). It lives in the module liblrsmeta_mpi.so, built where
// MPI was found (CMake option LRSMETA_MPI) and loaded on first use; where it is missing, mpi_world()
// throws an Error naming it.
#pragma once

#include <string>

#include "lrsmeta/lrsmeta.hpp"

namespace lrsmeta {

// Whether MPI can be used: the MPI module is installed beside the library and loads.
LRSMETA_API bool mpi_built();
// Whether this process was started by an MPI launcher (mpirun or mpiexec of Open MPI or MPICH,
// srun), judged by the environment variables they set.
LRSMETA_API bool launched_by_mpi();
// The processes of MPI_COMM_WORLD. Initialises MPI on first use (finalised when the program
// exits); throws Error where the MPI module is missing.
LRSMETA_API Communicator& mpi_world();
// Ends every process of the job (MPI_Abort) after printing `message` on this one's stderr: for an
// error that strikes one process where the others may wait in a collective operation.
[[noreturn]] LRSMETA_API void mpi_abort(const std::string& message, int exit_code);

}  // namespace lrsmeta
