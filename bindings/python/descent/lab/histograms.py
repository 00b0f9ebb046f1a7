"""histograms: hidden-layer activations for each weight initialisation (figures 6-10 to 6-14).

1000 random inputs drawn from N(0, 1) (100 features) go forward, in evaluation mode, through 5
hidden layers of 100 units; each layer's outputs (after the activation function) are counted in
30 bins. Cases: sigmoid with weights of std 1 (outputs pushed to 0 and 1: vanishing gradients),
std 0.01 (everything near 0.5: no expressiveness) and Xavier (sqrt(1/n): spread out); tanh with
Xavier; ReLU with std 0.01 (tiny outputs), Xavier (shrinking with depth) and He (sqrt(2/n): the
same spread in every layer).

Bins span (0, 1) for sigmoid, (-1, 1) for tanh and, for ReLU, (0, the 99.9th percentile of all
ReLU outputs rounded up), the same for all ReLU cases so the rows compare; the few larger outputs
are counted in the last bin, so every layer's counts add up to inputs x units. About half of the
ReLU outputs are exactly 0: their first bin is drawn cut off (its share is written on it), as
the book's figures do. --quick uses 200 inputs instead of 1000.
"""
from __future__ import annotations

import numpy as np

import descent

from ._config import Config, Result, Timer
from ._plots import new_figure, save_figure
from ._tables import format_table, report, write_csv
from ._training import progress

NAME = "histograms"
TITLE = "Activations of 5 hidden layers of 100 units, N(0, 1) input"

CASES = [  # (case id, activation, init, title)
    ("sigmoid_std1", "sigmoid", "std:1", "sigmoid, std 1"),
    ("sigmoid_std0.01", "sigmoid", "std:0.01", "sigmoid, std 0.01"),
    ("sigmoid_xavier", "sigmoid", "xavier", "sigmoid, Xavier"),
    ("tanh_xavier", "tanh", "xavier", "tanh, Xavier"),
    ("relu_std0.01", "relu", "std:0.01", "ReLU, std 0.01"),
    ("relu_xavier", "relu", "xavier", "ReLU, Xavier"),
    ("relu_he", "relu", "he", "ReLU, He"),
]
ROWS, QUICK_ROWS = 1000, 200
UNITS = 100
LAYERS = 5
BINS = 30


def activations(activation: str, init: str, x: np.ndarray, seed: int) -> list[np.ndarray]:
    """The outputs of the 5 hidden layers for input x (a forward pass in evaluation mode)."""
    with descent.Network([UNITS] * (LAYERS + 1) + [10], activation=activation, init=init, seed=seed) as net:
        net.predict(x)
        return [net.activations(layer) for layer in range(LAYERS)]


def run(cfg: Config) -> Result:
    timer = Timer()
    rows = QUICK_ROWS if cfg.quick else ROWS
    x = np.random.default_rng(cfg.seed).standard_normal((rows, UNITS)).astype(np.float32)

    outputs = {}
    with progress(cfg, len(CASES), "histograms") as bar:
        for case, activation, init, _ in CASES:
            outputs[case] = activations(activation, init, x, cfg.seed)
            bar.update(1)

    relu = np.concatenate([a.ravel() for case, act, _, _ in CASES if act == "relu" for a in outputs[case]])
    relu_top = _nice_ceiling(float(np.quantile(relu, 0.999)))
    ranges = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "relu": (0.0, relu_top)}
    hists, csv_rows, summary = {}, [], []
    for case, activation, init, title in CASES:
        lo, hi = ranges[activation]
        edges = np.linspace(lo, hi, BINS + 1)
        counts = []
        for layer, a in enumerate(outputs[case], start=1):
            c, _ = np.histogram(np.clip(a.ravel(), lo, hi), bins=edges)
            counts.append(c)
            csv_rows += [(case, layer, edges[i], edges[i + 1], int(c[i])) for i in range(BINS)]
        hists[case] = {"edges": edges, "counts": np.array(counts)}
        stds = [float(a.std()) for a in outputs[case]]
        row = {"case": title}
        row.update({f"std{i + 1}": s for i, s in enumerate(stds)})
        row["extreme"] = _extreme_share(activation, outputs[case])
        summary.append(row)

    csv_path = write_csv(cfg, "histograms.csv", ["case", "layer", "bin_left", "bin_right", "count"], csv_rows)
    png_path = save_figure(cfg, _plot(hists, rows), "histograms.png")
    files = [png_path, csv_path]
    columns = [("case", "case", "")] + [(f"std{i}", f"std layer {i}", ".3g") for i in range(1, LAYERS + 1)]
    columns.append(("extreme", "saturated / zero (all layers)", ".1%"))
    report(cfg, TITLE, format_table(summary, columns), files,
           ["(saturated: sigmoid < 0.01 or > 0.99, tanh |a| > 0.99; zero: ReLU outputs of exactly 0)",
            f"({rows} inputs; a healthy initialisation keeps the spread (std) about the same in every layer)"])
    return Result(NAME, {"histograms": hists, "rows": rows, "units": UNITS, "layers": LAYERS,
                         "activations": outputs}, summary, files, timer.seconds)


