"""The module-level API and the Optimizer object's life cycle (issue 4, point 2)."""
from __future__ import annotations

import gc
import re

import numpy as np
import pytest

import descent
from conftest import clib, last_error

BUILTINS = ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"]


# -- module functions ---------------------------------------------------------------------------
def test_version_is_semver_and_matches_the_library():
    assert re.fullmatch(r"\d+\.\d+\.\d+([-+].*)?", descent.__version__)
    assert descent.__version__ == clib.descent_version().decode()


def test_optimizers_lists_the_builtins_first_in_order():
    names = descent.optimizers()
    assert isinstance(names, list) and all(isinstance(n, str) for n in names)
    assert names[:7] == BUILTINS
    assert len(set(names)) == len(names)


def test_describe_adam():
    d = descent.describe("adam")
    assert d["name"] == "adam"
    assert d["origin"] == "built-in"
    assert d["state_buffers"] == 2
    assert "sqrt" in d["description"]
    hp = {h["name"]: h for h in d["hyperparameters"]}
    assert list(hp) == ["lr", "beta1", "beta2", "eps", "eps_hat", "weight_decay", "check_finite"]
    # The book's defaults.
    assert hp["lr"]["default"] == pytest.approx(0.001)
    assert hp["beta1"]["default"] == pytest.approx(0.9)
    assert hp["beta2"]["default"] == pytest.approx(0.999)
    assert hp["eps"]["default"] == pytest.approx(1e-7)
    assert hp["eps_hat"]["default"] == 1 and hp["eps_hat"]["boolean"] is True
    assert hp["weight_decay"]["default"] == 0 and hp["weight_decay"]["provided_by"] == "host"
    assert hp["lr"]["range"] == "(0, inf)" and hp["lr"]["min_exclusive"] is True and hp["lr"]["max"] is None
    assert hp["beta1"]["range"] == "[0, 1)" and hp["beta1"]["max"] == 1
    for h in hp.values():
        assert set(h) >= {"name", "default", "min", "max", "range", "help", "provided_by"}


@pytest.mark.parametrize("name,defaults", [
    ("sgd", {"lr": 0.01}),
    ("momentum", {"lr": 0.01, "momentum": 0.9}),
    ("nesterov", {"lr": 0.01, "momentum": 0.9}),
    ("adagrad", {"lr": 0.01, "eps": 1e-7}),
    ("rmsprop", {"lr": 0.01, "decay": 0.99, "eps": 1e-7}),
    ("adamw", {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01}),
])
def test_describe_defaults_follow_the_design(name, defaults):
    hp = {h["name"]: h["default"] for h in descent.describe(name)["hyperparameters"]}
    for key, value in defaults.items():
        assert hp[key] == pytest.approx(value), key


def test_describe_unknown_name_raises_not_found():
    with pytest.raises(descent.NotFound) as info:
        descent.describe("no_such_optimizer")
    assert str(info.value) == last_error()
    assert "no_such_optimizer" in str(info.value)


def test_num_threads_set_get_and_reject_negative():
    before = descent.get_num_threads()
    try:
        assert descent.set_num_threads(1) == 1
        assert descent.get_num_threads() == 1
        assert descent.set_num_threads(2) == 2
        assert descent.get_num_threads() == 2
        with pytest.raises(descent.InvalidArgument) as info:
            descent.set_num_threads(-1)
        assert str(info.value) == last_error()
        assert "-1" in str(info.value)
        assert descent.get_num_threads() == 2  # a rejected call changes nothing
        assert descent.set_num_threads(0) >= 1  # 0 restores the default
    finally:
        descent.set_num_threads(before)


def test_blas_info_and_library_path():
    assert isinstance(descent.blas_info(), str) and descent.blas_info()
    assert str(descent.library_path).endswith(".so")


