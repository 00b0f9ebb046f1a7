"""Network: training, inference, zero-copy parameter and gradient views, activations, optimizer
swaps, checkpoints, input conversion rules and lifetimes."""
from __future__ import annotations

import gc
import json

import numpy as np
import pytest

import descent
from conftest import last_error, toy_batch


def _separable(rng, n=256, features=10, classes=3):
    """Classes with distinct means: a small net learns them quickly."""
    centers = rng.standard_normal((classes, features)).astype(np.float32) * 3
    y = rng.integers(0, classes, n).astype(np.int32)
    x = (centers[y] + rng.standard_normal((n, features)).astype(np.float32)).astype(np.float32)
    return np.ascontiguousarray(x), y


def test_constructor_spec_and_parameter_names():
    net = descent.Network(sizes=[12, 8, 6, 4], activation="tanh", init="xavier", batchnorm=True,
                          dropout=0.1, weight_decay=0.01, seed=7)
    assert net.spec["sizes"] == [12, 8, 6, 4]
    assert net.spec["activation"] == "tanh" and net.spec["init"] == "xavier"
    assert net.spec["batchnorm"] is True and net.spec["dropout"] == pytest.approx(0.1)
    assert net.spec["weight_decay"] == pytest.approx(0.01) and net.spec["seed"] == 7
    shapes = {k: v.shape for k, v in net.params.items()}
    assert shapes == {"W1": (12, 8), "b1": (8,), "gamma1": (8,), "beta1": (8,),
                      "W2": (8, 6), "b2": (6,), "gamma2": (6,), "beta2": (6,),
                      "W3": (6, 4), "b3": (4,)}
    assert {k: v.shape for k, v in net.grads.items()} == shapes
    for v in net.params.values():
        assert v.dtype == np.float32 and v.flags.c_contiguous
    np.testing.assert_array_equal(net.params["gamma1"], 1)
    np.testing.assert_array_equal(net.params["beta1"], 0)
    np.testing.assert_array_equal(net.params["b1"], 0)


def test_he_init_statistics_and_seed_determinism():
    a = descent.Network(sizes=[400, 300, 10], init="he", seed=5)
    b = descent.Network(sizes=[400, 300, 10], init="he", seed=5)
    c = descent.Network(sizes=[400, 300, 10], init="he", seed=6)
    np.testing.assert_array_equal(a.params["W1"], b.params["W1"])
    assert not np.array_equal(a.params["W1"], c.params["W1"])
    assert a.params["W1"].std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)
    assert abs(a.params["W1"].mean()) < 0.01


def test_train_step_learns_and_evaluate_reports(rng):
    x, y = _separable(rng)
    net = descent.Network(sizes=[10, 16, 3], seed=1)
    net.set_optimizer("adam", lr=0.01)
    loss0, acc0 = net.evaluate(x, y)
    losses = [net.train_step(x[i:i + 32], y[i:i + 32]) for _ in range(20) for i in range(0, 256, 32)]
    assert all(isinstance(v, float) and np.isfinite(v) for v in losses)
    loss1, acc1 = net.evaluate(x, y)
    assert loss1 < 0.5 * loss0
    assert acc1 > 0.9 and 0.0 <= acc0 <= 1.0
    # evaluate's loss is the mean cross-entropy of predict's probabilities.
    p = net.predict(x).astype(np.float64)
    assert loss1 == pytest.approx(-np.mean(np.log(p[np.arange(len(y)), y])), rel=1e-4)
    assert acc1 == pytest.approx(np.mean(p.argmax(1) == y))


def test_train_step_returns_loss_before_the_update(rng):
    x, y = toy_batch(rng, 8, 5, 3)
    net = descent.Network(sizes=[5, 4, 3], seed=2)
    before, _ = net.evaluate(x, y)
    assert net.train_step(x, y) == pytest.approx(before, rel=1e-5)


def test_forward_backward_then_apply_update_equals_train_step(rng):
    x, y = toy_batch(rng, 16, 6, 4)
    a = descent.Network(sizes=[6, 7, 4], seed=3)
    b = descent.Network(sizes=[6, 7, 4], seed=3)
    for net in (a, b):
        net.set_optimizer("momentum", lr=0.1, momentum=0.9)
    for _ in range(3):
        la = a.train_step(x, y)
        lb = b.forward_backward(x, y)
        b.apply_update()
        assert la == lb
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])


