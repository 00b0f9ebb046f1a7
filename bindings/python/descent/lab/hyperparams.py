"""hyperparams: random search of the learning rate and weight decay (the book's figure 6-24).

500 training images, shuffled; 100 of them are held out as validation data (never the test set:
tuning on it would overfit the test). Each of 100 trials draws weight decay 10^U(-8, -4) and
learning rate 10^U(-6, -2) (log-uniform, as the book recommends), trains a 784-100x6-10 ReLU
network with SGD for 50 epochs of mini-batches of 100, and records training and validation
accuracy after every epoch. The best trials show where to narrow the ranges for the next round.
--quick: 200 images (40 for validation) in mini-batches of 20, 12 trials of 20 epochs: enough
steps for good learning rates to stand out.

Under ``mpirun -np N``, rank r trains trials r, r + N, ... and rank 0 gathers them. Every rank
still draws every trial's weight decay, learning rate and mini-batches from the one seeded stream,
in trial order, as one process does, and a trial's network is seeded by its number: so each
trial's numbers, and the table and files, are one process's.
"""
from __future__ import annotations

import math

import numpy as np

import descent

from ._config import Config, Result, Timer
from ._data import load_data
from ._plots import new_figure, save_figure
from ._ranks import ranks_of
from ._tables import format_table, report, write_csv
from ._training import Batcher, batch_indices, epoch_batches, progress

NAME = "hyperparams"
SHARED_OVER_RANKS = True   # mpirun -np N: the trials are shared among the ranks
TITLE = "Random search: SGD learning rate and weight decay, 784-100x6-10 ReLU"

IMAGES, QUICK_IMAGES, VALIDATION = 500, 200, 100   # VALIDATION of every IMAGES held out
TRIALS, QUICK_TRIALS = 100, 12
EPOCHS, QUICK_EPOCHS = 50, 20
HIDDEN = [100] * 6
BATCH, QUICK_BATCH = 100, 20
LR_RANGE = (-6, -2)
WD_RANGE = (-8, -4)
SHOWN = 20       # best trials drawn (the book's 5 x 4 grid)
LISTED = 10      # best trials in the printed table


def run(cfg: Config) -> Result:
    timer = Timer()
    data = load_data(cfg)
    rng = np.random.default_rng(cfg.seed)
    n = min(QUICK_IMAGES if cfg.quick else IMAGES, len(data.x_train))
    n_val = max(1, round(n * VALIDATION / IMAGES))
    trials = QUICK_TRIALS if cfg.quick else TRIALS
    epochs = QUICK_EPOCHS if cfg.quick else EPOCHS
    shuffled = rng.permutation(n)
    x_val, y_val = data.x_train[shuffled[:n_val]], data.y_train[shuffled[:n_val]]
    x, y = np.ascontiguousarray(data.x_train[shuffled[n_val:]]), np.ascontiguousarray(data.y_train[shuffled[n_val:]])
    batch = min(QUICK_BATCH if cfg.quick else BATCH, len(x))
    per_epoch = epoch_batches(len(x), batch)
    gather = Batcher(x, y, batch)
    sizes = [data.features, *HIDDEN, data.classes]

    ranks = ranks_of(cfg)
    mine = set(ranks.mine(trials))
    done = {}
    with progress(cfg, len(mine) * epochs * per_epoch, "hyperparams") as bar:
        for trial in range(trials):
            # Every rank draws every trial's values, in the book's order: one process's stream.
            weight_decay = 10 ** rng.uniform(*WD_RANGE)
            lr = 10 ** rng.uniform(*LR_RANGE)
            order = batch_indices(rng, len(x), batch, epochs * per_epoch)
            if trial not in mine:
                continue
            with descent.Network(sizes, activation="relu", init="he", weight_decay=weight_decay,
                                 seed=cfg.seed + trial) as net:
                net.set_optimizer("sgd", lr=lr)
                train_acc, val_acc, error = _train(net, gather, order, per_epoch, epochs, (x, y), (x_val, y_val),
                                                   bar)
            done[trial] = {"trial": trial + 1, "lr": float(lr), "weight_decay": float(weight_decay),
                           "train": train_acc, "val": val_acc, "error": error}
            bar.set_postfix_str(f"best val {max(r['val'][-1] for r in done.values()):.3f}")
    gathered = ranks.gather(done)
    if gathered is None:   # not rank 0: its trials are rank 0's now
        return Result(NAME, {}, [], [], timer.seconds)
    results = [gathered[trial] for trial in range(trials)]

    ranked = sorted(results, key=lambda r: r["val"][-1], reverse=True)
    for rank, r in enumerate(ranked, start=1):
        r["rank"] = rank
    curve_rows = [(r["trial"], r["lr"], r["weight_decay"], epoch + 1, r["train"][epoch], r["val"][epoch])
                  for r in results for epoch in range(epochs)]
    csv_path = write_csv(cfg, "hyperparams.csv",
                         ["trial", "lr", "weight_decay", "epoch", "train_accuracy", "val_accuracy"], curve_rows)
    summary = [{"rank": r["rank"], "trial": r["trial"], "lr": r["lr"], "weight_decay": r["weight_decay"],
                "val_accuracy": r["val"][-1], "train_accuracy": r["train"][-1]} for r in ranked]
    trials_path = write_csv(cfg, "hyperparams_trials.csv", list(summary[0].keys()), [list(s.values()) for s in summary])
    curves_png = save_figure(cfg, _plot_best(ranked, epochs), "hyperparams.png")
    scatter_png = save_figure(cfg, _plot_scatter(results), "hyperparams_scatter.png")
    files = [curves_png, scatter_png, csv_path, trials_path]
    top = ranked[:max(1, min(5, len(ranked)))]
    lrs, wds = [r["lr"] for r in top], [r["weight_decay"] for r in top]
    report(cfg, f"{TITLE}: the best {min(LISTED, trials)} of {trials} trials", format_table(summary[:LISTED], [
        ("rank", "rank", ""), ("trial", "trial", ""), ("lr", "learning rate", ".3g"),
        ("weight_decay", "weight decay", ".3g"), ("val_accuracy", "val accuracy", ".1%"),
        ("train_accuracy", "train accuracy", ".1%")]), files,
        [f"(the best {len(top)}: lr {min(lrs):.2g} .. {max(lrs):.2g}, weight decay {min(wds):.2g} .. {max(wds):.2g}: "
         "narrow the ranges around them and search again)",
         f"({len(x)} training and {n_val} validation images, {epochs} epochs per trial)"])
    return Result(NAME, {"trials": results, "epochs": epochs, "images": len(x), "validation": n_val},
                  summary, files, timer.seconds)


