"""A :class:`~runtime.mix.mixable.Mixable` that takes a model's own lock around each call.

Services whose methods are ``#@nolock`` guard their model with a lock of their own; the
mixer must take that lock too. ``LockedMixable(model, lock)`` does so: the read lock for
``get_diff`` and ``get_model``, the write lock for ``put_diff`` and ``set_model``, none for
``mix`` (which touches only its arguments).
"""

from __future__ import annotations

from runtime.mix.mixable import Mixable
from runtime.rpc.locks import RWLock


class LockedMixable:
    """``inner``'s mixable methods, each under ``lock``."""

    def __init__(self, inner: Mixable, lock: RWLock) -> None:
        self.inner = inner
        self.lock = lock

    @property
    def version(self) -> int:
        return self.inner.version

    def get_diff(self) -> object:
        with self.lock.read():
            return self.inner.get_diff()

    def mix(self, lhs: object, rhs: object) -> object:
        return self.inner.mix(lhs, rhs)

    def put_diff(self, mixed: object) -> bool:
        with self.lock.write():
            return self.inner.put_diff(mixed)

    def get_model(self) -> object:
        with self.lock.read():
            return self.inner.get_model()

    def set_model(self, model: object) -> None:
        with self.lock.write():
            self.inner.set_model(model)
