"""Assigning an attribute that does nothing is an AttributeError naming what exists, on
Network, Optimizer and a network's optimizer; help(descent.Network) and help(descent.Optimizer)
document the constructor and the attributes; the default seed is the library's."""
from __future__ import annotations

import ctypes
import inspect
import json
import pydoc
import re

import numpy as np
import pytest

import descent
from descent._lib import lib as clib

NETWORK_ATTRIBUTES = "optimizer, optimizer_name, params, grads, param_buffer, grad_buffer, spec, sizes"


def _refused(obj, name, value=0.5) -> str:
    with pytest.raises(AttributeError) as info:
        setattr(obj, name, value)
    return str(info.value)


def test_network_refuses_a_hyperparameter_and_points_to_its_optimizer():
    net = descent.Network(sizes=[4, 3])
    assert _refused(net, "lr") == ("Network has no attribute 'lr': lr is a hyperparameter of its optimizer (sgd), "
                                   "set it there: net.optimizer.lr = 0.5")
    net.set_optimizer("momentum")
    assert _refused(net, "momentum", 0.8) == ("Network has no attribute 'momentum': momentum is a hyperparameter of "
                                              "its optimizer (momentum), set it there: net.optimizer.momentum = 0.8")
    assert net.optimizer.lr == pytest.approx(0.01) and net.optimizer.momentum == pytest.approx(0.9)


def test_network_refuses_unknown_and_read_only_attributes():
    net = descent.Network(sizes=[4, 3])
    assert _refused(net, "learning_rate") == ("Network has no attribute 'learning_rate' (its attributes, all "
                                              f"read-only: {NETWORK_ATTRIBUTES})")
    for name in ("spec", "sizes", "params", "grads", "param_buffer", "grad_buffer"):
        assert _refused(net, name, {}) == f"Network.{name} is read-only"
    for name in ("optimizer", "optimizer_name"):
        assert _refused(net, name, "adam") == (f"Network.{name} is read-only; swap it with "
                                               "net.set_optimizer(name, **hyperparameters)")
    assert _refused(net, "train_step", None) == "Network.train_step is read-only"
    assert net.spec["sizes"] == [4, 3] and net.optimizer_name == "sgd"
    net.close()
    assert _refused(net, "lr") == f"Network has no attribute 'lr' (its attributes, all read-only: {NETWORK_ATTRIBUTES})"


def test_spec_and_sizes_are_copies():
    net = descent.Network(sizes=[4, 3])
    net.spec["sizes"].append(9)
    net.sizes.append(9)
    assert net.spec["sizes"] == [4, 3] and net.sizes == [4, 3]


def test_a_subclass_may_add_its_own_attributes():
    class Tagged(descent.Network):
        pass

    net = Tagged(sizes=[4, 3])
    net.tag = "baseline"
    assert net.tag == "baseline"
    assert _refused(net, "spec", {}) == "Network.spec is read-only"


def test_optimizer_refuses_unknown_and_read_only_attributes():
    opt = descent.Optimizer("adam")
    keys = "lr, beta1, beta2, eps, eps_hat, weight_decay, check_finite"
    assert _refused(opt, "learning_rate") == ("'learning_rate' is not a hyperparameter of Optimizer 'adam'; "
                                              f"its hyperparameters: {keys}")
    for name in ("name", "step_count", "hyperparameters", "update"):
        assert _refused(opt, name, 1) == (f"Optimizer 'adam': {name} is read-only; what can be set are its "
                                          f"hyperparameters: {keys}")
    assert opt.name == "adam" and opt.lr == pytest.approx(0.001)


def test_network_optimizer_refuses_unknown_attributes():
    net = descent.Network(sizes=[4, 3])
    assert _refused(net.optimizer, "momentum") == ("'momentum' is not a hyperparameter of the network's optimizer "
                                                   "'sgd'; its hyperparameters: lr, weight_decay, check_finite")
    with pytest.raises(AttributeError) as info:
        net.optimizer.momentum
    assert str(info.value) == ("the network's optimizer 'sgd' has no attribute 'momentum'; its hyperparameters: lr, "
                               "weight_decay, check_finite")


# -- help --------------------------------------------------------------------------------------------

def _help(obj) -> str:
    return pydoc.render_doc(obj, renderer=pydoc.plaintext)


def _documented(doc: str, name: str) -> bool:
    """A docstring line of its own for `name`: "  name   text" or "  other, name   text"."""
    return re.search(rf"^  (\w+, )*{name}\b", doc, re.M) is not None


def test_help_network_documents_the_constructor_and_attributes():
    text = _help(descent.Network)
    doc = inspect.getdoc(descent.Network)
    constructor, attributes = doc.split("Attributes")[0], doc.split("Attributes")[1]
    for parameter in inspect.signature(descent.Network).parameters:
        assert _documented(constructor, parameter), parameter
    for value in ('"relu"', '"sigmoid"', '"tanh"', '"he"', '"xavier"', '"std:X"', '"zeros"', "[0, 1)",
                  "0.5*lambda*sum(W^2)", "42 by default"):
        assert value in text, value
    for attribute in NETWORK_ATTRIBUTES.split(", "):
        assert getattr(descent.Network, attribute).__doc__, attribute
        assert _documented(attributes, attribute), attribute


def test_help_optimizer_documents_the_constructor_and_attributes():
    text = _help(descent.Optimizer)
    for value in ("Optimizer(name, **hyperparameters)", "descent.optimizers()", "descent.describe(name)",
                  "weight_decay", "check_finite", "opt.lr = 0.0005"):
        assert value in text, value
    attributes = inspect.getdoc(descent.Optimizer).split("Attributes")[1]
    for attribute in ("name", "hyperparameters", "step_count"):
        assert _documented(attributes, attribute), attribute
    for method in ("get", "set", "update", "reset", "close", "describe"):
        assert getattr(descent.Optimizer, method).__doc__, method
    assert "net.optimizer.lr = 5e-4" in _help(descent.NetworkOptimizer)


def test_python_default_seed_is_the_librarys():
    assert inspect.signature(descent.Network).parameters["seed"].default == 42
    # The library's own default: a spec without "seed", created through the C API directly.
    handle = ctypes.c_void_p()
    assert clib.descent_net_create(json.dumps({"sizes": [5, 4, 3]}).encode(), ctypes.byref(handle)) == 0
    try:
        w = ctypes.c_void_p()
        length = ctypes.c_int64()
        assert clib.descent_net_param(handle, 0, None, ctypes.byref(w), None, ctypes.byref(length)) == 0
        library_w1 = np.ctypeslib.as_array((ctypes.c_float * length.value).from_address(w.value)).copy()
    finally:
        clib.descent_net_free(handle)
    net = descent.Network(sizes=[5, 4, 3])
    assert net.spec["seed"] == 42
    np.testing.assert_array_equal(net.params["W1"].ravel(), library_w1)
