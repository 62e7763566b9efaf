#!/usr/bin/env bash
# The library without its modules: liblrsmeta.so names none of CUDA's or MPI's libraries, and a
# program that loads a copy of it from a folder holding nothing else trains on the CPU, while
# --device cuda there is one line naming the missing module. Also run with the modules present.
# Usage: LRSMETA=path/to/lrsmeta backend_modules.sh BUILD_DIR WORK_DIR
set -euo pipefail
build=$1
work=$2
bin=${LRSMETA:?set LRSMETA to the lrsmeta executable}
rm -rf "$work" && mkdir -p "$work/lib" && cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }

soname=$(readelf -d "$build/liblrsmeta.so" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
[[ -n $soname ]] || fail "liblrsmeta.so has no soname"
needed=$(readelf -d "$build/liblrsmeta.so" | sed -n 's/.*(NEEDED).*\[\(.*\)\].*/\1/p')
if grep -Ei 'cuda|cublas|cusolver|nccl|mpi' <<< "$needed"; then fail "liblrsmeta.so needs CUDA or MPI libraries: $needed"; fi
ldd "$build/liblrsmeta.so" > ldd.txt || fail "ldd liblrsmeta.so failed"
if grep -Ei 'libcuda|libcublas|libcusolver|libnccl|libmpi' ldd.txt; then fail "liblrsmeta.so loads CUDA or MPI libraries: $(cat ldd.txt)"; fi

"$bin" generate --out data --tasks 60 --samples 12 -d 8 -r 2 -k 1 --seed 5 > /dev/null

# The program finds the copy first (its run path is a RUNPATH, searched after LD_LIBRARY_PATH).
cp -L "$build/liblrsmeta.so" "lib/$soname"
export LD_LIBRARY_PATH=$work/lib
ldd "$bin" > ldd_program.txt  # (into a file: grep -q ending a pipe early fails it under pipefail)
grep -q "$work/lib/$soname" ldd_program.txt || fail "the program does not load the copied library: $(cat ldd_program.txt)"
"$bin" train --data data -r 2 -k 1 --iterations 5 --out model_cpu > train.txt 2> train.err || fail "training without the modules failed: $(cat train.err)"
[[ -f model_cpu/model.json ]] || fail "no model written without the modules"
if "$bin" train --data data -r 2 -k 1 --prior none --device cuda --out model_gpu > out.txt 2> err.txt; then
  fail "--device cuda without the CUDA module did not fail"
fi
[[ $(wc -l < err.txt) -eq 1 ]] || fail "--device cuda without the module printed more than one line: $(cat err.txt)"
grep -q "liblrsmeta_cuda.so" err.txt || fail "the error does not name the CUDA module: $(cat err.txt)"
[[ ! -e model_gpu ]] || fail "a failed fit left model_gpu behind"
unset LD_LIBRARY_PATH

# LRSMETA_MODULE_DIR is the only place looked in where set: an empty folder hides the modules.
mkdir -p empty
LRSMETA_MODULE_DIR=$work/empty "$bin" train --data data -r 2 -k 1 --prior none --device cuda --out model_gpu > out.txt 2> err.txt && \
  fail "--device cuda with LRSMETA_MODULE_DIR empty did not fail"
grep -q "liblrsmeta_cuda.so" err.txt || fail "the error does not name the CUDA module: $(cat err.txt)"

# A damaged module (not a shared library): one line naming it, nothing written.
mkdir -p damaged && echo "not a library" > damaged/liblrsmeta_cuda.so
LRSMETA_MODULE_DIR=$work/damaged "$bin" train --data data -r 2 -k 1 --prior none --device cuda --out model_gpu > out.txt 2> err.txt && \
  fail "--device cuda with a damaged module did not fail"
[[ $(wc -l < err.txt) -eq 1 ]] && grep -q "damaged/liblrsmeta_cuda.so" err.txt || fail "a damaged module: $(cat err.txt)"
[[ ! -e model_gpu ]] || fail "a failed fit left model_gpu behind"

# Under an MPI launcher without the MPI module: one line naming it, nothing written.
OMPI_COMM_WORLD_SIZE=2 LRSMETA_MODULE_DIR=$work/empty "$bin" train --data data -r 2 -k 1 --out model_mpi > out.txt 2> err.txt && \
  fail "training under a launcher without the MPI module did not fail"
[[ $(wc -l < err.txt) -eq 1 ]] && grep -q "liblrsmeta_mpi.so" err.txt || fail "without the MPI module: $(cat err.txt)"
[[ ! -e model_mpi ]] || fail "a failed fit left model_mpi behind"

# With the build's modules beside the library: a module that loads but finds no GPU says so.
if [[ -f $build/liblrsmeta_cuda.so ]]; then
  if "$bin" train --data data -r 2 -k 1 --prior none --device cuda --out model_gpu > out.txt 2> err.txt; then
    echo "a GPU is usable here: --device cuda trained"
  else
    grep -q "no usable CUDA device" err.txt || fail "with the CUDA module present: $(cat err.txt)"
  fi
fi
echo "OK"
