"""The README's examples are real: its C blocks are the example files CMake builds and ctest
links, and its Python block runs."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()


def _code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


@pytest.mark.parametrize("example", ["examples/c/quickstart.c", "examples/plugins/sign_sgd.c"])
def test_c_examples_are_the_readme_blocks(example):
    source = (REPO_ROOT / example).read_text()
    body = source.split("\n", 1)[1]          # after the file's one-line header comment
    assert body in _code_blocks("c"), f"{example} no longer matches its README block"


def test_python_example_runs(tmp_path, monkeypatch):
    if not Path("/usr/share/datasets/fashion-mnist").is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    (code,) = [block for block in _code_blocks("python") if "import descent" in block]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code.replace("range(1000)", "range(50)"), "README.md", "exec"), namespace)
    assert namespace["net2"].spec["batchnorm"] is True
    assert (tmp_path / "model.safetensors").is_file()
