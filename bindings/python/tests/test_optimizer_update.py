"""Optimizer.update against a numpy implementation of the built-in update rules, written
here independently of the library, plus the input checks and the in-place (no copy) contract.

The reference runs in float64 from the same float32 starting point and float32 gradients; the
library computes in float32. Over 6 steps of O(1) values the float32 rounding of each update stays
far below 1e-5 relative, so rtol=2e-5 with atol=2e-6 (for elements near zero) separates a correct
implementation from any formula slip (a wrong bias correction or an off-by-one t changes values at
the 1e-2..1e-1 level)."""
from __future__ import annotations

import numpy as np
import pytest

import descent
from conftest import last_error

RTOL, ATOL = 2e-5, 2e-6
STEPS = 6


class Reference:
    """The update rules, one object per optimizer, state per tensor key, float64."""

    def __init__(self, name: str, **hp):
        defaults = {h["name"]: h["default"] for h in descent.describe(name)["hyperparameters"]}
        self.name, self.hp, self.t, self.state = name, {**defaults, **hp}, 0, {}

    def step(self, params: dict, grads: dict) -> None:
        self.t += 1
        t, hp = self.t, self.hp
        for key in params:
            p = params[key]
            g = grads[key].astype(np.float64)
            wd = hp.get("weight_decay", 0.0)
            if self.name != "adamw" and wd > 0:
                g = g + wd * p  # L2 form: on the gradient, with the parameter before the update
            s = self.state.setdefault(key, {})
            lr = hp["lr"]
            if self.name == "sgd":
                p -= lr * g
            elif self.name == "momentum":
                v = s.get("v", np.zeros_like(p))
                v = hp["momentum"] * v - lr * g
                p += v
                s["v"] = v
            elif self.name == "nesterov":
                mu = hp["momentum"]
                v = s.get("v", np.zeros_like(p))  # the OLD velocity is used first
                p += mu * mu * v
                p -= (1 + mu) * lr * g
                s["v"] = mu * v - lr * g
            elif self.name == "adagrad":
                h = s.get("h", np.zeros_like(p)) + g * g
                p -= lr * g / (np.sqrt(h) + hp["eps"])
                s["h"] = h
            elif self.name == "rmsprop":
                d = hp["decay"]
                h = d * s.get("h", np.zeros_like(p)) + (1 - d) * g * g
                p -= lr * g / (np.sqrt(h) + hp["eps"])
                s["h"] = h
            elif self.name in ("adam", "adamw"):
                b1, b2, eps = hp["beta1"], hp["beta2"], hp["eps"]
                if self.name == "adamw":
                    p -= lr * hp["weight_decay"] * p
                m = s.get("m", np.zeros_like(p))
                v = s.get("v", np.zeros_like(p))
                m = m + (1 - b1) * (g - m)
                v = v + (1 - b2) * (g * g - v)
                s["m"], s["v"] = m, v
                if self.name == "adam" and hp.get("eps_hat", 1) == 1:  # the book's form
                    lr_t = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
                    p -= lr_t * m / (np.sqrt(v) + eps)
                else:  # PyTorch's form
                    mhat, vhat = m / (1 - b1 ** t), v / (1 - b2 ** t)
                    p -= lr * mhat / (np.sqrt(vhat) + eps)
            else:
                raise AssertionError(self.name)


CASES = [
    ("sgd", {"lr": 0.1}),
    ("momentum", {"lr": 0.05, "momentum": 0.9}),
    ("nesterov", {"lr": 0.05, "momentum": 0.9}),
    ("adagrad", {"lr": 0.1}),
    ("rmsprop", {"lr": 0.01, "decay": 0.9}),
    ("adam", {"lr": 0.01}),
    ("adam", {"lr": 0.01, "eps_hat": 0, "eps": 1e-8}),  # PyTorch's form
    ("adamw", {"lr": 0.01, "weight_decay": 0.1}),
]


def _ids(case):
    name, hp = case
    return name + ("-torch" if hp.get("eps_hat") == 0 else "")


