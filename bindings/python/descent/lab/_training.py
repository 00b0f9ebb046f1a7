"""The lab's training loops: mini-batch sampling, progress bars, learning-rate schedules (--schedule)
and the loss-curve runs of the optimizers and init experiments."""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

import descent
from descent import schedules

from ._config import Config, LabError, Timer
from ._data import Dataset, testset
from ._ranks import ranks_of


def batch_indices(rng: np.random.Generator, n: int, batch: int, count: int) -> np.ndarray:
    """`count` mini-batches of `batch` indices into n samples, drawn with replacement like the
    book's np.random.choice(train_size, batch_size). Shape (count, batch)."""
    return rng.choice(n, size=(count, batch))


class Batcher:
    """Gathers mini-batches into reused float32 buffers (no allocation in the training loop)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch: int):
        self.x, self.y = x, y
        self.xb = np.empty((batch, x.shape[1]), dtype=np.float32)
        self.yb = np.empty(batch, dtype=np.int32)

    def __call__(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        np.take(self.x, indices, axis=0, out=self.xb)
        np.take(self.y, indices, out=self.yb)
        return self.xb, self.yb


def epoch_batches(n: int, batch: int) -> int:
    """Iterations per epoch as in the book's Trainer: max(n / batch, 1), rounded up."""
    return max(1, math.ceil(n / batch))


# -- progress bars -----------------------------------------------------------------------------------

def progress(cfg: Config, total: int, desc: str):
    """A tqdm progress bar on stderr when stderr is a terminal; a silent stand-in when progress
    is off or stderr goes to a file or a pipe (a log would keep every refresh of the bar)."""
    if cfg.progress and _is_terminal(sys.stderr):
        from tqdm.auto import tqdm
        return tqdm(total=total, desc=desc, unit="it", leave=False, dynamic_ncols=True, file=sys.stderr,
                    mininterval=0.1)
    return _NoBar()


