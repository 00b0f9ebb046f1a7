"""The lab's data: the --data folder (default: Debian's Fashion-MNIST) loaded once, and the test
set a run evaluates on."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

import descent

from ._config import Config, LabError


@dataclass
class Dataset:
    x_train: np.ndarray   # float32 (n, features), C-contiguous, in [0, 1]
    y_train: np.ndarray   # int32 (n,)
    x_test: np.ndarray
    y_test: np.ndarray
    source: str

    @property
    def features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def classes(self) -> int:
        """10 for MNIST-format data; more if the labels say so."""
        return max(10, int(max(self.y_train.max(), self.y_test.max())) + 1)


def load_data(cfg: Config) -> Dataset:
    """The training and test sets of --data (default: Debian's Fashion-MNIST), loaded once."""
    if cfg._dataset is not None:
        return cfg._dataset
    folder = cfg.data if cfg.data is not None else Path(descent.datasets.FASHION_MNIST_DIR)
    hint = ("pass --data DIR with an MNIST-format folder" if cfg.data is not None else
            "install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist) "
            "or pass --data DIR with an MNIST-format folder")
    if not folder.is_dir():
        raise LabError(f"data folder {folder} does not exist: {hint}")
    try:
        (x_train, y_train), (x_test, y_test) = descent.datasets.mnist_format(folder)
    except FileNotFoundError as e:
        raise LabError(f"{e}") from None
    except descent.DescentError as e:
        raise LabError(f"cannot read the data in {folder}: {e}") from None
    if len(x_train) == 0 or len(x_test) == 0:
        raise LabError(f"the data in {folder} has no training or no test images")
    cfg._dataset = Dataset(np.ascontiguousarray(x_train, np.float32), np.ascontiguousarray(y_train, np.int32),
                           np.ascontiguousarray(x_test, np.float32), np.ascontiguousarray(y_test, np.int32),
                           str(folder))
    return cfg._dataset


def data_name(cfg: Config, data: Dataset) -> str:
    """How titles name the data: "Fashion-MNIST" for the default, else the folder."""
    return "Fashion-MNIST" if cfg.data is None else data.source


def testset(cfg: Config, data: Dataset, quick_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """The whole test set; the first `quick_size` images with --quick."""
    if cfg.quick:
        return data.x_test[:quick_size], data.y_test[:quick_size]
    return data.x_test, data.y_test
