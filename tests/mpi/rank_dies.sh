#!/usr/bin/env bash
# rank_dies.sh MPIRUN PROGRAM DIR -- ctest mpi_rank_dies (see test_rank_dies.c): a job in which
# rank 1 dies must end (not hang: 60 s at most) with a non-zero status, and the checkpoint saved
# before must load with the parameters saved.
set -uo pipefail
mpirun=$1 program=$2 dir=$3
rm -rf "$dir" && mkdir -p "$dir" || exit 1
timeout 60 "$mpirun" --allow-run-as-root --oversubscribe -np 2 "$program" train "$dir"
status=$?
if [ "$status" = 124 ]; then echo "FAIL the job hung after rank 1 died (killed after 60 s)"; exit 1; fi
if [ "$status" = 0 ]; then echo "FAIL mpirun returned 0 although rank 1 died"; exit 1; fi
echo "ok   mpirun ended the job when rank 1 died (status $status)"
"$program" check "$dir"
