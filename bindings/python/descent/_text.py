"""Reading the library's measure-then-fill string outputs."""
from __future__ import annotations

import ctypes
from typing import Callable

import numpy as np

from .errors import InvalidArgument, check


def read_string(call: Callable[[object, int, object], int]) -> str:
    """call(buf, cap, needed_ptr) per the C contract: measure with (NULL, 0), then fill."""
    needed = ctypes.c_int64(0)
    check(call(None, 0, ctypes.byref(needed)))
    buf = ctypes.create_string_buffer(int(needed.value))
    check(call(buf, needed.value, ctypes.byref(needed)))
    return buf.value.decode("utf-8")


def hparams_text(hparams: dict[str, float]) -> bytes:
    """{"lr": 0.01} -> b"lr=0.01" (repr keeps every digit of the float). Booleans (eps_hat=False)
    become 1/0; numpy scalars are accepted. The library checks names and ranges."""
    parts = []
    for key, value in hparams.items():
        if not key or any(c in key for c in ",= \t\n\0"):
            raise InvalidArgument(f"{key!r} is not a valid hyperparameter name")
        if isinstance(value, (bool, np.bool_)):
            value = float(value)
        if not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"hyperparameter {key!r} must be a number, got {type(value).__name__}")
        parts.append(f"{key}={float(value)!r}")
    return ",".join(parts).encode()
