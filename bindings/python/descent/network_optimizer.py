"""A network's own optimizer (``Network.optimizer``), borrowed from the network."""
from __future__ import annotations

import contextlib
import ctypes
from typing import TYPE_CHECKING

from ._lib import lib
from .errors import InvalidArgument, check
from .optimizer import HyperparameterAccess

if TYPE_CHECKING:
    from .network import Network


class NetworkOptimizer(HyperparameterAccess):
    """The optimizer a ``Network`` steps, as ``net.optimizer`` gives it: the attribute interface of
    ``descent.Optimizer`` on the network's own optimizer.

    ``net.optimizer.lr = 5e-4`` changes the learning rate from the next ``train_step`` on, keeping
    moments and step count (so a schedule is ``net.optimizer.lr = schedule(step)``, see
    ``descent.schedules``); ``net.optimizer.lr``, ``.name``, ``.hyperparameters``,
    ``.step_count``, ``.describe()`` and ``.reset()`` work as on an ``Optimizer``. Checkpoints
    save the values in force.

    It is the network's, not yours: ``update`` is refused (the network steps it with its own
    parameters in ``train_step`` and ``apply_update``) and so is ``close`` (it goes with the
    network).

    Lifetime: ``net.optimizer`` always gives the optimizer in use. An object obtained before
    ``net.set_optimizer(...)`` stands for the optimizer that call replaced, as an old
    ``torch.optim`` object would, and every use of it raises InvalidArgument instead of changing
    an optimizer the network no longer runs; after ``net.close()`` every use raises too.
    """

    __slots__ = ("_net", "_generation", "name")

    def __init__(self, net: "Network", generation: int, name: str):
        object.__setattr__(self, "_net", net)
        object.__setattr__(self, "_generation", generation)
        object.__setattr__(self, "name", name)

    def update(self, params=None, grads=None) -> None:
        """Refused: the network steps its optimizer itself, with its own parameters."""
        raise InvalidArgument(f"net.optimizer.update: this {self.name} optimizer belongs to a network, which steps "
                              "it with its own parameters in net.train_step (or net.apply_update); for your own "
                              f"arrays create one: descent.Optimizer({self.name!r}, ...)")

    def close(self) -> None:
        """Refused: the optimizer is freed with its network (``net.close()``)."""
        raise InvalidArgument(f"net.optimizer.close: this {self.name} optimizer belongs to a network and is freed "
                              "with it by net.close()")

    def _title(self) -> str:
        return f"the network's optimizer {self.name!r}"

    def __repr__(self) -> str:
        try:
            return f"<descent.Network optimizer {self.name}({self._values_text()}), step {self.step_count}>"
        except InvalidArgument as e:
            return f"<descent.Network optimizer {self.name} ({e})>"

    @contextlib.contextmanager
    def _borrow(self):
        """The C handle under the network's lock (one thread at a time for both), asked for
        again on every use: the library invalidates it when the optimizer is swapped."""
        net = self._net
        with net._lock:
            if not net._pointer:
                raise InvalidArgument(f"this {self.name} optimizer went with its network: the network is closed")
            if net._optimizer_generation != self._generation:
                raise InvalidArgument(
                    f"this {self.name} optimizer was replaced by net.set_optimizer({net._optimizer_name!r}, ...); "
                    "net.optimizer gives the one in use")
            handle = ctypes.c_void_p()
            check(lib.descent_net_optimizer(net._pointer, ctypes.byref(handle)))
            yield handle


def optimizer_name(handle: ctypes.c_void_p) -> str:
    """The registered name of the optimizer behind a C handle."""
    name = ctypes.c_char_p()
    check(lib.descent_optimizer_name(handle, ctypes.byref(name)))
    return name.value.decode("utf-8")