def test_gradients_can_be_rewritten_between_forward_backward_and_apply_update(rng):
    # The MPI use case: the library applies what the caller leaves in net.grads.
    x, y = toy_batch(rng, 4, 3, 2)
    net = descent.Network(sizes=[3, 2], seed=1)
    net.set_optimizer("sgd", lr=0.5)
    w = net.params["W1"].copy()
    net.forward_backward(x, y)
    net.grads["W1"][...] = 1.0
    net.grads["b1"][...] = 0.0
    net.apply_update()
    np.testing.assert_allclose(net.params["W1"], w - 0.5, rtol=1e-6)
    with pytest.raises(descent.InvalidArgument) as info:
        net.apply_update()  # each gradient is applied at most once
    assert str(info.value) == last_error()


def test_predict_rows_are_probabilities(rng):
    net = descent.Network(sizes=[9, 11, 5], activation="sigmoid", seed=4)
    x = rng.standard_normal((13, 9)).astype(np.float32)
    p = net.predict(x)
    assert p.shape == (13, 5) and p.dtype == np.float32
    assert np.all(p >= 0) and np.all(p <= 1)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    # one sample is a batch of one row (a 1-D x is refused: test_inputs.py)
    np.testing.assert_allclose(net.predict(x[0].reshape(1, -1)), p[:1], rtol=1e-6)


def test_predict_matches_a_numpy_forward_pass(rng):
    net = descent.Network(sizes=[6, 5, 4, 3], activation="relu", seed=8)
    x = rng.standard_normal((7, 6)).astype(np.float32)
    P = {k: v.astype(np.float64) for k, v in net.params.items()}
    h = np.maximum(x @ P["W1"] + P["b1"], 0)
    h = np.maximum(h @ P["W2"] + P["b2"], 0)
    z = h @ P["W3"] + P["b3"]
    e = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(net.predict(x), e / e.sum(1, keepdims=True), rtol=1e-5, atol=1e-7)


def test_zero_copy_writing_params_changes_predictions(rng):
    net = descent.Network(sizes=[4, 6, 3], seed=1)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    before = net.predict(x)
    W1 = net.params["W1"]
    assert np.shares_memory(net.params["W1"], W1)
    original = W1.copy()
    W1[...] = 0.0  # all hidden units output relu(b1) = 0 -> every class equally likely
    net.params["b2"][...] = 0.0
    after = net.predict(x)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, 1 / 3, rtol=1e-6)
    W1[...] = original
    np.testing.assert_array_equal(net.predict(x), before)
    # and the library's own updates appear in the same arrays
    net.set_optimizer("sgd", lr=0.1)
    W3 = net.params["W2"]
    w3_before = W3.copy()
    net.train_step(x, np.array([0, 1, 2, 0, 1]))
    assert not np.array_equal(W3, w3_before)


def test_grads_match_central_differences():
    """Library gradients against a central-difference estimate of evaluate()'s loss.

    Tolerance: a tanh net (smooth, so no kinks) with O(1) inputs, h = 1e-2. The truncation error of a
    central difference is h^2/6 * |d^3L/dw^3| ~ 2e-5 * O(1); the rounding error of a float32 loss of
    magnitude ~1 is ~ 2 * 6e-8 / (2h) ~ 6e-6. So |analytic - numeric| <= 1e-4 + 1e-2*|g| holds for a
    correct gradient, while a wrong one (a missing term, a transposed matrix) is off by O(|g|)."""
    rng = np.random.default_rng(7)
    net = descent.Network(sizes=[3, 4, 3], activation="tanh", init="xavier", seed=11)
    x = rng.standard_normal((5, 3)).astype(np.float32)
    y = np.array([0, 2, 1, 1, 0], dtype=np.int32)
    net.forward_backward(x, y)
    analytic = {k: v.copy() for k, v in net.grads.items()}
    params = net.params
    h = 1e-2
    checked = 0
    for name, p in params.items():
        flat = p.reshape(-1)  # a view of library memory
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + h
            up, _ = net.evaluate(x, y)
            flat[i] = old - h
            down, _ = net.evaluate(x, y)
            flat[i] = old
            numeric = (up - down) / (2 * h)
            g = analytic[name].reshape(-1)[i]
            assert abs(g - numeric) <= 1e-4 + 1e-2 * abs(g), f"{name}[{i}]: {g} vs {numeric}"
            checked += 1
    assert checked == 3 * 4 + 4 + 4 * 3 + 3
    assert max(np.abs(g).max() for g in analytic.values()) > 1e-2  # not a vacuous check


