"""Shared fixtures of the binding's tests.

The library under test is the one `descent` finds (DESCENT_LIBRARY first; scripts/test.sh sets it to
the release build it just made). The Lion plugin comes from DESCENT_BUILD_DIR/plugins/lion.so when
scripts/test.sh built one, else it is compiled here from examples/plugins/lion.c.
"""
from __future__ import annotations

import gzip
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
BINDING_DIR = REPO_ROOT / "bindings" / "python"

# Make `import descent` work from a plain checkout (without pip install).
if str(BINDING_DIR) not in sys.path:
    sys.path.insert(0, str(BINDING_DIR))

import descent  # noqa: E402
from descent._lib import lib as clib  # noqa: E402  (descent._lib is shadowed by the CDLL)


def last_error() -> str:
    """descent_last_error() of this thread, decoded: what every exception must carry."""
    return (clib.descent_last_error() or b"").decode("utf-8", "replace")


def _c_compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope="session")
def lion_path(tmp_path_factory) -> Path:
    """Path of a built Lion plugin (examples/plugins/lion.c); not loaded into this process."""
    build_dir = os.environ.get("DESCENT_BUILD_DIR")
    if build_dir:
        prebuilt = Path(build_dir) / "plugins" / "lion.so"
        if prebuilt.is_file():
            return prebuilt
    compiler = _c_compiler()
    if compiler is None:
        pytest.skip("no C compiler (cc, gcc, clang or $CC) to build examples/plugins/lion.c, "
                    "and no prebuilt DESCENT_BUILD_DIR/plugins/lion.so")
    out = tmp_path_factory.mktemp("plugins") / "lion.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-I", str(REPO_ROOT / "include"),
                    str(REPO_ROOT / "examples" / "plugins" / "lion.c"), "-o", str(out)],
                   check=True, capture_output=True, text=True)
    return out


def run_python(code: str, timeout: float = 120) -> str:
    """Runs `code` in a fresh interpreter that imports this checkout's descent with the same
    DESCENT_LIBRARY; fails the test with its stderr unless it exits 0. Returns its stdout.

    Plugin tests run this way: a loaded plugin stays registered in its process for good, and
    another test module (the lab's) loads its own build of Lion, whose name would collide."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(BINDING_DIR), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["DESCENT_LIBRARY"] = str(descent.library_path)
    env.pop("DESCENT_PLUGIN_PATH", None)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"subprocess failed ({result.returncode}):\n{result.stderr}\n{result.stdout}"
    return result.stdout


def write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    """folder/<prefix>-images-idx3-ubyte.gz and -labels-idx1-ubyte.gz: 28x28 images, MNIST format."""
    with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, len(images), 28, 28))
        f.write(images.astype(np.uint8).tobytes())
    with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">II", 0x801, len(labels)))
        f.write(labels.astype(np.uint8).tobytes())


def write_synthetic_mnist(folder: Path) -> Path:
    """A tiny MNIST-format folder for the lab's tests (never the Debian package): 600 training and
    100 test images of 28x28, one random prototype per class plus noise, so there is something to
    learn. Returns folder."""
    rng = np.random.default_rng(0)
    prototypes = rng.integers(0, 256, size=(10, 784))

    def make(n):
        labels = rng.integers(0, 10, size=n)
        images = 0.6 * prototypes[labels] + rng.integers(0, 100, size=(n, 784))
        return np.clip(images, 0, 255), labels

    write_idx(folder, "train", *make(600))
    write_idx(folder, "t10k", *make(100))
    return folder


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def toy_batch(rng: np.random.Generator, batch: int, features: int, classes: int):
    """A float32 C-contiguous batch and int32 labels."""
    x = rng.standard_normal((batch, features)).astype(np.float32)
    y = rng.integers(0, classes, size=batch).astype(np.int32)
    return x, y
