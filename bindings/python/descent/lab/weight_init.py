"""init: weight initialisation compared on real images (the book's figure 6-15).

The optimizers experiment's network (784-100-100-100-100-10, ReLU) trained with SGD (lr 0.01)
for 2000 iterations of 128 images, its weights drawn with std 0.01, Xavier (sqrt(1/n)) and He
(sqrt(2/n)); the same mini-batches for each. With std 0.01 the signal fades layer after layer
and the network barely learns; Xavier learns, He learns fastest. --schedule as in the optimizers
experiment. --quick: 60 iterations, the first 1000 test images. Under mpirun -np N the three runs
are shared among the ranks and gathered on rank 0, as in the optimizers experiment.
"""
from __future__ import annotations

import descent

from ._config import Config, Result, Timer
from ._data import data_name, load_data, testset
from ._plots import plot_loss_curves
from ._tables import format_table, report, write_csv
from ._training import final_loss, schedule_text, scheduled_name, train_loss_curves

NAME = "init"
SHARED_OVER_RANKS = True   # mpirun -np N: the runs are shared among the ranks
TITLE = "Weight initialisation on {data}: 784-100x4-10 ReLU, SGD lr 0.01, batch 128"

INITS = [("std=0.01", "std:0.01"), ("Xavier", "xavier"), ("He", "he")]
MARKERS = {"std=0.01": "o", "Xavier": "s", "He": "D"}
HIDDEN = [100, 100, 100, 100]
BATCH = 128
LR = 0.01
ITERATIONS = 2000
QUICK_ITERATIONS = 60


def run(cfg: Config) -> Result:
    timer = Timer()
    data = load_data(cfg)
    iterations = QUICK_ITERATIONS if cfg.quick else ITERATIONS
    sizes = [data.features, *HIDDEN, data.classes]

    def network(init):
        def make():
            net = descent.Network(sizes, activation="relu", init=init, seed=cfg.seed)
            net.set_optimizer("sgd", lr=LR)
            return net
        return make

    curves = train_loss_curves(cfg, data, [(label, network(init)) for label, init in INITS], iterations, BATCH,
                               "init")
    if curves is None:   # not rank 0 (mpirun): its runs are rank 0's now
        return Result(NAME, {}, [], [], timer.seconds)
    rows = [(label, i, float(loss), float(lr)) for label, c in curves.items() for i, (loss, lr)
            in enumerate(zip(c.losses, c.lrs))]
    csv_path = write_csv(cfg, scheduled_name(cfg, "init.csv"), ["init", "iteration", "loss", "lr"], rows)
    summary = [{"init": label, "weights": init, "final_loss": final_loss(c.losses), "test_loss": c.test_loss,
                "test_accuracy": c.test_accuracy, "seconds": c.seconds}
               for (label, init), c in zip(INITS, curves.values())]
    summary_path = write_csv(cfg, scheduled_name(cfg, "init_summary.csv"), list(summary[0].keys()),
                             [list(r.values()) for r in summary])
    title = TITLE.format(data=data_name(cfg, data))
    details = f"{iterations} iterations{schedule_text(cfg)}"     # the plot's second title line
    png_path = plot_loss_curves(cfg, curves, scheduled_name(cfg, "init.png"), f"{title}\n{details}",
                                lambda label, i: MARKERS.get(label, "o"), lambda label: label, ylim=(0, 2.5))
    files = [png_path, csv_path, summary_path]
    report(cfg, f"{title}, {details}", format_table(summary, [
        ("init", "init", ""), ("weights", "spec", ""), ("final_loss", f"loss (last {min(100, iterations)} it.)", ".4f"),
        ("test_loss", "test loss", ".4f"), ("test_accuracy", "test accuracy", ".2%"), ("seconds", "seconds", ".1f")]),
        files, [f"({iterations} iterations; test set: {len(testset(cfg, data)[0])} images)"])
    return Result(NAME, {"losses": {k: c.losses for k, c in curves.items()}, "curves": curves,
                         "iterations": iterations, "batch": BATCH, "schedule": cfg.schedule}, summary, files,
                  timer.seconds)
