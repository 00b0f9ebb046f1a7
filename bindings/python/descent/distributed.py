"""Data-parallel training over MPI processes, with mpi4py (``pip install mpi4py``).

Every rank holds a replica of the same network. Each step every rank runs forward and backward
on its own rows of the global batch, the library sums what crosses ranks inside its own step
through an all-reduce on mpi4py (``join``), and every rank applies the same update, so the
replicas stay bit-identical. It is what ``descent_mpi_join`` does in C (``include/descent_mpi.h``),
the scheme of Horovod and PyTorch's DDP with SyncBatchNorm::

    from mpi4py import MPI
    import descent
    from descent.distributed import DataParallel, ShardedSampler

    net = descent.Network([784, 100, 100, 10], seed=1)
    net.set_optimizer("adam", lr=0.001)
    dp = DataParallel(net, MPI.COMM_WORLD)         # rank 0's weights on every rank, then join
    sampler = ShardedSampler(len(x_train), batch=128, rank=dp.rank, size=dp.size, seed=1)
    for step, rows in zip(range(1000), sampler):   # this rank's rows of each global batch
        loss = dp.train_step(x_train[rows], y_train[rows])   # the global batch's mean loss
    dp.save("model.safetensors")                   # rank 0 writes
    net = load("model.safetensors", MPI.COMM_WORLD)    # on any number of ranks

Run it with ``mpirun -np 2 python train.py``. Each step is the global batch's: the loss and
gradients are its means, batch norm normalises by its statistics (synchronised batch norm), and
dropout masks follow each row's place in it, so 2 ranks of 64 rows compute one process's
128-row step bit for bit. Every method taking part in a step is collective: every rank must
call it, in the same order. A failure on any rank (a NaN in its rows, a label out of range)
raises the same exception on every rank, with the failing rank in its message
(``DataParallel.train_step: rank 1 of 2 failed: x contains NaN at index 17 (row 0, column 17)``),
and changes nothing on any rank. docs/distributed.md says more.
"""
from __future__ import annotations

import os
import tempfile
from typing import Iterator, Optional

import numpy as np

from ._inputs import batch_inputs
from ._lib import ALLREDUCE_FN
from .errors import BY_STATUS, DescentError, InvalidArgument, NumericError
from .network import Network

try:
    from mpi4py import MPI
except ImportError as error:  # pragma: no cover - exercised only without mpi4py
    raise ImportError("descent.distributed needs mpi4py (pip install mpi4py, with an MPI such as Debian's "
                      "libopenmpi-dev installed first)") from error

__all__ = ["DataParallel", "ShardedSampler", "shard_bounds", "load", "join", "leave"]


def join(net: Network, comm=None, overlap: bool = False) -> None:
    """Makes ``net`` this rank's replica in a data-parallel job over ``comm`` (default
    COMM_WORLD) run by the library itself: afterwards ``net.train_step(x, y)`` (and
    ``forward_backward`` + ``apply_update``) on this rank's rows of each global batch takes the
    step of the whole global batch. Batch norm is synchronised, dropout masks follow each row's
    place in the global batch, and the ranks agree on every step's outcome inside the library:
    a failure on any rank raises on every rank and changes nothing on any. With 2 ranks of equal
    rows the steps equal one process's on the whole batch bit for bit. Start from equal replicas
    (``DataParallel(...).broadcast_parameters()`` or the same seed). Not collective itself.

    ``overlap=True`` sums each layer's gradients on a thread of the library's while the layers
    below still compute their backward pass, rather than all of them after it: the same bits,
    faster where a rank has a core to spare for communication, slower where the ranks fill every
    core (docs/distributed.md). It needs MPI at ``MPI.THREAD_SERIALIZED`` or higher (mpi4py's
    default is ``MPI.THREAD_MULTIPLE``)."""
    comm = _comm_world() if comm is None else comm
    if overlap and MPI.Query_thread() < MPI.THREAD_SERIALIZED:
        raise InvalidArgument("join: overlap=True calls MPI from a second thread, which needs MPI initialised at "
                              "MPI.THREAD_SERIALIZED or higher (mpi4py.rc.thread_level)")

    def allreduce(context, data, count):
        try:
            comm.Allreduce(MPI.IN_PLACE, np.ctypeslib.as_array(data, shape=(count,)), op=MPI.SUM)
            return 0
        except BaseException:  # noqa: BLE001 - the library turns a non-zero return into an error
            return 1

    net._set_allreduce(ALLREDUCE_FN(allreduce), comm.Get_rank(), comm.Get_size(), overlap)


def leave(net: Network) -> None:
    """Ends ``net``'s part in its job (``join``): it trains alone again."""
    net._set_allreduce(ALLREDUCE_FN(), 0, 0)   # a NULL function pointer


