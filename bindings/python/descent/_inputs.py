"""The one input rule of Network.train_step, forward_backward, evaluate and predict.

x: a 2-D numpy array (batch, features) of floats. Training takes it only as float32 and
C-contiguous, because it never copies x (a silent copy per step would cost more than the step);
evaluate and predict copy any other float array to float32 for the call. A 1-D x is an error, not
a batch of one: the library cannot tell one sample from a batch of scalars.
y: a 1-D numpy array of integer labels, one per row of x. Every method takes any integer dtype
and copies it to int32 unless it is int32 and C-contiguous already (labels are small).
Lists and other sequences are rejected for x and y alike: np.asarray makes the array, and the
caller then sees (and pays for) the conversion once, outside the loop.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .errors import InvalidArgument

_F32, _I32 = np.dtype(np.float32), np.dtype(np.int32)
_I32_MIN, _I32_MAX = -2**31, 2**31 - 1


def batch_inputs(method: str, x, y, features: int, training: bool) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """(x, y) as the C call takes them: x float32 C-contiguous (batch, features), y int32
    C-contiguous (batch,) or None when `y` is None. `method` names the caller in messages
    ("Network.train_step"); `training` forbids copying x. Raises InvalidArgument."""
    x = _features(method, x, features, training)
    if y is None:
        return x, None
    return x, _labels(method, y, len(x))


def _features(method: str, x, features: int, training: bool) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise InvalidArgument(f"{method}: x must be a numpy array, got {type(x).__name__} "
                              "(np.asarray(x, dtype=np.float32) makes one)")
    if x.ndim != 2:
        hint = ""
        if x.ndim == 1:
            hint = "; one sample is x.reshape(1, -1)"
        elif x.ndim > 2:
            hint = "; flatten each sample: x.reshape(len(x), -1)"
        raise InvalidArgument(f"{method}: x has shape {x.shape}; expected a 2-D array (batch, {features}){hint}")
    if x.shape[1] != features:
        raise InvalidArgument(f"{method}: x has shape {x.shape}; expected (batch, {features})")
    if len(x) == 0:
        raise InvalidArgument(f"{method}: x has no rows")
    if x.dtype.kind != "f":
        hint = " (scale integer pixels first, e.g. x.astype(np.float32) / 255)" if x.dtype.kind in "iu" else ""
        raise InvalidArgument(f"{method}: x has dtype {x.dtype}; features must be floats{hint}")
    if x.dtype == _F32 and x.flags.c_contiguous:
        return x
    if training:
        if x.dtype != _F32:
            problem = f"has dtype {x.dtype}, not float32"
            if not x.flags.c_contiguous:
                problem += ", and is not C-contiguous"
        else:
            problem = "is not C-contiguous"
        raise InvalidArgument(f"{method}: x {problem}: training never copies x, so convert the data set once, "
                              "outside the loop: np.ascontiguousarray(x, dtype=np.float32)")
    return np.ascontiguousarray(x, dtype=np.float32)


def _labels(method: str, y, batch: int) -> np.ndarray:
    if not isinstance(y, np.ndarray):
        raise InvalidArgument(f"{method}: y must be a numpy array of integer labels, got {type(y).__name__} "
                              "(np.asarray(y) makes one)")
    if y.shape != (batch,):
        raise InvalidArgument(f"{method}: y has shape {y.shape}; expected ({batch},), one label per row of x")
    if y.dtype == _I32 and y.flags.c_contiguous:
        return y
    if y.dtype.kind not in "iu":
        raise InvalidArgument(f"{method}: y has dtype {y.dtype}; labels must be integers (class indices)")
    if y.dtype.itemsize >= 4:  # narrower integers always fit
        outside = np.flatnonzero((y < _I32_MIN) | (y > _I32_MAX))
        if outside.size:
            i = int(outside[0])
            raise InvalidArgument(f"{method}: y[{i}] is {int(y[i])}, outside the range of int32 labels")
    return np.ascontiguousarray(y, dtype=np.int32)
