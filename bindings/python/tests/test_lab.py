"""The lab (descent-lab): every experiment with --quick on a tiny synthetic MNIST-format folder
(never the Debian package), checked for valid PNG plots, CSV files with the documented columns
and plausible numbers; paths against a numpy implementation of the book's formulas; the
command line's errors (clear message, non-zero exit, no traceback)."""
from __future__ import annotations

import csv
import io
import math
import os
import struct
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import descent  # noqa: E402
from descent import lab  # noqa: E402
from descent.lab.__main__ import main  # noqa: E402

from conftest import write_synthetic_mnist  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# -- a tiny MNIST-format data set ----------------------------------------------------------------

@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory) -> Path:
    """600 training and 100 test images of 28x28 (conftest.write_synthetic_mnist)."""
    return write_synthetic_mnist(tmp_path_factory.mktemp("mnist"))


@pytest.fixture(scope="module")
def quick(mnist_dir, tmp_path_factory):
    """Every experiment, --quick, into one folder: {experiment: Result}."""
    out = tmp_path_factory.mktemp("lab-out")
    results = lab.run("all", out=out, data=mnist_dir, quick=True, seed=3, progress=False, verbose=False)
    return {r.experiment: r for r in results}


def read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def check_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 1000, path
    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    image = plt.imread(path)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 200, (path, image.shape)
    assert image.std() > 0.01, f"{path} is blank"


# -- every experiment: files ------------------------------------------------------------------------

EXPECTED_FILES = {   # a full run's names; a quick run's are "<stem>_quick<suffix>"
    "paths": ["paths.png", "paths.csv"],
    "optimizers": ["optimizers.png", "optimizers.csv", "optimizers_summary.csv"],
    "histograms": ["histograms.png", "histograms.csv"],
    "init": ["init.png", "init.csv", "init_summary.csv"],
    "batchnorm": ["batchnorm.png", "batchnorm.csv"],
    "overfit": ["overfit.png", "overfit.csv"],
    "hyperparams": ["hyperparams.png", "hyperparams_scatter.png", "hyperparams.csv", "hyperparams_trials.csv"],
}


def quick_name(name: str) -> str:
    stem, suffix = name.rsplit(".", 1)
    return f"{stem}_quick.{suffix}"


def png_title(path: Path) -> str:
    """The Title text chunk of a PNG (save_figure stores the figure's title there)."""
    data = path.read_bytes()
    pos = 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"tEXt":
            key, _, value = data[pos + 8:pos + 8 + length].partition(b"\0")
            if key == b"Title":
                return value.decode("latin-1")
        pos += 12 + length
    raise AssertionError(f"{path} has no Title")


@pytest.mark.parametrize("experiment", list(EXPECTED_FILES))
def test_quick_run_writes_valid_png_and_csv(quick, experiment):
    result = quick[experiment]
    assert [f.name for f in result.files] == [quick_name(n) for n in EXPECTED_FILES[experiment]]
    assert result.plots, experiment
    for png in result.plots:
        check_png(png)
        assert png_title(png).endswith(" (quick run)"), png
    for path in result.csvs:
        header, rows = read_csv(path)
        assert header and rows, path
    assert result.summary


# -- paths: the book's settings, exactly -------------------------------------------------------------

def reference_path(name: str, lr: float, steps: int = 30) -> np.ndarray:
    """The book's update rules (defaults: momentum 0.9; adagrad eps 1e-7; adam betas 0.9,
    0.999, eps 1e-7, book form) on f = x^2/20 + y^2, in float64."""
    p = np.array([-7.0, 2.0])
    v, h, m = np.zeros(2), np.zeros(2), np.zeros(2)
    out = [p.copy()]
    for t in range(1, steps + 1):
        g = np.array([p[0] / 10.0, 2.0 * p[1]])
        if name == "sgd":
            p = p - lr * g
        elif name == "momentum":
            v = 0.9 * v - lr * g
            p = p + v
        elif name == "adagrad":
            h = h + g * g
            p = p - lr * g / (np.sqrt(h) + 1e-7)
        elif name == "adam":
            m = m + (1 - 0.9) * (g - m)
            v = v + (1 - 0.999) * (g * g - v)
            lr_t = lr * math.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
            p = p - lr_t * m / (np.sqrt(v) + 1e-7)
        out.append(p.copy())
    return np.array(out)


BOOK_PATHS = {"sgd": 0.95, "momentum": 0.1, "adagrad": 1.5, "adam": 0.3}


