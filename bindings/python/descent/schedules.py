"""Learning-rate schedules: plain functions of the step, as optax's are.

Each function here returns a schedule, a callable taking the step (an integer >= 0, counted from
0) and returning the value for that step as a float. A schedule keeps no state, so any step can
be asked for in any order; applying it is the caller's one line::

    lr = schedules.linear_warmup(100, schedules.cosine(1e-3, decay_steps=900))
    for step in range(1000):
        net.optimizer.lr = lr(step)        # state and step count are kept
        net.train_step(xb, yb)

    step(init_value, step_size, gamma=0.1)           init_value * gamma ** (step // step_size)
    exponential(init_value, decay_rate, decay_steps=1)
                                                     init_value * decay_rate ** (step / decay_steps)
    cosine(init_value, decay_steps, alpha=0.0)       init_value * ((1 - alpha) * c + alpha),
                                                     c = (1 + cos(pi * min(step, decay_steps) / decay_steps)) / 2
    linear_warmup(warmup_steps, then, init_value=None)
                                                     from init_value (default then(0) / warmup_steps)
                                                     up to then(0) in warmup_steps steps, then
                                                     then(step - warmup_steps)

The formulas are those of PyTorch's StepLR and ExponentialLR (decay_steps=1) and of optax's
cosine_decay_schedule (exponent 1) and linear warm-up (which starts one increment above 0 unless
told otherwise: the optimizers refuse a learning rate of 0).
"""
from __future__ import annotations

import math
import numbers
from typing import Callable, Optional, Union

__all__ = ["Schedule", "step", "exponential", "cosine", "linear_warmup"]


class Schedule:
    """A learning-rate schedule: ``schedule(step) -> float`` for a step >= 0. Its repr shows how
    it was made, e.g. ``cosine(init_value=0.001, decay_steps=900, alpha=0.0)``."""

    __slots__ = ("_value", "_text")

    def __init__(self, value: Callable[[int], float], text: str):
        self._value, self._text = value, text

    def __call__(self, step: int) -> float:
        if isinstance(step, bool) or not isinstance(step, numbers.Integral):
            raise TypeError(f"{self._text}: the step must be an integer, got {type(step).__name__}")
        if step < 0:
            raise ValueError(f"{self._text}: the step must be >= 0, got {step}")
        return float(self._value(int(step)))

    def __repr__(self) -> str:
        return self._text


ScheduleOrValue = Union[Schedule, Callable[[int], float], float]


def step(init_value: float, step_size: int, gamma: float = 0.1) -> Schedule:
    """init_value, multiplied by gamma every step_size steps: init_value * gamma ** (step //
    step_size) (PyTorch's StepLR). step(0.1, 30)(29) == 0.1, (30) == 0.01."""
    init_value = _finite("step", "init_value", init_value)
    step_size = _positive_int("step", "step_size", step_size)
    gamma = _finite("step", "gamma", gamma, minimum=0.0)
    return Schedule(lambda t: init_value * gamma ** (t // step_size),
                    f"step(init_value={init_value!r}, step_size={step_size}, gamma={gamma!r})")


def exponential(init_value: float, decay_rate: float, decay_steps: int = 1) -> Schedule:
    """Smooth exponential decay: init_value * decay_rate ** (step / decay_steps), so the value
    is multiplied by decay_rate every decay_steps steps (PyTorch's ExponentialLR when
    decay_steps is 1). exponential(1.0, 0.5, decay_steps=10)(5) == 0.5 ** 0.5."""
    init_value = _finite("exponential", "init_value", init_value)
    decay_rate = _finite("exponential", "decay_rate", decay_rate, minimum=0.0)
    decay_steps = _positive_int("exponential", "decay_steps", decay_steps)
    return Schedule(lambda t: init_value * decay_rate ** (t / decay_steps),
                    f"exponential(init_value={init_value!r}, decay_rate={decay_rate!r}, decay_steps={decay_steps})")


def cosine(init_value: float, decay_steps: int, alpha: float = 0.0) -> Schedule:
    """Cosine decay from init_value at step 0 to alpha * init_value at decay_steps, constant
    after (optax's cosine_decay_schedule): init_value * ((1 - alpha) * c + alpha) with
    c = (1 + cos(pi * min(step, decay_steps) / decay_steps)) / 2.
    cosine(1.0, 100)(50) == 0.5; cosine(1.0, 100, alpha=0.1)(100) == 0.1."""
    init_value = _finite("cosine", "init_value", init_value)
    decay_steps = _positive_int("cosine", "decay_steps", decay_steps)
    alpha = _finite("cosine", "alpha", alpha, minimum=0.0, maximum=1.0)

    def value(t: int) -> float:
        c = 0.5 * (1.0 + math.cos(math.pi * min(t, decay_steps) / decay_steps))
        return init_value * ((1.0 - alpha) * c + alpha)

    return Schedule(value, f"cosine(init_value={init_value!r}, decay_steps={decay_steps}, alpha={alpha!r})")


def linear_warmup(warmup_steps: int, then: ScheduleOrValue, init_value: Optional[float] = None) -> Schedule:
    """A linear warm-up in front of another schedule (or a constant): from init_value at step 0
    up to then(0) at step warmup_steps, in equal increments, then then(step - warmup_steps).

    init_value defaults to then(0) / warmup_steps, one increment above 0: every optimizer refuses
    a learning rate of 0, so a warm-up starting there would fail at its first step.
    linear_warmup(10, 1.0)(0) == 0.1, (5) == 0.55, (10) == 1.0; linear_warmup(100, cosine(1e-3,
    900)) warms up for 100 steps and decays for 900."""
    warmup_steps = _positive_int("linear_warmup", "warmup_steps", warmup_steps)
    if isinstance(then, numbers.Real) and not isinstance(then, bool):
        constant = _finite("linear_warmup", "then", then)
        after: Callable[[int], float] = lambda t: constant  # noqa: E731
        then_text = repr(constant)
    elif callable(then):
        after, then_text = then, repr(then)
    else:
        raise TypeError(f"linear_warmup: then must be a schedule or a number, got {type(then).__name__}")
    peak = float(after(0))
    start = peak / warmup_steps if init_value is None else _finite("linear_warmup", "init_value", init_value)

    def value(t: int) -> float:
        if t < warmup_steps:
            return start + (peak - start) * t / warmup_steps
        return float(after(t - warmup_steps))

    return Schedule(value, f"linear_warmup(warmup_steps={warmup_steps}, then={then_text}, init_value={start!r})")


# -- argument checks ------------------------------------------------------------------------------

def _finite(schedule: str, name: str, value, minimum: float = -math.inf, maximum: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{schedule}: {name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or not minimum <= value <= maximum:
        bounds = {(-math.inf, math.inf): "finite", (0.0, math.inf): ">= 0", (0.0, 1.0): "in [0, 1]"}
        raise ValueError(f"{schedule}: {name} must be {bounds[(minimum, maximum)]}, got {value!r}")
    return value


def _positive_int(schedule: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{schedule}: {name} must be an integer, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{schedule}: {name} must be >= 1, got {value}")
    return int(value)
