"""The lab's plots: figures drawn without pyplot, saved as PNG (titled "(quick run)" with --quick),
the book's markers and names, and the loss-curve figure of the optimizers and init experiments."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

import descent

from ._config import Config, LabError, output_path
from ._training import Curve

QUICK_MARK = " (quick run)"


def new_figure(width: float, height: float):
    """A matplotlib Figure drawn by the Agg backend (no pyplot, no global state, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def save_figure(cfg: Config, fig, name: str) -> Path:
    """Writes out/name (out/<stem>_quick.png with --quick). The figure's title (its suptitle, or
    its first plot's title) says "(quick run)" with --quick, marked here once for every
    experiment, and is stored as the PNG's Title."""
    text = figure_title(fig)
    if cfg.quick and text is not None:
        text.set_text(text.get_text() + QUICK_MARK)
    path = output_path(cfg, name)
    metadata = {"Software": f"descent-lab {descent.__version__}"}
    if text is not None:
        metadata["Title"] = text.get_text()
    try:
        fig.savefig(path, dpi=100, metadata=metadata)
    except OSError as e:
        raise LabError(f"cannot write {path}: {e.strerror}") from None
    return path


def figure_title(fig):
    """The Text of a figure's title: its suptitle, else its first plot's title; None if neither."""
    suptitle = getattr(fig, "_suptitle", None)   # Figure.get_suptitle() exists only from matplotlib 3.8
    if suptitle is not None and suptitle.get_text():
        return suptitle
    if fig.axes and fig.axes[0].get_title():
        return fig.axes[0].title
    return None


def smooth_curve(x: Sequence[float]) -> np.ndarray:
    """The book's smooth_curve (common/util.py): an 11-point Kaiser window (beta 2), the ends
    mirrored, so the result has the input's length."""
    x = np.asarray(x, dtype=np.float64)
    window = 11
    if len(x) < window:
        return x.copy()
    s = np.r_[x[window - 1:0:-1], x, x[-1:-window:-1]]
    w = np.kaiser(window, 2)
    y = np.convolve(w / w.sum(), s, mode="valid")
    return y[5:len(y) - 5]


# Markers of the book's figures (o, x, s, D), then more for the optimizers the book did not have.
MARKERS = {"sgd": "o", "momentum": "x", "adagrad": "s", "adam": "D", "rmsprop": "^", "nesterov": "v",
           "adamw": "P", "lion": "*"}
_EXTRA_MARKERS = ["<", ">", "h", "p", "X", "d", "8", "H"]


def marker_for(name: str, index: int) -> str:
    return MARKERS.get(name, _EXTRA_MARKERS[index % len(_EXTRA_MARKERS)])


# Names as the book writes them.
DISPLAY = {"sgd": "SGD", "momentum": "Momentum", "nesterov": "Nesterov", "adagrad": "AdaGrad",
           "rmsprop": "RMSprop", "adam": "Adam", "adamw": "AdamW", "lion": "Lion"}


def display_name(label: str) -> str:
    name, sep, rest = label.partition("(")
    return DISPLAY.get(name, name) + (" " + sep + rest if sep else "")


def plot_loss_curves(cfg: Config, curves: dict[str, Curve], name: str, title: str,
                     markers: Callable[[str, int], str], labels: Callable[[str], str],
                     ylim: Optional[tuple[float, float]] = None) -> Path:
    """The book's loss figure: each run's loss, smoothed (smooth_curve), a marker every 100
    iterations (scaled down for short runs)."""
    fig = new_figure(9.0, 6.0)
    ax = fig.add_subplot(1, 1, 1)
    tops = []
    for i, (label, curve) in enumerate(curves.items()):
        finite = np.isfinite(curve.losses)
        n = int(np.argmin(finite)) if not finite.all() else len(curve.losses)
        if n == 0:
            continue
        y = smooth_curve(curve.losses[:n])
        every = max(1, len(curve.losses) // 20)
        ax.plot(np.arange(n), y, marker=markers(label.split("(")[0], i), markevery=every, markersize=6,
                linewidth=1.3, label=labels(label) + (" (diverged)" if curve.error else ""))
        tops.append(y[min(len(y) - 1, max(1, n // 20)):])
    ax.set_xlabel("iterations")
    ax.set_ylabel("loss")
    ax.set_title(title)
    if ylim:
        ax.set_ylim(*ylim)
    else:
        # Room for most of every curve after its first 5%; rare spikes may leave the frame.
        top = float(np.quantile(np.concatenate(tops), 0.99)) if tops else 1.0
        ax.set_ylim(0, max(1.0, min(2.5, top * 1.15)))
    ax.set_xlim(0, max(len(c.losses) for c in curves.values()))
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_figure(cfg, fig, name)