def test_paths_follow_the_books_settings_exactly(quick):
    result = quick["paths"]
    assert list(result.data["paths"]) == list(BOOK_PATHS)
    header, rows = read_csv(result.csvs[0])
    assert header == ["optimizer", "step", "x", "y"]
    from_csv = defaultdict(list)
    for row in rows:
        from_csv[row["optimizer"]].append((int(row["step"]), float(row["x"]), float(row["y"])))
    for name, lr in BOOK_PATHS.items():
        assert result.data["hparams"][name] == {"lr": lr}
        got = result.data["paths"][name]
        assert got.dtype == np.float32 and got.shape == (31, 2)
        want = reference_path(name, lr)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=name)
        steps = from_csv[name]
        assert [s for s, _, _ in steps] == list(range(31))          # step 0 is the start
        assert steps[0][1:] == (-7.0, 2.0)
        np.testing.assert_array_equal(np.array([s[1:] for s in steps], dtype=np.float32), got)  # 9 digits: exact
    # What the book's figure shows: SGD zig-zags in y, AdaGrad does not.
    sgd_y, adagrad_y = result.data["paths"]["sgd"][:, 1], result.data["paths"]["adagrad"][:, 1]
    assert np.sum(np.diff(np.sign(sgd_y)) != 0) > 20
    assert np.all(adagrad_y[:10] >= 0)


def test_paths_is_exact_with_or_without_quick(tmp_path):
    result = lab.run("paths", out=tmp_path, quick=False, progress=False, verbose=False)
    np.testing.assert_allclose(result.data["paths"]["adam"], reference_path("adam", 0.3), rtol=1e-5, atol=1e-5)
    # a full run's files keep their names, and its title does not say quick
    assert [f.name for f in result.files] == EXPECTED_FILES["paths"]
    assert png_title(result.plots[0]) == "Optimizer paths on f(x, y) = x^2/20 + y^2 from (-7, 2), 30 steps"


# -- the training experiments: plausible numbers --------------------------------------------------

def test_optimizers_losses_decrease_and_summary(quick):
    result = quick["optimizers"]
    header, rows = read_csv(result.csvs[0])
    assert header == ["optimizer", "iteration", "loss", "lr"]
    assert {(r["optimizer"], float(r["lr"])) for r in rows if r["optimizer"] in ("sgd", "adam")} == {
        ("sgd", 0.01), ("adam", 0.001)}                   # constant: each optimizer's own lr
    losses = defaultdict(list)
    for row in rows:
        losses[row["optimizer"]].append((int(row["iteration"]), float(row["loss"])))
    default = ["sgd", "momentum", "adagrad", "adam", "rmsprop", "nesterov", "adamw"]
    assert list(losses) == default
    drops = []
    for name, values in losses.items():
        its = [i for i, _ in values]
        assert its == list(range(len(its))) and len(its) == result.data["iterations"]
        curve = np.array([v for _, v in values])
        assert np.all(np.isfinite(curve)), name
        np.testing.assert_allclose(curve, result.data["losses"][name], rtol=1e-6)
        drops.append(curve[:10].mean() - curve[-10:].mean())
    assert np.mean(drops) > 0.1, drops                      # decreasing, on average
    assert sum(d > 0 for d in drops) >= len(drops) - 1
    header, rows = read_csv(result.csvs[1])
    assert result.csvs[1].name == "optimizers_summary_quick.csv"
    assert {"optimizer", "final_loss", "test_loss", "test_accuracy"} <= set(header)
    assert [r["optimizer"] for r in rows] == default
    for r in rows:
        assert 0.0 <= float(r["test_accuracy"]) <= 1.0
        assert math.isfinite(float(r["final_loss"])) and float(r["final_loss"]) > 0


def test_optimizers_share_weights_and_mini_batches(quick, mnist_dir, tmp_path):
    """An optimizer run alone sees the same initial weights and mini-batches as in the full
    comparison: its losses are identical."""
    alone = lab.run("optimizers", out=tmp_path, data=mnist_dir, quick=True, seed=3, optimizers=["adam"],
                    progress=False, verbose=False)
    np.testing.assert_array_equal(alone.data["losses"]["adam"], quick["optimizers"].data["losses"]["adam"])
    # the first loss depends only on the weights and the first mini-batch: the same for everyone
    first = {name: curve[0] for name, curve in quick["optimizers"].data["losses"].items()}
    assert len(set(first.values())) == 1, first


