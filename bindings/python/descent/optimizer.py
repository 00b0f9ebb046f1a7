"""Standalone optimizers: the book's `optimizer.update(params, grads)` on numpy arrays."""
from __future__ import annotations

import collections.abc as _abc
import contextlib
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


def plugin_search_path() -> list[str]:
    """The folders whose "*.so" plugins are loaded the first time an optimizer name is looked
    up, in search order: those of DESCENT_PLUGIN_PATH, then the installed plugin folder."""
    text = read_string(lambda buf, cap, needed: lib.descent_plugin_search_path(buf, cap, needed))
    return text.split(":") if text else []


def set_num_threads(n: int) -> int:
    """Threads for the library's parallel kernels (0 = default). Returns the count in force."""
    check(lib.descent_set_num_threads(int(n)))
    return int(lib.descent_get_num_threads())


def get_num_threads() -> int:
    """Threads the library's parallel kernels use."""
    return int(lib.descent_get_num_threads())


_KEYS: dict[str, tuple[str, ...]] = {}  # name -> hyperparameter names (a registered name never changes)


def hyperparameter_names(name: str) -> tuple[str, ...]:
    """An optimizer's hyperparameter names, in describe()'s order, looked up once per name."""
    keys = _KEYS.get(name)
    if keys is None:
        keys = _KEYS[name] = tuple(h["name"] for h in describe(name)["hyperparameters"])
    return keys


class HyperparameterAccess:
    """What ``Optimizer`` and a network's optimizer (``Network.optimizer``) share: the name,
    hyperparameters as attributes (``opt.lr = 0.01`` keeps state and step count), ``get``/``set``,
    ``hyperparameters``, ``step_count``, ``describe`` and ``reset``.

    A subclass provides ``_borrow()``: a context manager holding the right lock and giving the C
    handle, or raising when there is none any more."""

    __slots__ = ()
    _READ_ONLY = ("name", "hyperparameters", "step_count")

    # -- hyperparameters as attributes ---------------------------------------------------------
    def __getattr__(self, key: str) -> float:
        # Called only for names that are not methods, properties or set slots.
        if key.startswith("_") or key == "name":  # not set yet (a failed __init__): no recursion
            raise AttributeError(f"{type(self).__name__} has no attribute {key!r}")
        keys = hyperparameter_names(self.name)
        if key in keys:
            return self.get(key)
        raise AttributeError(f"{self._title()} has no attribute {key!r}; its hyperparameters: {', '.join(keys)}")

    def __setattr__(self, key: str, value: float) -> None:
        keys = hyperparameter_names(self.name)
        if key in keys:
            self.set(key, value)
        elif key in self._READ_ONLY or hasattr(type(self), key):
            raise AttributeError(f"{self._title()}: {key} is read-only; what can be set are its hyperparameters: "
                                 f"{', '.join(keys)}")
        else:
            raise AttributeError(f"{key!r} is not a hyperparameter of {self._title()}; its hyperparameters: "
                                 f"{', '.join(keys)}")

    def _title(self) -> str:
        return f"Optimizer {self.name!r}"

    def get(self, key: str) -> float:
        """A hyperparameter's value; the key "step" gives the number of updates taken."""
        value = ctypes.c_double()
        encoded = c_string(key, "key")
        with self._borrow() as handle:
            check(lib.descent_optimizer_get(handle, encoded, ctypes.byref(value)))
        return value.value

    def set(self, key: str, value: float) -> None:
        """Changes a hyperparameter; state and step count are kept (this is how a learning-rate
        schedule is applied, see ``descent.schedules``)."""
        encoded = c_string(key, "key")
        with self._borrow() as handle:
            check(lib.descent_optimizer_set(handle, encoded, float(value)))

    @property
    def hyperparameters(self) -> dict[str, float]:
        """Every hyperparameter's current value, by name (the host's weight_decay and
        check_finite included)."""
        return {key: self.get(key) for key in hyperparameter_names(self.name)}

    @property
    def step_count(self) -> int:
        """Updates taken since creation or the last ``reset`` (t of the last step)."""
        return int(self.get("step"))

    def describe(self) -> dict:
        """The optimizer's description (``descent.describe(self.name)``): update rule, and every
        hyperparameter's default, range and help."""
        return describe(self.name)

    def reset(self) -> None:
        """Forgets state and step count (hyperparameters are kept)."""
        with self._borrow() as handle:
            check(lib.descent_optimizer_reset(handle))

    def _values_text(self) -> str:
        return ", ".join(f"{k}={v:g}" for k, v in self.hyperparameters.items())


