"""descent.schedules against values computed by hand from the documented formulas."""
from __future__ import annotations

import math

import numpy as np
import pytest

from descent import schedules


def values(schedule, steps):
    return [schedule(t) for t in steps]


def test_step_multiplies_by_gamma_every_step_size_steps():
    lr = schedules.step(0.1, step_size=30)                     # gamma 0.1 by default
    assert values(lr, [0, 29, 30, 59, 60]) == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001], rel=1e-12)
    assert values(schedules.step(1.0, 2, gamma=0.5), range(6)) == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]


def test_exponential_decays_smoothly():
    lr = schedules.exponential(1.0, 0.5, decay_steps=10)
    assert lr(0) == 1.0 and lr(10) == 0.5 and lr(20) == 0.25
    assert lr(5) == pytest.approx(0.7071067811865476, rel=1e-15)          # sqrt(0.5)
    assert schedules.exponential(0.1, 0.9)(3) == pytest.approx(0.0729, rel=1e-12)   # 0.1 * 0.9^3


def test_cosine_matches_hand_computed_values():
    lr = schedules.cosine(1.0, decay_steps=100)
    assert lr(0) == 1.0 and lr(100) == 0.0 and lr(150) == 0.0       # constant after decay_steps
    assert lr(50) == pytest.approx(0.5, abs=1e-15)
    assert lr(25) == pytest.approx(0.8535533905932737, rel=1e-15)   # (1 + cos(pi/4)) / 2
    assert lr(75) == pytest.approx(0.14644660940672627, rel=1e-13)  # (1 - cos(pi/4)) / 2
    floor = schedules.cosine(2e-3, decay_steps=100, alpha=0.1)
    assert floor(0) == pytest.approx(2e-3) and floor(100) == pytest.approx(2e-4)   # alpha * init_value
    assert floor(50) == pytest.approx(2e-3 * (0.9 * 0.5 + 0.1), rel=1e-15)


def test_linear_warmup_to_a_constant_and_into_another_schedule():
    warm = schedules.linear_warmup(10, 1.0)     # from 1.0 / 10: one increment above 0
    assert values(warm, [0, 1, 5, 9, 10, 11, 1000]) == pytest.approx([0.1, 0.19, 0.55, 0.91, 1.0, 1.0, 1.0],
                                                                     rel=1e-14)
    zero = schedules.linear_warmup(10, 1.0, init_value=0.0)      # optax's usual start, when asked for
    assert values(zero, [0, 1, 5, 10]) == pytest.approx([0.0, 0.1, 0.5, 1.0], abs=1e-15)
    both = schedules.linear_warmup(4, schedules.cosine(1.0, decay_steps=8), init_value=0.0)
    assert values(both, [0, 2, 4, 8, 12, 20]) == pytest.approx([0.0, 0.5, 1.0, 0.5, 0.0, 0.0], abs=1e-15)
    plain = schedules.linear_warmup(2, lambda t: 1.0 / (t + 1))       # any function of the step
    assert values(plain, [0, 1, 2, 3]) == [0.5, 0.75, 1.0, 0.5]


def test_the_default_warmup_is_accepted_by_every_optimizer_from_its_first_step():
    import descent
    lr = schedules.linear_warmup(100, schedules.cosine(0.01, decay_steps=900))
    for name in ("sgd", "momentum", "adam"):
        with descent.Optimizer(name) as opt:
            opt.lr = lr(0)
            assert opt.lr == pytest.approx(1e-4)


def test_values_are_floats_and_numpy_steps_are_accepted():
    lr = schedules.cosine(1.0, decay_steps=100)
    assert type(lr(np.int64(50))) is float and lr(np.int64(50)) == lr(50)
    assert type(schedules.step(1, 3)(0)) is float


def test_repr_says_how_it_was_made():
    assert repr(schedules.cosine(0.001, 900)) == "cosine(init_value=0.001, decay_steps=900, alpha=0.0)"
    assert repr(schedules.linear_warmup(100, schedules.step(0.1, 30))) == (
        "linear_warmup(warmup_steps=100, then=step(init_value=0.1, step_size=30, gamma=0.1), init_value=0.001)")
    assert repr(schedules.exponential(1, 0.5, 10)) == "exponential(init_value=1.0, decay_rate=0.5, decay_steps=10)"


@pytest.mark.parametrize("make, error, message", [
    (lambda: schedules.cosine(1.0, 0), ValueError, "cosine: decay_steps must be >= 1, got 0"),
    (lambda: schedules.cosine(1.0, 10.5), TypeError, "cosine: decay_steps must be an integer, got float"),
    (lambda: schedules.cosine(1.0, 10, alpha=1.5), ValueError, "cosine: alpha must be in [0, 1], got 1.5"),
    (lambda: schedules.step(math.nan, 3), ValueError, "step: init_value must be finite, got nan"),
    (lambda: schedules.step(0.1, True), TypeError, "step: step_size must be an integer, got bool"),
    (lambda: schedules.exponential(1.0, -0.5), ValueError, "exponential: decay_rate must be >= 0, got -0.5"),
    (lambda: schedules.exponential("1", 0.5), TypeError, "exponential: init_value must be a number, got str"),
    (lambda: schedules.linear_warmup(0, 1.0), ValueError, "linear_warmup: warmup_steps must be >= 1, got 0"),
    (lambda: schedules.linear_warmup(5, "fast"), TypeError,
     "linear_warmup: then must be a schedule or a number, got str"),
    (lambda: schedules.cosine(1.0, 100)(-1), ValueError,
     "cosine(init_value=1.0, decay_steps=100, alpha=0.0): the step must be >= 0, got -1"),
    (lambda: schedules.cosine(1.0, 100)(1.5), TypeError,
     "cosine(init_value=1.0, decay_steps=100, alpha=0.0): the step must be an integer, got float"),
])
def test_bad_arguments_are_refused_with_a_message(make, error, message):
    with pytest.raises(error) as info:
        make()
    assert str(info.value) == message
