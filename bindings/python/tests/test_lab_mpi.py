"""descent-lab under mpirun: the ranks share hyperparams' trials (and the optimizers' runs) and
rank 0 writes exactly one process's files; without an MPI launch nothing MPI-related is imported.

The mpirun tests are skipped when mpi4py or mpirun is missing (scripts/install-deps.sh installs
both). They run the lab's --quick mode on conftest.write_synthetic_mnist's data, a few seconds
each."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")

import descent  # noqa: E402
from descent import lab  # noqa: E402
from descent.lab._ranks import launched_size  # noqa: E402

from conftest import BINDING_DIR, write_synthetic_mnist  # noqa: E402

MPIRUN = shutil.which("mpirun")
HAS_MPI4PY = importlib.util.find_spec("mpi4py") is not None
needs_mpi = pytest.mark.skipif(not (HAS_MPI4PY and MPIRUN), reason="needs mpi4py and mpirun (Debian: openmpi-bin)")


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory) -> Path:
    return write_synthetic_mnist(tmp_path_factory.mktemp("mnist"))


def child_env() -> dict:
    """This checkout's descent and library, and no trace of an MPI launch around pytest itself."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMI", "PMIX_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(BINDING_DIR), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["DESCENT_LIBRARY"] = str(descent.library_path)
    env.pop("DESCENT_PLUGIN_PATH", None)
    return env


def lab_command(experiment: str, data: Path, out: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "descent.lab", experiment, "--quick", "--seed", "3", "--no-progress",
            "--data", str(data), "--out", str(out), *options]


