"""Threads sharing one Network or one Optimizer get serialised access, never a crash.

ctypes releases the GIL during every C call, so without the binding's per-handle lock two
threads calling train_step / set_optimizer / save / close on one network raced inside the
library. Each scenario runs in a fresh interpreter (a crash there fails the test with its
stderr instead of killing pytest), with a bounded number of iterations per thread.
"""
from __future__ import annotations

import threading
import traceback
from pathlib import Path

import numpy as np

import descent
from conftest import run_python

TESTS_DIR = Path(__file__).resolve().parent


def run_here(function: str, *args) -> str:
    """Runs test_threads.<function>(*args) in a fresh interpreter; returns its stdout."""
    return run_python(f"import sys; sys.path.insert(0, {str(TESTS_DIR)!r})\n"
                      f"import test_threads\ntest_threads.{function}(*{args!r})\n", timeout=300)


def run_threads(workers) -> list[str]:
    """Starts one thread per (name, function), waits for all; returns the tracebacks of those
    that raised, each headed by the worker's name."""
    errors: list[str] = []
    start = threading.Barrier(len(workers))

    def wrap(name, fn):
        try:
            start.wait()
            fn()
        except BaseException:  # noqa: BLE001 - every failure is reported
            errors.append(f"{name}:\n{traceback.format_exc()}")

    threads = [threading.Thread(target=wrap, args=(name, fn)) for name, fn in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def all_finite(arrays) -> bool:
    return all(np.isfinite(a).all() for a in arrays)


def hammer_network(folder: str) -> None:
    """Six threads on one network: two train, one evaluates, one swaps optimizers, one saves
    (and reloads), one reads and writes parameters. Every result must be valid."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((16, 12)).astype(np.float32)
    y = (np.arange(16) % 3).astype(np.int32)
    net = descent.Network([12, 24, 3], batchnorm=True, dropout=0.1, seed=11)
    net.set_optimizer("adam", lr=0.01)
    net.train_step(x, y)  # activations exist from the start
    losses: list[float] = []

    def train(batch):
        def work():
            for i in range(300):
                rows = slice((i * batch) % 16, (i * batch) % 16 + batch)
                loss = net.train_step(x[rows], y[rows])
                assert np.isfinite(loss) and loss > 0, loss
                losses.append(loss)
        return work

    def evaluate():
        for _ in range(150):
            loss, accuracy = net.evaluate(x, y)
            assert np.isfinite(loss) and loss > 0 and 0.0 <= accuracy <= 1.0, (loss, accuracy)
            probs = net.predict(x)
            assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5), probs.sum(axis=1)

    def swap():
        for i in range(150):
            name = ("adam", "momentum", "sgd")[i % 3]
            net.set_optimizer(name, lr=0.01)

    def save():
        for i in range(60):
            path = f"{folder}/net{i % 2}.safetensors"
            net.save(path)
            copy = descent.Network.load(path)
            assert copy.sizes == [12, 24, 3] and all_finite(copy.params.values())
            copy.close()

    def params():
        for _ in range(300):
            p = net.params
            assert sorted(p) == ["W1", "W2", "b1", "b2", "beta1", "gamma1"], sorted(p)
            assert p["W1"].shape == (12, 24) and all_finite(p.values())
            net.activations(0)

    errors = run_threads([("train 1", train(4)), ("train 8", train(8)), ("evaluate", evaluate),
                          ("set_optimizer", swap), ("save", save), ("params", params)])
    assert not errors, "\n".join(errors)
    assert len(losses) == 600
    assert all_finite(net.params.values())
    # Still a working network: it fits the 16 samples.
    net.set_optimizer("adam", lr=0.01)
    for _ in range(300):
        net.train_step(x, y)
    print("accuracy", net.evaluate(x, y)[1])


def test_threads_sharing_a_network_take_turns(tmp_path):
    out = run_here("hammer_network", str(tmp_path))
    assert float(out.split()[-1]) >= 0.9, out


def close_while_training() -> None:
    """Four threads train until the network is closed under them: each sees only successful
    steps and then, after close, 'this network is closed'."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((32, 300)).astype(np.float32)
    y = (np.arange(32) % 5).astype(np.int32)
    for round_ in range(20):
        # W1 is 300 KB: memory glibc maps for it alone and unmaps when it is freed, so a step
        # running after the free would fault rather than read stale memory.
        net = descent.Network([300, 256, 5], seed=round_)
        started = threading.Barrier(5)
        outcomes: list[object] = []

        def train(batch):
            def work():
                started.wait()
                steps = 0
                for _ in range(100_000):
                    try:
                        loss = net.train_step(x[:batch], y[:batch])
                    except descent.InvalidArgument as e:
                        outcomes.append(str(e))
                        return
                    assert np.isfinite(loss), loss
                    steps += 1
                outcomes.append(f"never closed after {steps} steps")
            return work

        def close():
            started.wait()
            net.train_step(x, y)  # let the others get going
            net.close()

        errors = run_threads([(f"train {b}", train(b)) for b in (1, 1, 8, 32)] + [("close", close)])
        assert not errors, "\n".join(errors)
        assert outcomes == ["this network is closed"] * 4, outcomes
    print("ok")


def test_closing_a_network_while_threads_train_it():
    assert run_here("close_while_training") == "ok\n"


def hammer_optimizer() -> None:
    """Four threads update shared arrays through one Adam while another reads its
    hyperparameters and step count: the result must be exactly that of 1000 steps taken one
    after another. Then threads update until another closes the optimizer under them."""
    def arrays(n):
        return ({"w": np.ones(n, np.float32), "b": np.zeros(7, np.float32)},
                {"w": np.linspace(-1, 1, n, dtype=np.float32), "b": np.full(7, -0.5, np.float32)})

    expected, grads = arrays(100_000)
    with descent.Optimizer("adam", lr=1e-3) as reference:
        for _ in range(1000):
            reference.update(expected, grads)

    params, grads = arrays(100_000)
    opt = descent.Optimizer("adam", lr=1e-3)

    def update():
        for _ in range(250):
            opt.update(params, grads)

    def watch():
        last = 0
        for _ in range(500):
            step = opt.step_count
            assert last <= step <= 1000 and opt.lr == 1e-3, (last, step, opt.lr)
            last = step

    errors = run_threads([(f"update {i}", update) for i in range(4)] + [("watch", watch)])
    assert not errors, "\n".join(errors)
    assert opt.step_count == 1000, opt.step_count
    for key in params:
        assert np.array_equal(params[key], expected[key]), key
    opt.close()

    # Closing while others update: 4 MB tensors, so a step lasts long enough for a close in
    # another thread to land inside it if nothing stopped it.
    params = {"w": np.ones(1_000_000, np.float32)}
    grads = {"w": np.full(1_000_000, 0.5, np.float32)}
    for _ in range(20):
        opt = descent.Optimizer("adam", lr=1e-4)
        started = threading.Barrier(3)
        outcomes: list[str] = []

        def update_until_closed():
            started.wait()
            for _ in range(100_000):
                try:
                    opt.update(params, grads)
                except descent.InvalidArgument as e:
                    outcomes.append(str(e))
                    return
            outcomes.append("never closed")

        def close():
            started.wait()
            opt.update(params, grads)
            opt.close()

        errors = run_threads([("update 1", update_until_closed), ("update 2", update_until_closed),
                              ("close", close)])
        assert not errors, "\n".join(errors)
        assert outcomes == ["this adam optimizer is closed"] * 2, outcomes
    print("ok")


def test_threads_sharing_an_optimizer_take_turns():
    assert run_here("hammer_optimizer") == "ok\n"