def _is_terminal(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


# -- learning-rate schedules (--schedule) -------------------------------------------------------------

# Each run's learning rate is its optimizer's own lr times a factor from descent.schedules over the
# run's n iterations, so one option fits optimizers with very different learning rates.
SCHEDULES: dict[str, Callable[[int], Optional[schedules.Schedule]]] = {
    "constant": lambda n: None,
    "step": lambda n: schedules.step(1.0, step_size=max(1, n // 2), gamma=0.1),    # a tenth for the second half
    "exponential": lambda n: schedules.exponential(1.0, 0.1, decay_steps=n),      # down to a tenth at the end
    "cosine": lambda n: schedules.cosine(1.0, decay_steps=n),                     # down to 0 at the end
    # a 5% warm-up, then cosine down to 0
    "warmup-cosine": lambda n: schedules.linear_warmup(max(1, n // 20), schedules.cosine(1.0, max(1, n - n // 20))),
}
SCHEDULED_EXPERIMENTS = ("optimizers", "init")


def lr_factor(cfg: Config, iterations: int) -> Optional[schedules.Schedule]:
    """The factor schedule of --schedule for a run of `iterations` (None: constant)."""
    if cfg.schedule not in SCHEDULES:
        raise LabError(f"unknown schedule {cfg.schedule!r}; choose one of {', '.join(SCHEDULES)}")
    return SCHEDULES[cfg.schedule](iterations)


def schedule_text(cfg: Config) -> str:
    """For titles: "" for a constant learning rate, else e.g. ", cosine lr schedule"."""
    return "" if cfg.schedule == "constant" else f", {cfg.schedule} lr schedule"


def scheduled_name(cfg: Config, name: str) -> str:
    """A file name that says the schedule: "optimizers.png", or "optimizers_cosine.png" with
    --schedule cosine (so runs with different schedules keep their own files)."""
    if cfg.schedule == "constant":
        return name
    stem, dot, suffix = name.rpartition(".")
    return f"{stem}_{cfg.schedule}{dot}{suffix}"


# -- the loss-curve experiments (optimizers, init) ---------------------------------------------------

@dataclass
class Curve:
    """One network's training run: the loss of every iteration (on its mini-batch, before the
    update) and the learning rate it used, then its loss and accuracy on the test set."""

    label: str
    losses: np.ndarray
    lrs: np.ndarray = field(default_factory=lambda: np.zeros(0))
    test_loss: float = float("nan")
    test_accuracy: float = float("nan")
    seconds: float = 0.0
    error: Optional[str] = None     # why training stopped early (e.g. the loss became NaN)


def train_loss_curves(cfg: Config, data: Dataset, runs: Sequence[tuple[str, Callable[[], "descent.Network"]]],
                      iterations: int, batch: int, desc: str) -> Optional[dict[str, Curve]]:
    """Trains each run's network for `iterations` mini-batches of `batch` images, every run on
    the same mini-batch sequence (drawn from --seed), and evaluates it on the test set. With
    --schedule, each iteration first sets the network's lr (net.optimizer.lr).

    Under mpirun the runs are shared among the ranks (run i on rank i mod N; each run depends on
    the seed and its own network only) and gathered on rank 0: the curves there are one
    process's. The other ranks get None."""
    rng = np.random.default_rng(cfg.seed)
    order = batch_indices(rng, len(data.x_train), batch, iterations)
    gather = Batcher(data.x_train, data.y_train, batch)
    x_test, y_test = testset(cfg, data)
    factor = lr_factor(cfg, iterations)
    ranks = ranks_of(cfg)
    mine = ranks.mine(len(runs))
    done: dict[int, Curve] = {}
    bar = progress(cfg, len(mine) * iterations, desc)
    try:
        for index in mine:
            label, make = runs[index]
            bar.set_postfix_str(label)
            done[index] = _train_curve(cfg, label, make, order, gather, (x_test, y_test), factor, bar)
    finally:
        bar.close()
    gathered = ranks.gather(done)
    if gathered is None:
        return None
    return {label: gathered[index] for index, (label, _) in enumerate(runs)}


def _train_curve(cfg: Config, label: str, make: Callable[[], "descent.Network"], order: np.ndarray,
                 gather: Batcher, test: tuple[np.ndarray, np.ndarray],
                 factor: Optional[schedules.Schedule], bar) -> Curve:
    """One run of train_loss_curves: a NumericError (the loss overflowed) ends it early, with a
    note and no test figures."""
    iterations = len(order)
    timer = Timer()
    losses = np.full(iterations, np.nan, dtype=np.float32)
    lrs = np.full(iterations, np.nan, dtype=np.float64)
    error = None
    with make() as net:
        optimizer = net.optimizer
        if factor is not None and "lr" not in optimizer.hyperparameters:
            raise LabError(f"--schedule {cfg.schedule}: {optimizer.name} has no lr to schedule")
        base_lr = optimizer.get("lr") if "lr" in optimizer.hyperparameters else math.nan
        for i in range(iterations):
            lrs[i] = lr = base_lr if factor is None else base_lr * factor(i)
            if factor is not None:
                optimizer.lr = lr
            try:
                losses[i] = net.train_step(*gather(order[i]))
            except descent.NumericError as e:
                error = f"stopped at iteration {i}: {e}"
                bar.update(iterations - i)
                break
            bar.update(1)
        seconds = timer.seconds
        test_loss, test_acc = (float("nan"), float("nan")) if error else net.evaluate(*test)
    return Curve(label, losses, lrs, float(test_loss), float(test_acc), seconds, error)


def final_loss(losses: np.ndarray, window: int = 100) -> float:
    """The mean training loss over the last `window` iterations (a single mini-batch's loss is noisy)."""
    tail = losses[-min(window, len(losses)):]
    return float(np.mean(tail)) if np.all(np.isfinite(tail)) else float("nan")