class Optimizer(HyperparameterAccess):
    """An optimizer created by name: ``Optimizer(name, **hyperparameters)``, e.g.
    ``Optimizer("adam", lr=0.001)`` or ``Optimizer("momentum", lr=0.01, momentum=0.9)``.

    name: a built-in (sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw) or a loaded
    plugin's optimizer (``descent.optimizers()`` lists them). hyperparameters: any of that
    optimizer's (``descent.describe(name)`` gives defaults, ranges and help); those not given keep
    their defaults. Every optimizer without its own weight_decay also takes weight_decay (L2:
    g + weight_decay*p), and every one takes check_finite (1: refuse NaN/Inf gradients).

    ``update(params, grads)`` updates float32 arrays in place, like the book's optimizers.

    Attributes:
      name             the optimizer's name (read-only)
      <hyperparameter> e.g. ``opt.lr``: read the value, or assign it (``opt.lr = 0.0005`` keeps
                       the state and step count: a learning-rate schedule). Any other name
                       raises AttributeError listing the hyperparameters.
      hyperparameters  every hyperparameter's value, by name (read-only dict)
      step_count       updates taken since creation or ``reset``

    Free it with ``close()`` or a ``with`` block; the finaliser frees it otherwise.

    Threads: an optimizer may be shared between threads; its calls are serialised by a lock
    (the library runs them without the GIL, and one handle must not be used by two threads at
    once). ``close`` waits for a call in progress.
    """

    __slots__ = ("_lock", "_handle", "name", "_tables")

    def __init__(self, name: str, **hparams: float):
        object.__setattr__(self, "_lock", threading.Lock())
        object.__setattr__(self, "_handle", None)
        object.__setattr__(self, "_tables", None)
        encoded = c_string(name, "name")
        handle = ctypes.c_void_p()
        check(lib.descent_optimizer_create(encoded, hparams_text(hparams), ctypes.byref(handle)))
        object.__setattr__(self, "_handle", handle)
        object.__setattr__(self, "name", name)

    # -- updates -------------------------------------------------------------------------------
    def update(self, params: ArrayGroup, grads: ArrayGroup) -> None:
        """Updates every parameter array in place from its gradient (dicts matched by key,
        lists by position). Arrays must be float32 and C-contiguous: updating a converted copy
        would silently lose the update, so anything else is rejected."""
        if type(params) is dict or isinstance(params, _abc.Mapping):
            if not (type(grads) is dict or isinstance(grads, _abc.Mapping)):
                raise InvalidArgument(f"params is a dict but grads is a {type(grads).__name__}: "
                                      "pass two dicts with the same keys, or two lists")
            if params.keys() != grads.keys():
                raise InvalidArgument(_key_mismatch(params, grads))
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

    def close(self) -> None:
        """Frees the optimizer now (after a call in progress in another thread). Further use
        raises."""
        try:
            lock = self._lock
        except AttributeError:  # __init__ failed before there was a lock
            return
        with lock:
            handle = self._handle
            if handle:
                check(lib.descent_optimizer_free(handle))
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
        if not getattr(self, "_handle", None):
            return f"<descent.Optimizer {getattr(self, 'name', '?')} (closed)>"
        return f"<descent.Optimizer {self.name}({self._values_text()}), step {self.step_count}>"

    # -- internals -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _borrow(self):
        with self._lock:
            yield self._live()

    def _live(self) -> ctypes.c_void_p:
        handle = self._handle
        if not handle:
            raise InvalidArgument(f"this {self.name} optimizer is closed")
        return handle

    def _pointer_tables(self, p_list, g_list):
        """ctypes arrays of data addresses and lengths, rebuilt only when the arrays change
        (the training loop passes the same arrays every step)."""
        address = data_address
        key = tuple([(address(p), address(g), p.size) for p, g in zip(p_list, g_list)])
        cached = self._tables
        if cached is None or cached[0] != key:
            n = len(key)
            params = (ctypes.c_void_p * n)(*[k[0] for k in key])
            grads = (ctypes.c_void_p * n)(*[k[1] for k in key])
            lengths = (ctypes.c_int64 * n)(*[k[2] for k in key])
            cached = (key, (params, grads, lengths))
            object.__setattr__(self, "_tables", cached)
        return cached[1]


def _key_mismatch(params: Mapping, grads: Mapping) -> str:
    """Names the keys on each side only, e.g. "params and grads have different keys: grads lacks
    'b2'; grads has 'b3', which params lacks"."""
    missing = [k for k in params if k not in grads]
    extra = [k for k in grads if k not in params]
    parts = []
    if missing:
        parts.append(f"grads lacks {_keys_text(missing)}")
    if extra:
        parts.append(f"grads has {_keys_text(extra)}, which params lacks")
    return "params and grads have different keys: " + "; ".join(parts)


def _keys_text(keys: list) -> str:
    return ", ".join(repr(k) for k in keys)


def _require_float32(a, what: str, writable: bool = False) -> None:
    if not isinstance(a, np.ndarray):
        raise InvalidArgument(f"{what} must be a numpy array, got {type(a).__name__}")
    if a.dtype != np.float32:
        raise InvalidArgument(f"{what} has dtype {a.dtype}; Descent works on float32 (use .astype(np.float32) once, outside the loop)")
    if not a.flags.c_contiguous:
        raise InvalidArgument(f"{what} is not C-contiguous (use np.ascontiguousarray once, outside the loop)")
    if writable and not a.flags.writeable:
        raise InvalidArgument(f"{what} is read-only")