def test_grads_include_the_weight_decay_term(rng):
    x, y = toy_batch(rng, 6, 4, 3)
    plain = descent.Network(sizes=[4, 5, 3], seed=9)
    decayed = descent.Network(sizes=[4, 5, 3], seed=9, weight_decay=0.3)
    plain.forward_backward(x, y)
    decayed.forward_backward(x, y)
    np.testing.assert_allclose(decayed.grads["W1"], plain.grads["W1"] + 0.3 * plain.params["W1"],
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(decayed.grads["b1"], plain.grads["b1"], rtol=1e-6, atol=1e-8)


def test_activations_shape_and_values(rng):
    net = descent.Network(sizes=[6, 5, 4, 3], activation="relu", seed=2)
    x = rng.standard_normal((9, 6)).astype(np.float32)
    with pytest.raises(descent.InvalidArgument) as info:
        net.activations(0)  # no forward pass yet
    assert str(info.value) == last_error()
    net.predict(x)
    a0, a1 = net.activations(0), net.activations(1)
    assert a0.shape == (9, 5) and a1.shape == (9, 4)
    assert a0.dtype == np.float32 and np.all(a0 >= 0)
    expected = np.maximum(x.astype(np.float64) @ net.params["W1"] + net.params["b1"], 0)
    np.testing.assert_allclose(a0, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(descent.InvalidArgument):
        net.activations(2)  # only hidden layers
    with pytest.raises(descent.InvalidArgument):
        net.activations(-1)


def test_set_optimizer_swaps_mid_training_keeping_weights(rng):
    x, y = _separable(rng, n=64)
    net = descent.Network(sizes=[10, 8, 3], seed=1)
    for _ in range(5):
        net.train_step(x, y)
    weights = {k: v.copy() for k, v in net.params.items()}
    net.set_optimizer("momentum", lr=0.01, momentum=0.9)
    for k in weights:
        np.testing.assert_array_equal(net.params[k], weights[k])  # weights kept
    # fresh momentum state: the first step is plain -lr*g
    net.forward_backward(x, y)
    g = net.grads["W2"].copy()
    net.apply_update()
    np.testing.assert_allclose(net.params["W2"], weights["W2"] - 0.01 * g, rtol=1e-5, atol=1e-7)
    net.set_optimizer("adam", lr=0.005)
    losses = [net.train_step(x, y) for _ in range(30)]
    assert losses[-1] < losses[0]
    with pytest.raises(descent.InvalidArgument) as info:
        net.set_optimizer("adam", lr=-1)
    assert str(info.value) == last_error()


def test_checkpoint_round_trip_continues_exactly(tmp_path, rng):
    x, y = _separable(rng, n=96)
    spec = dict(sizes=[10, 12, 12, 3], activation="relu", batchnorm=True, dropout=0.2, seed=21)
    batches = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 96, 32)] * 4

    straight = descent.Network(**spec)
    straight.set_optimizer("adam", lr=0.01)
    straight_losses = [straight.train_step(bx, by) for bx, by in batches]

    first = descent.Network(**spec)
    first.set_optimizer("adam", lr=0.01)
    losses = [first.train_step(bx, by) for bx, by in batches[:5]]
    path = tmp_path / "net.safetensors"
    first.save(path)
    second = descent.Network.load(path)
    assert second.spec == first.spec
    np.testing.assert_array_equal(second.predict(x), first.predict(x))
    for k in first.params:
        np.testing.assert_array_equal(second.params[k], first.params[k])
    losses += [second.train_step(bx, by) for bx, by in batches[5:]]
    assert losses == straight_losses  # bit-identical: optimizer state, step, dropout RNG restored
    for k in straight.params:
        np.testing.assert_array_equal(second.params[k], straight.params[k])


