"""Networks: the book's MultiLayerNetExtend, trained through libdescent."""
from __future__ import annotations

import ctypes
import json
import os
import threading
from typing import Optional

import numpy as np

from ._lib import DATA_OFFSET as _DATA_OFFSET, data_address, lib
from ._text import c_string, hparams_text, read_string
from .errors import InvalidArgument, check

_F32, _I32 = np.dtype(np.float32), np.dtype(np.int32)
_ndarray = np.ndarray
_train_step, _forward_backward = lib.descent_net_train_step, lib.descent_net_forward_backward
_FAST_ADDRESS = _DATA_OFFSET is not None
_pointer_field = ctypes.c_void_p.from_address  # a c_void_p over an ndarray's data-pointer field


class _Handle:
    """Owns one C network handle. The Network and every zero-copy view of its memory hold a
    reference, so the memory outlives all of them, whatever order they are dropped in."""

    def __init__(self, pointer: ctypes.c_void_p):
        self.pointer = pointer

    def __del__(self):
        if self.pointer:
            lib.descent_net_free(self.pointer)
            self.pointer = None


def _view(handle: _Handle, address: int, shape: tuple, writable: bool = True) -> np.ndarray:
    """A numpy array over library memory that keeps the handle alive."""
    count = int(np.prod(shape))
    buffer = (ctypes.c_float * count).from_address(address)
    buffer._owner = handle  # noqa: SLF001 - ties the memory's lifetime to the view
    array = np.frombuffer(buffer, dtype=np.float32, count=count).reshape(shape)
    array.flags.writeable = writable
    return array


