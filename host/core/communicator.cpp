#include "core/communicator.hpp"

#include <cstdlib>

#include "lrsmeta/mpi.hpp"

namespace lrsmeta {

Communicator::~Communicator() = default;

// Open MPI's mpirun, MPICH's (PMI) and PMIx launchers, and Slurm's srun each set one of these.
bool launched_by_mpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "SLURM_STEP_NUM_TASKS"})
    if (std::getenv(name)) return true;
  return false;
}

}  // namespace lrsmeta
