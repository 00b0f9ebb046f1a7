"""What every experiment of the lab shares: its settings (Config), its result (Result), data
loading, mini-batch sampling, progress bars, CSV files, summary tables and plotting."""
from __future__ import annotations

import csv
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np

import descent


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
    progress: bool = True                # tqdm progress bars (on stderr)
    verbose: bool = True                 # print the summary table and the written files
    _dataset: Any = field(default=None, repr=False)   # loaded once per Config (experiment "all")

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


# -- data ------------------------------------------------------------------------------------------

@dataclass
class Dataset:
    x_train: np.ndarray   # float32 (n, features), C-contiguous, in [0, 1]
    y_train: np.ndarray   # int32 (n,)
    x_test: np.ndarray
    y_test: np.ndarray
    source: str

    @property
    def features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def classes(self) -> int:
        """10 for MNIST-format data; more if the labels say so."""
        return max(10, int(max(self.y_train.max(), self.y_test.max())) + 1)


def load_data(cfg: Config) -> Dataset:
    """The training and test sets of --data (default: Debian's Fashion-MNIST), loaded once."""
    if cfg._dataset is not None:
        return cfg._dataset
    folder = cfg.data if cfg.data is not None else Path(descent.datasets.FASHION_MNIST_DIR)
    hint = ("pass --data DIR with an MNIST-format folder" if cfg.data is not None else
            "install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist) "
            "or pass --data DIR with an MNIST-format folder")
    if not folder.is_dir():
        raise LabError(f"data folder {folder} does not exist: {hint}")
    try:
        (x_train, y_train), (x_test, y_test) = descent.datasets.mnist_format(folder)
    except FileNotFoundError as e:
        raise LabError(f"{e}") from None
    except descent.DescentError as e:
        raise LabError(f"cannot read the data in {folder}: {e}") from None
    if len(x_train) == 0 or len(x_test) == 0:
        raise LabError(f"the data in {folder} has no training or no test images")
    cfg._dataset = Dataset(np.ascontiguousarray(x_train, np.float32), np.ascontiguousarray(y_train, np.int32),
                           np.ascontiguousarray(x_test, np.float32), np.ascontiguousarray(y_test, np.int32),
                           str(folder))
    return cfg._dataset


