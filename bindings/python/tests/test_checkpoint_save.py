"""Saving checkpoints under SIGKILL and next to other saves: the file at the path is always a
whole checkpoint, and the temporary files of killed saves are removed by the next save in the
folder, never those of a save still running."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import descent
from conftest import BINDING_DIR

TEMPORARY_PREFIX = ".descent-checkpoint-"

# Saves forever; before each save every parameter is filled with the next counter value, and
# after it the value is printed. So a checkpoint is whole when all its parameters hold the same
# counter, and it is the latest one when that counter is the last printed or the one after.
SAVER = r"""
import sys
import descent
path, counter = sys.argv[1], int(sys.argv[2])
net = descent.Network(sizes=[64, 128, 10], seed=1)
params = list(net.params.values())
while True:
    counter += 1
    for p in params:
        p.fill(counter)
    net.save(path)
    print(counter, flush=True)
"""

# Plays a save in progress: creates a temporary-named file, locks it as a save does, and holds
# the lock until its stdin closes.
HOLDER = r"""
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
os.write(fd, b"half a checkpoint")
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


def _python(code: str, *args: str) -> subprocess.Popen:
    """A fresh interpreter running `code` with this checkout's descent and library."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(BINDING_DIR), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["DESCENT_LIBRARY"] = str(descent.library_path)
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(TEMPORARY_PREFIX))


def _saved_counter(path: Path) -> int:
    """The counter a SAVER checkpoint holds; fails unless every parameter holds the same one."""
    params = descent.Network.load(path).params
    values = {float(v) for p in params.values() for v in np.unique(p)}
    assert len(values) == 1, f"a mix of states: {sorted(values)[:5]}"
    return int(values.pop())


def test_killed_saves_leave_a_whole_checkpoint_and_the_next_save_removes_their_debris(tmp_path):
    rounds, chances = 30, random.Random(20261202)
    path, other = tmp_path / "model.safetensors", tmp_path / "other.safetensors"
    bystander = descent.Network(sizes=[4, 3], seed=2)
    debris = 0
    started = time.monotonic()
    for r in range(rounds):
        start = r * 100_000  # each round's states are distinct (and exact as float32)
        child = _python(SAVER, str(path), str(start))
        first = child.stdout.readline()
        assert first, f"the saver did not save:\n{child.stderr.read()}"
        time.sleep(chances.uniform(0, 0.03))
        # A save into the same folder while the child is saving must not remove its temporary
        # file: if it did, the child's rename would fail and it would exit before the kill.
        bystander.save(other)
        child.kill()
        out, err = child.communicate()
        assert child.returncode == -signal.SIGKILL, f"the saver failed before the kill:\n{err}"
        last = int((first + out).split()[-1])

        saved = _saved_counter(path)
        assert saved in (last, last + 1), f"round {r}: the file holds {saved}, the last save printed {last}"
        debris += len(_temporaries(tmp_path))

        bystander.save(other)
        assert _temporaries(tmp_path) == [], f"round {r}: the next save left debris"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors", "other.safetensors"]
    # The kills did land inside saves (else this test proves nothing about the cleanup).
    assert debris > 0
    print(f"{rounds} kills in {time.monotonic() - started:.1f} s; {debris} left a temporary file")


def test_a_save_does_not_remove_the_temporary_file_of_a_save_still_running(tmp_path):
    live, dead = tmp_path / (TEMPORARY_PREFIX + "Live01"), tmp_path / (TEMPORARY_PREFIX + "Dead01")
    holder = _python(HOLDER, str(live))
    try:
        assert holder.stdout.readline() == "locked\n", holder.stderr.read()
        dead.write_bytes(b"left by a killed save")
        inode = live.stat().st_ino

        net = descent.Network(sizes=[4, 3], seed=1)
        net.save(tmp_path / "model.safetensors")
        assert _temporaries(tmp_path) == [live.name]  # the dead one is gone, the live one kept
        assert live.stat().st_ino == inode and live.read_bytes() == b"half a checkpoint"
    finally:
        holder.communicate("")  # closes its stdin: it exits and its lock goes with it
    assert holder.returncode == 0, holder.stderr

    net.save(tmp_path / "model.safetensors")
    assert _temporaries(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


@pytest.mark.parametrize("target, reason", [
    ("missing/net.safetensors", "cannot open the directory '{dir}/missing': No such file or directory"),
    ("file/net.safetensors", "cannot open the directory '{dir}/file': Not a directory"),
    (".", "Is a directory"),
    ("taken", "cannot rename the temporary file '{dir}/.descent-checkpoint-XXXXXX' to it: Is a directory"),
])
def test_save_errors_name_the_path_and_leave_nothing(tmp_path, target, reason):
    (tmp_path / "file").write_bytes(b"a file")
    (tmp_path / "taken").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    path = f"{tmp_path}/{target}"
    with pytest.raises(descent.IOError) as info:
        descent.Network(sizes=[4, 3], seed=1).save(path)
    message = str(info.value)
    at = message.find(TEMPORARY_PREFIX)
    if at >= 0:  # the temporary file's random part
        at += len(TEMPORARY_PREFIX)
        message = message[:at] + "XXXXXX" + message[at + 6:]
    assert message == f"descent_net_save: cannot write '{path}': " + reason.format(dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_save_error_in_a_directory_where_nothing_can_be_created():
    # Root ignores permission bits; /proc refuses new files to everyone.
    with pytest.raises(descent.IOError) as info:
        descent.Network(sizes=[4, 3], seed=1).save("/proc/descent-test.safetensors")
    assert str(info.value) == ("descent_net_save: cannot write '/proc/descent-test.safetensors': "
                               "cannot create a temporary file in '/proc': No such file or directory")
