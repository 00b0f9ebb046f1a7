"""Networks: the book's MultiLayerNetExtend, trained through libdescent."""
from __future__ import annotations

import copy
import ctypes
import json
import os
import threading
from typing import Optional

import numpy as np

from ._inputs import batch_inputs
from ._lib import DATA_OFFSET as _DATA_OFFSET, data_address, lib
from ._text import c_string, hparams_text, read_string
from .errors import InvalidArgument, check
from .network_optimizer import NetworkOptimizer, optimizer_name
from .optimizer import hyperparameter_names

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


def _param_shape(pointer: ctypes.c_void_p, index: int) -> tuple:
    """Parameter `index`'s shape, as the library states it (rank 1 or 2, at most 8)."""
    rank, dims = ctypes.c_int32(), (ctypes.c_int64 * 8)()
    check(lib.descent_net_param_shape(pointer, index, ctypes.byref(rank), dims, len(dims)))
    return tuple(dims[:rank.value])


def _view(handle: _Handle, address: int, shape: tuple, writable: bool = True) -> np.ndarray:
    """A numpy array over library memory that keeps the handle alive."""
    count = int(np.prod(shape))
    buffer = (ctypes.c_float * count).from_address(address)
    buffer._owner = handle  # noqa: SLF001 - ties the memory's lifetime to the view
    array = np.frombuffer(buffer, dtype=np.float32, count=count).reshape(shape)
    array.flags.writeable = writable
    return array


DEFAULT_SEED = 42  # the library's default (NetworkSpec.seed): Network(sizes) equals {"sizes": [...]} in C