def _tensors(rng):
    # Several shapes, including a scalar-like tensor and a matrix; O(1) values.
    return {"W1": rng.standard_normal((5, 7)).astype(np.float32),
            "b1": rng.standard_normal(7).astype(np.float32),
            "W2": rng.standard_normal((7, 3)).astype(np.float32),
            "s": rng.standard_normal(1).astype(np.float32)}


@pytest.mark.parametrize("weight_decay", [0.0, 0.05], ids=["no_wd", "wd"])
@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_update_dicts_matches_design_formulas(case, weight_decay, rng):
    name, hp = case
    hp = dict(hp)
    if weight_decay and name != "adamw":
        hp["weight_decay"] = weight_decay  # adamw's own weight_decay is already set (decoupled)
    params = _tensors(rng)
    ref_params = {k: v.astype(np.float64) for k, v in params.items()}
    ref = Reference(name, **hp)
    originals = {k: v for k, v in params.items()}
    with descent.Optimizer(name, **hp) as opt:
        for step in range(1, STEPS + 1):
            grads = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in params.items()}
            opt.update(params, grads)
            ref.step(ref_params, grads)
            assert opt.step_count == step
            for k in params:
                np.testing.assert_allclose(params[k], ref_params[k], rtol=RTOL, atol=ATOL,
                                           err_msg=f"{name} {hp} step {step} tensor {k}")
    for k in params:
        assert params[k] is originals[k]  # the same objects, updated in place


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_update_lists_matches_design_formulas(case, rng):
    name, hp = case
    params = list(_tensors(rng).values())
    views = [p.reshape(-1) for p in params]  # aliases of the same memory
    ref_params = {str(i): p.astype(np.float64) for i, p in enumerate(params)}
    ref = Reference(name, **hp)
    opt = descent.Optimizer(name, **hp)
    for _ in range(STEPS):
        grads = [rng.standard_normal(p.shape).astype(np.float32) for p in params]
        opt.update(params, grads)
        ref.step(ref_params, {str(i): g for i, g in enumerate(grads)})
    for i, p in enumerate(params):
        np.testing.assert_allclose(p, ref_params[str(i)], rtol=RTOL, atol=ATOL)
        np.testing.assert_array_equal(views[i], p.reshape(-1))  # memory itself changed, no copy
        assert np.shares_memory(views[i], p)
    opt.close()


def test_adam_book_and_torch_forms_differ_in_the_expected_way(rng):
    # With a large eps the two forms are far apart: the check above would catch a swapped flag.
    p1 = np.ones(4, np.float32)
    p2 = p1.copy()
    g = np.full(4, 0.01, np.float32)
    descent.Optimizer("adam", lr=0.1, eps=0.1).update([p1], [g])
    descent.Optimizer("adam", lr=0.1, eps=0.1, eps_hat=0).update([p2], [g])
    # step 1: book: lr*sqrt(1-b2)/(1-b1) * m/(sqrt(v)+eps); torch: lr*mhat/(sqrt(vhat)+eps)
    book = 1 - 0.1 * np.sqrt(0.001) / 0.1 * 0.001 / (np.sqrt(0.001 * 1e-4) + 0.1)
    torch = 1 - 0.1 * 0.01 / (0.01 + 0.1)
    np.testing.assert_allclose(p1, book, rtol=1e-6)
    np.testing.assert_allclose(p2, torch, rtol=1e-6)
    assert abs(book - torch) > 1e-3


def test_update_of_net_sized_tensors_uses_threads_and_stays_exact(rng):
    # >= 32768 elements in total runs the update on several threads: same numbers as the reference.
    params = {"W": rng.standard_normal((300, 200)).astype(np.float32)}
    ref_params = {"W": params["W"].astype(np.float64)}
    ref = Reference("adam", lr=0.01)
    opt = descent.Optimizer("adam", lr=0.01)
    for _ in range(3):
        grads = {"W": rng.standard_normal((300, 200)).astype(np.float32)}
        opt.update(params, grads)
        ref.step(ref_params, grads)
    np.testing.assert_allclose(params["W"], ref_params["W"], rtol=RTOL, atol=ATOL)


# -- rejected inputs ----------------------------------------------------------------------------------
def _pg(n=6):
    return np.zeros(n, np.float32), np.ones(n, np.float32)


