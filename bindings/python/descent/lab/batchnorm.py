"""batchnorm: training with and without batch normalisation (the book's figure 6-19).

The first 1000 training images, a 784-100x5-10 ReLU network, SGD lr 0.01, mini-batches of 100,
20 epochs; the weights drawn with 16 standard deviations from 1 down to 0.0001
(np.logspace(0, -4, 16)). For each, one network with batch normalisation and one without are
trained on the same mini-batches; the training accuracy (evaluation mode) is recorded before
training and after every epoch. With batch normalisation training progresses at almost every
scale; without it, only a narrow band of scales learns. --quick: 200 images in mini-batches of
20 (still 10 steps per epoch), 10 epochs: enough steps for the difference to show.
"""
from __future__ import annotations

import numpy as np

import descent

from ._config import Config, Result, Timer
from ._data import load_data
from ._plots import new_figure, save_figure
from ._tables import format_table, report, write_csv
from ._training import Batcher, batch_indices, epoch_batches, progress

NAME = "batchnorm"
TITLE = "Batch normalisation: training accuracy, 784-100x5-10 ReLU, SGD lr 0.01"

IMAGES, QUICK_IMAGES = 1000, 200
EPOCHS, QUICK_EPOCHS = 20, 10
HIDDEN = [100] * 5
BATCH, QUICK_BATCH = 100, 20
LR = 0.01
STDS = np.logspace(0, -4, num=16)


def run(cfg: Config) -> Result:
    timer = Timer()
    data = load_data(cfg)
    n = min(QUICK_IMAGES if cfg.quick else IMAGES, len(data.x_train))
    epochs = QUICK_EPOCHS if cfg.quick else EPOCHS
    x, y = data.x_train[:n], data.y_train[:n]
    batch = min(QUICK_BATCH if cfg.quick else BATCH, n)
    per_epoch = epoch_batches(n, batch)
    order = batch_indices(np.random.default_rng(cfg.seed), n, batch, epochs * per_epoch)
    gather = Batcher(x, y, batch)
    sizes = [data.features, *HIDDEN, data.classes]

    accuracy = {}   # (std, with batchnorm) -> accuracies at epochs 0..epochs
    with progress(cfg, len(STDS) * epochs * per_epoch, "batchnorm") as bar:
        for std in STDS:
            nets = {bn: descent.Network(sizes, activation="relu", init=f"std:{float(std)!r}", batchnorm=bn,
                                        seed=cfg.seed) for bn in (True, False)}
            for net in nets.values():
                net.set_optimizer("sgd", lr=LR)
            acc = {bn: [net.evaluate(x, y)[1]] for bn, net in nets.items()}
            for epoch in range(epochs):
                for i in range(epoch * per_epoch, (epoch + 1) * per_epoch):
                    xb, yb = gather(order[i])
                    for net in nets.values():
                        _train(net, xb, yb)
                    bar.update(1)
                for bn, net in nets.items():
                    acc[bn].append(net.evaluate(x, y)[1])
            for bn, net in nets.items():
                accuracy[(float(std), bn)] = np.array(acc[bn], dtype=np.float64)
                net.close()

    rows = [(std, int(bn), epoch, a) for (std, bn), accs in accuracy.items() for epoch, a in enumerate(accs)]
    csv_path = write_csv(cfg, "batchnorm.csv", ["weight_std", "batchnorm", "epoch", "train_accuracy"], rows)
    png_path = save_figure(cfg, _plot(accuracy, epochs, n, batch), "batchnorm.png")
    summary = [{"weight_std": float(std), "with_bn": accuracy[(float(std), True)][-1],
                "without_bn": accuracy[(float(std), False)][-1]} for std in STDS]
    files = [png_path, csv_path]
    report(cfg, f"{TITLE}: accuracy after {epochs} epochs", format_table(summary, [
        ("weight_std", "weight std", ".3g"), ("with_bn", "with batchnorm", ".1%"),
        ("without_bn", "without", ".1%")]), files,
        [f"({n} training images, {per_epoch} mini-batches of {batch} per epoch)"])
    return Result(NAME, {"accuracy": accuracy, "stds": [float(s) for s in STDS], "epochs": epochs, "images": n},
                  summary, files, timer.seconds)


def _train(net, xb, yb) -> None:
    """One step; a network that has blown up (NaN) simply stops learning, as in the book."""
    try:
        net.train_step(xb, yb)
    except descent.NumericError:
        pass


def _plot(accuracy: dict, epochs: int, images: int, batch: int):
    fig = new_figure(12.0, 10.5)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.1, top=0.92, wspace=0.08, hspace=0.3)
    x = np.arange(epochs + 1)
    for i, std in enumerate(STDS):
        ax = fig.add_subplot(4, 4, i + 1)
        ax.plot(x, accuracy[(float(std), True)], color="tab:blue", linewidth=1.5, label="Batch Normalization")
        ax.plot(x, accuracy[(float(std), False)], color="tab:green", linestyle="--", linewidth=1.5,
                label="Normal (without BatchNorm)")
        ax.set_title(f"W std: {std:.3g}", fontsize=10)
        ax.set_ylim(0, 1.0)
        ax.set_xlim(0, epochs)
        ax.grid(True, alpha=0.3)
        if i % 4:
            ax.set_yticklabels([])
        else:
            ax.set_ylabel("accuracy")
        if i < 12:
            ax.set_xticklabels([])
        else:
            ax.set_xlabel("epochs")
        ax.tick_params(labelsize=8)
    fig.legend(*fig.axes[0].get_legend_handles_labels(), loc="lower center", ncol=2, frameon=False)
    fig.suptitle(f"{TITLE} ({images} images, batch {batch})")
    return fig