def test_public_names_have_docstrings():
    for name in ("optimizers", "describe", "load_plugin", "set_num_threads", "get_num_threads", "Optimizer",
                 "Network", "DescentError"):
        assert getattr(descent, name).__doc__, name
    for name in ("update", "reset", "close", "get", "set", "hyperparameters", "step_count"):
        assert getattr(descent.Optimizer, name).__doc__, name
    for name in ("params", "grads"):
        assert getattr(descent.Network, name).__doc__, name
    import inspect
    for fn in (descent.optimizers, descent.describe, descent.load_plugin, descent.set_num_threads,
               descent.get_num_threads, descent.Optimizer.update, descent.Network.train_step,
               descent.Network.predict, descent.Network.evaluate, descent.datasets.load_idx,
               descent.datasets.fashion_mnist):
        assert inspect.signature(fn).return_annotation is not inspect.Signature.empty, fn.__name__
    for name in ("train_step", "forward_backward", "apply_update", "predict", "evaluate", "activations",
                 "set_optimizer", "save", "load", "close"):
        assert getattr(descent.Network, name).__doc__, name
    assert descent.datasets.load_idx.__doc__ and descent.datasets.fashion_mnist.__doc__


# -- Optimizer construction ---------------------------------------------------------------------
@pytest.mark.parametrize("name", BUILTINS)
def test_optimizer_by_name_with_defaults(name):
    with descent.Optimizer(name) as opt:
        assert opt.name == name
        described = {h["name"]: h["default"] for h in descent.describe(name)["hyperparameters"]}
        assert opt.hyperparameters == pytest.approx(described)
        assert opt.step_count == 0


def test_optimizer_hparams_are_applied():
    opt = descent.Optimizer("momentum", lr=0.05, momentum=0.5, weight_decay=1e-3)
    assert opt.lr == pytest.approx(0.05)
    assert opt.momentum == pytest.approx(0.5)
    assert opt.weight_decay == pytest.approx(1e-3)
    opt.close()


def test_unknown_optimizer_name_raises_not_found_with_library_message():
    with pytest.raises(descent.NotFound) as info:
        descent.Optimizer("adamm")
    msg = str(info.value)
    assert msg == last_error()
    assert msg.startswith("descent_optimizer_create: unknown optimizer 'adamm'; known: sgd, momentum")
    assert isinstance(info.value, descent.DescentError) and isinstance(info.value, LookupError)
    assert info.value.status == 2 and info.value.status_name == "DESCENT_ERR_NOT_FOUND"


def test_unknown_hyperparameter_raises_not_found_with_library_message():
    with pytest.raises(descent.NotFound) as info:
        descent.Optimizer("adam", learning_rate=0.1)
    assert str(info.value) == last_error()
    assert str(info.value) == ("descent_optimizer_create: unknown hyperparameter 'learning_rate' for adam; "
                               "known: lr, beta1, beta2, eps, eps_hat, weight_decay, check_finite")


@pytest.mark.parametrize("hparams,needle", [
    ({"lr": -1.0}, "hyperparameter 'lr' = -1 is out of range (0, inf)"),
    ({"lr": 0.0}, "'lr'"),
    ({"momentum": 1.0}, "'momentum'"),
    ({"lr": float("nan")}, "'lr'"),
    ({"lr": float("inf")}, "'lr'"),
])
def test_out_of_range_value_raises_invalid_argument(hparams, needle):
    with pytest.raises(descent.InvalidArgument) as info:
        descent.Optimizer("momentum", **hparams)
    assert str(info.value) == last_error()
    assert str(info.value).startswith("descent_optimizer_create: ")
    assert needle in str(info.value)
    assert isinstance(info.value, ValueError)


def test_non_number_value_is_a_type_error():
    with pytest.raises(TypeError, match="'lr' must be a number"):
        descent.Optimizer("sgd", lr="fast")


def test_boolean_hyperparameter_accepts_python_bools():
    with descent.Optimizer("adam", eps_hat=False) as opt:
        assert opt.eps_hat == 0.0
    with descent.Optimizer("adam", eps_hat=True) as opt:
        assert opt.eps_hat == 1.0


