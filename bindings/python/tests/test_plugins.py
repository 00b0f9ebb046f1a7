"""Optimizer plugins from Python: descent.load_plugin with the Lion example (examples/plugins/lion.c).

Each test runs in a fresh interpreter (conftest.run_python): a plugin, once loaded, stays
registered for the life of its process, so this checks the state before and after loading, and
keeps this test process free of a Lion that another module's own build would collide with."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import descent
from conftest import BINDING_DIR, run_python

PRELUDE = """
import json, sys
import numpy as np
import descent
from descent._lib import lib
LION = %r
"""


def run(code: str, lion_path) -> str:
    return run_python(PRELUDE % str(lion_path) + code)


def test_load_plugin_registers_lion_and_optimizer_works(lion_path):
    out = run("""
before = descent.optimizers()
assert "lion" not in before, before
descent.load_plugin(LION)
after = descent.optimizers()
assert after[:len(before)] == before and after[len(before):] == ["lion"], after
descent.load_plugin(LION)                      # the same library again: no error, no change
assert descent.optimizers() == after
d = descent.describe("lion")
opt = descent.Optimizer("lion", lr=0.01, weight_decay=0.1)
assert opt.name == "lion" and abs(opt.lr - 0.01) < 1e-12 and abs(opt.weight_decay - 0.1) < 1e-12
opt.lr = 0.02
assert abs(opt.lr - 0.02) < 1e-12
opt.close()
print(json.dumps(d))
""", lion_path)
    d = json.loads(out.strip().splitlines()[-1])
    assert d["name"] == "lion" and d["state_buffers"] == 1
    assert d["origin"] == str(lion_path)
    hp = {h["name"]: h for h in d["hyperparameters"]}
    assert list(hp)[:4] == ["lr", "beta1", "beta2", "weight_decay"]
    assert hp["lr"]["default"] == pytest.approx(1e-4) and hp["beta2"]["default"] == pytest.approx(0.99)


def test_lion_update_matches_its_formula(lion_path):
    run("""
descent.load_plugin(LION)
rng = np.random.default_rng(3)
lr, b1, b2, wd = 0.01, 0.9, 0.99, 0.1
params = {"w": rng.standard_normal(50).astype(np.float32), "b": rng.standard_normal((4, 5)).astype(np.float32)}
ref = {k: v.astype(np.float64) for k, v in params.items()}
m = {k: np.zeros(v.shape) for k, v in params.items()}
with descent.Optimizer("lion", lr=lr, beta1=b1, beta2=b2, weight_decay=wd) as opt:
    for _ in range(5):
        grads = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in params.items()}
        opt.update(params, grads)
        for k in params:   # Chen et al. 2023, as in examples/plugins/lion.c
            c = b1 * m[k] + (1 - b1) * grads[k]
            ref[k] = ref[k] - lr * (np.sign(c) + wd * ref[k])
            m[k] = b2 * m[k] + (1 - b2) * grads[k]
    for k in params:
        np.testing.assert_allclose(params[k], ref[k], rtol=1e-5, atol=1e-6)
print("ok")
""", lion_path)


def test_plugin_optimizer_in_a_network_and_its_checkpoint(lion_path, tmp_path):
    run(f"""
descent.load_plugin(LION)
rng = np.random.default_rng(5)
x = rng.standard_normal((16, 6)).astype(np.float32)
y = rng.integers(0, 3, 16)
net = descent.Network(sizes=[6, 8, 3], seed=3)
net.train_step(x, y)                            # sgd first, then swap to the plugin's optimizer
net.set_optimizer("lion", lr=1e-3)
before = net.params["W1"].copy()
net.train_step(x, y)
step = np.abs(net.params["W1"] - before)
assert np.allclose(step[step > 0], 1e-3, rtol=1e-3), step   # Lion moves each weight by lr
assert (step > 0).mean() > 0.5
path = {str(tmp_path / "lion.safetensors")!r}
net.save(path)
again = descent.Network.load(path)
assert again.optimizer_name == "lion"
for _ in range(3):
    assert again.train_step(x, y) == net.train_step(x, y)   # state restored exactly
print("ok")
""", lion_path)


def test_checkpoint_with_a_plugin_optimizer_needs_the_plugin(lion_path, tmp_path):
    path = tmp_path / "lion.safetensors"
    run(f"""
descent.load_plugin(LION)
net = descent.Network(sizes=[4, 3], seed=1)
net.set_optimizer("lion")
net.train_step(np.ones((2, 4), np.float32), np.array([0, 2]))
net.save({str(path)!r})
""", lion_path)
    out = run(f"""
try:
    descent.Network.load({str(path)!r})
except descent.NotFound as e:
    assert str(e) == lib.descent_last_error().decode()
    print("NotFound:", e)
else:
    raise SystemExit("loaded without the plugin")
""", lion_path)
    assert "lion" in out


def test_plugin_error_for_a_name_collision(lion_path, tmp_path):
    import shutil
    copy = tmp_path / "lion_copy.so"
    shutil.copy(lion_path, copy)
    out = run(f"""
descent.load_plugin(LION)
try:
    descent.load_plugin({str(copy)!r})
except descent.PluginError as e:
    assert str(e) == lib.descent_last_error().decode()
    print(e)
else:
    raise SystemExit("a second library with the same optimizer name was accepted")
assert descent.optimizers().count("lion") == 1
""", lion_path)
    assert "'lion'" in out and "lion_copy.so" in out


def test_plugin_search_path_lists_the_environment_folders_first(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    env = dict(os.environ, DESCENT_PLUGIN_PATH=f"{first}:{second}:{first}",
               PYTHONPATH=os.pathsep.join([str(BINDING_DIR), os.environ.get("PYTHONPATH", "")]),
               DESCENT_LIBRARY=str(descent.library_path))
    out = subprocess.run([sys.executable, "-c", "import descent; print('\\n'.join(descent.plugin_search_path()))"],
                         env=env, capture_output=True, text=True, timeout=120, check=True).stdout.split("\n")
    folders = [line for line in out if line]
    assert folders[:2] == [str(first), str(second)]          # in order, each once
    installed = Path(descent.library_path).resolve().parent / "descent" / "plugins"
    assert folders[2:] == [str(installed)]
