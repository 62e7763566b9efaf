#!/usr/bin/env bash
# The command line under mpirun: train over 2 and 3 processes equals train in one (to 1e-10), with
# and without the prior, cg and private training (fixed noise seed); each process reads only its
# rows (the loader's counters, train -v); predict writes the folder's row order; eval and adapt
# agree; one process's bad data ends every process with its message, and so does one process failing
# alone (never a hang); checkpoints are written and resumed; CSV input and choices on validation rows
# are refused with what to do instead.
# The defaults (nothing given) run over processes too.
# Usage: LRSMETA=path/to/lrsmeta MPIEXEC=path/to/mpiexec mpi_end_to_end.sh WORK_DIR
set -euo pipefail
work=$1
bin=${LRSMETA:?set LRSMETA to the lrsmeta executable}
mpiexec=${MPIEXEC:?set MPIEXEC to mpiexec}
py=${PYTHON:-/usr/bin/python3}  # Debian's, with python3-numpy (install-deps)
rm -rf "$work" && mkdir -p "$work" && cd "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
flags=(--oversubscribe)  # 3 processes on a 2-core machine
[[ $(id -u) -eq 0 ]] && flags+=(--allow-run-as-root)
run() {  # run P command...: under mpiexec, never longer than two minutes (a hang fails the test)
  local processes=$1; shift
  timeout 120 "$mpiexec" "${flags[@]}" -np "$processes" "$@"
}
same_model() {  # same_model A B [TOLERANCE]: every array of two model folders to 1e-10 (or TOLERANCE)
  "$py" - "$1" "$2" "${3:-1e-10}" <<'PY' || fail "models $1 and $2 differ"
import os, sys
import numpy as np
a, b, tolerance = sys.argv[1], sys.argv[2], float(sys.argv[3])
for f in ["U", "W", "B_index", "B_value", "beta", "Sigma"]:
    pa, pb = os.path.join(a, f + ".npy"), os.path.join(b, f + ".npy")
    if not os.path.exists(pa):
        assert not os.path.exists(pb), f
        continue
    x, y = np.load(pa), np.load(pb)
    assert x.shape == y.shape, (f, x.shape, y.shape)
    d = float(np.abs(x - y).max()) if x.size else 0.0
    assert d < tolerance, (f, d)
PY
}

"$bin" generate --out data --tasks 600 --samples 20 -d 12 -r 2 -k 1 --noise 0.1 --seed 3 > /dev/null
fixed=(-r 2 -k 1 --iterations 8 --threads 1)
for model in "--prior none" "--prior auto --sparse-prior-scale 0.1 --support-threshold 2 --covariance-shrinkage 10" \
             "--prior auto --sparse-prior-scale 0.1 --support-threshold 2 --covariance-shrinkage 10 --u-solver cg" \
             "--prior none --init spectral --epsilon 5 --delta 1e-5 --noise-seed 4"; do
  read -r -a extra <<< "$model"
  rm -rf one two three
  "$bin" train --data data --out one "${fixed[@]}" "${extra[@]}" -q > /dev/null
  run 2 "$bin" train --data data --out two "${fixed[@]}" "${extra[@]}" -q > two.txt
  run 3 "$bin" train --data data --out three "${fixed[@]}" "${extra[@]}" -q > /dev/null
  same_model one two
  same_model one three
  [[ $(grep -c "^trained" two.txt) -eq 1 ]] || fail "not rank 0 alone printed the summary: $(cat two.txt)"
  grep -q "t = 600" two.txt || fail "the summary does not count every process's tasks: $(cat two.txt)"
done

# Each process reads only its rows: y (8 bytes a row, float64 here) and its tasks' offsets.
rm -rf two
run 3 "$bin" train --data data --out two "${fixed[@]}" --prior none -v 2> verbose.txt > /dev/null
[[ $(grep -c "^rank " verbose.txt) -eq 3 ]] || fail "not every process said what it read: $(cat verbose.txt)"
while read -r line; do
  read -r first last row0 row1 bytes < <(echo "$line" | sed -E 's/^rank [0-9]+: tasks ([0-9]+) \.\. ([0-9]+), rows ([0-9]+) \.\. ([0-9]+) .* read ([0-9]+) bytes.*/\1 \2 \3 \4 \5/')
  want=$(( (row1 - row0 + 1) * 8 + (last - first + 2) * 8 ))
  [[ $bytes -eq $want ]] || fail "a process read $bytes bytes, its rows and offsets are $want: $line"
  (( row1 - row0 + 1 < 12000 )) || fail "a process has every row: $line"
done < <(grep "^rank " verbose.txt)

