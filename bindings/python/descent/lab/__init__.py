"""The lab: the experiments of "Deep Learning from Scratch" ch. 6, rerun with Descent on real
images, as plots (PNG) and numbers (CSV) plus a summary table.

Command line::

    descent-lab <experiment> [--out DIR] [--data DIR] [--quick] [--seed N]
                [--optimizers a,b,c] [--plugin PATH]... [--schedule NAME]
    python -m descent.lab <experiment> ...

From Python (every experiment returns its numbers as a Result)::

    from descent import lab
    result = lab.run("paths", out="lab-out")
    result.data["paths"]["adam"]          # (31, 2) float32: the start, then 30 updates
    result.summary                         # the rows of the printed table
    result.files                           # the PNG and CSV files written

--quick shrinks every experiment to seconds while keeping its effect visible (fewer images
rather than only fewer epochs); its files are named "<name>_quick.png/.csv" and its plot titles
end in "(quick run)". --schedule (constant, step, exponential, cosine, warmup-cosine) drives the
learning rate of the optimizers and init experiments through descent.schedules. Progress bars
appear only when stderr is a terminal.

Over MPI, ``mpirun -np N descent-lab hyperparams`` shares the trials among N processes (likewise
the runs of optimizers and init; the other experiments run on rank 0 alone): the same table and
files as one process, printed and written by rank 0 (see _ranks.py). mpi4py is needed then, and
imported only under such a launch.

Experiments (the book's settings; see each module's docstring):
  paths        optimizer paths on f(x, y) = x^2/20 + y^2 (figure 6-8)
  optimizers   sgd/momentum/adagrad/adam (+ rmsprop, nesterov, adamw, plugins) on images (figure 6-9)
  histograms   hidden-layer activation histograms for each weight initialisation (figures 6-10 to 6-14)
  init         std 0.01 vs Xavier vs He on images (figure 6-15)
  batchnorm    with vs without batch normalisation, 16 weight scales (figure 6-19)
  overfit      overfitting of 300 images; weight decay and dropout against it (figures 6-20 to 6-23)
  hyperparams  random search of learning rate and weight decay (figure 6-24)
  all          every experiment above, in that order
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional, Sequence, Union

from . import batchnorm, histograms, hyperparams, optimizers, overfit, paths, weight_init
from ._config import Config, LabError, Result
from ._ranks import Ranks, ranks_of
from ._training import SCHEDULED_EXPERIMENTS, SCHEDULES

EXPERIMENTS = {m.NAME: m for m in (paths, optimizers, histograms, weight_init, batchnorm, overfit, hyperparams)}


def run(experiment: str, out: Union[str, os.PathLike] = "lab-out", data: Optional[Union[str, os.PathLike]] = None,
        quick: bool = False, seed: int = 1, optimizers: Optional[Sequence[str]] = None,
        plugins: Sequence[Union[str, os.PathLike]] = (), schedule: str = "constant", progress: bool = True,
        verbose: bool = True, comm: Any = None) -> Union[Result, list[Result]]:
    """Runs one experiment (a Result) or "all" (a list of Results). Raises LabError for
    problems the user can fix (missing data, unknown optimizer).

    ``comm``: an mpi4py communicator whose ranks share the runs (every rank calls run alike);
    default: COMM_WORLD when mpirun started several processes, else this process alone. Rank 0
    gets the Results; the other ranks get empty ones (no data, summary or files)."""
    cfg = Config(out=out, data=data, quick=quick, seed=seed, optimizers=list(optimizers) if optimizers else None,
                 plugins=list(plugins), schedule=schedule, progress=progress, verbose=verbose, comm=comm)
    return run_config(experiment, cfg)


def run_config(experiment: str, cfg: Config) -> Union[Result, list[Result]]:
    if cfg.schedule not in SCHEDULES:
        raise LabError(f"unknown schedule {cfg.schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if cfg.schedule != "constant" and experiment not in (*SCHEDULED_EXPERIMENTS, "all"):
        # Refused rather than ignored: the other experiments keep the book's constant rates.
        raise LabError(f"--schedule applies to the {' and '.join(SCHEDULED_EXPERIMENTS)} experiments (and to them "
                       f"within all), not to {experiment}")
    if experiment != "all" and experiment not in EXPERIMENTS:
        raise LabError(f"unknown experiment {experiment!r}; choose one of {', '.join(EXPERIMENTS)}, all")
    ranks = ranks_of(cfg)
    if not ranks.root:
        cfg = dataclasses.replace(cfg, verbose=False, progress=False)   # rank 0 alone prints
    if experiment == "all":
        return [_run(module, cfg, ranks) for module in EXPERIMENTS.values()]
    return _run(EXPERIMENTS[experiment], cfg, ranks)


def _run(module, cfg: Config, ranks: Ranks) -> Result:
    """The experiments that share their runs over the ranks run on every rank; the others on
    rank 0 alone (the other ranks move on to the next experiment of "all")."""
    if ranks.root or getattr(module, "SHARED_OVER_RANKS", False):
        return module.run(cfg)
    return Result(module.NAME, {}, [], [])


__all__ = ["run", "run_config", "Config", "Result", "LabError", "EXPERIMENTS"]
