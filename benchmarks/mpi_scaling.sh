#!/usr/bin/env bash
# mpi_scaling.sh -- the gradient reduction's cost per step for 2..N ranks on this machine: runs
# benchmarks/mpi_allreduce once per rank count and prints one table row each (docs/distributed.md):
# the header's descent_mpi_train_step, and the library's own job (descent_net_set_allreduce)
# with the gradients summed after the backward pass (overlap 0) and layer by layer during it
# (overlap 1), against the step alone.
#
#   benchmarks/mpi_scaling.sh [--build DIR] [--max N] [--reps R] [--rows R] [-- mpirun options]
#
#   --build DIR   the CMake build folder holding benchmarks/mpi_allreduce (default: <repo>/build)
#   --max N       the largest rank count (default 8); the runs are 2, 3, ..., N
#   --reps R      repetitions per figure (default 300; the figures are medians of the slowest rank)
#   --rows R      rows per rank (default 64): the global batch grows with the ranks (64 N), as
#                 when a job adds machines, and each rank's compute stays the same
#   after --       options for mpirun, e.g. --mca pml ob1 --mca btl tcp,self (TCP over loopback
#                 instead of shared memory)
#
# Every run gets --oversubscribe, so ranks beyond the cores may start, and Open MPI then lets a
# waiting rank yield its core instead of busy-polling; run as root, it also gets
# --allow-run-as-root. On a machine with C cores, the rows for more than C ranks measure ranks
# taking turns on the cores, not a network: see docs/distributed.md.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="$here/../build"
max=8
reps=300
rows=64
mpirun_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --build) build="${2:?--build needs a folder}"; shift 2 ;;
        --max) max="${2:?--max needs a number}"; shift 2 ;;
        --reps) reps="${2:?--reps needs a number}"; shift 2 ;;
        --rows) rows="${2:?--rows needs a number}"; shift 2 ;;
        --) shift; mpirun_args+=("$@"); break ;;
        *) echo "mpi_scaling.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
program="$build/benchmarks/mpi_allreduce"
if [ ! -x "$program" ]; then
    echo "mpi_scaling.sh: no $program; build it first: cmake --build $build --target mpi_allreduce" >&2
    exit 1
fi
command -v mpirun >/dev/null || { echo "mpi_scaling.sh: no mpirun (Debian: openmpi-bin)" >&2; exit 1; }
root_args=()
[ "$(id -u)" = 0 ] && root_args=(--allow-run-as-root)

echo "$(nproc) cores, $rows rows per rank, medians of $reps repetitions (slowest rank), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| ranks | MPI_Allreduce of the arena | descent_mpi_train_step | descent_net_train_step alone | joined, overlap 0 | joined, overlap 1 | overlap 1 / 0 |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
for ((n = 2; n <= max; n++)); do
    mpirun "${root_args[@]}" --oversubscribe -np "$n" "${mpirun_args[@]}" \
        "$program" --reps "$reps" --batch $((rows * n)) |
    awk -v n="$n" '/MPI_Allreduce/ { a = $(NF - 1) } /descent_mpi_train_step/ { s = $(NF - 1) }
                   /alone/ { l = $(NF - 1) } /overlap 0/ { j0 = $(NF - 1) } /overlap 1/ { j1 = $4 }
                   END { printf "| %d | %.0f us | %.0f us | %.0f us | %.0f us | %.0f us | %.2f |\n",
                                n, a, s, l, j0, j1, j1 / j0 }'
done
