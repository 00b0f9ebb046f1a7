"""Reading the library's measure-then-fill string outputs."""
from __future__ import annotations

import ctypes
from typing import Callable

from .errors import check


def read_string(call: Callable[[object, int, object], int]) -> str:
    """call(buf, cap, needed_ptr) per the C contract: measure with (NULL, 0), then fill."""
    needed = ctypes.c_int64(0)
    check(call(None, 0, ctypes.byref(needed)))
    buf = ctypes.create_string_buffer(int(needed.value))
    check(call(buf, needed.value, ctypes.byref(needed)))
    return buf.value.decode("utf-8")


def hparams_text(hparams: dict[str, float]) -> bytes:
    """{"lr": 0.01} -> b"lr=0.01" (repr keeps every digit of the float)."""
    for key, value in hparams.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise TypeError(f"hyperparameter {key!r} must be a number, got {type(value).__name__}")
    return ",".join(f"{key}={float(value)!r}" for key, value in hparams.items()).encode()
