"""A NUL byte in a path or name argument is a ValueError, as with Python's open(): a C string
ends at its first NUL, so without the check net.save(d + "/nul.st\\0.bak") wrote "nul.st" and
Network.load(d + "/real.st\\0junk") loaded "real.st".

Every path and name argument of the binding is checked, whatever its type (str, bytes,
os.PathLike), and nothing is written, read or loaded when it is rejected."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import descent
from descent._text import c_string
from conftest import run_python
from test_datasets import idx_bytes

NUL = "embedded null byte"


@pytest.fixture
def net():
    with descent.Network([4, 3, 2], seed=3) as n:
        yield n


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("kind", [str, os.fsencode, Path], ids=["str", "bytes", "Path"])
def test_save_with_a_nul_writes_nothing(net, tmp_path, kind):
    with pytest.raises(ValueError, match=NUL) as info:
        net.save(kind(str(tmp_path / "nul.st") + "\0.bak"))
    assert str(info.value).startswith("path contains an embedded null byte")
    assert files_in(tmp_path) == []  # not "nul.st"


@pytest.mark.parametrize("suffix", ["\0junk", b"\0junk"])
def test_load_with_a_nul_reads_nothing(net, tmp_path, suffix):
    real = tmp_path / "real.st"
    net.save(real)
    path = bytes(real) + suffix if isinstance(suffix, bytes) else str(real) + suffix
    with pytest.raises(ValueError, match=NUL) as info:
        descent.Network.load(path)
    assert "path" in str(info.value)
    # The same path without the NUL loads: the refusal is about the NUL alone.
    assert descent.Network.load(real).spec == net.spec


def test_optimizer_and_hyperparameter_names(net):
    with pytest.raises(ValueError, match=NUL):
        net.set_optimizer("adam\0x")
    with pytest.raises(ValueError, match=NUL):
        net.set_optimizer("adam", **{"lr\0x": 0.5})
    assert net.optimizer_name == "sgd"  # untouched
    with pytest.raises(ValueError, match=NUL):
        descent.Optimizer("sgd\0")
    with pytest.raises(ValueError, match=NUL):
        descent.Optimizer("sgd", **{"lr\0": 0.5})
    with pytest.raises(ValueError, match=NUL):
        descent.describe("adam\0")
    with descent.Optimizer("sgd", lr=0.25) as opt:
        # Without the check "lr\0junk" reached the library as "lr".
        with pytest.raises(ValueError, match=NUL):
            opt.get("lr\0junk")
        with pytest.raises(ValueError, match=NUL):
            opt.set("lr\0junk", 0.5)
        assert opt.lr == 0.25


def test_spec_strings(tmp_path):
    with pytest.raises(ValueError, match=NUL):
        descent.Network([4, 2], activation="relu\0")
    with pytest.raises(ValueError, match=NUL):
        descent.Network([4, 2], init="he\0")


def test_plugin_path(lion_path):
    # In a fresh interpreter: were the NUL ignored, Lion would stay loaded in this one.
    out = run_python(f"""
import descent
try:
    descent.load_plugin({str(lion_path) + chr(0) + ".bak"!r})
except ValueError as e:
    print(e)
print("lion" in descent.optimizers())
""")
    assert out == f"path contains an embedded null byte: {str(lion_path) + chr(0) + '.bak'!r}\nFalse\n"


def test_data_set_paths(tmp_path):
    images = tmp_path / "img"
    labels = tmp_path / "lab"
    images.write_bytes(idx_bytes(np.zeros((2, 2, 2), np.uint8)))
    labels.write_bytes(idx_bytes(np.zeros(2, np.uint8)))
    with pytest.raises(ValueError, match=NUL):
        descent.datasets.load_idx(str(images) + "\0x", labels)
    with pytest.raises(ValueError, match=NUL):
        descent.datasets.load_idx(images, bytes(labels) + b"\0x")
    x, y = descent.datasets.load_idx(images, labels)  # the real files load
    assert x.shape == (2, 4) and y.shape == (2,)
    for call in (descent.datasets.mnist_format, descent.datasets.fashion_mnist):
        with pytest.raises(ValueError, match=NUL):
            call(str(tmp_path) + "\0")


def test_the_helper_keeps_valid_arguments_and_refuses_other_types():
    assert c_string("lr", "key") == b"lr"
    assert c_string(b"lr", "key") == b"lr"
    assert c_string("caf\u00e9", "name") == "caf\u00e9".encode()
    assert c_string(Path("/tmp/x"), "path", path=True) == b"/tmp/x"
    assert c_string("/tmp/\udcff", "path", path=True) == b"/tmp/\xff"  # os.fsencode's rule
    with pytest.raises(TypeError, match="path must be str, bytes or os.PathLike, got int"):
        c_string(3, "path", path=True)
    with pytest.raises(TypeError, match="name must be str or bytes, got PosixPath"):
        c_string(Path("x"), "name")
    with pytest.raises(ValueError, match="^name contains an embedded null byte: 'a\\\\x00b'$"):
        c_string("a\0b", "name")