# predict: the folder's row order, as in one process (.npy and .csv); eval and adapt agree.
"$bin" predict --model one --data data --out p1.npy > /dev/null
run 3 "$bin" predict --model one --data data --out p3.npy > /dev/null
"$bin" predict --model one --data data --out p1.csv > /dev/null
run 2 "$bin" predict --model one --data data --out p2.csv > /dev/null
cmp -s p1.csv p2.csv || fail "predict's CSV differs under mpirun"
"$py" -c "import numpy as np, sys; a, b = np.load('p1.npy'), np.load('p3.npy'); sys.exit(0 if a.shape == b.shape and abs(a - b).max() < 1e-12 else 1)" ||
  fail "predict's .npy differs under mpirun"
"$bin" eval --model one --data data > e1.txt
run 3 "$bin" eval --model one --data data > e3.txt
cmp -s e1.txt e3.txt || fail "eval differs under mpirun: $(cat e1.txt e3.txt)"
rm -rf a1 a2
"$bin" adapt --model one --data data --out a1 > /dev/null
run 2 "$bin" adapt --model one --data data --out a2 > /dev/null
same_model a1 a2
ls -a | grep -q "\.tmp" && fail "a temporary file was left behind: $(ls -a)"

# One process's bad data: every process ends, with that process's message, and no model.
cp -r data bad
"$py" -c "import numpy as np; X = np.load('bad/X.npy'); X[11000, 3] = np.nan; np.save('bad/X.npy', X)"
if run 3 "$bin" train --data bad --out broken "${fixed[@]}" --prior none > out.txt 2> err.txt; then fail "bad data was accepted"; fi
grep -q "rank 2: data: X has a non-finite value" err.txt || fail "the failing process's message is missing: $(cat err.txt)"
grep -q "row 8000" err.txt || fail "the message does not say where the process's rows start: $(cat err.txt)"
[[ ! -e broken ]] || fail "a model was written from bad data"

# Checkpoints over many processes: written whole by rank 0, resumed by as many processes (here
# after the last iteration: the resumed run writes the same model), refused by another number.
rm -rf ck resumed
run 2 "$bin" train --data data --out ckmodel "${fixed[@]}" --prior none --checkpoint ck > /dev/null
[[ -f ck/latest ]] || fail "no checkpoint written over many processes"
run 2 "$bin" train --data data --out resumed "${fixed[@]}" --prior none --resume ck > resumed.txt
grep -q "resuming from ck after iteration 8" resumed.txt || fail "the resume does not say where it starts: $(cat resumed.txt)"
same_model ckmodel resumed
if run 3 "$bin" train --data data --out m "${fixed[@]}" --prior none --resume ck > out.txt 2> err.txt; then fail "3 processes resumed 2's checkpoint"; fi
grep -q "made by 2 process(es)" err.txt || fail "the refusal does not name the processes: $(cat err.txt)"

# One process failing alone (rank 0 cannot write the metrics, after the others are done): the job
# ends through MPI_Abort with its message, within the time limit.
if run 2 "$bin" train --data data --out alone "${fixed[@]}" --prior none --metrics-out nowhere/m.json > out.txt 2> err.txt; then
  fail "an unwritable metrics file was accepted"
fi
grep -q "rank 0: nowhere/m.json: cannot open for writing" err.txt || fail "the failing process's message is missing: $(cat err.txt)"

# The defaults (r, k and the priors estimated from all rows: sums over tasks) give the one-process
# model, to 1e-7 (the estimates' maximisations carry the sums' rounding further).
rm -rf one two three
"$bin" train --data data --out one --threads 1 -q > /dev/null
run 2 "$bin" train --data data --out two --threads 1 -q > /dev/null
run 3 "$bin" train --data data --out three --threads 1 -q > /dev/null
same_model one two 1e-7
same_model one three 1e-7

# What over many processes is refused, with what to do instead.
printf 'task,x,y\na,1,2\nb,2,3\n' > table.csv
if run 2 "$bin" train --data table.csv --target y --task task --out m -r 1 -k 0 --prior none > out.txt 2> err.txt; then fail "CSV accepted"; fi
grep -q "lrsmeta convert" err.txt || fail "CSV under mpirun does not name lrsmeta convert: $(cat err.txt)"
if run 2 "$bin" train --data data --out m --select validation > out.txt 2> err.txt; then fail "a choice on validation rows was accepted"; fi
grep -q -- "--select evidence" err.txt || fail "the refusal of the choice on validation rows does not name --select evidence: $(cat err.txt)"
echo "mpi_end_to_end: all checks passed"
