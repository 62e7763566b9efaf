#!/usr/bin/env bash
# Writes the fuzz targets' seed corpus (tests/fuzz/seeds/TARGET/) from files the command line
# writes: small data folders, CSV tables, models and a checkpoint. Run it again after a file
# format changes. Needs the CLI (LRSMETA=path/to/lrsmeta, default build/lrsmeta) and python3-numpy.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
lrsmeta=${LRSMETA:-$root/build/lrsmeta}
seeds=$here/seeds
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pack() { python3 "$here/pack.py" pack "$1" "$2"; }
rm -rf "$seeds"
mkdir -p "$seeds"/{npy,csv,model,data,checkpoint}

# Data folders: float64 and float32 X, and one converted from a CSV (with dataset.json).
"$lrsmeta" generate -q --out "$work/gen" --tasks 5 --min-samples 2 --max-samples 4 --dim 4 --rank 1 --sparsity 1 --noise 0.1 > /dev/null
"$lrsmeta" generate -q --out "$work/gen32" --tasks 3 --samples 3 --dim 3 --rank 1 --sparsity 1 --dtype float32 > /dev/null
head -n 41 "$root/data/movielens/ratings.csv" > "$work/ratings.csv"
"$lrsmeta" convert -q --data "$work/ratings.csv" --target rating --task userId --ignore title --ignore timestamp \
  --out "$work/converted" > /dev/null
# Rows of a task anywhere: task_ids.npy instead of the offsets.
mkdir -p "$work/ids"
cp "$work/gen/X.npy" "$work/gen/y.npy" "$work/ids/"
python3 - "$work/gen/y.npy" "$work/ids/task_ids.npy" <<'PY'
import ast, struct, sys
raw = open(sys.argv[1], "rb").read()
n = ast.literal_eval(raw[10:10 + struct.unpack("<H", raw[8:10])[0]].decode())["shape"][0]
header = "{'descr': '<i8', 'fortran_order': False, 'shape': (%d,), }" % n
header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
with open(sys.argv[2], "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
    f.write(struct.pack("<%dq" % n, *[(j * 7) % 3 for j in range(n)]))
PY
rm -rf "$work/gen/truth" "$work/gen32/truth"
pack "$work/gen" "$seeds/data/generated"
pack "$work/gen32" "$seeds/data/float32"
pack "$work/converted" "$seeds/data/converted"
pack "$work/ids" "$seeds/data/task_ids"

# .npy files of every kind the project writes.
cp "$work/gen/X.npy" "$seeds/npy/X_float64"
cp "$work/gen32/X.npy" "$seeds/npy/X_float32"
cp "$work/gen/task_offsets.npy" "$seeds/npy/offsets_int64"
cp "$work/ids/task_ids.npy" "$seeds/npy/task_ids"

# CSV: a slice of the MovieLens ratings (quoted text, one-hot genres) and a small numeric table.
cp "$work/ratings.csv" "$seeds/csv/ratings"
printf 'task,x1,x2,colour,y\na,1.5,2,red,3.25\na,0.5,-1,blue,1\nb,2,0.25,red,-0.5\n"b",1e3,7,"gr""een",2\nc,0,0,blue,0\n' > "$seeds/csv/small"

# Models: with the prior (r and k given), without it, and one trained on a CSV (encoding, keys).
"$lrsmeta" train -q --data "$work/gen" --out "$work/model" --rank 1 --sparsity 1 --iterations 3 > /dev/null
"$lrsmeta" train -q --data "$work/gen" --out "$work/model_none" --prior none --rank 1 --sparsity 1 --iterations 3 > /dev/null
"$lrsmeta" train -q --data "$work/ratings.csv" --target rating --task userId --ignore title --ignore timestamp \
  --out "$work/model_csv" --rank 1 --sparsity 1 --iterations 3 > /dev/null
pack "$work/model" "$seeds/model/prior"
pack "$work/model_none" "$seeds/model/no_prior"
pack "$work/model_csv" "$seeds/model/csv"
cp "$work/model/B_index.npy" "$seeds/npy/B_index_int32"

# A checkpoint (DIR/latest and DIR/iteration-NNNNNN/).
"$lrsmeta" train -q --data "$work/gen" --out "$work/model_ck" --rank 1 --sparsity 1 --iterations 3 \
  --checkpoint "$work/checkpoint" > /dev/null 2>&1
pack "$work/checkpoint" "$seeds/checkpoint/three_iterations"

du -sh "$seeds"