def shard_bounds(rows: int, rank: int, size: int) -> tuple[int, int]:
    """Rank ``rank``'s contiguous rows [start, stop) of a global batch of ``rows`` rows over
    ``size`` ranks: ``rows*rank//size`` to ``rows*(rank+1)//size``, so the shards differ by at
    most one row (100 rows over 3 ranks: 0-33, 33-66, 66-100; the later ones are the larger when
    they differ). The C example and ``include/descent_mpi.h``'s test cut the same way."""
    if not 0 <= rank < size:
        raise InvalidArgument(f"shard_bounds: rank is {rank}: must be in [0, {size})")
    if rows < size:
        raise InvalidArgument(f"shard_bounds: {rows} rows cannot give each of {size} ranks at least one")
    return rows * rank // size, rows * (rank + 1) // size


class ShardedSampler:
    """Mini-batches for data-parallel training: the same global batches on every rank (a
    permutation of range(n) per epoch from ``seed``, as every rank computes it alike), of which
    each rank yields only its own rows (``shard_bounds``). Iterating gives index arrays forever,
    epoch after epoch; the last incomplete batch of an epoch is dropped, so every step has
    ``batch`` rows in all.

    ``epoch`` is the epoch of the next batch and ``step`` the number of batches yielded; a
    resumed run recreates the sampler and calls ``skip(steps)`` to continue where it stopped."""

    def __init__(self, n: int, batch: int, rank: int, size: int, seed: int = 0):
        if n < batch or batch < size:
            raise InvalidArgument(f"ShardedSampler: need n >= batch >= size, got n={n}, batch={batch}, size={size}")
        self.n, self.batch, self.seed = int(n), int(batch), int(seed)
        self.start, self.stop = shard_bounds(self.batch, rank, size)
        self.per_epoch = self.n // self.batch
        self.step = 0

    @property
    def epoch(self) -> int:
        return self.step // self.per_epoch

    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def skip(self, steps: int) -> None:
        """Moves on by ``steps`` batches without drawing them (to resume a run)."""
        self.step += int(steps)

    def __iter__(self) -> Iterator[np.ndarray]:
        order, order_epoch = None, -1
        while True:
            epoch, k = divmod(self.step, self.per_epoch)
            if epoch != order_epoch:
                order, order_epoch = self._order(epoch), epoch
            first = k * self.batch
            self.step += 1
            yield order[first + self.start:first + self.stop]


def _comm_world():
    return MPI.COMM_WORLD


def _raise_agreed(comm, where: str, error: Optional[DescentError]) -> None:
    """The second half of an agreement, run by every rank once a collective has shown that some
    rank failed: raises, on every rank, the lowest-numbered failing rank's exception."""
    reports = comm.allgather(None if error is None else (error.status, error.message))
    rank = next(r for r, report in enumerate(reports) if report is not None)
    status, message = reports[rank]
    raise BY_STATUS.get(status, DescentError)(f"{where}: rank {rank} of {comm.Get_size()} failed: {message}")


def _agree(comm, where: str, error: Optional[DescentError]) -> None:
    """Every rank passes its own error (or None); every rank raises the same one, or none."""
    if comm.allreduce(error is not None, op=MPI.LOR):
        _raise_agreed(comm, where, error)


