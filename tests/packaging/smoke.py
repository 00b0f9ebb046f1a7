"""What an installed `descent` must do, run by tests/packaging/run.sh in a fresh venv and from a
folder outside the repository:

    python smoke.py EXPECTED_VERSION EXPECTED_PREFIX [--train]

- `import descent` loads the libdescent.so that pip installed under EXPECTED_PREFIX (the venv),
  not one of the repository's build folders;
- descent.__version__ (what the library's descent_version() returns) and the distribution's
  metadata version both equal EXPECTED_VERSION (Sources/Descent/Version.swift);
- with --train: a small network learns a task it cannot solve by chance, and no Swift runtime
  was mapped into the process.
Exits non-zero with a message naming the failed check.
"""
from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path


def check(condition: bool, message: str) -> None:
    if not condition:
        sys.exit(f"packaging smoke test: FAILED: {message}")
    print(f"  ok: {message}")


def train() -> None:
    import numpy as np
    import descent

    # Two interleaved classes by the sign of x0*x1 (XOR of the signs): no linear model separates them.
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, size=(2048, 2)).astype(np.float32)
    y = ((x[:, 0] * x[:, 1]) > 0).astype(np.int32)
    with descent.Network(sizes=[2, 32, 32, 2], activation="relu", init="he", seed=3) as net:
        net.set_optimizer("adam", lr=0.01)
        first = net.train_step(x[:128], y[:128])
        for step in range(600):
            batch = rng.integers(0, len(x), 128)
            last = net.train_step(x[batch], y[batch])
        loss, accuracy = net.evaluate(x, y)
        weights = sum(p.size for p in net.params.values())
    print(f"  trained {weights} parameters for 600 steps: loss {first:.3f} -> {loss:.3f}, accuracy {accuracy:.3f}")
    check(loss < 0.5 * first, f"the loss fell to under half its first value ({first:.3f} -> {loss:.3f})")
    check(accuracy > 0.9, f"the network classifies the XOR of signs (accuracy {accuracy:.3f} > 0.9)")
    maps = Path("/proc/self/maps").read_text()
    check("libswift" not in maps, "no Swift runtime library is mapped into the process")


def main() -> None:
    version, prefix = sys.argv[1], Path(sys.argv[2]).resolve()
    import descent

    library = Path(descent.library_path).resolve()
    check(prefix in library.parents, f"descent loads {library}, inside {prefix}")
    check(descent.__version__ == version, f"descent.__version__ {descent.__version__!r} == {version!r}")
    metadata = importlib.metadata.version("descent")
    check(metadata == version, f"the installed distribution's version {metadata!r} == {version!r}")
    check("adam" in descent.optimizers(), "descent.optimizers() lists the built-in optimizers")
    if "--train" in sys.argv[3:]:
        train()


if __name__ == "__main__":
    main()
