"""The one input rule of Network.train_step, forward_backward, evaluate and predict: the same
types accepted and the same exact messages from each, only the copy of x differing (training
never copies x; evaluate and predict copy other float arrays to float32)."""
from __future__ import annotations

import numpy as np
import pytest

import descent

FEATURES, CLASSES = 4, 3
TRAINING = ["train_step", "forward_backward"]
INFERENCE = ["evaluate", "predict"]
METHODS = TRAINING + INFERENCE
WITH_LABELS = ["train_step", "forward_backward", "evaluate"]

X = np.arange(8, dtype=np.float32).reshape(2, FEATURES) / 8
Y = np.array([0, 2], dtype=np.int32)


def call(net, method, x, y=Y):
    fn = getattr(net, method)
    return fn(x) if method == "predict" else fn(x, y)


def message_of(method, x, y=Y) -> str:
    net = descent.Network(sizes=[FEATURES, 5, CLASSES], seed=1)
    weights = {k: v.copy() for k, v in net.params.items()}
    with pytest.raises(descent.InvalidArgument) as info:
        call(net, method, x, y)
    for k, v in net.params.items():
        np.testing.assert_array_equal(v, weights[k])   # a refused call changes nothing
    return str(info.value)


X_CASES = [  # (id, x, message after "Network.<method>: ")
    ("list", X.tolist(), "x must be a numpy array, got list (np.asarray(x, dtype=np.float32) makes one)"),
    ("scalar", np.float32(1.0), "x must be a numpy array, got float32 (np.asarray(x, dtype=np.float32) makes one)"),
    ("1-D", X[0], "x has shape (4,); expected a 2-D array (batch, 4); one sample is x.reshape(1, -1)"),
    ("0-D", np.array(1.0, np.float32), "x has shape (); expected a 2-D array (batch, 4)"),
    ("3-D", X.reshape(2, 2, 2), "x has shape (2, 2, 2); expected a 2-D array (batch, 4); "
                                "flatten each sample: x.reshape(len(x), -1)"),
    ("features", np.zeros((2, 5), np.float32), "x has shape (2, 5); expected (batch, 4)"),
    ("no rows", np.zeros((0, FEATURES), np.float32), "x has no rows"),
    ("uint8", np.zeros((2, FEATURES), np.uint8),
     "x has dtype uint8; features must be floats (scale integer pixels first, e.g. x.astype(np.float32) / 255)"),
    ("bool", np.zeros((2, FEATURES), bool), "x has dtype bool; features must be floats"),
]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", X_CASES, ids=[c[0] for c in X_CASES])
def test_every_method_refuses_the_same_x_with_the_same_message(method, case):
    _, x, message = case
    y = Y[:0] if case[0] == "no rows" else Y
    assert message_of(method, x, y) == f"Network.{method}: {message}"


COPY_HINT = "training never copies x, so convert the data set once, outside the loop: " \
            "np.ascontiguousarray(x, dtype=np.float32)"
COPY_CASES = [
    ("float64", X.astype(np.float64), "x has dtype float64, not float32: "),
    ("fortran", np.asfortranarray(X), "x is not C-contiguous: "),
    ("strided", np.repeat(X, 2, axis=1)[:, ::2], "x is not C-contiguous: "),
    ("float64 fortran", np.asfortranarray(X.astype(np.float64)), "x has dtype float64, not float32, and is not "
                                                                  "C-contiguous: "),
    ("float16", X.astype(np.float16), "x has dtype float16, not float32: "),
]


@pytest.mark.parametrize("case", COPY_CASES, ids=[c[0] for c in COPY_CASES])
@pytest.mark.parametrize("method", TRAINING)
def test_training_never_copies_x_and_says_how_to_convert_once(method, case):
    _, x, problem = case
    assert message_of(method, x) == f"Network.{method}: {problem}{COPY_HINT}"


@pytest.mark.parametrize("case", COPY_CASES, ids=[c[0] for c in COPY_CASES])
@pytest.mark.parametrize("method", INFERENCE)
def test_evaluate_and_predict_copy_other_float_arrays_to_float32(method, case):
    _, x, _ = case
    net = descent.Network(sizes=[FEATURES, 5, CLASSES], seed=1)
    exact = np.ascontiguousarray(x, dtype=np.float32)
    got, want = call(net, method, x), call(net, method, exact)
    np.testing.assert_array_equal(got, want)


Y_CASES = [
    ("list", Y.tolist(), "y must be a numpy array of integer labels, got list (np.asarray(y) makes one)"),
    ("tuple", (0, 2), "y must be a numpy array of integer labels, got tuple (np.asarray(y) makes one)"),
    ("short", Y[:1], "y has shape (1,); expected (2,), one label per row of x"),
    ("column", Y.reshape(2, 1), "y has shape (2, 1); expected (2,), one label per row of x"),
    ("scalar array", np.array(1), "y has shape (); expected (2,), one label per row of x"),
    ("float", Y.astype(np.float64), "y has dtype float64; labels must be integers (class indices)"),
    ("bool", np.array([True, False]), "y has dtype bool; labels must be integers (class indices)"),
    ("int64 huge", np.array([0, 2**40]), "y[1] is 1099511627776, outside the range of int32 labels"),
    ("int64 negative", np.array([-2**31 - 1, 0]), "y[0] is -2147483649, outside the range of int32 labels"),
    ("uint64 huge", np.array([1, 2**63], np.uint64), "y[1] is 9223372036854775808, outside the range of int32 labels"),
]


@pytest.mark.parametrize("method", WITH_LABELS)
@pytest.mark.parametrize("case", Y_CASES, ids=[c[0] for c in Y_CASES])
def test_every_method_refuses_the_same_y_with_the_same_message(method, case):
    _, y, message = case
    assert message_of(method, X, y) == f"Network.{method}: {message}"


@pytest.mark.parametrize("method", WITH_LABELS)
def test_lists_are_refused_for_x_and_y_alike(method):
    # Not one converted and the other refused: both are refused, each naming itself.
    assert message_of(method, X.tolist(), Y).startswith(f"Network.{method}: x must be a numpy array, got list")
    assert message_of(method, X, Y.tolist()).startswith(f"Network.{method}: y must be a numpy array of integer "
                                                        "labels, got list")


@pytest.mark.parametrize("method", WITH_LABELS)
def test_every_method_takes_any_integer_label_dtype(method):
    results = []
    for y in (Y, Y.astype(np.int64), Y.astype(np.uint8), Y.astype(np.uint64), np.repeat(Y, 2)[::2]):
        net = descent.Network(sizes=[FEATURES, 5, CLASSES], seed=1)
        results.append(call(net, method, X, y))
    assert all(r == results[0] for r in results)


def test_a_batch_of_one_is_a_2d_row():
    net = descent.Network(sizes=[FEATURES, 5, CLASSES], seed=1)
    one = X[:1]
    assert net.predict(one).shape == (1, CLASSES)
    assert np.isfinite(net.evaluate(one, Y[:1])[0])
    assert np.isfinite(net.train_step(one, Y[:1]))
