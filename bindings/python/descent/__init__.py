"""Descent: deep-learning training techniques of "Deep Learning from Scratch" ch. 6, with a
Swift/C core (libdescent.so) driven through ctypes with numpy arrays.

    import descent
    opt = descent.Optimizer("adam", lr=0.001)
    opt.update(params, grads)                      # dicts of float32 arrays, in place
    net = descent.Network(sizes=[784, 100, 10], activation="relu", init="he")
    net.set_optimizer("momentum", lr=0.01, momentum=0.9)
    lr = descent.schedules.cosine(0.01, decay_steps=1000)
    for step in range(1000):
        net.optimizer.lr = lr(step)               # the network's optimizer; state is kept
        loss = net.train_step(x, y)               # x float32 (batch, 784), y int labels (batch,)
"""
from . import datasets, schedules
from ._lib import lib as _lib, path as library_path
from .errors import (BufferTooSmall, DescentError, FormatError, InvalidArgument, IOError, NotFound, NumericError,
                     OutOfMemory, PluginError, ShapeError)
from .network import Network
from .network_optimizer import NetworkOptimizer
from .optimizer import (Optimizer, describe, get_num_threads, load_plugin, optimizers, plugin_search_path,
                        set_num_threads)

__version__: str = _lib.descent_version().decode()


def blas_info() -> str:
    """Which BLAS the library loaded and which kernel set it runs."""
    return _lib.descent_blas_info().decode()


__all__ = [
    "__version__", "Optimizer", "Network", "NetworkOptimizer", "datasets", "schedules", "optimizers", "describe",
    "load_plugin", "plugin_search_path", "set_num_threads", "get_num_threads", "blas_info", "library_path",
    "DescentError", "InvalidArgument",
    "NotFound", "NumericError", "ShapeError", "IOError", "FormatError", "PluginError", "OutOfMemory",
    "BufferTooSmall",
]
