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
    # the schedule drove the network's optimizer: the checkpoint holds the lr of the last step
    assert namespace["net2"].optimizer.lr == pytest.approx(namespace["lr"](49))
    assert namespace["net2"].optimizer.step_count == 50


def _flat(text: str) -> str:
    return " ".join(text.replace("`", "").split())


def test_python_messages_quoted_in_the_readme_are_real():
    import numpy as np

    import descent
    net = descent.Network(sizes=[784, 10])
    net.set_optimizer("momentum")
    with pytest.raises(descent.InvalidArgument) as info:
        net.predict(np.zeros(784, np.float32))
    assert _flat(str(info.value)) in _flat(README)
    with pytest.raises(AttributeError) as info:
        net.lr = 0.5
    assert _flat(str(info.value).split(": ", 1)[1]) in _flat(README)
