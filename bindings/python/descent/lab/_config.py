"""An experiment's settings (Config), what it returns (Result), its user-facing error
(LabError), a timer, and where its files go (output_path: "_quick" marks a --quick run's files)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional


class LabError(Exception):
    """A problem the user can fix (missing data, unknown optimizer, ...): the command line
    prints the message and exits with status 1, without a traceback."""


@dataclass
class Config:
    """Settings shared by every experiment (the command line's options)."""

    out: Path = Path("lab-out")
    data: Optional[Path] = None          # an MNIST-format folder; None = Debian's Fashion-MNIST
    quick: bool = False                  # shrink everything (tests, a first look)
    seed: int = 1
    optimizers: Optional[list[str]] = None   # None = the experiment's own list
    plugins: list[Path] = field(default_factory=list)
    schedule: str = "constant"           # learning-rate schedule of the loss-curve experiments
    progress: bool = True                # tqdm progress bars (on stderr, when it is a terminal)
    verbose: bool = True                 # print the summary table and the written files
    comm: Any = None                     # an mpi4py communicator to share runs over (_ranks.py); None:
                                         # COMM_WORLD when mpirun started several processes, else none
    _dataset: Any = field(default=None, repr=False)   # loaded once per Config (experiment "all")
    _ranks: Any = field(default=None, repr=False)     # _ranks.Ranks, found once per Config

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.data = Path(self.data) if self.data is not None else None
        self.plugins = [Path(p) for p in self.plugins]


@dataclass
class Result:
    """What an experiment returns: its numbers as Python data, the summary rows it printed and
    the files it wrote (PNG plots first, then CSV)."""

    experiment: str
    data: dict
    summary: list[dict]
    files: list[Path]
    seconds: float = 0.0

    @property
    def plots(self) -> list[Path]:
        return [f for f in self.files if f.suffix == ".png"]

    @property
    def csvs(self) -> list[Path]:
        return [f for f in self.files if f.suffix == ".csv"]


class Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start


def output_path(cfg: Config, name: str) -> Path:
    """out/name, the folder created if needed. A --quick run's files are named "<stem>_quick<suffix>"
    (optimizers_quick.png), so a quick look never overwrites, or passes for, a full run's results."""
    try:
        cfg.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LabError(f"cannot create the output folder {cfg.out}: {e.strerror}") from None
    if cfg.quick:
        path = Path(name)
        name = f"{path.stem}_quick{path.suffix}"
    return cfg.out / name
