"""Reading the library's measure-then-fill string outputs."""
from __future__ import annotations

import ctypes
import os
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


def c_string(value, what: str, path: bool = False) -> bytes:
    """A str or bytes argument (with path=True also an os.PathLike) as the bytes of a C string.

    C strings end at the first NUL, so "a.st\\0.bak" would reach the library as "a.st": such a
    value raises ValueError ("embedded null byte"), as Python's own open() does. Paths are
    encoded as os.fsencode does (the file-system encoding, undecodable bytes kept); names UTF-8."""
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, str):
        data = os.fsencode(value) if path else value.encode("utf-8")
    elif path and isinstance(value, os.PathLike):
        data = os.fsencode(value)
    else:
        kinds = "str, bytes or os.PathLike" if path else "str or bytes"
        raise TypeError(f"{what} must be {kinds}, got {type(value).__name__}")
    if b"\0" in data:
        raise ValueError(f"{what} contains an embedded null byte: {value!r}")
    return data


def hparams_text(hparams: dict[str, float]) -> bytes:
    """{"lr": 0.01} -> b"lr=0.01" (repr keeps every digit of the float). Booleans (eps_hat=False)
    become 1/0; numpy scalars are accepted. The library checks names and ranges."""
    parts = []
    for key, value in hparams.items():
        c_string(key, "hyperparameter name")
        if not key or any(c in key for c in ",= \t\n"):
            raise InvalidArgument(f"{key!r} is not a valid hyperparameter name")
        if isinstance(value, (bool, np.bool_)):
            value = float(value)
        if not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"hyperparameter {key!r} must be a number, got {type(value).__name__}")
        parts.append(f"{key}={float(value)!r}")
    return ",".join(parts).encode()