def test_checkpoint_is_readable_by_safetensors(tmp_path, rng):
    st = pytest.importorskip("safetensors.numpy")
    net = descent.Network(sizes=[7, 5, 3], seed=4)
    net.set_optimizer("momentum", lr=0.1)
    x, y = toy_batch(rng, 4, 7, 3)
    net.train_step(x, y)
    path = tmp_path / "ckpt.safetensors"
    net.save(path)
    tensors = st.load_file(str(path))
    assert tensors["W1"].shape == (7, 5) and tensors["W1"].dtype == np.float32
    np.testing.assert_array_equal(tensors["W1"], net.params["W1"])
    np.testing.assert_array_equal(tensors["b2"], net.params["b2"])
    assert any(k.startswith("optimizer.W1") for k in tensors)  # momentum's velocity is saved
    from safetensors import safe_open
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
    assert meta and json.dumps(meta)  # spec and optimizer live in __metadata__


def test_save_replaces_an_existing_file_atomically(tmp_path, rng):
    path = tmp_path / "n.safetensors"
    a = descent.Network(sizes=[4, 3], seed=1)
    b = descent.Network(sizes=[4, 3], seed=2)
    a.save(path)
    b.save(path)
    np.testing.assert_array_equal(descent.Network.load(path).params["W1"], b.params["W1"])
    assert [p.name for p in tmp_path.iterdir()] == ["n.safetensors"]  # no temp file left


def test_save_load_accepts_pathlike_and_str(tmp_path):
    net = descent.Network(sizes=[4, 3], seed=1)
    net.save(str(tmp_path / "s.safetensors"))
    net.save(tmp_path / "p.safetensors")
    assert descent.Network.load(str(tmp_path / "p.safetensors")).sizes == [4, 3]


# -- input conversion rules (messages: test_inputs.py) ------------------------------------------
def test_train_step_rejects_float64_and_changes_nothing(rng):
    net = descent.Network(sizes=[4, 3], seed=1)
    x = rng.standard_normal((2, 4))  # float64
    w = net.params["W1"].copy()
    for step in (net.train_step, net.forward_backward):
        with pytest.raises(descent.InvalidArgument):
            step(x, np.array([0, 1]))
    np.testing.assert_array_equal(net.params["W1"], w)


def test_predict_and_evaluate_convert_float64(rng):
    net = descent.Network(sizes=[4, 5, 3], seed=1)
    x64 = rng.standard_normal((6, 4))
    y = np.array([0, 1, 2, 0, 1, 2])
    np.testing.assert_array_equal(net.predict(x64), net.predict(x64.astype(np.float32)))
    assert net.evaluate(x64, y) == net.evaluate(x64.astype(np.float32), y)
    strided = np.zeros((6, 8), np.float32)[:, ::2]
    assert net.predict(strided).shape == (6, 3)


def test_every_integer_label_dtype_gives_the_same_step(rng):
    x, y = toy_batch(rng, 8, 4, 3)
    losses = []
    for labels in (y, y.astype(np.int64), y.astype(np.uint8), y.astype(np.int16), y.astype(np.uint64),
                   np.repeat(y, 2)[::2]):
        net = descent.Network(sizes=[4, 3], seed=1)
        losses.append(net.train_step(x, labels))
    assert len(set(losses)) == 1


def test_out_of_range_label_keeps_the_library_message(rng):
    net = descent.Network(sizes=[4, 3], seed=1)
    x = np.zeros((2, 4), np.float32)
    with pytest.raises(descent.InvalidArgument) as info:
        net.train_step(x, np.array([0, -1]))
    assert str(info.value) == last_error()  # the library names the bad label