def test_histograms_counts_add_up(quick):
    result = quick["histograms"]
    header, rows = read_csv(result.csvs[0])
    assert header == ["case", "layer", "bin_left", "bin_right", "count"]
    per_layer = defaultdict(int)
    bins = defaultdict(int)
    for r in rows:
        assert float(r["bin_left"]) < float(r["bin_right"])
        assert int(r["count"]) >= 0
        per_layer[(r["case"], int(r["layer"]))] += int(r["count"])
        bins[(r["case"], int(r["layer"]))] += 1
    cases = {case for case, _ in per_layer}
    assert len(cases) == 7 and {layer for _, layer in per_layer} == {1, 2, 3, 4, 5}
    total = result.data["rows"] * result.data["units"]
    assert all(count == total for count in per_layer.values()), per_layer
    assert all(n == 30 for n in bins.values())
    # The book's observations: sigmoid std 1 saturates, std 0.01 clusters at 0.5, ReLU std 0.01 fades.
    acts = result.data["activations"]
    sat = np.mean([(a < 0.01) | (a > 0.99) for a in acts["sigmoid_std1"]])
    assert sat > 0.3
    assert abs(float(np.mean(acts["sigmoid_std0.01"][4])) - 0.5) < 0.05
    assert acts["relu_std0.01"][4].std() < 1e-3 < acts["relu_he"][4].std()


def test_init_curves(quick):
    result = quick["init"]
    header, rows = read_csv(result.csvs[0])
    assert header == ["init", "iteration", "loss", "lr"]
    assert {r["init"] for r in rows} == {"std=0.01", "Xavier", "He"}
    assert all(math.isfinite(float(r["loss"])) for r in rows)
    losses = result.data["losses"]
    # std 0.01 barely learns; He learns fastest (the book's figure 6-15)
    assert losses["He"][-10:].mean() < losses["std=0.01"][-10:].mean()


def test_batchnorm_grid(quick):
    result = quick["batchnorm"]
    header, rows = read_csv(result.csvs[0])
    assert header == ["weight_std", "batchnorm", "epoch", "train_accuracy"]
    stds = sorted({float(r["weight_std"]) for r in rows}, reverse=True)
    assert len(stds) == 16
    np.testing.assert_allclose(stds, np.logspace(0, -4, 16), rtol=1e-6)
    assert {r["batchnorm"] for r in rows} == {"0", "1"}
    assert len(rows) == 16 * 2 * (result.data["epochs"] + 1)
    assert all(0.0 <= float(r["train_accuracy"]) <= 1.0 for r in rows)


def test_overfit_curves(quick):
    result = quick["overfit"]
    header, rows = read_csv(result.csvs[0])
    assert header == ["run", "epoch", "train_accuracy", "test_accuracy"]
    assert [r["run"] for r in result.summary] == ["baseline", "weight_decay", "dropout"]
    assert len(rows) == 3 * (result.data["epochs"] + 1)
    for r in rows:
        assert 0.0 <= float(r["train_accuracy"]) <= 1.0 and 0.0 <= float(r["test_accuracy"]) <= 1.0
    baseline = result.data["curves"]["baseline"]["train"]
    assert result.data["images"] == 100                      # --quick: fewer images, the book's 200 epochs
    assert result.data["epochs"] == 200
    assert baseline[-1] >= 0.95 > baseline[0]                # it memorises them


def test_hyperparams_trials(quick):
    result = quick["hyperparams"]
    header, rows = read_csv(result.csvs[0])
    assert header == ["trial", "lr", "weight_decay", "epoch", "train_accuracy", "val_accuracy"]
    header, trials = read_csv(result.csvs[1])
    assert {"trial", "lr", "weight_decay", "val_accuracy", "train_accuracy"} <= set(header)
    assert len(trials) == len(result.data["trials"]) and len(rows) == len(trials) * result.data["epochs"]
    for t in trials:
        assert 1e-6 <= float(t["lr"]) <= 1e-2 and 1e-8 <= float(t["weight_decay"]) <= 1e-4
        assert 0.0 <= float(t["val_accuracy"]) <= 1.0
    val = [float(t["val_accuracy"]) for t in trials]
    assert val == sorted(val, reverse=True)
    assert result.data["images"] + result.data["validation"] == 200      # --quick: 200 of the book's 500


# -- the command line ------------------------------------------------------------------------------

