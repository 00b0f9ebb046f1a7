"""descent-lab / python -m descent.lab: the command line of the lab."""
from __future__ import annotations

import argparse
import sys
import time
import traceback
from typing import Optional, Sequence

import descent

from . import run_config
from ._config import Config, LabError
from ._ranks import ONE_PROCESS, Ranks, ranks_of
from ._training import SCHEDULED_EXPERIMENTS, SCHEDULES

EXPERIMENT_NAMES = ["paths", "optimizers", "histograms", "init", "batchnorm", "overfit", "hyperparams", "all"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="descent-lab",
        description='Reruns the experiments of "Deep Learning from Scratch" ch. 6 with Descent and writes '
                    "PNG plots and CSV files.",
        epilog="experiments: paths (figure 6-8), optimizers (6-9), histograms (6-10..6-14), init (6-15), "
               "batchnorm (6-19), overfit (6-20..6-23), hyperparams (6-24), all. "
               "Example: descent-lab optimizers --optimizers sgd,adam,lion --plugin ./lion.so. "
               "Under mpirun -np N (needs mpi4py), hyperparams, optimizers and init share their runs among the "
               "N processes, 1 thread each on 2 cores, and write one process's files; the others run on rank 0.")
    p.add_argument("experiment", choices=EXPERIMENT_NAMES, metavar="experiment",
                   help="one of: " + ", ".join(EXPERIMENT_NAMES))
    p.add_argument("--out", default="lab-out", metavar="DIR", help="output folder (default: ./lab-out)")
    p.add_argument("--data", metavar="DIR",
                   help="an MNIST-format folder (train-images-idx3-ubyte[.gz], ...); "
                        "default: Debian's Fashion-MNIST in /usr/share/datasets/fashion-mnist")
    p.add_argument("--quick", action="store_true",
                   help="shrink every experiment to run in seconds, its effect still visible (smaller subsets, "
                        "fewer iterations and trials); files are named *_quick.png/.csv and plot titles say "
                        "(quick run); paths is always exact")
    p.add_argument("--seed", type=int, default=1, metavar="N",
                   help="seeds weights, mini-batch order and random draws (default 1)")
    p.add_argument("--optimizers", metavar="a,b,c",
                   help="optimizers for paths and optimizers, comma-separated; name or name:key=value:... "
                        "(e.g. sgd,adam:lr=0.002,lion)")
    p.add_argument("--plugin", action="append", default=[], metavar="PATH",
                   help="load an optimizer plugin (.so) first; repeat for several. Its optimizers join "
                        "the comparison")
    p.add_argument("--schedule", choices=list(SCHEDULES), default="constant", metavar="NAME",
                   help=f"learning-rate schedule of {' and '.join(SCHEDULED_EXPERIMENTS)}: each optimizer's lr "
                        "times a factor over the run: " + ", ".join(SCHEDULES) + " (default constant; step: a tenth "
                        "for the second half, exponential: down to a tenth, cosine: down to 0, warmup-cosine: 5%% "
                        "warm-up then cosine)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="threads for the library's kernels and BLAS (default: the library's choice)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars (there are none either when stderr is not a terminal)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the command line; returns the exit status (0 ok, 1 failure, 2 usage)."""
    args = parser().parse_args(argv)
    optimizers = [s for s in (args.optimizers or "").split(",") if s.strip()] or None
    if args.optimizers is not None and not optimizers:
        print("descent-lab: --optimizers needs at least one name", file=sys.stderr)
        return 2
    cfg = Config(out=args.out, data=args.data, quick=args.quick, seed=args.seed, optimizers=optimizers,
                 plugins=args.plugin, schedule=args.schedule, progress=not args.no_progress)
    start = time.perf_counter()
    ranks = ONE_PROCESS
    try:
        ranks = ranks_of(cfg)      # under mpirun: MPI's ranks, 1 thread each on 2 cores (see _ranks.py)
        if args.threads is not None:
            if args.threads < 1:
                raise LabError("--threads needs a number >= 1")
            descent.set_num_threads(args.threads)
        results = run_config(args.experiment, cfg)
    except LabError as e:
        return _fail(ranks, f"{e}")
    except descent.DescentError as e:
        return _fail(ranks, f"{args.experiment} failed: {type(e).__name__}: {e}")
    except KeyboardInterrupt:
        print("\ndescent-lab: interrupted", file=sys.stderr)
        return 130
    except Exception:
        if ranks.size > 1:   # a bug: show it, and do not leave the other ranks waiting for this one
            traceback.print_exc()
            return _fail(ranks, "unexpected error (above)")
        raise
    if not ranks.root:
        return 0
    results = results if isinstance(results, list) else [results]
    if len(results) > 1:
        print()
        print("time per experiment: " + ", ".join(f"{r.experiment} {r.seconds:.1f} s" for r in results))
    print(f"\ndescent-lab: {args.experiment} done in {time.perf_counter() - start:.1f} s; "
          f"plots and CSV files are in {cfg.out.resolve()}")
    return 0


def _fail(ranks: Ranks, message: str) -> int:
    """Prints the failure (naming the rank under mpirun) and returns exit status 1. Under mpirun the
    whole job ends here (MPI_Abort): the other ranks would otherwise wait for this one forever."""
    where = f"rank {ranks.rank} of {ranks.size}: " if ranks.size > 1 else ""
    print(f"descent-lab: {where}{message}", file=sys.stderr)
    sys.stderr.flush()
    ranks.abort(1)
    return 1


if __name__ == "__main__":
    sys.exit(main())
