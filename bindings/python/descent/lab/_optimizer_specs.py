"""The optimizers a run compares: --optimizers ("name" or "name:key=value:..."), --plugin files,
and the hyperparameters in force as the tables show them."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import descent

from ._config import Config, LabError


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