# -- lifetimes ------------------------------------------------------------------------------------
def test_views_stay_valid_after_close(rng):
    net = descent.Network(sizes=[50, 40, 3], seed=1)
    W1, g1 = net.params["W1"], net.grads["W1"]
    expected = W1.copy()
    net.close()
    with pytest.raises(descent.InvalidArgument, match="closed"):
        net.predict(np.zeros((1, 50), np.float32))
    with pytest.raises(descent.InvalidArgument, match="closed"):
        net.params
    del net
    gc.collect()
    # Other allocations would reuse freed memory; the views must still hold the old values.
    junk = [descent.Network(sizes=[50, 40, 3], seed=s) for s in range(5)]
    np.testing.assert_array_equal(W1, expected)
    W1[...] = 1.0  # writable, and it is still the network's memory (kept alive by the view)
    assert np.all(np.isfinite(g1))
    del junk, W1, g1
    gc.collect()


def test_context_manager_and_many_networks_do_not_leak_or_crash(rng):
    for s in range(50):
        with descent.Network(sizes=[20, 10, 3], seed=s) as net:
            net.train_step(*toy_batch(rng, 4, 20, 3))
    assert "closed" in repr(net)


# -- the training loop's fast path ------------------------------------------------------------------
def test_data_address_matches_numpy_for_views_and_offsets():
    from descent._lib import data_address
    base = np.arange(200, dtype=np.float32).reshape(20, 10)
    for a in (base, base[3:], base[7:9], base[5], base.ravel()[13:], np.zeros(0, np.float32),
              np.zeros((3, 4), np.int32)[1:], np.float32(2.0) * np.ones(1, np.float32)):
        assert data_address(a) == a.ctypes.data


def test_train_step_on_offset_views_reads_the_right_rows(rng):
    # Mini-batches are usually slices of the training set: C-contiguous views at an offset.
    x, y = toy_batch(rng, 40, 6, 3)
    a = descent.Network(sizes=[6, 5, 3], seed=4)
    b = descent.Network(sizes=[6, 5, 3], seed=4)
    for start in (0, 8, 16, 24, 32):
        la = a.train_step(x[start:start + 8], y[start:start + 8])
        lb = b.train_step(x[start:start + 8].copy(), y[start:start + 8].copy())
        assert la == lb
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])


def test_fast_and_checked_paths_agree(rng, monkeypatch):
    x, y = toy_batch(rng, 8, 6, 3)
    fast = descent.Network(sizes=[6, 5, 3], seed=4)
    fast_losses = [fast.train_step(x, y) for _ in range(3)]
    import descent.network as network
    monkeypatch.setattr(network, "_FAST_ADDRESS", False)  # as on an interpreter without the layout
    checked = descent.Network(sizes=[6, 5, 3], seed=4)
    assert [checked.train_step(x, y) for _ in range(3)] == fast_losses
    with pytest.raises(descent.InvalidArgument, match="^Network.train_step: x has dtype float64, not float32"):
        checked.train_step(x.astype(np.float64), y)


def test_train_step_errors_keep_the_library_message_on_the_fast_path(rng):
    net = descent.Network(sizes=[6, 5, 3], seed=4)
    x, y = toy_batch(rng, 4, 6, 3)
    y[2] = 9
    with pytest.raises(descent.InvalidArgument) as info:
        net.train_step(x, y)
    assert str(info.value) == last_error() and "9" in str(info.value)
    x[1, 1] = np.inf
    y[2] = 0
    with pytest.raises(descent.NumericError) as info:
        net.train_step(x, y)
    assert str(info.value) == last_error()
    with pytest.raises(descent.InvalidArgument) as info:
        net.train_step(x, y[:3])
    assert str(info.value) == "Network.train_step: y has shape (3,); expected (4,), one label per row of x"
    with pytest.raises(descent.InvalidArgument) as info:
        net.train_step(np.zeros((4, 5), np.float32), y)
    assert str(info.value) == "Network.train_step: x has shape (4, 5); expected (batch, 6)"
    with pytest.raises(descent.InvalidArgument) as info:
        net.train_step(np.zeros((0, 6), np.float32), np.zeros(0, np.int32))
    assert str(info.value) == "Network.train_step: x has no rows"
    net.close()
    with pytest.raises(descent.InvalidArgument, match="closed"):
        net.train_step(np.zeros((4, 6), np.float32), np.zeros(4, np.int32))
