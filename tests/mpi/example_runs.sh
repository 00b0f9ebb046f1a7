#!/usr/bin/env bash
# example_runs.sh MPIRUN EXAMPLE DIR -- ctest mpi_example: examples/mpi/train_data_parallel on a
# small synthetic MNIST-format data set (600 training and 100 test rows of 28x28, labels that a
# network can learn), global batches of 128 (2 shards in one process, 64 rows per rank on 2).
# What docs/distributed.md says of the example must hold:
#  - 2 ranks write 1 rank's checkpoint byte for byte, plain and with --batchnorm --overlap;
#  - a 2-rank checkpoint resumes on 3 ranks and trains on to the asked iteration.
set -euo pipefail
mpirun=$1 example=$2 dir=$3
rm -rf "$dir" && mkdir -p "$dir/data"
python3 - "$dir/data" <<'PY'
import gzip, random, struct, sys
random.seed(7)
def write(prefix, count):
    pixels, labels = bytearray(), bytearray()
    for _ in range(count):
        label = random.randrange(10)
        row = [random.randrange(64) for _ in range(784)]
        for i in range(label * 78, label * 78 + 78):   # a bright band whose place is the label
            row[i] = 200 + random.randrange(56)
        pixels += bytes(row)
        labels.append(label)
    with gzip.open(f"{sys.argv[1]}/{prefix}-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, count, 28, 28) + pixels)
    with gzip.open(f"{sys.argv[1]}/{prefix}-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">II", 0x801, count) + labels)
write("train", 600)
write("t10k", 100)
PY
run() {   # run RANKS ARGS...
    local ranks=$1
    shift
    "$mpirun" --allow-run-as-root --oversubscribe -np "$ranks" "$example" --data "$dir/data" --batch 128 "$@"
}
run 1 --iterations 12 --checkpoint "$dir/one.safetensors"
run 2 --iterations 12 --checkpoint "$dir/two.safetensors"
cmp "$dir/one.safetensors" "$dir/two.safetensors"
echo "ok   2 ranks write 1 rank's checkpoint byte for byte"
run 1 --iterations 12 --batchnorm --checkpoint "$dir/one-bn.safetensors"
run 2 --iterations 12 --batchnorm --overlap --checkpoint "$dir/two-bn.safetensors"
cmp "$dir/one-bn.safetensors" "$dir/two-bn.safetensors"
echo "ok   with --batchnorm, 2 ranks with --overlap write 1 rank's checkpoint byte for byte"
run 3 --iterations 20 --resume --checkpoint "$dir/two.safetensors" | tee "$dir/resumed.log"
grep -q "resumed" "$dir/resumed.log"
grep -Eq "^ +20 " "$dir/resumed.log"
echo "ok   the 2-rank checkpoint resumes on 3 ranks and trains on to iteration 20"
