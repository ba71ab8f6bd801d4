"""Jubatus's unlearners: keep at most ``max_size`` rows, forgetting one when a new row
comes.

- ``lru``: forgets the row used least recently; rows whose id matches ``sticky_pattern``
  (a Jubatus key pattern) are never forgotten, and when only sticky rows are left a new
  row is refused;
- ``random``: forgets a row chosen at random (MT19937, seeded by ``seed`` when given, as
  Jubatus's ``mtrand``).

``touch(id)`` records a use and returns False when the row cannot be added; the callback
given at construction is called with each forgotten id. Thread-safety is the caller's.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from engines.common.config import Params
from engines.common.converter import KeyMatcher, key_matcher
from engines.common.hashing import MersenneTwister
from runtime.errors import ConfigError
from runtime.mix.mixable import DiffError, read_int, read_list, read_map, read_text

Forget = Callable[[str], None]


class Unlearner:
    """The interface of both unlearners."""

    name = ""

    def __init__(self, params: Params) -> None:
        self.max_size = params.integer("max_size")
        params.check(self.max_size > 0, "max_size", "must be a positive integer")
        self.forget: Forget = lambda key: None

    def can_touch(self, key: str) -> bool:
        raise NotImplementedError

    def touch(self, key: str) -> bool:
        raise NotImplementedError

    def remove(self, key: str) -> bool:
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def clear(self) -> None:
        raise NotImplementedError

    def status(self) -> dict[str, str]:
        raise NotImplementedError

    def pack(self) -> object:
        raise NotImplementedError

    def unpack(self, value: object, path: str) -> None:
        raise NotImplementedError


class LruUnlearner(Unlearner):
    name = "lru"

    def __init__(self, params: Params) -> None:
        params.only(["max_size", "sticky_pattern"])
        super().__init__(params)
        self.sticky: KeyMatcher | None = None
        if params.has("sticky_pattern"):
            self.sticky = key_matcher(params.text("sticky_pattern"), params.where("sticky_pattern"))
        self.recent: OrderedDict[str, None] = OrderedDict()  # most recent last
        self.sticky_ids: set[str] = set()

    def exists(self, key: str) -> bool:
        return key in self.recent or key in self.sticky_ids

    def can_touch(self, key: str) -> bool:
        return self.exists(key) or len(self.sticky_ids) < self.max_size

    def touch(self, key: str) -> bool:
        sticky = self.sticky is not None and self.sticky(key)
        if sticky:
            if key in self.sticky_ids:
                return True
        elif key in self.recent:
            self.recent.move_to_end(key)
            return True
        if len(self.recent) + len(self.sticky_ids) >= self.max_size:
            if not self.recent:
                return False
            oldest, _ = self.recent.popitem(last=False)
            self.forget(oldest)
        if sticky:
            self.sticky_ids.add(key)
        else:
            self.recent[key] = None
        return True

    def remove(self, key: str) -> bool:
        if self.recent.pop(key, 0) is None:
            return True
        if key in self.sticky_ids:
            self.sticky_ids.discard(key)
            return True
        return False

    def clear(self) -> None:
        self.recent.clear()
        self.sticky_ids.clear()

    def status(self) -> dict[str, str]:
        return {
            "num_unlearner_unlearned_ids": str(len(self.recent)),
            "num_unlearner_sticky_ids": str(len(self.sticky_ids)),
        }

    def pack(self) -> object:
        return {"recent": list(self.recent), "sticky": sorted(self.sticky_ids)}

    def unpack(self, value: object, path: str) -> None:
        fields = read_map(value, path)
        recent = [
            read_text(k, f"{path}.recent")
            for k in read_list(fields.get("recent"), f"{path}.recent")
        ]
        sticky = [
            read_text(k, f"{path}.sticky")
            for k in read_list(fields.get("sticky"), f"{path}.sticky")
        ]
        self.recent = OrderedDict.fromkeys(recent)
        self.sticky_ids = set(sticky)


class RandomUnlearner(Unlearner):
    name = "random"

    def __init__(self, params: Params) -> None:
        params.only(["max_size", "seed"])
        super().__init__(params)
        seed: int | None = None
        if params.has("seed"):
            seed = params.integer("seed", bounds=(-(2**63), 2**63 - 1))
            params.check(0 <= seed <= 0xFFFFFFFF, "seed", "must be within unsigned 32 bits")
        self.random = MersenneTwister(seed if seed is not None else int(time.time() * 1e6))
        self.ids: list[str] = []
        self.positions: dict[str, int] = {}

    def exists(self, key: str) -> bool:
        return key in self.positions

    def can_touch(self, key: str) -> bool:
        return True

    def touch(self, key: str) -> bool:
        if key in self.positions:
            return True
        if len(self.positions) < self.max_size:
            self.ids.append(key)
            position = len(self.ids) - 1
        else:
            position = self.random.next_int(len(self.positions))
            old = self.ids[position]
            self.forget(old)
            del self.positions[old]
            self.ids[position] = key
        self.positions[key] = position
        return True

    def remove(self, key: str) -> bool:
        position = self.positions.pop(key, None)
        if position is None:
            return False
        last = self.ids.pop()
        if last != key:
            self.ids[position] = last
            self.positions[last] = position
        return True

    def clear(self) -> None:
        self.ids = []
        self.positions = {}

    def status(self) -> dict[str, str]:
        return {"num_unlearner_ids": str(len(self.ids))}

    def pack(self) -> object:
        return {"ids": list(self.ids), "random": self.random.state()}

    def unpack(self, value: object, path: str) -> None:
        fields = read_map(value, path)
        ids = [read_text(k, f"{path}.ids") for k in read_list(fields.get("ids"), f"{path}.ids")]
        state = [
            read_int(v, f"{path}.random") for v in read_list(fields.get("random"), f"{path}.random")
        ]
        try:
            self.random = MersenneTwister.from_state(state)
        except ValueError as error:
            raise DiffError(f"{path}.random: {error}") from None
        self.ids = ids
        self.positions = {key: i for i, key in enumerate(ids)}


def create_unlearner(
    owner: Params, name_key: str = "unlearner", parameter_key: str = "unlearner_parameter"
) -> Unlearner | None:
    """The unlearner an engine's parameters ask for, or None; ``ConfigError`` if bad."""
    if not owner.has(name_key):
        if owner.has(parameter_key):
            raise ConfigError(f"{owner.where(parameter_key)}: is set but {name_key} is not")
        return None
    name = owner.text(name_key)
    if not owner.has(parameter_key):
        raise ConfigError(f"{owner.where(parameter_key)}: required when {name_key} is set")
    params = owner.child(parameter_key)
    if name == "lru":
        return LruUnlearner(params)
    if name == "random":
        return RandomUnlearner(params)
    raise ConfigError(f"{owner.where(name_key)}: unknown unlearner {name!r} (known: lru, random)")
