"""overfit: overfitting and two remedies (the book's figures 6-20 to 6-23).

A deep network (784-100x6-10, ReLU, He) trained on only the first 300 training images with SGD
(lr 0.01, mini-batches of 100) for 200 epochs memorises them: training accuracy climbs to
100% while test accuracy stalls far below. Weight decay (lambda 0.1: 0.5*lambda*sum(W^2) added
to the loss) and dropout (ratio 0.2, inverted dropout) each narrow the gap. Three runs on the same
mini-batches: baseline, weight decay, dropout. Accuracies are measured in evaluation mode on the
300 training images and on the test set after every epoch (and before the first).
--quick: the first 100 training images instead of 300 (still 200 epochs: fewer images are
memorised sooner, so the quick run still overfits), the first 500 test images.
"""
from __future__ import annotations

import numpy as np

import descent

from ._config import Config, Result, Timer
from ._data import load_data, testset
from ._plots import new_figure, save_figure
from ._tables import format_table, report, write_csv
from ._training import Batcher, batch_indices, epoch_batches, progress

NAME = "overfit"
TITLE = "Overfitting {images} images: 784-100x6-10 ReLU, SGD lr 0.01, batch 100"

IMAGES, QUICK_IMAGES = 300, 100
QUICK_TESTS = 500   # evaluated after every epoch: the bulk of a quick run's time
EPOCHS = 200
HIDDEN = [100] * 6
BATCH = 100
LR = 0.01
RUNS = [  # (run id, title, Network keyword arguments)
    ("baseline", "no regularisation", {}),
    ("weight_decay", "weight decay, lambda 0.1", {"weight_decay": 0.1}),
    ("dropout", "dropout, ratio 0.2", {"dropout": 0.2}),
]


def run(cfg: Config) -> Result:
    timer = Timer()
    data = load_data(cfg)
    n = min(QUICK_IMAGES if cfg.quick else IMAGES, len(data.x_train))
    epochs = EPOCHS
    x, y = data.x_train[:n], data.y_train[:n]
    x_test, y_test = testset(cfg, data, quick_size=QUICK_TESTS)
    per_epoch = epoch_batches(n, BATCH)
    batch = min(BATCH, n)
    order = batch_indices(np.random.default_rng(cfg.seed), n, batch, epochs * per_epoch)
    gather = Batcher(x, y, batch)
    sizes = [data.features, *HIDDEN, data.classes]

    curves = {}
    with progress(cfg, len(RUNS) * epochs * per_epoch, "overfit") as bar:
        for key, _, options in RUNS:
            train_acc, test_acc = [], []
            with descent.Network(sizes, activation="relu", init="he", seed=cfg.seed, **options) as net:
                net.set_optimizer("sgd", lr=LR)
                for epoch in range(epochs + 1):
                    if epoch:
                        for i in range((epoch - 1) * per_epoch, epoch * per_epoch):
                            net.train_step(*gather(order[i]))
                            bar.update(1)
                    train_acc.append(net.evaluate(x, y)[1])
                    test_acc.append(net.evaluate(x_test, y_test)[1])
            curves[key] = {"train": np.array(train_acc, dtype=np.float64), "test": np.array(test_acc, dtype=np.float64)}

    rows = [(key, epoch, c["train"][epoch], c["test"][epoch])
            for key, c in curves.items() for epoch in range(epochs + 1)]
    csv_path = write_csv(cfg, "overfit.csv", ["run", "epoch", "train_accuracy", "test_accuracy"], rows)
    png_path = save_figure(cfg, _plot(curves, epochs, n, len(x_test)), "overfit.png")
    summary = []
    for key, title, _ in RUNS:
        c = curves[key]
        summary.append({"run": key, "setting": title, "train_accuracy": c["train"][-1], "test_accuracy": c["test"][-1],
                        "gap": c["train"][-1] - c["test"][-1], "best_test": float(c["test"].max())})
    files = [png_path, csv_path]
    report(cfg, f"{TITLE.format(images=n)}: after {epochs} epochs", format_table(summary, [
        ("run", "run", ""), ("setting", "setting", ""), ("train_accuracy", "train accuracy", ".1%"),
        ("test_accuracy", "test accuracy", ".1%"), ("gap", "gap", ".1%"), ("best_test", "best test", ".1%")]), files,
        [f"({n} training images, {per_epoch} mini-batch{'es' if per_epoch > 1 else ''} per epoch; test set: "
         f"{len(x_test)} images)"])
    return Result(NAME, {"curves": curves, "epochs": epochs, "images": n}, summary, files, timer.seconds)


def _plot(curves: dict, epochs: int, images: int, tests: int):
    fig = new_figure(15.0, 4.8)
    x = np.arange(epochs + 1)
    every = max(1, epochs // 20)
    for i, (key, title, _) in enumerate(RUNS):
        ax = fig.add_subplot(1, len(RUNS), i + 1)
        ax.plot(x, curves[key]["train"], marker="o", markevery=every, markersize=5, label="train")
        ax.plot(x, curves[key]["test"], marker="s", markevery=every, markersize=5, label="test")
        ax.set_title(title)
        ax.set_xlabel("epochs")
        ax.set_ylim(0, 1.0)
        ax.set_xlim(0, epochs)
        ax.grid(True, alpha=0.3)
        if i == 0:
            ax.set_ylabel("accuracy")
        ax.legend(loc="lower right")
    fig.suptitle(f"{TITLE.format(images=images)} ({tests} test images)")
    fig.tight_layout()
    return fig
