"""MNIST-format data sets (IDX files, raw or gzip), read by the library."""
from __future__ import annotations

import ctypes
import os
from pathlib import Path

import numpy as np

from ._lib import lib
from ._text import c_string
from .errors import check

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


def load_idx(images_path: "str | os.PathLike", labels_path: "str | os.PathLike") -> tuple[np.ndarray, np.ndarray]:
    """Reads an IDX image file and its label file: x float32 (count, features) scaled to
    [0, 1], y int32 (count,). Every header field is validated."""
    images_arg = c_string(images_path, "images_path", path=True)
    labels_arg = c_string(labels_path, "labels_path", path=True)
    images, labels = ctypes.c_void_p(), ctypes.c_void_p()
    count, features = ctypes.c_int64(), ctypes.c_int64()
    check(lib.descent_dataset_load_idx(images_arg, labels_arg, ctypes.byref(images),
                                       ctypes.byref(labels), ctypes.byref(count), ctypes.byref(features)))
    # The arrays take over the library's buffers (no copy of a 188 MB training set): each buffer
    # is freed with descent_dataset_free when the last array using it is gone.
    n, f = count.value, features.value
    x = _adopt(images.value, ctypes.c_float, n * f, is_images=True).reshape(n, f)
    y = _adopt(labels.value, ctypes.c_int32, n, is_images=False)
    return x, y


class _Owned:
    """Frees one array returned by descent_dataset_load_idx when garbage-collected."""

    def __init__(self, address: int, is_images: bool):
        self.address, self.is_images = address, is_images

    def __del__(self):
        if self.address:
            if self.is_images:
                lib.descent_dataset_free(self.address, None)
            else:
                lib.descent_dataset_free(None, self.address)
            self.address = 0


def _adopt(address: int, ctype, count: int, is_images: bool) -> np.ndarray:
    owner = _Owned(address, is_images)  # created first: freed even if the lines below fail
    buffer = (ctype * count).from_address(address)
    buffer._owner = owner  # noqa: SLF001 - the buffer (the arrays' base) keeps the owner alive
    return np.frombuffer(buffer, dtype=np.dtype(ctype), count=count)


def _find(directory: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"{directory} has no {stem}(.gz); is it an MNIST-format folder? "
                            "(Debian: apt-get install dataset-fashion-mnist)")


def mnist_format(directory: "str | os.PathLike") -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """((x_train, y_train), (x_test, y_test)) from a folder holding the four MNIST-format
    files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-...)."""
    d = Path(os.fsdecode(c_string(directory, "directory", path=True)))
    train = load_idx(_find(d, "train-images-idx3-ubyte"), _find(d, "train-labels-idx1-ubyte"))
    test = load_idx(_find(d, "t10k-images-idx3-ubyte"), _find(d, "t10k-labels-idx1-ubyte"))
    return train, test


def fashion_mnist(directory: "str | os.PathLike | None" = None
                  ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Fashion-MNIST: Debian's copy (dataset-fashion-mnist) unless a folder is given."""
    return mnist_format(directory or FASHION_MNIST_DIR)
