"""paths: every optimizer's path on f(x, y) = x^2/20 + y^2 (the book's figure 6-8).

The function is stretched along x (its slope there is 20x gentler than along y), the case where
SGD zig-zags. From (-7, 2), 30 updates with the book's learning rates: sgd 0.95, momentum 0.1,
adagrad 1.5, adam 0.3 (other hyperparameters at their defaults). The point (x, y) is one float32
array of 2 updated in place by descent.Optimizer, the book's ``optimizer.update(params, grads)``.
The settings are the book's with or without --quick (the experiment is cheap).
"""
from __future__ import annotations

import math

import numpy as np

import descent

from ._config import Config, LabError, Result, Timer
from ._optimizer_specs import resolve_optimizers
from ._plots import display_name, new_figure, save_figure
from ._tables import format_table, report, write_csv

NAME = "paths"
TITLE = "Optimizer paths on f(x, y) = x^2/20 + y^2 from (-7, 2)"

START = (-7.0, 2.0)
STEPS = 30
BOOK = ["sgd", "momentum", "adagrad", "adam"]
# The book's learning rates; for the optimizers the book did not run, rates chosen the same way
# (large enough to get somewhere in 30 steps, small enough not to blow up).
LEARNING_RATES = {"sgd": 0.95, "momentum": 0.1, "adagrad": 1.5, "adam": 0.3,
                  "nesterov": 0.1, "rmsprop": 0.1, "adamw": 0.3, "lion": 0.25}


def f(x, y):
    return x ** 2 / 20.0 + y ** 2


def gradient(p: np.ndarray, out: np.ndarray) -> None:
    """df/dx = x/10, df/dy = 2y, in float32."""
    out[0] = p[0] / np.float32(10.0)
    out[1] = np.float32(2.0) * p[1]


def settings(name: str, hparams: dict[str, float]) -> dict[str, float]:
    """The hyperparameters a path runs with: --optimizers' own, else the table's lr."""
    if "lr" in hparams:
        return dict(hparams)
    keys = [h["name"] for h in descent.describe(name)["hyperparameters"]]
    lr = LEARNING_RATES.get(name, 0.1 if "lr" in keys else None)
    return dict(hparams, **({"lr": lr} if lr is not None else {}))


def trajectory(name: str, hparams: dict[str, float], steps: int = STEPS) -> np.ndarray:
    """(steps + 1, 2) float32: the start point, then the point after each update."""
    p = np.array(START, dtype=np.float32)
    g = np.empty(2, dtype=np.float32)
    points = [p.copy()]
    with descent.Optimizer(name, **hparams) as opt:
        for _ in range(steps):
            gradient(p, g)
            opt.update([p], [g])
            points.append(p.copy())
    return np.array(points, dtype=np.float32)


def run(cfg: Config) -> Result:
    timer = Timer()
    runs = resolve_optimizers(cfg, BOOK)
    paths, used = {}, {}
    for label, name, hparams in runs:
        hp = settings(name, hparams)
        try:
            paths[label] = trajectory(name, hp)
        except descent.DescentError as e:
            raise LabError(f"{label} failed on f(x, y): {e}") from None
        used[label] = hp

    rows = [(label, step, x, y) for label, pts in paths.items() for step, (x, y) in enumerate(pts)]
    csv_path = write_csv(cfg, "paths.csv", ["optimizer", "step", "x", "y"], rows, digits=9)
    png_path = save_figure(cfg, _plot(paths, used), "paths.png")

    summary = []
    for label, pts in paths.items():
        x, y = (float(v) for v in pts[-1])
        summary.append({"optimizer": label, "settings": " ".join(f"{k}={v:g}" for k, v in used[label].items()),
                        "x": x, "y": y, "f": f(x, y), "distance": math.hypot(x, y)})
    files = [png_path, csv_path]
    report(cfg, f"{TITLE}: where {STEPS} updates end", format_table(summary, [
        ("optimizer", "optimizer", ""), ("settings", "settings", ""), ("x", "x", ".4f"), ("y", "y", ".4f"),
        ("f", "f(x, y)", ".3g"), ("distance", "distance to (0, 0)", ".4f")]), files,
        ["(the minimum is (0, 0); the book's figure 6-8 shows the first four)"])
    return Result(NAME, {"paths": paths, "hparams": used, "start": START, "steps": STEPS}, summary, files,
                  timer.seconds)


def _plot(paths: dict[str, np.ndarray], used: dict[str, dict]):
    n = len(paths)
    cols = 2 if n <= 4 else min(4, n)
    rows = math.ceil(n / cols)
    fig = new_figure(5.0 * cols, 4.0 * rows)
    xs = np.arange(-10, 10.001, 0.05)
    ys = np.arange(-5, 5.001, 0.05)
    X, Y = np.meshgrid(xs, ys)
    Z = f(X, Y)
    levels = [0.05, 0.2, 0.5, 1, 2, 3, 4.5, 6]
    for i, (label, pts) in enumerate(paths.items()):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.contour(X, Y, Z, levels=levels, cmap="viridis", linewidths=0.8)
        ax.plot(pts[:, 0], pts[:, 1], "o-", color="red", markersize=3.5, linewidth=1.2)
        ax.plot(0, 0, "+", color="black", markersize=12, markeredgewidth=1.5)
        hp = ", ".join(f"{k}={v:g}" for k, v in used[label].items())
        ax.set_title(f"{display_name(label.split('(')[0])} ({hp})" if hp else display_name(label))
        ax.set_xlim(-10, 10)
        ax.set_ylim(-5, 5)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    fig.suptitle(f"{TITLE}, {STEPS} steps")
    fig.tight_layout()
    return fig