def mpirun(*programs: list[str], ranks: int = 1, timeout: float = 120) -> subprocess.CompletedProcess:
    """mpirun with one rank per program (MPMD: "-np 1 a : -np 1 b"), or `ranks` ranks of one.
    Fails the test when it has not finished in `timeout` seconds (a rank waiting forever)."""
    command = [MPIRUN, "--allow-run-as-root", "--oversubscribe"]
    if len(programs) == 1:
        command += ["-np", str(ranks), *programs[0]]
    else:
        for i, program in enumerate(programs):
            command += ([":"] if i else []) + ["-np", "1", *program]
    with subprocess.Popen(command, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.terminate()       # mpirun ends its ranks on SIGTERM; a SIGKILL would orphan them
            out, err = process.communicate()
            pytest.fail(f"mpirun had not finished after {timeout} s:\n{err}\n{out}")
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# -- without an MPI launch: as before, nothing MPI-related imported ------------------------------

def test_launched_size_reads_what_the_launchers_set():
    assert launched_size({}) == (1, "")
    assert launched_size({"OMPI_COMM_WORLD_SIZE": "2"}) == (2, "OMPI_COMM_WORLD_SIZE")
    assert launched_size({"PMI_SIZE": "4"}) == (4, "PMI_SIZE")
    assert launched_size({"OMPI_COMM_WORLD_SIZE": "1", "PMI_SIZE": "8"}) == (1, "OMPI_COMM_WORLD_SIZE")
    assert launched_size({"OMPI_COMM_WORLD_SIZE": "two"}) == (1, "")


@pytest.mark.parametrize("launch", [{}, {"OMPI_COMM_WORLD_SIZE": "1"}], ids=["plain", "mpirun -np 1"])
def test_one_process_imports_no_mpi(tmp_path, launch):
    code = ("import sys\n"
            "from descent import lab\n"
            f"lab.run('paths', out={str(tmp_path)!r}, progress=False, verbose=False)\n"
            "print('mpi4py' in sys.modules, 'descent.distributed' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], env={**child_env(), **launch}, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]
    assert (tmp_path / "paths.csv").is_file()


def test_launch_of_two_without_mpi4py_is_refused(tmp_path):
    """mpirun -np 2 without mpi4py must not run the whole experiment twice into one folder."""
    code = ("import sys\n"
            "sys.modules['mpi4py'] = None      # import mpi4py now raises ImportError\n"
            "from descent.lab.__main__ import main\n"
            f"sys.exit(main(['paths', '--out', {str(tmp_path / 'out')!r}]))\n")
    result = subprocess.run([sys.executable, "-c", code], env={**child_env(), "OMPI_COMM_WORLD_SIZE": "2"},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == (
        "descent-lab: started as one of 2 MPI processes (OMPI_COMM_WORLD_SIZE=2), but mpi4py is not installed: "
        "pip install mpi4py (or \"./bindings/python[distributed]\"), or run the lab without mpirun")
    assert not (tmp_path / "out").exists()


# -- a rank other than 0, without MPI: a stand-in communicator -------------------------------------

class Rank1Of2:
    """What mpi4py's COMM_WORLD shows rank 1 of 2, as far as the lab uses it: its gather gives
    rank 1 None, and records what rank 1 sent."""

    def __init__(self):
        self.sent = None

    def Get_rank(self):
        return 1

    def Get_size(self):
        return 2

    def Ibarrier(self):
        return self

    def Test(self):
        return True

    def gather(self, obj, root=0):
        assert root == 0
        self.sent = obj
        return None


def test_rank_1_trains_its_trials_quietly_and_writes_nothing(mnist_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("descent.lab._training._is_terminal", lambda stream: True)   # progress bars wanted
    comm = Rank1Of2()
    result = lab.run("hyperparams", out=tmp_path / "out", data=mnist_dir, quick=True, seed=3, comm=comm)
    assert (result.experiment, result.data, result.summary, result.files) == ("hyperparams", {}, [], [])
    assert sorted(comm.sent) == [1, 3, 5, 7, 9, 11]              # trial i on rank i mod 2
    assert [comm.sent[i]["trial"] for i in sorted(comm.sent)] == [2, 4, 6, 8, 10, 12]
    assert capsys.readouterr() == ("", "")                       # no table, no progress bar
    assert not (tmp_path / "out").exists()


def test_rank_1_leaves_the_unshared_experiments_to_rank_0(tmp_path, capsys):
    comm = Rank1Of2()
    result = lab.run("paths", out=tmp_path / "out", comm=comm)
    assert (result.experiment, result.data, result.summary, result.files) == ("paths", {}, [], [])
    assert comm.sent is None
    assert capsys.readouterr() == ("", "")
    assert not (tmp_path / "out").exists()


# -- under mpirun -------------------------------------------------------------------------------

def differences(got: Path, want: Path) -> list[str]:
    """What differs between two output folders: missing or extra files, and per CSV its first
    differing line (a PNG by its bytes)."""
    got_files, want_files = files(got), files(want)
    if sorted(got_files) != sorted(want_files):
        return [f"files {sorted(got_files)} != {sorted(want_files)}"]
    found = []
    for name, data in want_files.items():
        if got_files[name] == data:
            continue
        if name.endswith(".csv"):
            pairs = zip(got_files[name].decode().splitlines(), data.decode().splitlines())
            line = next(((i, g, w) for i, (g, w) in enumerate(pairs) if g != w), None)
            found.append(f"{name}: line {line[0]}: {line[1]!r} != {line[2]!r}" if line else f"{name}: length")
        else:
            found.append(f"{name} differs")
    return found


@pytest.fixture(scope="module")
def one_process(mnist_dir, tmp_path_factory) -> Path:
    """hyperparams --quick in one process (this interpreter): the reference files."""
    out = tmp_path_factory.mktemp("one")
    lab.run("hyperparams", out=out, data=mnist_dir, quick=True, seed=3, progress=False, verbose=False)
    return out


@pytest.fixture(scope="module")
def two_ranks(mnist_dir, tmp_path_factory):
    """descent-lab hyperparams --quick on 2 ranks, each told its own --out (MPMD), so that a file
    written by rank 1 would show: (the finished mpirun, rank 0's folder, rank 1's folder)."""
    base = tmp_path_factory.mktemp("two")
    out0, out1 = base / "rank0", base / "rank1"
    result = mpirun(lab_command("hyperparams", mnist_dir, out0), lab_command("hyperparams", mnist_dir, out1))
    assert result.returncode == 0, f"mpirun failed ({result.returncode}):\n{result.stderr}\n{result.stdout}"
    return result, out0, out1


@needs_mpi
def test_hyperparams_over_two_ranks_equals_one_process(one_process, two_ranks):
    """The trials table, the per-epoch curves and both plots, byte for byte."""
    _, out0, _ = two_ranks
    assert [p.name for p in sorted(one_process.iterdir())] == [
        "hyperparams_quick.csv", "hyperparams_quick.png", "hyperparams_scatter_quick.png",
        "hyperparams_trials_quick.csv"]
    assert differences(out0, one_process) == []


@needs_mpi
def test_only_rank_0_prints_and_writes(two_ranks):
    result, out0, out1 = two_ranks
    assert not out1.exists(), f"rank 1 wrote {sorted(p.name for p in out1.rglob('*'))}"
    assert result.stdout.count("Random search: SGD learning rate and weight decay") == 1, result.stdout
    assert result.stdout.count("descent-lab: hyperparams done in") == 1, result.stdout
    assert f"plots and CSV files are in {out0}" in result.stdout
    assert "descent-lab" not in result.stderr and "Traceback" not in result.stderr, result.stderr


@needs_mpi
def test_trials_are_shared_and_gathered_on_rank_0(mnist_dir, tmp_path):
    """lab.run(comm=...) from an MPI program: each of 2 ranks trains 6 of the 12 quick trials;
    rank 0's Result holds all 12 and the files, rank 1's is empty."""
    code = ("import json, sys\n"
            "from mpi4py import MPI\n"
            "from descent import lab\n"
            "from descent.lab import hyperparams\n"
            "trained = []\n"
            "train = hyperparams._train\n"
            "hyperparams._train = lambda *args: trained.append(1) or train(*args)\n"
            "comm = MPI.COMM_WORLD\n"
            f"result = lab.run('hyperparams', out={str(tmp_path)!r} + f'/rank{{comm.rank}}', data={str(mnist_dir)!r},\n"
            "                 quick=True, seed=3, progress=False, verbose=False, comm=comm)\n"
            "report = comm.gather({'rank': comm.rank, 'trained': len(trained),\n"
            "                      'trials': [t['trial'] for t in result.data.get('trials', [])],\n"
            "                      'files': len(result.files)})\n"
            "if comm.rank == 0:\n"
            "    print(json.dumps(report))\n")
    result = mpirun([sys.executable, "-c", code], ranks=2)
    assert result.returncode == 0, f"mpirun failed ({result.returncode}):\n{result.stderr}\n{result.stdout}"
    assert json.loads(result.stdout) == [{"rank": 0, "trained": 6, "trials": list(range(1, 13)), "files": 4},
                                         {"rank": 1, "trained": 6, "trials": [], "files": 0}]
    assert not (tmp_path / "rank1").exists()


@needs_mpi
def test_optimizers_over_three_ranks_equal_one_process(mnist_dir, tmp_path):
    """7 optimizers over 3 ranks (3 + 2 + 2 runs): the loss curves and the plot byte for byte,
    the summary except its seconds column."""
    lab.run("optimizers", out=tmp_path / "one", data=mnist_dir, quick=True, seed=3, progress=False,
            verbose=False)
    result = mpirun(lab_command("optimizers", mnist_dir, tmp_path / "three"), ranks=3)
    assert result.returncode == 0, f"mpirun failed ({result.returncode}):\n{result.stderr}\n{result.stdout}"
    one, three = files(tmp_path / "one"), files(tmp_path / "three")
    assert sorted(three) == ["optimizers_quick.csv", "optimizers_quick.png", "optimizers_summary_quick.csv"]
    assert three["optimizers_quick.csv"] == one["optimizers_quick.csv"]
    assert three["optimizers_quick.png"] == one["optimizers_quick.png"]

    def without_seconds(data: bytes) -> list[list[str]]:
        rows = [line.split(",") for line in data.decode().splitlines()]
        column = rows[0].index("seconds")
        return [row[:column] + row[column + 1:] for row in rows]

    assert without_seconds(three["optimizers_summary_quick.csv"]) == without_seconds(
        one["optimizers_summary_quick.csv"])
    assert len(without_seconds(one["optimizers_summary_quick.csv"])) == 8


@needs_mpi
def test_a_failing_rank_ends_the_job(mnist_dir, tmp_path):
    """Rank 1 cannot find its data: the job ends at once with its message, instead of rank 0
    waiting for rank 1's trials forever."""
    result = mpirun(lab_command("hyperparams", mnist_dir, tmp_path / "rank0"),
                    lab_command("hyperparams", tmp_path / "missing", tmp_path / "rank1"), timeout=30)
    assert result.returncode != 0
    assert (f"descent-lab: rank 1 of 2: data folder {tmp_path / 'missing'} does not exist: pass --data DIR with "
            "an MNIST-format folder") in result.stderr
    assert not (tmp_path / "rank0").exists()