def testset(cfg: Config, data: Dataset, quick_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """The whole test set; the first `quick_size` images with --quick."""
    if cfg.quick:
        return data.x_test[:quick_size], data.y_test[:quick_size]
    return data.x_test, data.y_test


# -- training helpers ------------------------------------------------------------------------------

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


def progress(cfg: Config, total: int, desc: str):
    """A tqdm progress bar on stderr (a silent stand-in when progress is off)."""
    if cfg.progress:
        from tqdm.auto import tqdm
        interactive = sys.stderr.isatty()
        # In a log file every refresh is kept: one every 10 s there, 10 a second on a terminal.
        return tqdm(total=total, desc=desc, unit="it", leave=False, dynamic_ncols=True, file=sys.stderr,
                    mininterval=0.1 if interactive else 10.0)
    return _NoBar()


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


# -- optimizers and plugins ------------------------------------------------------------------------

def load_plugins(cfg: Config) -> None:
    """Loads every --plugin (loading the same file again is harmless: the library ignores it)."""
    for path in cfg.plugins:
        if not path.is_file():
            raise LabError(f"plugin {path} does not exist")
        try:
            descent.load_plugin(str(path))
        except descent.DescentError as e:
            raise LabError(f"cannot load plugin {path}: {e}") from None


def parse_optimizer(spec: str) -> tuple[str, dict[str, float]]:
    """ "adam" -> ("adam", {}); "adam:lr=0.01:beta1=0.8" -> ("adam", {"lr": 0.01, "beta1": 0.8})."""
    name, *pairs = spec.strip().split(":")
    hparams = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        try:
            if not sep or not key:
                raise ValueError
            hparams[key.strip()] = float(value)
        except ValueError:
            raise LabError(f"optimizer setting {pair!r} in {spec!r} is not key=number "
                           "(e.g. --optimizers adam:lr=0.01,sgd)") from None
    return name.strip(), hparams


def resolve_optimizers(cfg: Config, default: Sequence[str]) -> list[tuple[str, str, dict[str, float]]]:
    """(label, name, hyperparameters) for --optimizers (default: `default` plus every plugin
    optimizer). Unknown names and bad hyperparameters are LabErrors naming what is available."""
    load_plugins(cfg)
    available = descent.optimizers()
    if cfg.optimizers:
        specs = list(cfg.optimizers)
    else:  # the experiment's list, then what the --plugin files brought
        mine = {str(p.resolve()) for p in cfg.plugins}
        specs = list(default) + [n for n in available if n not in default and _origin(n) in mine]
    runs, seen = [], set()
    for spec in specs:
        name, hparams = parse_optimizer(spec)
        if name not in available:
            hint = " (load it with --plugin PATH)" if not cfg.plugins else ""
            raise LabError(f"unknown optimizer {name!r}{hint}; available: {', '.join(available)}")
        try:  # validates hyperparameter names and ranges now, not in the middle of a run
            descent.Optimizer(name, **hparams).close()
        except descent.DescentError as e:
            raise LabError(f"optimizer {spec!r}: {e}") from None
        label = name if not hparams else name + "(" + ", ".join(f"{k}={v:g}" for k, v in hparams.items()) + ")"
        if label in seen:
            continue
        seen.add(label)
        runs.append((label, name, hparams))
    if not runs:
        raise LabError("no optimizers to compare")
    return runs


def _origin(name: str) -> str:
    """The resolved path of the plugin that registered `name` ("built-in" for the library's own)."""
    origin = descent.describe(name).get("origin", "")
    return origin if origin == "built-in" else str(Path(origin).resolve())


def hparams_text(name: str, hparams: dict[str, float]) -> str:
    """The hyperparameters in force (defaults filled in), e.g. "lr=0.01 momentum=0.9": the
    optimizer's own, leaving out switches at their default and the host's weight decay when 0."""
    table = descent.describe(name)["hyperparameters"]
    with descent.Optimizer(name, **hparams) as opt:
        values = opt.hyperparameters
    shown = []
    for h in table:
        key, value = h["name"], values.get(h["name"])
        if value is None:
            continue
        if key not in hparams and (h.get("boolean") or h.get("provided_by") == "host") and value == h.get("default"):
            continue
        shown.append(f"{key}={value:g}")
    return " ".join(shown)


# -- output: CSV, tables, plots ---------------------------------------------------------------------

def out_dir(cfg: Config) -> Path:
    try:
        cfg.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LabError(f"cannot create the output folder {cfg.out}: {e.strerror}") from None
    return cfg.out


def _cell(value: Any, digits: int) -> Any:
    if isinstance(value, (float, np.floating)):
        return format(float(value), f".{digits}g")
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_csv(cfg: Config, name: str, header: Sequence[str], rows: Iterable[Sequence[Any]],
              digits: int = 7) -> Path:
    """Writes out/name with a header row; floats with `digits` significant digits."""
    path = out_dir(cfg) / name
    try:
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            for row in rows:
                writer.writerow([_cell(v, digits) for v in row])
    except OSError as e:
        raise LabError(f"cannot write {path}: {e.strerror}") from None
    return path


def format_table(rows: list[dict], columns: Optional[list[tuple[str, str, str]]] = None) -> str:
    """A plain-text table. `columns` is [(key, heading, format spec)]; default: every key."""
    if not rows:
        return "(no rows)"
    if columns is None:
        columns = [(k, k, "") for k in rows[0]]
    columns = [c for c in columns if c[1] or any(row.get(c[0]) not in (None, "") for row in rows)]
    cells = [[heading for _, heading, _ in columns]]
    for row in rows:
        line = []
        for key, _, spec in columns:
            value = row.get(key, "")
            if value is None or (isinstance(value, float) and math.isnan(value)):
                line.append("-")
            elif spec and isinstance(value, (int, float, np.number)):
                line.append(format(value, spec))
            else:
                line.append(str(value))
        cells.append(line)
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    numeric = [all(_looks_numeric(r[i]) for r in cells[1:]) for i in range(len(columns))]

    def fmt(r):
        return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(cells[0]), rule] + [fmt(r) for r in cells[1:]])