def _nice_ceiling(v: float) -> float:
    """v rounded up to a round multiple of a power of 10 (a positive value in any case)."""
    if not np.isfinite(v) or v <= 0:
        return 1.0
    power = 10.0 ** np.floor(np.log10(v))
    return float(next(m * power for m in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if m * power >= v))


def _extreme_share(activation: str, outputs: list[np.ndarray]) -> float:
    a = np.concatenate([o.ravel() for o in outputs])
    if activation == "sigmoid":
        return float(np.mean((a < 0.01) | (a > 0.99)))
    if activation == "tanh":
        return float(np.mean(np.abs(a) > 0.99))
    return float(np.mean(a == 0))


def _plot(hists: dict, rows: int):
    from matplotlib.ticker import MaxNLocator
    fig = new_figure(13.0, 1.9 * len(CASES) + 0.9)
    # A fixed layout (tight_layout would draw these 35 panels one extra time).
    fig.subplots_adjust(left=0.075, right=0.99, bottom=0.05, top=1 - 0.75 / fig.get_figheight(), wspace=0.2,
                        hspace=0.55)
    total = rows * UNITS
    # ReLU: a common y limit from the bins after the first (the first holds the zeros).
    relu_cases = [case for case, act, _, _ in CASES if act == "relu"]
    relu_ylim = max(int(hists[c]["counts"][:, 1:].max()) for c in relu_cases) * 1.15 or total * 0.1
    for r, (case, activation, _, title) in enumerate(CASES):
        h = hists[case]
        edges, counts = h["edges"], h["counts"]
        ylim = relu_ylim if activation == "relu" else counts.max() * 1.08
        for layer in range(LAYERS):
            ax = fig.add_subplot(len(CASES), LAYERS, r * LAYERS + layer + 1)
            ax.stairs(counts[layer], edges, fill=True, color="tab:blue")
            ax.set_xlim(edges[0], edges[-1])
            ax.set_ylim(0, ylim)
            ax.yaxis.set_major_locator(MaxNLocator(3))
            ax.xaxis.set_major_locator(MaxNLocator(4))
            if counts[layer][0] > ylim:
                ax.text(0.04, 0.93, f"first bin: {counts[layer][0] / total:.0%} (cut off)", fontsize=7, va="top",
                        transform=ax.transAxes)
            if r == 0:
                ax.set_title(f"{layer + 1}-layer")
            if layer == 0:
                ax.set_ylabel(title, fontsize=9)
            else:
                ax.set_yticklabels([])
            ax.tick_params(labelsize=7)
            if r == len(CASES) - 1 or CASES[r + 1][1] != activation:
                ax.set_xlabel("activation" + (f" (last bin: >= {edges[-2]:.3g})" if activation == "relu" else ""),
                              fontsize=8)
    fig.suptitle(f"{TITLE} ({rows} inputs, 30 bins; rows: activation, weight init)")
    return fig