class Network:
    """A multi-layer perceptron (the book's MultiLayerNetExtend): Affine -> [BatchNorm] ->
    activation -> [Dropout] per hidden layer, Affine -> softmax with cross-entropy at the end.

    Network(sizes, activation="relu", init="he", batchnorm=False, dropout=0.0, weight_decay=0.0,
    seed=42):

      sizes         inputs, hidden widths..., classes, e.g. [784, 100, 100, 10] (at least 2
                    entries, all >= 1, classes >= 2)
      activation    "relu", "sigmoid" or "tanh"
      init          the weights' initial standard deviation: "he" (sqrt(2/fan_in), for ReLU),
                    "xavier" (the book's sqrt(1/fan_in), for sigmoid and tanh), "std:X" (X itself,
                    e.g. "std:0.01"), or "zeros"; biases start at 0
      batchnorm     batch normalisation after every hidden affine layer (batch statistics in
                    training, running averages in evaluate/predict); training then needs batches
                    of at least 2
      dropout       inverted-dropout ratio after every hidden activation, in [0, 1) (0: none)
      weight_decay  lambda >= 0: 0.5*lambda*sum(W^2) joins the loss (weights only); when > 0 the
                    optimizer's own L2 weight_decay must stay 0
      seed          a whole number fixing initialisation and dropout masks (same seed and inputs:
                    bit-identical losses, whatever the thread count); 42 by default, as in the C library

    Attributes (all read-only: assigning any attribute raises AttributeError):
      optimizer        the optimizer in use (sgd, lr 0.01, until ``set_optimizer``), with its
                       hyperparameters as attributes: ``net.optimizer.lr = 5e-4`` (state kept)
      optimizer_name   its name (``net.optimizer.name``)
      params, grads    dicts of zero-copy float32 views ("W1", "b1", "gamma1", "beta1", ...):
                       writing to ``net.params["W1"]`` changes the network
      param_buffer, grad_buffer
                       every parameter, and every gradient, as one flat zero-copy float32 view
                       (the library's arenas: ``params``/``grads`` are slices of them, each on a
                       64-byte boundary, the floats between them zero and never read). Writing
                       ``grad_buffer`` between ``forward_backward`` and ``apply_update`` replaces
                       the gradients, e.g. with an all-reduce across processes
      spec             the spec as the library holds it (every field, defaults filled in)
      sizes            spec["sizes"]

    Inputs (train_step, forward_backward, evaluate, predict): x a 2-D numpy float array (batch,
    features), y a 1-D numpy array of integer labels; see ``train_step`` for which copies are made.

    Threads: a network may be shared between threads. Its calls are serialised by a lock (the
    library runs each C call without the GIL, and one network handle must not be used by two
    threads at once), so concurrent calls take turns; ``close`` waits for a call in progress.
    """

    # Slots: every attribute is listed, so a typo such as ``net.lr = 0.5`` cannot create a new,
    # silently ignored one (``__setattr__`` explains instead).
    __slots__ = ("_lock", "_handle", "_pointer", "_loss", "_loss_address", "_spec", "_features", "_params",
                 "_grads", "_param_buffer", "_grad_buffer", "_optimizer_generation", "_optimizer_name", "_allreduce",
                 "__weakref__")

    def __init__(self, sizes, activation: str = "relu", init: str = "he", batchnorm: bool = False,
                 dropout: float = 0.0, weight_decay: float = 0.0, seed: int = DEFAULT_SEED):
        c_string(activation, "activation")
        c_string(init, "init")
        spec = {"sizes": [int(s) for s in sizes], "activation": activation, "init": init,
                "batchnorm": bool(batchnorm), "dropout": float(dropout),
                "weight_decay": float(weight_decay), "seed": int(seed)}
        pointer = ctypes.c_void_p()
        check(lib.descent_net_create(json.dumps(spec).encode(), ctypes.byref(pointer)))
        self._adopt(pointer)

    @classmethod
    def load(cls, path: "str | os.PathLike") -> "Network":
        """Reads a checkpoint written by ``save``: weights, batch-norm statistics, optimizer
        and its state, so training continues exactly where it stopped."""
        encoded = c_string(path, "path", path=True)
        pointer = ctypes.c_void_p()
        check(lib.descent_net_load(encoded, ctypes.byref(pointer)))
        net = cls.__new__(cls)
        net._adopt(pointer)
        return net

    def _adopt(self, pointer: ctypes.c_void_p) -> None:
        put = object.__setattr__
        # Held around every C call on the handle (and while closing): see the class comment.
        put(self, "_lock", threading.Lock())
        put(self, "_handle", _Handle(pointer))
        # The hot path's fixed arguments, built once: the handle as a plain int and one float the
        # library writes the loss into (read under the lock, like every use of the handle).
        put(self, "_pointer", pointer.value)
        put(self, "_loss", ctypes.c_float())
        put(self, "_allreduce", None)   # descent.distributed.join's callback, while in a job
        put(self, "_loss_address", ctypes.addressof(self._loss))
        put(self, "_spec", json.loads(read_string(
            lambda buf, cap, needed: lib.descent_net_spec(pointer, buf, cap, needed))))
        put(self, "_features", self._spec["sizes"][0])
        param_buffer, grad_buffer, params, grads = self._build_views()
        put(self, "_param_buffer", param_buffer)
        put(self, "_grad_buffer", grad_buffer)
        put(self, "_params", params)
        put(self, "_grads", grads)
        # Bumped by every successful set_optimizer: a NetworkOptimizer of an older one refuses use.
        put(self, "_optimizer_generation", 0)
        put(self, "_optimizer_name", self._current_optimizer_name())

    def __setattr__(self, name: str, value) -> None:
        if type(self) is not Network and not hasattr(Network, name):
            object.__setattr__(self, name, value)  # a subclass's own attribute
            return
        public = "optimizer, optimizer_name, params, grads, param_buffer, grad_buffer, spec, sizes"
        if hasattr(Network, name) and not name.startswith("_"):
            swap = name in ("optimizer", "optimizer_name")
            hint = "; swap it with net.set_optimizer(name, **hyperparameters)" if swap else ""
            raise AttributeError(f"Network.{name} is read-only{hint}")
        keys = hyperparameter_names(self._optimizer_name) if getattr(self, "_pointer", None) else ()
        if name in keys:
            raise AttributeError(f"Network has no attribute {name!r}: {name} is a hyperparameter of its optimizer "
                                 f"({self._optimizer_name}), set it there: net.optimizer.{name} = {value!r}")
        raise AttributeError(f"Network has no attribute {name!r} (its attributes, all read-only: {public})")

    # -- attributes --------------------------------------------------------------------------------
    @property
    def spec(self) -> dict:
        """The network's spec (sizes, activation, init, batchnorm, dropout, weight_decay, seed),
        as the library holds it: a copy, changing it changes nothing."""
        return copy.deepcopy(self._spec)

    @property
    def sizes(self) -> list[int]:
        """Inputs, hidden widths..., classes (a copy)."""
        return list(self._spec["sizes"])

    @property
    def optimizer(self) -> NetworkOptimizer:
        """The optimizer in use, borrowed from the network: ``net.optimizer.lr = 5e-4`` changes
        the learning rate of the next steps, keeping moments and step count; ``.name``,
        ``.hyperparameters``, ``.step_count``, ``.describe()``, ``.reset()`` as on an
        ``Optimizer``. An object kept from before ``set_optimizer`` or ``close`` raises
        InvalidArgument on use; read ``net.optimizer`` again for the current one."""
        with self._lock:
            self._live()
            return NetworkOptimizer(self, self._optimizer_generation, self._optimizer_name)

    @property
    def optimizer_name(self) -> str:
        """The name of the optimizer in use, e.g. "sgd" (``net.optimizer.name``)."""
        with self._lock:
            self._live()
            return self._optimizer_name

    # -- training -------------------------------------------------------------------------------
    def _set_allreduce(self, function, rank: int, ranks: int, overlap: bool = False) -> None:
        """descent_net_set_allreduce (used by ``descent.distributed.join``): ``function`` is an
        ``ALLREDUCE_FN`` callback, kept alive here while the library may call it, or a NULL one."""
        with self._lock:
            check(lib.descent_net_set_allreduce(self._live(), function, None, rank, ranks, int(overlap)))
            object.__setattr__(self, "_allreduce", function)

    def set_optimizer(self, name: str, **hparams: float) -> None:
        """Swaps the optimizer by name (built-in or plugin, with hyperparameters as in
        ``descent.Optimizer``) at any time: weights are kept, the new optimizer's state starts
        fresh. ``net.optimizer`` then gives the new one; objects from the old one refuse use.
        On error the old optimizer stays, untouched."""
        encoded, text = c_string(name, "name"), hparams_text(hparams)
        with self._lock:
            pointer = self._live()
            check(lib.descent_net_set_optimizer(pointer, encoded, text))
            object.__setattr__(self, "_optimizer_generation", self._optimizer_generation + 1)
            object.__setattr__(self, "_optimizer_name", self._current_optimizer_name())

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One step on a mini-batch (forward, backward, optimizer update); returns the loss
        (mean cross-entropy plus the weight-decay term) before the update.

        x: a 2-D numpy array (batch, features), float32 and C-contiguous: training never copies
        it (convert the data set once with np.ascontiguousarray(x, dtype=np.float32)); a 1-D
        sample is an error, one sample is x.reshape(1, -1).
        y: a 1-D numpy array of integer labels (batch,); int32 C-contiguous is used as is, any
        other integer dtype is copied to int32. Lists are rejected, for x and y alike.
        Errors raise InvalidArgument with "Network.train_step: ..." (or the library's message)
        and change nothing."""
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
        return self._slow_step(_train_step, "Network.train_step", x, y)

    def forward_backward(self, x: np.ndarray, y: np.ndarray) -> float:
        """Forward and backward only: fills ``grads`` (e.g. to average them across processes).
        Returns the loss. Inputs as in ``train_step`` (x float32 C-contiguous, never copied)."""
        return self._slow_step(_forward_backward, "Network.forward_backward", x, y)

    def _slow_step(self, fn, method: str, x, y) -> float:
        """The checked path: converts what may be converted, explains the rest (batch_inputs)."""
        self._live()
        x, y = batch_inputs(method, x, y, self._features, training=True)
        with self._lock:
            check(fn(self._live(), data_address(x), data_address(y), x.shape[0], self._loss_address))
            return self._loss.value

    def apply_update(self) -> None:
        """The optimizer step on the current gradients."""
        with self._lock:
            check(lib.descent_net_apply_update(self._live()))

    # -- inference --------------------------------------------------------------------------------
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (batch, classes) in evaluation mode (running batch-norm averages,
        no dropout).

        x: a 2-D numpy float array (batch, features); float32 C-contiguous is used as is, any
        other float array (float64, a strided view) is copied to float32 for this call. A 1-D
        sample is an error: one sample is x.reshape(1, -1)."""
        x, _ = batch_inputs("Network.predict", x, None, self._features, training=False)
        probs = np.empty((len(x), self._spec["sizes"][-1]), dtype=np.float32)
        with self._lock:
            check(lib.descent_net_predict(self._live(), data_address(x), len(x), data_address(probs)))
        return probs

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """(mean loss, accuracy) over all samples in evaluation mode, in chunks of 1000 rows.

        x as in ``predict`` (other float arrays are copied to float32 for this call); y a 1-D
        numpy array of integer labels, copied to int32 unless it is int32 already."""
        x, y = batch_inputs("Network.evaluate", x, y, self._features, training=False)
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

    @property
    def param_buffer(self) -> np.ndarray:
        """Every parameter in one flat zero-copy float32 view (the library's parameter arena);
        ``params[name]`` are slices of it. Writing it changes the network."""
        with self._lock:
            self._live()
            return self._param_buffer

    @property
    def grad_buffer(self) -> np.ndarray:
        """Every gradient in one flat zero-copy float32 view, laid out as ``param_buffer``.
        Writing it between ``forward_backward`` and ``apply_update`` replaces the gradients
        (e.g. ``comm.Allreduce(MPI.IN_PLACE, net.grad_buffer)``, then divide by the size)."""
        with self._lock:
            self._live()
            return self._grad_buffer

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
            for name, value in (("_handle", None), ("_pointer", None), ("_params", {}), ("_grads", {}),
                                ("_param_buffer", None), ("_grad_buffer", None)):
                object.__setattr__(self, name, value)

    def __enter__(self) -> "Network":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "" if getattr(self, "_handle", None) else " (closed)"
        return f"<descent.Network {getattr(self, '_spec', '?')}{state}>"

    # -- internals ----------------------------------------------------------------------------------
    def _live(self) -> ctypes.c_void_p:
        if not getattr(self, "_handle", None):
            raise InvalidArgument("this network is closed")
        return self._handle.pointer

    def _build_views(self):
        """The two arenas as flat views, and each parameter (and gradient) as a slice of them."""
        pointer = self._handle.pointer
        data, grad, length = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_int64()
        check(lib.descent_net_arena(pointer, ctypes.byref(data), ctypes.byref(grad), ctypes.byref(length)))
        param_buffer = _view(self._handle, data.value, (length.value,))
        grad_buffer = _view(self._handle, grad.value, (length.value,))
        params, grads = {}, {}
        for i in range(lib.descent_net_param_count(pointer)):
            name, offset, count = ctypes.c_char_p(), ctypes.c_int64(), ctypes.c_int64()
            check(lib.descent_net_param(pointer, i, ctypes.byref(name), None, None, ctypes.byref(count)))
            check(lib.descent_net_param_offset(pointer, i, ctypes.byref(offset)))
            key = name.value.decode()
            shape = _param_shape(pointer, i)
            span = slice(offset.value, offset.value + count.value)
            params[key] = param_buffer[span].reshape(shape)
            grads[key] = grad_buffer[span].reshape(shape)
        return param_buffer, grad_buffer, params, grads

    def _current_optimizer_name(self) -> str:
        """The library's name for the optimizer in use (called under the lock, or in _adopt)."""
        handle = ctypes.c_void_p()
        check(lib.descent_net_optimizer(self._pointer, ctypes.byref(handle)))
        return optimizer_name(handle)