class DataParallel:
    """A network trained by every rank of ``comm`` together (synchronous data parallelism).

    DataParallel(net, comm=MPI.COMM_WORLD, root=0, broadcast=True, overlap=False): ``net`` is
    this rank's replica, created with the same spec and optimizer on every rank. With
    ``broadcast`` (the default, as DDP does) rank ``root``'s parameters are copied to every rank
    first, so the replicas start equal whatever each rank's seed. Then ``net`` joins the job
    (``join``, with ``overlap``): from here on every ``net.train_step``, ``forward_backward`` and
    ``apply_update`` on this rank's rows is the global batch's, whether called through this
    object or on ``net``. The network stays the caller's: use it for ``evaluate``, ``predict``
    (both local), ``net.optimizer.lr = ...`` (on every rank alike) and ``close``; ``leave(net)``
    makes it train alone again."""

    def __init__(self, net: Network, comm=None, root: int = 0, broadcast: bool = True, overlap: bool = False):
        if not isinstance(net, Network):
            raise InvalidArgument(f"DataParallel: net must be a descent.Network, not {type(net).__name__}")
        self.net = net
        self.comm = _comm_world() if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self._features = net.sizes[0]
        self._classes = net.sizes[-1]
        if broadcast:
            self.broadcast_parameters(root)
        join(net, self.comm, overlap=overlap)

    def broadcast_parameters(self, root: int = 0) -> None:
        """Copies rank ``root``'s parameters (``net.param_buffer``: weights, biases, batch norm's
        gamma and beta) to every rank, with one Bcast. Optimizer state, batch-norm running
        averages and the dropout generator are not sent (a fresh optimizer's state is zero
        everywhere); ``load`` gives every rank a whole checkpoint. Collective. Raises ShapeError
        on every rank when the ranks' networks differ in size (nothing is copied)."""
        if not 0 <= root < self.size:
            raise InvalidArgument(f"DataParallel.broadcast_parameters: root is {root}: must be a rank of comm, "
                                  f"in [0, {self.size})")
        params = self.net.param_buffer
        lengths = self.comm.allgather(params.size)
        if min(lengths) != max(lengths):
            raise BY_STATUS[4](f"DataParallel.broadcast_parameters: the ranks' networks differ: their parameter "
                               f"buffers hold from {min(lengths)} to {max(lengths)} floats (every rank must create "
                               f"the same spec)")
        self.comm.Bcast(params, root=root)

    def _check_inputs(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """The checks of this rank's rows that the library makes too, made here first so that
        the message names the rank (see train_step)."""
        x, y = batch_inputs("DataParallel.train_step", x, y, self._features, training=True)
        bad = np.flatnonzero((y < 0) | (y >= self._classes))
        if bad.size:
            i = int(bad[0])
            raise InvalidArgument(f"labels[{i}] is {int(y[i])}: must be in [0, {self._classes})")
        flat = x.reshape(-1)
        if not np.isfinite(flat).all():
            i = int(np.flatnonzero(~np.isfinite(flat))[0])
            what = "NaN" if np.isnan(flat[i]) else ("-Inf" if flat[i] < 0 else "Inf")
            raise NumericError(f"x contains {what} at index {i} (row {i // self._features}, "
                               f"column {i % self._features})")
        return x, y

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One synchronous step on this rank's rows ``x`` (local_batch, features), float32
        C-contiguous as for ``Network.train_step``, and labels ``y``; ranks may hold different
        numbers of rows. Returns the mean loss over the global batch (before the update), the
        same on every rank.

        Each rank first checks its rows (shapes and dtypes, labels in range, x finite) and the
        ranks agree on the outcome, so a bad input raises on every rank, naming the lowest
        failing rank and its message. Then ``net.train_step``, in which the library sums over
        the ranks (``join``); what fails there (a loss that overflows, batch-norm statistics
        that overflow) fails on every rank alike, its message prefixed with
        ``DataParallel.train_step``. Either way nothing changes on any rank."""
        where = "DataParallel.train_step"
        error = None
        try:
            x, y = self._check_inputs(x, y)
        except DescentError as e:
            error = e
        _agree(self.comm, where, error)
        try:
            return self.net.train_step(x, y)
        except DescentError as e:
            raise type(e)(f"{where}: {e}") from None

    def save(self, path: "str | os.PathLike", root: int = 0) -> None:
        """Rank ``root`` saves the network as a checkpoint (``Network.save``: atomic, with the
        optimizer's state); every rank waits and raises the same exception if it failed. After
        ``train_step`` the replicas' parameters and optimizer states are equal, so one file is the
        whole run's (batch-norm running averages are root's). Collective; ``path`` matters on
        root only."""
        error = None
        if self.rank == root:
            try:
                self.net.save(path)
            except DescentError as e:
                error = e
        _agree(self.comm, "DataParallel.save", error)


def load(path: "str | os.PathLike", comm=None, root: int = 0) -> Network:
    """Loads a checkpoint on every rank of ``comm``, whatever the number of ranks that saved it:
    rank ``root`` loads ``path`` (``Network.load``, with all its checks) and broadcasts the file's
    bytes, which every other rank loads from a temporary file of its own (removed again). The
    file needs to exist on root only. Every rank gets the same network, optimizer state included.
    Collective; on any rank's failure every rank raises the same exception."""
    comm = _comm_world() if comm is None else comm
    rank = comm.Get_rank()
    error, net, data = None, None, None
    if rank == root:
        try:
            net = Network.load(path)
            with open(path, "rb") as f:
                data = np.frombuffer(f.read(), dtype=np.uint8)
        except DescentError as e:
            error = e
        except OSError as e:
            error = BY_STATUS[5](f"cannot read {os.fspath(path)!r}: {e.strerror}")
    try:
        _agree(comm, "descent.distributed.load", error)
        size = comm.bcast(None if data is None else data.size, root=root)
        if rank != root:
            data = np.empty(size, dtype=np.uint8)
        comm.Bcast(data, root=root)
        if rank != root:
            try:
                with tempfile.NamedTemporaryFile(prefix="descent-mpi-", suffix=".safetensors") as f:
                    f.write(data.tobytes())
                    f.flush()
                    net = Network.load(f.name)
            except DescentError as e:
                error = e
            except OSError as e:
                error = BY_STATUS[5](f"cannot write a temporary file: {e.strerror}")
        _agree(comm, "descent.distributed.load", error)
    except DescentError:
        if net is not None:
            net.close()
        raise
    return net