def _train(net, gather, order, per_epoch: int, epochs: int, train, validation, bar):
    """One trial: `epochs` epochs of SGD on the mini-batches `order`, recording the training and
    validation accuracy after each. A NumericError (the loss overflowed) stops the updates, not
    the epochs: its message is the trial's error."""
    train_acc, val_acc = [], []
    error = ""
    for epoch in range(epochs):
        for i in range(epoch * per_epoch, (epoch + 1) * per_epoch):
            if not error:
                try:
                    net.train_step(*gather(order[i]))
                except descent.NumericError as e:
                    error = str(e)
            bar.update(1)
        train_acc.append(net.evaluate(*train)[1])
        val_acc.append(net.evaluate(*validation)[1])
    return np.array(train_acc, dtype=np.float64), np.array(val_acc, dtype=np.float64), error


def _plot_best(ranked: list[dict], epochs: int):
    from matplotlib.ticker import MaxNLocator
    shown = ranked[:SHOWN]
    cols = 5
    rows = math.ceil(len(shown) / cols)
    height = 2.4 * rows + 1.3
    fig = new_figure(14.0, height)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.75 / height + 0.04, top=1 - 0.9 / height, wspace=0.08,
                        hspace=0.45)
    x = np.arange(1, epochs + 1)
    for i, r in enumerate(shown):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.plot(x, r["val"], color="tab:blue", label="validation")
        ax.plot(x, r["train"], "--", color="tab:orange", label="train")
        ax.set_title(f"Best-{i + 1}: lr {r['lr']:.2g}, wd {r['weight_decay']:.1g}", fontsize=9)
        ax.set_ylim(0.0, 1.0)
        ax.set_xlim(1, max(2, epochs))
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(5, integer=True))
        if i % cols:
            ax.set_yticklabels([])
        else:
            ax.set_ylabel("accuracy", fontsize=8)
        if i + cols < len(shown):
            ax.set_xticklabels([])
        else:
            ax.set_xlabel("epochs", fontsize=8)
    fig.legend(*fig.axes[0].get_legend_handles_labels(), loc="lower center", ncol=2, frameon=False)
    fig.suptitle(f"{TITLE}: the best {len(shown)} of {len(ranked)} trials (solid: validation, dashed: train)")
    return fig


def _plot_scatter(results: list[dict]):
    fig = new_figure(7.5, 5.5)
    ax = fig.add_subplot(1, 1, 1)
    lr = np.array([r["lr"] for r in results])
    wd = np.array([r["weight_decay"] for r in results])
    acc = np.array([r["val"][-1] for r in results])
    points = ax.scatter(lr, wd, c=acc, cmap="viridis", vmin=0, vmax=max(0.01, float(acc.max())), s=40,
                        edgecolors="black", linewidths=0.4)
    best = int(np.argmax(acc))
    ax.scatter([lr[best]], [wd[best]], marker="*", s=260, facecolors="none", edgecolors="red", linewidths=1.5,
               label=f"best: lr {lr[best]:.2g}, wd {wd[best]:.2g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(10.0 ** (LR_RANGE[0] - 0.1), 10.0 ** (LR_RANGE[1] + 0.1))
    ax.set_ylim(10.0 ** (WD_RANGE[0] - 0.1), 10.0 ** (WD_RANGE[1] + 0.1))
    ax.set_xlabel("learning rate")
    ax.set_ylabel("weight decay (lambda)")
    ax.set_title(f"Validation accuracy of {len(results)} trials")
    fig.colorbar(points, ax=ax, label="validation accuracy (last epoch)")
    ax.legend(loc="upper left", framealpha=0.9)
    fig.tight_layout()
    return fig
