"""optimizers: the update methods compared on real images (the book's figure 6-9).

A 784-100-100-100-100-10 ReLU network with He initialisation is trained for 2000 iterations on
mini-batches of 128 images, once per optimizer at the book's default hyperparameters (sgd,
momentum, adagrad, adam; then rmsprop, nesterov, adamw and any plugin optimizer). Every
optimizer starts from the same weights (same --seed) and sees the same mini-batches.
--optimizers picks the list (name or name:key=value:..., e.g. adam:lr=0.002); --plugin adds
optimizers from plugin .so files; --schedule scales every optimizer's learning rate over the run
(e.g. cosine: down to 0 at the last iteration), set through net.optimizer.lr each iteration.
--quick: 60 iterations, the first 1000 test images. Under mpirun -np N the optimizers' runs are
shared among the ranks and gathered on rank 0 (the same numbers as one process; _ranks.py).
"""
from __future__ import annotations

import descent

from ._config import Config, Result, Timer
from ._data import data_name, load_data, testset
from ._optimizer_specs import hparams_text, resolve_optimizers
from ._plots import display_name, marker_for, plot_loss_curves
from ._tables import format_table, report, write_csv
from ._training import final_loss, schedule_text, scheduled_name, train_loss_curves

NAME = "optimizers"
SHARED_OVER_RANKS = True   # mpirun -np N: the runs are shared among the ranks
TITLE = "Optimizers on {data}: 784-100x4-10 ReLU (He), batch 128"

DEFAULT = ["sgd", "momentum", "adagrad", "adam", "rmsprop", "nesterov", "adamw"]
HIDDEN = [100, 100, 100, 100]
BATCH = 128
ITERATIONS = 2000
QUICK_ITERATIONS = 60


def run(cfg: Config) -> Result:
    timer = Timer()
    optimizers = resolve_optimizers(cfg, DEFAULT)
    data = load_data(cfg)
    iterations = QUICK_ITERATIONS if cfg.quick else ITERATIONS
    sizes = [data.features, *HIDDEN, data.classes]

    def network(name, hparams):
        def make():
            net = descent.Network(sizes, activation="relu", init="he", seed=cfg.seed)
            net.set_optimizer(name, **hparams)
            return net
        return make

    curves = train_loss_curves(cfg, data, [(label, network(name, hp)) for label, name, hp in optimizers],
                               iterations, BATCH, "optimizers")
    if curves is None:   # not rank 0 (mpirun): its runs are rank 0's now
        return Result(NAME, {}, [], [], timer.seconds)

    rows = [(label, i, float(loss), float(lr)) for label, c in curves.items() for i, (loss, lr)
            in enumerate(zip(c.losses, c.lrs))]
    csv_path = write_csv(cfg, scheduled_name(cfg, "optimizers.csv"), ["optimizer", "iteration", "loss", "lr"],
                         rows)
    summary = []
    for label, name, hp in optimizers:
        c = curves[label]
        summary.append({"optimizer": label, "hyperparameters": hparams_text(name, hp),
                        "final_loss": final_loss(c.losses), "test_loss": c.test_loss,
                        "test_accuracy": c.test_accuracy, "seconds": c.seconds, "note": c.error or ""})
    summary_path = write_csv(cfg, scheduled_name(cfg, "optimizers_summary.csv"), list(summary[0].keys()),
                             [list(r.values()) for r in summary])
    title = TITLE.format(data=data_name(cfg, data))
    details = f"{iterations} iterations{schedule_text(cfg)}"     # the plot's second title line
    png_path = plot_loss_curves(cfg, curves, scheduled_name(cfg, "optimizers.png"),
                                f"{title}\n{details}", marker_for, display_name)

    files = [png_path, csv_path, summary_path]
    window = min(100, iterations)
    report(cfg, f"{title}, {details}", format_table(summary, [
        ("optimizer", "optimizer", ""), ("hyperparameters", "hyperparameters", ""),
        ("final_loss", f"loss (last {window} it.)", ".4f"), ("test_loss", "test loss", ".4f"),
        ("test_accuracy", "test accuracy", ".2%"), ("seconds", "seconds", ".1f"), ("note", "", "")]),
        files, [f"({iterations} iterations of {BATCH} images, the same mini-batches for every optimizer; "
                f"test set: {len(testset(cfg, data)[0])} images)"])
    return Result(NAME, {"losses": {k: c.losses for k, c in curves.items()}, "curves": curves,
                         "iterations": iterations, "batch": BATCH, "schedule": cfg.schedule}, summary, files,
                  timer.seconds)
