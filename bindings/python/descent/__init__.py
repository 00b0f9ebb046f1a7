"""Descent: deep-learning training techniques of "Deep Learning from Scratch" ch. 6, with a
Swift/C core (libdescent.so) driven through ctypes with numpy arrays.

    import descent
    opt = descent.Optimizer("adam", lr=0.001)
    opt.update(params, grads)                      # dicts of float32 arrays, in place
    net = descent.Network(sizes=[784, 100, 10], activation="relu", init="he")
    net.set_optimizer("momentum", lr=0.01, momentum=0.9)
    loss = net.train_step(x, y)
"""
from . import datasets
from ._lib import lib as _lib, path as library_path
from .errors import (BufferTooSmall, DescentError, FormatError, InvalidArgument, IOError, NotFound, NumericError,
                     OutOfMemory, PluginError, ShapeError)
from .network import Network
from .optimizer import Optimizer, describe, get_num_threads, load_plugin, optimizers, set_num_threads

__version__: str = _lib.descent_version().decode()


def blas_info() -> str:
    """Which BLAS the library loaded and which kernel set it runs."""
    return _lib.descent_blas_info().decode()


__all__ = [
    "__version__", "Optimizer", "Network", "datasets", "optimizers", "describe", "load_plugin",
    "set_num_threads", "get_num_threads", "blas_info", "library_path", "DescentError", "InvalidArgument",
    "NotFound", "NumericError", "ShapeError", "IOError", "FormatError", "PluginError", "OutOfMemory",
    "BufferTooSmall",
]
