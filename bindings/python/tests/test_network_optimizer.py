"""net.optimizer: the network's own optimizer, borrowed through descent_net_optimizer, with the
attribute interface of descent.Optimizer; what happens to it after set_optimizer and close."""
from __future__ import annotations

import numpy as np
import pytest

import descent
from conftest import last_error, toy_batch


def _net(**spec):
    return descent.Network(sizes=[6, 5, 3], seed=3, **spec)


def test_reads_the_optimizer_in_use():
    net = _net()
    opt = net.optimizer
    assert isinstance(opt, descent.NetworkOptimizer)
    assert opt.name == "sgd" and net.optimizer_name == "sgd"
    assert opt.lr == pytest.approx(0.01)
    assert opt.hyperparameters == {"lr": pytest.approx(0.01), "weight_decay": 0.0, "check_finite": 1.0}
    assert opt.step_count == 0
    assert opt.describe() == descent.describe("sgd")
    assert repr(opt) == "<descent.Network optimizer sgd(lr=0.01, weight_decay=0, check_finite=1), step 0>"
    net.set_optimizer("momentum", lr=0.1, momentum=0.5)
    assert net.optimizer.name == "momentum" and net.optimizer_name == "momentum"
    assert net.optimizer.momentum == pytest.approx(0.5) and net.optimizer.lr == pytest.approx(0.1)


def test_setting_lr_keeps_moments_and_step_count(rng):
    """The network's Adam with lr changed after 3 steps equals a standalone Adam (same C
    update) driving the same network's parameters through forward_backward with the same
    change: so moments and t survived the change. Resetting the optimizer instead differs."""
    x, y = toy_batch(rng, 8, 6, 3)
    a, b, fresh = _net(), _net(), _net()
    a.set_optimizer("adam", lr=0.01)
    fresh.set_optimizer("adam", lr=0.01)
    standalone = descent.Optimizer("adam", lr=0.01)
    for step in range(5):
        if step == 3:
            a.optimizer.lr = 0.002
            standalone.lr = 0.002
            fresh.set_optimizer("adam", lr=0.002)   # the same lr, but moments and t start over
        a.train_step(x, y)
        fresh.train_step(x, y)
        b.forward_backward(x, y)
        standalone.update(b.params, b.grads)
    assert a.optimizer.step_count == 5 and a.optimizer.lr == pytest.approx(0.002)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    assert not np.array_equal(a.params["W1"], fresh.params["W1"])


def test_a_bad_value_keeps_the_old_one_with_the_librarys_message():
    net = _net()
    with pytest.raises(descent.InvalidArgument) as info:
        net.optimizer.lr = -1.0
    assert str(info.value) == last_error() and str(info.value).startswith("descent_optimizer_set: ")
    assert net.optimizer.lr == pytest.approx(0.01)


def test_a_second_l2_term_is_refused():
    net = _net(weight_decay=0.01)
    with pytest.raises(descent.InvalidArgument) as info:
        net.optimizer.weight_decay = 0.001
    assert str(info.value) == last_error() and "weight_decay" in str(info.value)
    assert net.optimizer.weight_decay == 0.0


def test_reset_forgets_the_step_count(rng):
    net = _net()
    net.train_step(*toy_batch(rng, 4, 6, 3))
    assert net.optimizer.step_count == 1
    net.optimizer.reset()
    assert net.optimizer.step_count == 0 and net.optimizer.lr == pytest.approx(0.01)


def test_update_and_close_are_refused():
    net = _net()
    opt = net.optimizer
    with pytest.raises(descent.InvalidArgument) as info:
        opt.update(net.params, net.grads)
    assert str(info.value) == (
        "net.optimizer.update: this sgd optimizer belongs to a network, which steps it with its own parameters in "
        "net.train_step (or net.apply_update); for your own arrays create one: descent.Optimizer('sgd', ...)")
    with pytest.raises(descent.InvalidArgument) as info:
        opt.close()
    assert str(info.value) == ("net.optimizer.close: this sgd optimizer belongs to a network and is freed with it "
                               "by net.close()")
    assert opt.lr == pytest.approx(0.01)   # still usable


def test_an_object_from_before_set_optimizer_refuses_use(rng):
    net = _net()
    old = net.optimizer
    net.set_optimizer("adam", lr=0.005)
    expected = "this sgd optimizer was replaced by net.set_optimizer('adam', ...); net.optimizer gives the one in use"
    for use in (lambda: old.lr, lambda: setattr(old, "lr", 0.5), lambda: old.hyperparameters, old.reset,
                lambda: old.step_count):
        with pytest.raises(descent.InvalidArgument) as info:
            use()
        assert str(info.value) == expected
    assert net.optimizer.lr == pytest.approx(0.005)   # untouched by the refused set
    assert repr(old) == f"<descent.Network optimizer sgd ({expected})>"


def test_a_failed_set_optimizer_keeps_the_object_valid():
    net = _net()
    opt = net.optimizer
    with pytest.raises(descent.InvalidArgument):
        net.set_optimizer("adam", lr=-1)
    assert opt.name == "sgd" and opt.lr == pytest.approx(0.01)


def test_after_close_every_use_raises_and_nothing_crashes():
    net = _net()
    opt = net.optimizer
    net.close()
    expected = "this sgd optimizer went with its network: the network is closed"
    for use in (lambda: opt.lr, lambda: setattr(opt, "lr", 0.5), opt.reset, lambda: opt.get("step")):
        with pytest.raises(descent.InvalidArgument) as info:
            use()
        assert str(info.value) == expected
    with pytest.raises(descent.InvalidArgument, match="^this network is closed$"):
        net.optimizer
    with pytest.raises(descent.InvalidArgument, match="^this network is closed$"):
        net.optimizer_name


def test_checkpoints_keep_the_values_set_through_it(tmp_path, rng):
    net = _net()
    net.set_optimizer("momentum", lr=0.1)
    net.train_step(*toy_batch(rng, 4, 6, 3))
    net.optimizer.lr = 0.003
    net.optimizer.momentum = 0.7
    net.save(tmp_path / "n.safetensors")
    loaded = descent.Network.load(tmp_path / "n.safetensors")
    assert loaded.optimizer_name == "momentum" and loaded.optimizer.name == "momentum"
    assert loaded.optimizer.hyperparameters == net.optimizer.hyperparameters
    assert loaded.optimizer.step_count == 1


def test_a_schedule_drives_the_network_optimizer(rng):
    x, y = toy_batch(rng, 8, 6, 3)
    net = _net()
    lr = descent.schedules.step(0.1, step_size=2, gamma=0.5)
    seen = []
    for step in range(5):
        net.optimizer.lr = lr(step)
        seen.append(net.optimizer.lr)
        net.train_step(x, y)
    assert seen == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
