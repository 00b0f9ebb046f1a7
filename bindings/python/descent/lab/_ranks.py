"""The lab over MPI: how the processes of ``mpirun -np N descent-lab <experiment>`` share the work.

An experiment made of independent runs (hyperparams' trials, the optimizers' and init's training
runs) gives run i to rank i mod N and gathers the results on rank 0, which alone prints the
table, shows progress and writes the files. Each run's inputs (hyperparameters, mini-batches,
seeds) are drawn on every rank from the one stream a single process draws from, in run order, so
a run's result does not depend on which rank ran it: N processes write one process's files.
The other experiments run on rank 0 alone.

mpi4py is optional and imported only when the environment shows a launch of more than one
process: OMPI_COMM_WORLD_SIZE (Open MPI's mpirun) or PMI_SIZE (MPICH's and Intel MPI's
mpiexec, Slurm's srun with PMI) set to a number above 1. Importing mpi4py initialises MPI, which a
lab run on its own neither needs nor should pay for, and these variables are what the launchers
themselves set for their processes, so no flag is needed. A program that runs the lab inside its
own MPI job passes its communicator instead: ``lab.run(..., comm=MPI.COMM_WORLD)``.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import descent

from ._config import Config, LabError

# What MPI launchers set in each process they start: the number of processes of the job.
LAUNCH_SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE")


def launched_size(environ: Mapping[str, str] = os.environ) -> tuple[int, str]:
    """(the job's number of processes, the variable that says so) as the MPI launcher set it in
    ``environ``; (1, "") when no launcher did."""
    for name in LAUNCH_SIZE_VARIABLES:
        value = environ.get(name, "").strip()
        if value.isdigit():
            return int(value), name
    return 1, ""


@dataclass(frozen=True)
class Ranks:
    """This process's place among the lab's processes: ``comm`` is None for one process."""

    comm: Any = None
    rank: int = 0
    size: int = 1

    @property
    def root(self) -> bool:
        """Rank 0: the process that prints, shows progress and writes files."""
        return self.rank == 0

    def mine(self, runs: int) -> range:
        """The runs of ``runs`` this rank does: rank, rank + size, ... (round robin: the runs of an
        experiment cost about the same, so every rank gets an equal share)."""
        return range(self.rank, runs, self.size)

    def gather(self, done: dict[int, Any]) -> Optional[dict[int, Any]]:
        """Every rank's ``{run index: result}`` merged, on rank 0; None on the other ranks.
        Collective: every rank calls it once per experiment."""
        if self.comm is None:
            return dict(done)
        _wait_for_all(self.comm)
        parts = self.comm.gather(done, root=0)
        if parts is None:
            return None
        merged: dict[int, Any] = {}
        for part in parts:
            merged.update(part)
        return merged

    def abort(self, status: int) -> None:
        """Ends every process of the job (MPI_Abort): a rank that fails must not leave the others
        waiting for it in gather. Does nothing for one process."""
        if self.comm is not None and self.size > 1:
            self.comm.Abort(status)


ONE_PROCESS = Ranks()


def _wait_for_all(comm, poll_seconds: float = 0.005) -> None:
    """Returns once every rank has got here. A rank done with its share early would otherwise
    wait inside gather, where Open MPI busy-polls (unless oversubscribed) and takes a core from
    the ranks still training; this one sleeps between tests of a non-blocking barrier."""
    request = comm.Ibarrier()
    while not request.Test():
        time.sleep(poll_seconds)


def ranks_of(cfg: Config) -> Ranks:
    """The Ranks of a run (found once per Config): ``cfg.comm``'s when given, else MPI's
    COMM_WORLD when an MPI launcher started more than one process, else one process."""
    if cfg._ranks is None:
        cfg._ranks = _find_ranks(cfg.comm)
    return cfg._ranks


def _find_ranks(comm) -> Ranks:
    if comm is not None:
        return Ranks(comm, comm.Get_rank(), comm.Get_size())
    size, variable = launched_size()
    if size <= 1:
        return ONE_PROCESS
    try:
        from mpi4py import MPI
    except ImportError:
        raise LabError(f"started as one of {size} MPI processes ({variable}={size}), but mpi4py is not "
                       "installed: pip install mpi4py (or \"./bindings/python[distributed]\"), or run the lab "
                       "without mpirun") from None
    comm = MPI.COMM_WORLD
    _share_cores(comm)
    return Ranks(comm, comm.Get_rank(), comm.Get_size())


def _share_cores(comm) -> None:
    """Threads per rank = the library's default / the ranks on this machine (at least 1), as
    descent_mpi_share_cores does in C: 2 ranks on 2 cores run 1 thread each instead of 4 threads
    fighting for 2 cores. DESCENT_NUM_THREADS, when set, is left in force (the user's choice), and
    so is --threads, applied after this."""
    if os.environ.get("DESCENT_NUM_THREADS"):
        return
    from mpi4py import MPI
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    local = node.Get_size()
    node.Free()
    descent.set_num_threads(max(1, descent.set_num_threads(0) // max(1, local)))
