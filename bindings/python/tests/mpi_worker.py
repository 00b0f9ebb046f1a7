"""Run by test_distributed.py under ``mpirun -np 2``: descent.distributed against one process.

Every rank runs every check (they are collective) and rank 0 prints one JSON line per check,
{"check": ..., "ok": ..., "detail": ...}, agreed over the ranks. Exit code 0 when all pass.
"""
from __future__ import annotations

import json
import sys

import numpy as np
from mpi4py import MPI

import descent
from descent.distributed import DataParallel, ShardedSampler, join, leave, load, shard_bounds

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
results = []
SIZES = [48, 96, 64, 10]
STEPS, BATCH = 20, 128


def check(name: str, ok: bool, detail: str = "") -> None:
    ok = comm.allreduce(bool(ok), op=MPI.LAND)
    details = comm.gather(detail, root=0)
    if rank == 0:
        results.append({"check": name, "ok": ok, "detail": "; ".join(d for d in details if d)})


def same_on_every_rank(net: descent.Network) -> bool:
    root = comm.bcast(net.param_buffer.tobytes(), root=0)
    return root == net.param_buffer.tobytes()


rng = np.random.default_rng(2026)
xs = rng.uniform(-1, 1, size=(STEPS, BATCH, 48)).astype(np.float32)
ys = rng.integers(0, 10, size=(STEPS, BATCH)).astype(np.int32)
start, stop = shard_bounds(BATCH, rank, size)


def new_net(**spec) -> descent.Network:
    net = descent.Network(SIZES, seed=77, **spec)
    net.set_optimizer("adam", lr=0.01)
    return net


# 1. size ranks x 64 rows against 1 process x 128 rows, plain and with batch norm (synchronised)
#    and dropout (masks by global row): the parameters bit for bit, the losses within 1e-6,
#    every rank equal after every step.
for label, spec in (("", {}), (" (batch norm, dropout)", {"batchnorm": True, "dropout": 0.2})):
    ref, net = new_net(**spec), new_net(**spec)
    dp = DataParallel(net, comm)
    worst, bitwise, equal = 0.0, True, True
    for t in range(STEPS):
        want = ref.train_step(xs[t], ys[t])
        got = dp.train_step(xs[t, start:stop], ys[t, start:stop])
        worst = max(worst, abs(got - want) / abs(want))
        bitwise = bitwise and net.param_buffer.tobytes() == ref.param_buffer.tobytes()
        equal = equal and same_on_every_rank(net)
    check(f"losses within 1e-6 of one process{label}", worst <= 1e-6, f"worst {worst:.3g}")
    check(f"parameters equal one process's bit for bit after every step{label}", bitwise)
    check(f"every rank's parameters equal after every step{label}", equal)

# 2. A NaN in rank 1's rows: the same exception on every rank, nothing changed.
before = net.param_buffer.copy()
bad = xs[0, start:stop].copy()
if rank == 1:
    bad[0, 17] = np.nan
try:
    dp.train_step(bad, ys[0, start:stop])
    message, kind = "no exception", None
except descent.DescentError as e:
    message, kind = str(e), type(e).__name__
want = "DataParallel.train_step: rank 1 of 2 failed: x contains NaN at index 17 (row 0, column 17)"
check("a NaN on rank 1 raises NumericError on every rank, naming rank 1",
      kind == "NumericError" and message == want, f"rank {rank}: {kind} {message!r}")
check("after the failed step no rank's parameters changed", np.array_equal(before, net.param_buffer))

# 2a. Finite rows too large for float32 on rank 1 only: they overflow the global batch's
#     (synchronised) batch-norm statistics, which the library finds inside the step; every rank
#     raises the same error.
huge = xs[1, start:stop].copy()
if rank == 1:
    huge[3, :] = 3e38
before = net.param_buffer.copy()
try:
    dp.train_step(huge, ys[1, start:stop])
    message, kind = "no exception", None
except descent.DescentError as e:
    message, kind = str(e), type(e).__name__
want = ("DataParallel.train_step: descent_net_train_step: a batch-norm mean or variance overflowed float32 (the "
        "inputs or weights are too large)")
check("rows that overflow float32 on rank 1 raise the same NumericError on every rank, nothing changed",
      kind == "NumericError" and message == want and np.array_equal(before, net.param_buffer),
      f"rank {rank}: {kind} {message!r}")

# 2b. join: the library's own data parallelism. With batch norm and dropout, a plain train_step
#     on each rank's rows equals one process's step on the whole batch, bit for bit; with the
#     gradients summed after the backward pass and, overlapped, layer by layer on the library's
#     thread (which calls back into Python: mpi4py runs at MPI.THREAD_MULTIPLE).
for overlap in (False, True):
    ref, joined = new_net(batchnorm=True, dropout=0.2), new_net(batchnorm=True, dropout=0.2)
    join(joined, comm, overlap=overlap)
    bitwise, equal = True, True
    for t in range(5):
        ref.train_step(xs[t], ys[t])
        joined.train_step(xs[t, start:stop], ys[t, start:stop])
        bitwise = bitwise and joined.param_buffer.tobytes() == ref.param_buffer.tobytes()
        equal = equal and same_on_every_rank(joined)
    check(f"join (overlap={overlap}): batch norm and dropout, parameters equal one process's bit for bit",
          bitwise and equal)
    bad = xs[5, start:stop].copy()
    if rank == 1:
        bad[2, 5] = np.nan
    before = joined.param_buffer.copy()
    try:
        joined.train_step(bad, ys[5, start:stop])
        message = "no exception"
    except descent.NumericError as e:
        message = str(e)
    want = ("descent_net_train_step: x contains NaN at index 101 (row 2, column 5)" if rank == 1 else
            "descent_net_train_step: the step failed on process 1: x contains NaN at index 101 (row 2, column 5); "
            "nothing changed")
    check(f"join (overlap={overlap}): a NaN on rank 1 fails every rank, naming rank 1, and changes nothing",
          message == want and np.array_equal(before, joined.param_buffer), f"rank {rank}: {message!r}")
    leave(joined)

# 3. The sampler: the ranks' rows of each batch make up the whole batch, drawn alike everywhere.
whole = ShardedSampler(1000, 100, rank=0, size=1, seed=3)
mine = ShardedSampler(1000, 100, rank=rank, size=size, seed=3)
ok = True
for _, all_rows, rows in zip(range(25), whole, mine):   # 2.5 epochs
    gathered = np.concatenate(comm.allgather(rows))
    ok = ok and np.array_equal(gathered, all_rows)
check("ShardedSampler: the ranks' rows of every batch are one process's batch, in order", ok)

# 4. Rank 0 saves; loading on 1 rank (each alone) and on every rank gives the saved network.
path = sys.argv[1]
dp.save(path)
alone = load(path, MPI.COMM_SELF)
together = load(path, comm)
check("a checkpoint saved on 2 ranks loads on 1 and on 2 ranks with the same parameters",
      alone.param_buffer.tobytes() == net.param_buffer.tobytes() ==
      together.param_buffer.tobytes() and together.optimizer.step_count == STEPS)
try:
    load(path + ".missing", comm)
    message = "no exception"
except descent.NotFound as e:
    message = str(e)
check("loading a missing file raises NotFound on every rank, naming rank 0",
      message.startswith("descent.distributed.load: rank 0 of 2 failed: descent_net_load: "), message)

if rank == 0:
    for r in results:
        print(json.dumps(r), flush=True)
sys.exit(0 if all(r["ok"] for r in results) or rank != 0 else 1)
