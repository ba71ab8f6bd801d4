"""The ``kvs`` service: its model and its methods.

Started from ``kvs_serv.tmpl.py``, which jenerator writes from kvs.idl: copy it to
``kvs_serv.py``, fill in the methods, and run ``python kvs_impl.py --rpc-port 9199``. Each
method runs under the lock its IDL annotation names (``#@analysis`` shared, ``#@update``
exclusive, ``#@nolock`` none).
"""

from __future__ import annotations

from collections.abc import Callable

from runtime import ServerBase


class KvsServ(ServerBase):
    """A key-value store: the canonical Jubako service."""

    def __init__(self, config_json: str) -> None:
        super().__init__(config_json)
        self._entries: dict[str, str] = {}

    def put(self, key: str, value: str) -> bool:
        """Store ``value`` under ``key``, replacing any earlier value."""
        self._entries[key] = value
        return True

    def get(self, key: str) -> str:
        """The value stored under ``key``; the empty string when there is none."""
        return self._entries.get(key, "")

    def del_(self, key: str) -> bool:
        """Remove ``key``; false when it was not there."""
        return self._entries.pop(key, None) is not None

    def clear(self) -> bool:
        """Remove every key."""
        self._entries = {}
        return True

    # Hooks the framework calls; see runtime.server.base.ServerBase for the contract.

    def get_status(self) -> dict[str, str]:
        """Status keys of this service, added to the built-in ``get_status``."""
        return {"num_keys": str(len(self._entries))}

    # Replicas: rows a proxy copies to a restarted or new server (docs/operating.md).

    def export_rows(
        self, owned: Callable[[str], bool], after: str | None, limit: int
    ) -> list[tuple[str, object]]:
        """Up to ``limit`` entries whose key ``owned`` accepts, in key order after ``after``."""
        rows: list[tuple[str, object]] = []
        for key in sorted(k for k in self._entries if after is None or k > after):
            if owned(key):
                rows.append((key, self._entries[key]))
                if len(rows) == limit:
                    break
        return rows

    def import_rows(self, rows: list[tuple[str, object]]) -> None:
        """Store entries another server exported, replacing these keys' values."""
        for key, value in rows:
            self._entries[key] = _text(value)

    def delete_rows(self, keys: list[str]) -> None:
        """Remove entries deleted on the other replicas while this server was away."""
        for key in keys:
            self._entries.pop(key, None)

    def pack(self) -> object:
        """The model as one msgpack-able value, for ``save``."""
        return dict(self._entries)

    def unpack(self, payload: object) -> None:
        """Replace the model with a saved one; build the new model fully, then swap it in."""
        if not isinstance(payload, dict):
            raise ValueError(f"kvs model must be a map, not {type(payload).__name__}")
        entries: dict[str, str] = {}
        for key, value in payload.items():
            entries[_text(key)] = _text(value)
        self._entries = entries


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, str):
        return value
    raise ValueError(f"kvs model holds a {type(value).__name__} where a string belongs")