def test_key_with_separator_cannot_smuggle_a_second_hyperparameter():
    with pytest.raises(descent.InvalidArgument, match="not a valid hyperparameter name"):
        descent.Optimizer("momentum", **{"lr=0.5,momentum": 0.1})


# -- hyperparameters as attributes, reset, life cycle -------------------------------------------
def test_lr_get_set_keeps_state_and_step():
    p = np.ones(4, dtype=np.float32)
    g = np.full(4, 0.5, dtype=np.float32)
    opt = descent.Optimizer("sgd", lr=0.1)
    assert opt.lr == pytest.approx(0.1)
    opt.update([p], [g])
    np.testing.assert_allclose(p, 1 - 0.1 * 0.5, rtol=1e-6)
    opt.lr = 0.01
    assert opt.lr == pytest.approx(0.01)
    assert opt.step_count == 1
    opt.update([p], [g])
    np.testing.assert_allclose(p, 1 - 0.1 * 0.5 - 0.01 * 0.5, rtol=1e-6)
    assert opt.step_count == 2


def test_setting_an_invalid_lr_raises_and_keeps_the_old_value():
    opt = descent.Optimizer("sgd", lr=0.1)
    with pytest.raises(descent.InvalidArgument) as info:
        opt.lr = -0.5
    assert str(info.value) == last_error()
    assert str(info.value).startswith("descent_optimizer_set: ")
    assert opt.lr == pytest.approx(0.1)


def test_unknown_attribute_is_an_attribute_error():
    opt = descent.Optimizer("sgd")
    with pytest.raises(AttributeError) as info:
        opt.momentum
    assert str(info.value) == ("Optimizer 'sgd' has no attribute 'momentum'; its hyperparameters: lr, weight_decay, "
                               "check_finite")
    with pytest.raises(AttributeError) as info:
        opt.momentum = 0.9
    assert str(info.value) == ("'momentum' is not a hyperparameter of Optimizer 'sgd'; its hyperparameters: "
                               "lr, weight_decay, check_finite")
    with pytest.raises(descent.NotFound) as info:
        opt.get("momentum")
    assert str(info.value) == last_error()


def test_reset_forgets_state_and_allows_new_shapes():
    opt = descent.Optimizer("momentum", lr=0.1, momentum=0.9)
    p = np.zeros(3, dtype=np.float32)
    g = np.ones(3, dtype=np.float32)
    opt.update([p], [g])
    opt.update([p], [g])           # v = -0.1 then -0.19: p = -0.29
    np.testing.assert_allclose(p, -0.29, rtol=1e-6)
    assert opt.step_count == 2
    opt.reset()
    assert opt.step_count == 0
    assert opt.lr == pytest.approx(0.1)  # hyperparameters are kept
    q = np.zeros(5, dtype=np.float32)
    opt.update([q], [np.ones(5, dtype=np.float32)])  # fresh state: a new shape is fine
    np.testing.assert_allclose(q, -0.1, rtol=1e-6)  # v started at zero again
    assert opt.step_count == 1


def test_context_manager_closes_and_closed_use_raises():
    with descent.Optimizer("adam") as opt:
        assert "adam" in repr(opt)
    assert "closed" in repr(opt)
    with pytest.raises(descent.InvalidArgument, match="closed"):
        opt.update([np.zeros(2, np.float32)], [np.zeros(2, np.float32)])
    with pytest.raises(descent.InvalidArgument, match="closed"):
        opt.lr
    opt.close()  # closing twice is harmless


def test_close_then_finaliser_and_many_handles_do_not_crash():
    for _ in range(200):
        opt = descent.Optimizer("adam", lr=0.01)
        opt.update([np.zeros(8, np.float32)], [np.ones(8, np.float32)])
        del opt  # the finaliser frees it
    gc.collect()
    opt = descent.Optimizer("sgd")
    opt.close()
    del opt
    gc.collect()
