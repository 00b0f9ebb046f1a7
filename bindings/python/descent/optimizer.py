"""Standalone optimizers: the book's `optimizer.update(params, grads)` on numpy arrays."""
from __future__ import annotations

import collections.abc as _abc
import ctypes
import json
import os
import threading
from typing import Mapping, Sequence, Union

import numpy as np

from ._lib import data_address, lib
from ._text import c_string, hparams_text, read_string
from .errors import InvalidArgument, check

_ndarray, _F32 = np.ndarray, np.dtype(np.float32)
_step = lib.descent_optimizer_step

ArrayGroup = Union[Mapping[str, np.ndarray], Sequence[np.ndarray]]


def optimizers() -> list[str]:
    """Names of every registered optimizer: built-ins first, then loaded plugins."""
    text = read_string(lambda buf, cap, needed: lib.descent_optimizer_names(buf, cap, needed))
    return text.split(",") if text else []


def describe(name: str) -> dict:
    """An optimizer's description: its update rule and hyperparameter table (defaults, ranges)."""
    encoded = c_string(name, "name")
    return json.loads(read_string(lambda buf, cap, needed: lib.descent_optimizer_describe(encoded, buf, cap, needed)))


def load_plugin(path: "str | os.PathLike") -> None:
    """Loads an optimizer plugin (.so) so its optimizers can be used by name everywhere."""
    check(lib.descent_plugin_load(c_string(path, "path", path=True)))


def set_num_threads(n: int) -> int:
    """Threads for the library's parallel kernels (0 = default). Returns the count in force."""
    check(lib.descent_set_num_threads(int(n)))
    return int(lib.descent_get_num_threads())


def get_num_threads() -> int:
    """Threads the library's parallel kernels use."""
    return int(lib.descent_get_num_threads())