def _looks_numeric(text: str) -> bool:
    try:
        float(text.rstrip("%"))
        return True
    except ValueError:
        return text == "-"


def say(cfg: Config, text: str = "") -> None:
    if cfg.verbose:
        print(text, flush=True)


def report(cfg: Config, title: str, table: str, files: list[Path], notes: Sequence[str] = ()) -> None:
    """Prints an experiment's summary: title, table, notes, and where the files are."""
    if not cfg.verbose:
        return
    print()
    print(title)
    print("=" * len(title))
    print(table)
    for note in notes:
        print(note)
    plots = [f for f in files if f.suffix == ".png"]
    data = [f for f in files if f.suffix != ".png"]
    if plots:
        print("plots: " + ", ".join(str(p) for p in plots))
    if data:
        print("data:  " + ", ".join(str(p) for p in data))
    sys.stdout.flush()


def new_figure(width: float, height: float):
    """A matplotlib Figure drawn by the Agg backend (no pyplot, no global state, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def save_figure(cfg: Config, fig, name: str) -> Path:
    path = out_dir(cfg) / name
    try:
        fig.savefig(path, dpi=100, metadata={"Software": f"descent-lab {descent.__version__}"})
    except OSError as e:
        raise LabError(f"cannot write {path}: {e.strerror}") from None
    return path


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


class Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start


# -- the loss-curve experiments (optimizers, init) ----------------------------------------------------

@dataclass
class Curve:
    """One network's training run: the loss of every iteration (on its mini-batch, before the
    update), then its loss and accuracy on the test set."""

    label: str
    losses: np.ndarray
    test_loss: float = float("nan")
    test_accuracy: float = float("nan")
    seconds: float = 0.0
    error: Optional[str] = None     # why training stopped early (e.g. the loss became NaN)


def train_loss_curves(cfg: Config, data: Dataset, runs: Sequence[tuple[str, Callable[[], "descent.Network"]]],
                      iterations: int, batch: int, desc: str) -> dict[str, Curve]:
    """Trains each run's network for `iterations` mini-batches of `batch` images, every run on
    the same mini-batch sequence (drawn from --seed), and evaluates it on the test set."""
    rng = np.random.default_rng(cfg.seed)
    order = batch_indices(rng, len(data.x_train), batch, iterations)
    gather = Batcher(data.x_train, data.y_train, batch)
    x_test, y_test = testset(cfg, data)
    curves: dict[str, Curve] = {}
    bar = progress(cfg, len(runs) * iterations, desc)
    try:
        for label, make in runs:
            timer = Timer()
            losses = np.full(iterations, np.nan, dtype=np.float32)
            error = None
            bar.set_postfix_str(label)
            with make() as net:
                for i in range(iterations):
                    try:
                        losses[i] = net.train_step(*gather(order[i]))
                    except descent.NumericError as e:
                        error = f"stopped at iteration {i}: {e}"
                        bar.update(iterations - i)
                        break
                    bar.update(1)
                seconds = timer.seconds
                test_loss, test_acc = (float("nan"), float("nan")) if error else net.evaluate(x_test, y_test)
            curves[label] = Curve(label, losses, float(test_loss), float(test_acc), seconds, error)
    finally:
        bar.close()
    return curves


def final_loss(losses: np.ndarray, window: int = 100) -> float:
    """The mean training loss over the last `window` iterations (a single mini-batch's loss is noisy)."""
    tail = losses[-min(window, len(losses)):]
    return float(np.mean(tail)) if np.all(np.isfinite(tail)) else float("nan")


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