def _checkpoint_optimizer(path) -> Optional[str]:
    """The optimizer name in a checkpoint's safetensors metadata (the library has validated the
    file already); None if it cannot be read."""
    try:
        with open(path, "rb") as f:
            length = int.from_bytes(f.read(8), "little")
            return json.loads(f.read(length))["__metadata__"]["optimizer"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


class Network:
    """A multi-layer perceptron: Affine -> [BatchNorm] -> activation -> [Dropout] per hidden
    layer, Affine -> softmax with cross-entropy at the end.

    ``net.params`` and ``net.grads`` are dicts of zero-copy float32 views ("W1", "b1",
    "gamma1", "beta1", ...): writing to ``net.params["W1"]`` changes the network.
    The optimizer is sgd (lr 0.01) until ``set_optimizer`` swaps it (weights are kept).

    Threads: a network may be shared between threads. Its calls are serialised by a lock (the
    library runs each C call without the GIL, and one network handle must not be used by two
    threads at once), so concurrent calls take turns; ``close`` waits for a call in progress.
    """

    def __init__(self, sizes, activation: str = "relu", init: str = "he", batchnorm: bool = False,
                 dropout: float = 0.0, weight_decay: float = 0.0, seed: int = 1):
        c_string(activation, "activation")
        c_string(init, "init")
        spec = {"sizes": [int(s) for s in sizes], "activation": activation, "init": init,
                "batchnorm": bool(batchnorm), "dropout": float(dropout),
                "weight_decay": float(weight_decay), "seed": int(seed)}
        pointer = ctypes.c_void_p()
        check(lib.descent_net_create(json.dumps(spec).encode(), ctypes.byref(pointer)))
        self._adopt(pointer)
        self.optimizer_name: Optional[str] = "sgd"

    @classmethod
    def load(cls, path: "str | os.PathLike") -> "Network":
        """Reads a checkpoint written by ``save``: weights, batch-norm statistics, optimizer
        and its state, so training continues exactly where it stopped."""
        encoded = c_string(path, "path", path=True)
        pointer = ctypes.c_void_p()
        check(lib.descent_net_load(encoded, ctypes.byref(pointer)))
        net = cls.__new__(cls)
        net._adopt(pointer)
        net.optimizer_name = _checkpoint_optimizer(path)
        return net

    def _adopt(self, pointer: ctypes.c_void_p) -> None:
        # Held around every C call on the handle (and while closing): see the class comment.
        self._lock = threading.Lock()
        self._handle: Optional[_Handle] = _Handle(pointer)
        # The hot path's fixed arguments, built once: the handle as a plain int and one float the
        # library writes the loss into (read under the lock, like every use of the handle).
        self._pointer: Optional[int] = pointer.value
        self._loss = ctypes.c_float()
        self._loss_address = ctypes.addressof(self._loss)
        self.spec: dict = json.loads(read_string(
            lambda buf, cap, needed: lib.descent_net_spec(pointer, buf, cap, needed)))
        self.sizes: list[int] = self.spec["sizes"]
        self._features: int = self.sizes[0]
        self._params, self._grads = self._build_views()

    # -- training -------------------------------------------------------------------------------
    def set_optimizer(self, name: str, **hparams: float) -> None:
        """Swaps the optimizer by name (built-in or plugin) at any time; state starts fresh."""
        encoded, text = c_string(name, "name"), hparams_text(hparams)
        with self._lock:
            check(lib.descent_net_set_optimizer(self._live(), encoded, text))
            self.optimizer_name = name

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One step on a mini-batch: x float32 (batch, features), y integer labels (batch,).
        Returns the loss before the update.

        x must already be float32 and C-contiguous (it is never copied here); y may be any
        integer dtype (int32 is passed as is, others are converted: labels are small)."""
        # The per-call path of the training loop, kept lean (see benchmarks/python_overhead.py):
        # identity checks on dtypes, the data pointers read straight from the arrays (no
        # ndarray.ctypes objects), a prebuilt loss pointer. Anything unusual goes to _slow_step,
        # which converts or explains. The handle is read under the lock: a close() in another
        # thread then either waits for this step or happens before it (and _slow_step says so).
        if (type(x) is _ndarray and type(y) is _ndarray and x.dtype is _F32 and y.dtype is _I32
                and x.ndim == 2 and y.ndim == 1 and x.flags.c_contiguous and y.flags.c_contiguous
                and _FAST_ADDRESS):
            batch, features = x.shape
            if features == self._features and y.shape[0] == batch and batch:
                with self._lock:
                    pointer = self._pointer
                    if pointer:
                        status = _train_step(pointer, _pointer_field(id(x) + _DATA_OFFSET),
                                             _pointer_field(id(y) + _DATA_OFFSET), batch, self._loss_address)
                        if status:
                            check(status)
                        return self._loss.value
        return self._slow_step(_train_step, x, y)

    def forward_backward(self, x: np.ndarray, y: np.ndarray) -> float:
        """Forward and backward only: fills ``grads`` (e.g. to average them across processes).
        Returns the loss. Inputs as in ``train_step``."""
        return self._slow_step(_forward_backward, x, y)

    def _slow_step(self, fn, x, y) -> float:
        self._live()
        x, y = self._batch(x, y, training=True)
        with self._lock:
            check(fn(self._live(), data_address(x), data_address(y), x.shape[0], self._loss_address))
            return self._loss.value

    def apply_update(self) -> None:
        """The optimizer step on the current gradients."""
        with self._lock:
            check(lib.descent_net_apply_update(self._live()))

    # -- inference --------------------------------------------------------------------------------
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (batch, classes) in evaluation mode."""
        x, _ = self._batch(x, None, training=False)
        probs = np.empty((len(x), self.sizes[-1]), dtype=np.float32)
        with self._lock:
            check(lib.descent_net_predict(self._live(), data_address(x), len(x), data_address(probs)))
        return probs

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """(mean loss, accuracy) over all samples in evaluation mode."""
        x, y = self._batch(x, y, training=False)
        loss, accuracy = ctypes.c_float(), ctypes.c_float()
        with self._lock:
            check(lib.descent_net_evaluate(self._live(), data_address(x), data_address(y), len(x),
                                           ctypes.byref(loss), ctypes.byref(accuracy)))
        return loss.value, accuracy.value

    def activations(self, layer: int) -> np.ndarray:
        """A copy of hidden layer ``layer``'s output (after its activation function) from the
        last forward pass, shape (rows, width)."""
        data, rows, cols = ctypes.c_void_p(), ctypes.c_int64(), ctypes.c_int64()
        with self._lock:
            check(lib.descent_net_activations(self._live(), int(layer), ctypes.byref(data), ctypes.byref(rows),
                                              ctypes.byref(cols)))
            # Copied under the lock: the next forward pass (another thread's) rewrites it.
            return _view(self._handle, data.value, (rows.value, cols.value), writable=False).copy()

    # -- parameters --------------------------------------------------------------------------------
    @property
    def params(self) -> dict[str, np.ndarray]:
        """Zero-copy views of the parameters, by name."""
        with self._lock:
            self._live()
            return dict(self._params)

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """Zero-copy views of the last backward pass's gradients, by name."""
        with self._lock:
            self._live()
            return dict(self._grads)

    def save(self, path: "str | os.PathLike") -> None:
        """Writes a safetensors checkpoint atomically (an existing file is replaced only once
        the new one is complete). A save killed midway leaves a ``.descent-checkpoint-XXXXXX``
        file, which the next save into the same folder removes."""
        encoded = c_string(path, "path", path=True)
        with self._lock:
            check(lib.descent_net_save(self._live(), encoded))

    # -- lifetime ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Releases the network. Views from ``params``/``grads`` stay valid while they live.
        A call in progress in another thread finishes first; later calls raise."""
        lock = getattr(self, "_lock", None)
        if lock is None:  # __init__ failed before there was a handle
            return
        with lock:
            self._handle = None
            self._pointer = None
            self._params, self._grads = {}, {}

    def __enter__(self) -> "Network":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "" if self._handle else " (closed)"
        return f"<descent.Network {self.spec}{state}>"

    # -- internals ----------------------------------------------------------------------------------
    def _live(self) -> ctypes.c_void_p:
        if not getattr(self, "_handle", None):
            raise InvalidArgument("this network is closed")
        return self._handle.pointer

    def _build_views(self):
        params, grads = {}, {}
        pointer = self._handle.pointer
        for i in range(lib.descent_net_param_count(pointer)):
            name, data, grad, length = ctypes.c_char_p(), ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_int64()
            check(lib.descent_net_param(pointer, i, ctypes.byref(name), ctypes.byref(data), ctypes.byref(grad),
                                        ctypes.byref(length)))
            key = name.value.decode()
            shape = self._shape_of(key, length.value)
            params[key] = _view(self._handle, data.value, shape)
            grads[key] = _view(self._handle, grad.value, shape)
        return params, grads

    def _shape_of(self, name: str, length: int) -> tuple:
        if name.startswith("W"):
            layer = int(name[1:])
            return (self.sizes[layer - 1], self.sizes[layer])
        return (length,)

    def _batch(self, x, y, training: bool):
        """Checks (and, outside training, converts) inputs. In training nothing is copied
        silently: x must already be float32 and C-contiguous."""
        features = self.sizes[0]
        if not isinstance(x, np.ndarray):
            raise InvalidArgument(f"x must be a numpy array, got {type(x).__name__}")
        if x.ndim == 1 and x.size == features:
            x = x.reshape(1, features)
        if x.ndim != 2 or x.shape[1] != features:
            raise InvalidArgument(f"x has shape {x.shape}; expected (batch, {features})")
        if x.dtype != np.float32 or not x.flags.c_contiguous:
            if training:
                raise InvalidArgument(
                    f"x has dtype {x.dtype}{'' if x.flags.c_contiguous else ', not C-contiguous'}: training takes "
                    "float32 C-contiguous arrays (convert the data set once with np.ascontiguousarray(x, np.float32))")
            x = np.ascontiguousarray(x, dtype=np.float32)
        if len(x) == 0:
            raise InvalidArgument("x has no rows")
        if y is None:
            return x, None
        y = np.asarray(y)
        if y.shape != (len(x),):
            raise InvalidArgument(f"y has shape {y.shape}; expected ({len(x)},) to match x")
        if y.dtype != np.int32 or not y.flags.c_contiguous:
            if not np.issubdtype(y.dtype, np.integer):
                raise InvalidArgument(f"y has dtype {y.dtype}; labels must be integers")
            if y.min() < -2**31 or y.max() >= 2**31:
                raise InvalidArgument("y holds labels outside the int32 range")
            y = np.ascontiguousarray(y, dtype=np.int32)  # labels are small: a cheap copy
        return x, y