class Optimizer:
    """An optimizer created by name, e.g. ``Optimizer("adam", lr=0.001)``.

    ``update(params, grads)`` updates float32 arrays in place, like the book's optimizers.
    Hyperparameters are attributes: ``opt.lr = 0.01`` changes the learning rate, keeping state.
    Free it with ``close()`` or a ``with`` block; the finaliser frees it otherwise.

    Threads: an optimizer may be shared between threads; its calls are serialised by a lock
    (the library runs them without the GIL, and one handle must not be used by two threads at
    once). ``close`` waits for a call in progress.
    """

    def __init__(self, name: str, **hparams: float):
        object.__setattr__(self, "_lock", threading.Lock())
        handle = ctypes.c_void_p()
        check(lib.descent_optimizer_create(c_string(name, "name"), hparams_text(hparams), ctypes.byref(handle)))
        object.__setattr__(self, "_handle", handle)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "_keys", [h["name"] for h in describe(name)["hyperparameters"]])
        object.__setattr__(self, "_tables", None)

    # -- hyperparameters as attributes -------------------------------------------------------
    def __getattr__(self, key: str) -> float:
        if key.startswith("_") or key not in self.__dict__.get("_keys", ()):
            raise AttributeError(f"{type(self).__name__!s} has no attribute {key!r}")
        return self.get(key)

    def __setattr__(self, key: str, value: float) -> None:
        if key in self.__dict__.get("_keys", ()):
            self.set(key, value)
        else:
            raise AttributeError(f"{key!r} is not a hyperparameter of {self.name}; known: {', '.join(self._keys)}")

    def get(self, key: str) -> float:
        """A hyperparameter's value; the key "step" gives the number of updates taken."""
        value = ctypes.c_double()
        encoded = c_string(key, "key")
        with self._lock:
            check(lib.descent_optimizer_get(self._live(), encoded, ctypes.byref(value)))
        return value.value

    def set(self, key: str, value: float) -> None:
        """Changes a hyperparameter; state and step count are kept."""
        encoded = c_string(key, "key")
        with self._lock:
            check(lib.descent_optimizer_set(self._live(), encoded, float(value)))

    @property
    def hyperparameters(self) -> dict[str, float]:
        """Every hyperparameter's current value, by name (weight_decay included)."""
        return {key: self.get(key) for key in self._keys}

    @property
    def step_count(self) -> int:
        """Updates taken since creation or the last ``reset`` (t of the last step)."""
        return int(self.get("step"))

    # -- updates -------------------------------------------------------------------------------
    def update(self, params: ArrayGroup, grads: ArrayGroup) -> None:
        """Updates every parameter array in place from its gradient (dicts matched by key,
        lists by position). Arrays must be float32 and C-contiguous: updating a converted copy
        would silently lose the update, so anything else is rejected."""
        if type(params) is dict or isinstance(params, _abc.Mapping):
            if not (type(grads) is dict or isinstance(grads, _abc.Mapping)) or params.keys() != grads.keys():
                raise InvalidArgument("params and grads must be dicts with the same keys")
            names = list(params)
            p_list, g_list = [params[k] for k in names], [grads[k] for k in names]
        else:
            names = None  # positions, named only in error messages
            p_list, g_list = list(params), list(grads)
            if len(p_list) != len(g_list):
                raise InvalidArgument(f"{len(p_list)} params but {len(g_list)} grads")
        if not p_list:
            raise InvalidArgument("params is empty")
        self._live()
        for i, p in enumerate(p_list):
            g = g_list[i]
            # The common case in a few identity checks; the detailed checks (and their messages)
            # only when something is off.
            if (type(p) is _ndarray and type(g) is _ndarray and p.dtype is _F32 and g.dtype is _F32
                    and p.shape == g.shape):
                flags = p.flags
                if flags.c_contiguous and flags.writeable and g.flags.c_contiguous:
                    continue
            name = names[i] if names is not None else str(i)
            _require_float32(p, f"params[{name!r}]", writable=True)
            _require_float32(g, f"grads[{name!r}]")
            if p.shape != g.shape:
                raise InvalidArgument(f"params[{name!r}] has shape {p.shape} but grads[{name!r}] has {g.shape}")
        with self._lock:
            handle = self._live()
            tables = self._pointer_tables(p_list, g_list)
            status = _step(handle, len(p_list), *tables)
            if status:
                check(status)

    def reset(self) -> None:
        """Forgets state and step count (hyperparameters are kept)."""
        with self._lock:
            check(lib.descent_optimizer_reset(self._live()))

    def close(self) -> None:
        """Frees the optimizer now (after a call in progress in another thread). Further use
        raises."""
        lock = self.__dict__.get("_lock")
        if lock is None:
            return
        with lock:
            handle = self.__dict__.get("_handle")
            if handle:
                lib.descent_optimizer_free(handle)
                object.__setattr__(self, "_handle", None)

    def __enter__(self) -> "Optimizer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        if not self.__dict__.get("_handle"):
            return f"<descent.Optimizer {self.name} (closed)>"
        values = ", ".join(f"{k}={v:g}" for k, v in self.hyperparameters.items())
        return f"<descent.Optimizer {self.name}({values}), step {self.step_count}>"

    # -- internals -------------------------------------------------------------------------------
    def _live(self) -> ctypes.c_void_p:
        handle = self.__dict__.get("_handle")
        if not handle:
            raise InvalidArgument(f"this {self.name} optimizer is closed")
        return handle

    def _pointer_tables(self, p_list, g_list):
        """ctypes arrays of data addresses and lengths, rebuilt only when the arrays change
        (the training loop passes the same arrays every step)."""
        address = data_address
        key = tuple([(address(p), address(g), p.size) for p, g in zip(p_list, g_list)])
        cached = self.__dict__["_tables"]
        if cached is None or cached[0] != key:
            n = len(key)
            params = (ctypes.c_void_p * n)(*[k[0] for k in key])
            grads = (ctypes.c_void_p * n)(*[k[1] for k in key])
            lengths = (ctypes.c_int64 * n)(*[k[2] for k in key])
            cached = (key, (params, grads, lengths))
            object.__setattr__(self, "_tables", cached)
        return cached[1]


def _require_float32(a, what: str, writable: bool = False) -> None:
    if not isinstance(a, np.ndarray):
        raise InvalidArgument(f"{what} must be a numpy array, got {type(a).__name__}")
    if a.dtype != np.float32:
        raise InvalidArgument(f"{what} has dtype {a.dtype}; Descent works on float32 (use .astype(np.float32) once, outside the loop)")
    if not a.flags.c_contiguous:
        raise InvalidArgument(f"{what} is not C-contiguous (use np.ascontiguousarray once, outside the loop)")
    if writable and not a.flags.writeable:
        raise InvalidArgument(f"{what} is read-only")