def test_cli_runs_and_says_where_the_plots_are(mnist_dir, tmp_path, capsys):
    assert main(["init", "--quick", "--data", str(mnist_dir), "--out", str(tmp_path), "--seed", "2",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and str(tmp_path / "init_quick.png") in out and str(tmp_path.resolve()) in out
    check_png(tmp_path / "init_quick.png")


@pytest.mark.parametrize("args, message", [
    (["optimizers", "--quick", "--data", "{missing}"], "does not exist"),
    (["optimizers", "--quick", "--data", "{empty}"], "train-images-idx3-ubyte"),
    (["optimizers", "--quick", "--data", "{data}", "--optimizers", "sgd,nope"], "unknown optimizer 'nope'"),
    (["paths", "--optimizers", "adam:lr=fast"], "not key=number"),
    (["paths", "--optimizers", "adam:bogus=1"], "adam:bogus=1"),
    (["paths", "--plugin", "{missing}/lion.so"], "does not exist"),
    (["paths", "--plugin", "{notso}"], "cannot load plugin"),
    (["paths", "--threads", "0"], "--threads needs a number >= 1"),
    (["paths", "--schedule", "cosine"],
     "--schedule applies to the optimizers and init experiments (and to them within all), not to paths"),
])
def test_cli_errors_are_messages_not_tracebacks(args, message, mnist_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "not.so").write_text("not a shared library")
    names = {"missing": tmp_path / "missing", "empty": tmp_path / "empty", "data": mnist_dir,
             "notso": tmp_path / "not.so"}
    args = [a.format(**names) for a in args] + ["--out", str(tmp_path / "out"), "--no-progress"]
    status = main(args)
    err = capsys.readouterr().err
    assert status != 0
    assert err.startswith("descent-lab: ") and message in err, err
    assert "Traceback" not in err


def test_python_m_descent_lab(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(descent.__file__).parents[1]),
                                                        os.environ.get("PYTHONPATH", "")]))
    env.setdefault("DESCENT_LIBRARY", str(descent.library_path))
    bad = subprocess.run([sys.executable, "-m", "descent.lab", "optimizers", "--quick", "--data",
                          str(tmp_path / "nowhere"), "--out", str(tmp_path)], capture_output=True, text=True,
                         env=env, timeout=120)
    assert bad.returncode != 0 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr
    usage = subprocess.run([sys.executable, "-m", "descent.lab", "nonsense"], capture_output=True, text=True,
                           env=env, timeout=120)
    assert usage.returncode == 2 and "invalid choice" in usage.stderr
    ok = subprocess.run([sys.executable, "-m", "descent.lab", "paths", "--out", str(tmp_path)],
                        capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "adagrad" in ok.stdout and str(tmp_path / "paths.png") in ok.stdout


def test_plugin_optimizer_joins_the_comparison(lion_path, mnist_dir, tmp_path, capsys):
    """Lion (examples/plugins/lion.c, built by conftest's lion_path) loaded with --plugin. It stays
    registered in this process; the binding's own plugin tests run in subprocesses."""
    lion_plugin = lion_path
    assert main(["optimizers", "--quick", "--data", str(mnist_dir), "--out", str(tmp_path), "--no-progress",
                 "--optimizers", "sgd,lion:lr=0.0003", "--plugin", str(lion_plugin)]) == 0
    assert "lion(lr=0.0003)" in capsys.readouterr().out
    _, rows = read_csv(tmp_path / "optimizers_quick.csv")
    assert {r["optimizer"] for r in rows} == {"sgd", "lion(lr=0.0003)"}
    check_png(tmp_path / "optimizers_quick.png")
    # without --optimizers, the plugin's optimizers join the default list
    result = lab.run("paths", out=tmp_path, plugins=[lion_plugin], progress=False, verbose=False)
    assert list(result.data["paths"]) == list(BOOK_PATHS) + ["lion"]
    assert abs(result.data["paths"]["lion"][1, 0] - (-7.0 + 0.25)) < 1e-5   # a sign step of lr


# -- --schedule ------------------------------------------------------------------------------------

def test_schedule_sets_the_learning_rate_of_every_iteration(quick, mnist_dir, tmp_path):
    result = lab.run("optimizers", out=tmp_path, data=mnist_dir, quick=True, seed=3, optimizers=["sgd", "adam"],
                     schedule="step", progress=False, verbose=False)
    n = result.data["iterations"]
    assert [f.name for f in result.files] == ["optimizers_step_quick.png", "optimizers_step_quick.csv",
                                              "optimizers_summary_step_quick.csv"]
    assert "step lr schedule" in png_title(result.plots[0])
    _, rows = read_csv(result.csvs[0])
    lrs = defaultdict(list)
    for row in rows:
        lrs[row["optimizer"]].append(float(row["lr"]))
    half = n // 2       # step: the lr drops to a tenth for the second half
    assert lrs["sgd"] == pytest.approx([0.01] * half + [0.001] * (n - half), rel=1e-6)
    assert lrs["adam"] == pytest.approx([0.001] * half + [0.0001] * (n - half), rel=1e-6)
    # The network trained with exactly these rates: the same losses as the constant run up to the
    # drop (a loss is measured before its iteration's update), different ones after it.
    for name in ("sgd", "adam"):
        constant, stepped = quick["optimizers"].data["losses"][name], result.data["losses"][name]
        np.testing.assert_array_equal(stepped[:half + 1], constant[:half + 1])
        assert not np.array_equal(stepped[half + 1:], constant[half + 1:])


def test_cosine_schedule_values_in_the_csv(mnist_dir, tmp_path):
    result = lab.run("init", out=tmp_path, data=mnist_dir, quick=True, schedule="cosine", progress=False,
                     verbose=False)
    n = result.data["iterations"]
    _, rows = read_csv(result.csvs[0])
    he = [float(r["lr"]) for r in rows if r["init"] == "He"]
    want = [0.01 * 0.5 * (1 + math.cos(math.pi * i / n)) for i in range(n)]
    assert he == pytest.approx(want, rel=1e-6)


def test_schedule_errors(tmp_path):
    with pytest.raises(lab.LabError) as info:
        lab.run("init", out=tmp_path, schedule="linear", progress=False, verbose=False)
    assert str(info.value) == ("unknown schedule 'linear'; choose one of constant, step, exponential, cosine, "
                               "warmup-cosine")
    with pytest.raises(lab.LabError) as info:
        lab.run("overfit", out=tmp_path, schedule="cosine", progress=False, verbose=False)
    assert str(info.value) == ("--schedule applies to the optimizers and init experiments (and to them within all), "
                               "not to overfit")


# -- progress bars ------------------------------------------------------------------------------------

def test_progress_bars_only_on_a_terminal(mnist_dir, tmp_path, capsys, monkeypatch):
    # stderr captured by pytest is not a terminal: no bar, not even with progress on
    lab.run("init", out=tmp_path, data=mnist_dir, quick=True, progress=True, verbose=False)
    assert capsys.readouterr().err == ""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    lab.run("init", out=tmp_path, data=mnist_dir, quick=True, progress=True, verbose=False)
    assert "init:" in terminal.getvalue()


# -- --quick keeps each experiment's effect, on the real data -------------------------------------------

FASHION = Path(descent.datasets.FASHION_MNIST_DIR)


@pytest.fixture(scope="module")
def fashion_quick(tmp_path_factory):
    """batchnorm, overfit and hyperparams, --quick, on Debian's Fashion-MNIST (the lab's default)."""
    if not FASHION.is_dir():
        pytest.skip(f"{FASHION} not installed (Debian package dataset-fashion-mnist)")
    cfg = lab.Config(out=tmp_path_factory.mktemp("fashion-quick"), quick=True, progress=False, verbose=False)
    return {name: lab.run_config(name, cfg) for name in ("batchnorm", "overfit", "hyperparams")}


def test_quick_overfit_still_overfits(fashion_quick):
    result = fashion_quick["overfit"]
    assert result.data["images"] == 100
    gap = {r["run"]: r["gap"] for r in result.summary}
    baseline = result.summary[0]
    assert baseline["train_accuracy"] >= 0.95          # memorised
    assert gap["baseline"] >= 0.2                      # far above the test accuracy
    assert gap["weight_decay"] < gap["baseline"] and gap["dropout"] < gap["baseline"]   # both remedies narrow it


def test_quick_batchnorm_still_shows_batch_norm_helping(fashion_quick):
    summary = fashion_quick["batchnorm"].summary
    learns_with = sum(r["with_bn"] >= 0.3 for r in summary)
    learns_without = sum(r["without_bn"] >= 0.3 for r in summary)
    assert learns_with >= 12 and learns_without <= 4, (learns_with, learns_without)


def test_quick_hyperparams_still_separates_good_learning_rates(fashion_quick):
    summary = fashion_quick["hyperparams"].summary            # best first
    val = [r["val_accuracy"] for r in summary]
    assert val[0] >= 0.5 and float(np.median(val)) <= 0.2
    assert summary[0]["lr"] >= 1e-3
