// The NCCL calls lrsmeta makes, for one rank: a communicator of one GPU, whose all-reduce is a
// copy (or nothing, in place), with the buffers checked as device memory on a live stream. Many
// ranks need many processes and GPUs: out of the emulation's reach, refused with ncclInvalidUsage.
#include <nccl.h>

#include <cstring>
#include <mutex>
#include <set>
#include <string>

#include "cuda_emulation/state.hpp"

struct ncclComm {
  int ranks = 1;
};

namespace {

namespace emu = lrsmeta::cuda_emulation::detail;

std::set<ncclComm*>& communicators() {
  static auto* live = new std::set<ncclComm*>;  // never destroyed: handles may outlive other statics
  return *live;
}

std::size_t type_size(ncclDataType_t type) {
  switch (type) {
    case ncclInt8: case ncclUint8: return 1;
    case ncclFloat16: return 2;
    case ncclInt32: case ncclUint32: case ncclFloat32: return 4;
    case ncclInt64: case ncclUint64: case ncclFloat64: return 8;
    default: return 0;
  }
}

}  // namespace

extern "C" {

const char* ncclGetErrorString(ncclResult_t result) {
  switch (result) {
    case ncclSuccess: return "no error";
    case ncclInvalidArgument: return "invalid argument";
    case ncclInvalidUsage: return "invalid usage";
    case ncclSystemError: return "unhandled system error";
    default: return "internal error";
  }
}

ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
  std::lock_guard<std::recursive_mutex> guard(emu::lock());
  if (emu::fault("ncclGetUniqueId")) return ncclSystemError;
  if (!id) return ncclInvalidArgument;
  std::memset(id, 0, sizeof *id);
  std::strcpy(id->internal, "lrsmeta-emulation");
  return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank) {
  std::lock_guard<std::recursive_mutex> guard(emu::lock());
  if (emu::fault("ncclCommInitRank")) return ncclSystemError;
  if (!comm || nranks < 1 || rank < 0 || rank >= nranks) return ncclInvalidArgument;
  if (std::strcmp(id.internal, "lrsmeta-emulation") != 0) {
    emu::report("ncclCommInitRank: the id did not come from ncclGetUniqueId");
    return ncclInvalidArgument;
  }
  if (nranks != 1) {
    emu::report("ncclCommInitRank: " + std::to_string(nranks) + " ranks; the emulation has one GPU");
    return ncclInvalidUsage;
  }
  *comm = new ncclComm;
  communicators().insert(*comm);
  return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  std::lock_guard<std::recursive_mutex> guard(emu::lock());
  if (!communicators().erase(comm)) return emu::report("ncclCommDestroy: not a live communicator"), ncclInvalidArgument;
  delete comm;
  return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, ncclRedOp_t op,
                           ncclComm_t comm, cudaStream_t stream) {
  constexpr const char* call = "ncclAllReduce";
  std::lock_guard<std::recursive_mutex> guard(emu::lock());
  if (emu::fault(call)) return ncclSystemError;
  if (!communicators().count(comm)) return emu::report("ncclAllReduce: not a live communicator"), ncclInvalidArgument;
  if (!emu::stream_of(stream)) return emu::report("ncclAllReduce: not a live stream"), ncclInvalidArgument;
  const std::size_t size = type_size(datatype);
  if (size == 0 || op < ncclSum || op > ncclAvg) return ncclInvalidArgument;
  const std::size_t bytes = count * size;
  if (!emu::device_range(call, "the send buffer", sendbuff, bytes) || !emu::device_range(call, "the receive buffer", recvbuff, bytes))
    return ncclInvalidArgument;
  if (sendbuff != recvbuff && bytes) std::memmove(recvbuff, sendbuff, bytes);  // one rank: every reduction is the identity
  return ncclSuccess;
}

}  // extern "C"