def _rejects(opt, params, grads, *needles):
    with pytest.raises(descent.InvalidArgument) as info:
        opt.update(params, grads)
    for needle in needles:
        assert needle in str(info.value), str(info.value)
    return str(info.value)


def test_float64_is_rejected_not_converted():
    opt = descent.Optimizer("sgd")
    p, g = _pg()
    p64 = p.astype(np.float64)
    _rejects(opt, {"w": p64}, {"w": g}, "params['w']", "float64", "float32")
    assert np.all(p64 == 0)  # untouched
    _rejects(opt, {"w": p}, {"w": g.astype(np.float64)}, "grads['w']", "float64")
    assert opt.step_count == 0


def test_non_contiguous_is_rejected():
    opt = descent.Optimizer("sgd")
    big = np.zeros((4, 6), np.float32)
    strided = big[:, ::2]
    _rejects(opt, [strided], [np.ones((4, 3), np.float32)], "params['0']", "C-contiguous")
    _rejects(opt, [np.zeros(6, np.float32)], [np.ones(12, np.float32)[::2]], "grads['0']", "C-contiguous")
    fortran = np.asfortranarray(np.zeros((3, 4), np.float32))
    _rejects(opt, [fortran], [np.ones((3, 4), np.float32)], "C-contiguous")


def test_read_only_params_are_rejected_but_read_only_grads_are_fine():
    opt = descent.Optimizer("sgd", lr=0.5)
    p, g = _pg()
    p.flags.writeable = False
    _rejects(opt, [p], [g], "params['0']", "read-only")
    p2, g2 = _pg()
    g2.flags.writeable = False
    opt.update([p2], [g2])
    np.testing.assert_allclose(p2, -0.5)


def test_shape_mismatch_between_param_and_grad_is_rejected():
    opt = descent.Optimizer("sgd")
    msg = _rejects(opt, {"W": np.zeros((2, 3), np.float32)}, {"W": np.zeros((3, 2), np.float32)},
                   "params['W']", "(2, 3)", "(3, 2)")
    assert "shape" in msg


def _exact(opt, params, grads, message):
    with pytest.raises(descent.InvalidArgument) as info:
        opt.update(params, grads)
    assert str(info.value) == message


def test_key_mismatch_names_the_missing_and_extra_keys():
    opt = descent.Optimizer("sgd", lr=0.5)
    p, g = _pg()
    before = p.copy()
    _exact(opt, {"W1": p, "b1": p.copy(), "W2": p.copy()}, {"W1": g, "W2": g.copy()},
           "params and grads have different keys: grads lacks 'b1'")
    _exact(opt, {"W1": p}, {"W1": g, "b1": g.copy(), "b2": g.copy()},
           "params and grads have different keys: grads has 'b1', 'b2', which params lacks")
    _exact(opt, {"W1": p, "b1": p.copy()}, {"W1": g, "b2": g.copy()},
           "params and grads have different keys: grads lacks 'b1'; grads has 'b2', which params lacks")
    np.testing.assert_array_equal(p, before)  # nothing was updated
    assert opt.step_count == 0
    # The same keys in another order are the same keys: matched by name, not position.
    opt.update({"a": p, "b": p.copy()}, {"b": np.zeros_like(g), "a": g})
    np.testing.assert_allclose(p, before - 0.5 * g, rtol=1e-6)


def test_mismatched_containers_are_rejected():
    opt = descent.Optimizer("sgd")
    p, g = _pg()
    _exact(opt, {"a": p}, [g], "params is a dict but grads is a list: pass two dicts with the same keys, or two lists")
    _rejects(opt, [p, p.copy()], [g], "2 params but 1 grads")
    _rejects(opt, [], [], "empty")
    _rejects(opt, [p.tolist()], [g], "numpy array", "list")


def test_rejections_do_not_touch_the_library_error_message():
    # Binding-side checks raise InvalidArgument too, with their own message; the library's
    # last error is not consulted for them (so it cannot be a stale message).
    opt = descent.Optimizer("sgd")
    with pytest.raises(descent.InvalidArgument) as info:
        opt.update([np.zeros(3)], [np.zeros(3, np.float32)])
    assert str(info.value) != last_error()
