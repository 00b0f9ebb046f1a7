"""Exceptions: one class per library status, all carrying the library's message."""
from __future__ import annotations


class DescentError(Exception):
    """A Descent call failed. `status` is the C status code, `status_name` its C name."""

    status = -1
    status_name = "DESCENT_ERR_UNKNOWN"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidArgument(DescentError, ValueError):
    status, status_name = 1, "DESCENT_ERR_INVALID_ARGUMENT"


class NotFound(DescentError, LookupError):
    status, status_name = 2, "DESCENT_ERR_NOT_FOUND"


class NumericError(DescentError, ArithmeticError):
    status, status_name = 3, "DESCENT_ERR_NUMERIC"


class ShapeError(DescentError, ValueError):
    status, status_name = 4, "DESCENT_ERR_SHAPE"


class IOError_(DescentError, OSError):
    status, status_name = 5, "DESCENT_ERR_IO"


class FormatError(DescentError, ValueError):
    status, status_name = 6, "DESCENT_ERR_FORMAT"


class PluginError(DescentError):
    status, status_name = 7, "DESCENT_ERR_PLUGIN"


class OutOfMemory(DescentError, MemoryError):
    status, status_name = 8, "DESCENT_ERR_OUT_OF_MEMORY"


class BufferTooSmall(DescentError):
    status, status_name = 9, "DESCENT_ERR_BUFFER_TOO_SMALL"


IOError_.__name__ = IOError_.__qualname__ = "IOError"
IOError = IOError_  # noqa: A001 - the library's name for status DESCENT_ERR_IO

BY_STATUS = {cls.status: cls for cls in
             (InvalidArgument, NotFound, NumericError, ShapeError, IOError_, FormatError, PluginError,
              OutOfMemory, BufferTooSmall)}


def check(status: int) -> None:
    """Raises the exception for a non-zero status, with descent_last_error()'s message."""
    if status == 0:
        return
    from ._lib import lib
    message = (lib.descent_last_error() or b"").decode("utf-8", "replace")
    raise BY_STATUS.get(status, DescentError)(message)
