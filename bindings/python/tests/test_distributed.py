"""descent.distributed: 2 MPI ranks against one process (tests/mpi_worker.py under mpirun).

Skipped when mpi4py or mpirun is missing (scripts/install-deps.sh installs both)."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import descent

from conftest import BINDING_DIR

MPIRUN = shutil.which("mpirun")
pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None, reason="mpi4py is not installed"),
    pytest.mark.skipif(MPIRUN is None, reason="no mpirun (Debian: openmpi-bin)"),
]


@pytest.fixture(scope="module")
def checks(tmp_path_factory) -> dict:
    """Runs the worker once on 2 ranks; its checks by name."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(BINDING_DIR), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["DESCENT_LIBRARY"] = str(descent.library_path)
    env["DESCENT_NUM_THREADS"] = "1"   # 2 ranks on the machine's cores
    env.pop("DESCENT_PLUGIN_PATH", None)
    checkpoint = tmp_path_factory.mktemp("distributed") / "dp.safetensors"
    result = subprocess.run([MPIRUN, "--allow-run-as-root", "--oversubscribe", "-np", "2", sys.executable,
                             str(Path(__file__).with_name("mpi_worker.py")), str(checkpoint)],
                            env=env, capture_output=True, text=True, timeout=120)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, f"the worker printed no checks (exit {result.returncode}):\n{result.stderr}\n{result.stdout}"
    return {line["check"]: line for line in lines}


@pytest.mark.parametrize("name", [
    "losses within 1e-6 of one process",
    "parameters equal one process's bit for bit after every step",
    "every rank's parameters equal after every step",
    "losses within 1e-6 of one process (batch norm, dropout)",
    "parameters equal one process's bit for bit after every step (batch norm, dropout)",
    "every rank's parameters equal after every step (batch norm, dropout)",
    "a NaN on rank 1 raises NumericError on every rank, naming rank 1",
    "after the failed step no rank's parameters changed",
    "rows that overflow float32 on rank 1 raise the same NumericError on every rank, nothing changed",
    "join (overlap=False): batch norm and dropout, parameters equal one process's bit for bit",
    "join (overlap=False): a NaN on rank 1 fails every rank, naming rank 1, and changes nothing",
    "join (overlap=True): batch norm and dropout, parameters equal one process's bit for bit",
    "join (overlap=True): a NaN on rank 1 fails every rank, naming rank 1, and changes nothing",
    "ShardedSampler: the ranks' rows of every batch are one process's batch, in order",
    "a checkpoint saved on 2 ranks loads on 1 and on 2 ranks with the same parameters",
    "loading a missing file raises NotFound on every rank, naming rank 0",
])
def test_two_ranks(checks, name):
    assert name in checks, f"the worker did not run {name!r}: {sorted(checks)}"
    assert checks[name]["ok"], checks[name]["detail"]


def test_shard_bounds():
    from descent.distributed import shard_bounds
    assert [shard_bounds(100, r, 3) for r in range(3)] == [(0, 33), (33, 66), (66, 100)]
    assert [shard_bounds(128, r, 2) for r in range(2)] == [(0, 64), (64, 128)]
    with pytest.raises(descent.InvalidArgument, match=r"shard_bounds: rank is 3: must be in \[0, 3\)"):
        shard_bounds(100, 3, 3)
    with pytest.raises(descent.InvalidArgument, match="2 rows cannot give each of 3 ranks at least one"):
        shard_bounds(2, 0, 3)
