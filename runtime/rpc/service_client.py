"""Bases of generated clients: the built-in methods and the cluster name on every call.

``ClientBase(host, port, name, timeout=10)`` mirrors the official Jubatus client: no
connection is made until the first call, every call sends ``[name, *args]``, and the
built-ins ``get_config``, ``save``, ``load``, ``get_status``, ``do_mix`` and
``get_proxy_status`` are always there. ``AsyncClientBase`` is the asyncio twin.

An exception the IDL declares comes back as its generated class: the server sends
``"Class: fields"`` as the error and the fields as the result, and a generated client class
lists its IDL's exceptions in ``_exceptions`` (``types.EXCEPTIONS``). Any other error is
the :class:`~runtime.errors.RemoteError` (or other :class:`~runtime.errors.RPCError`) the
RPC client raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar

from runtime.errors import RemoteError, TypeMismatch
from runtime.rpc.client import AsyncClient, Client
from runtime.wire import signature as sig
from runtime.wire.signature import Signature
from runtime.wire.types import MessageType

R = TypeVar("R")
#: Class name → wire descriptor of the exceptions an IDL declares.
Exceptions = Mapping[str, MessageType[Any]]


def declared(error: RemoteError, exceptions: Exceptions) -> BaseException | None:
    """The IDL exception ``error`` carries, decoded; None when it carries none."""
    name = error.message.partition(":")[0]
    descriptor = exceptions.get(name)
    if descriptor is None or error.result is None:
        return None
    try:
        decoded = descriptor.decode(error.result)
    except TypeMismatch:
        return None
    return decoded if isinstance(decoded, BaseException) else None


def _check_endpoint(host: object, port: object, name: object) -> None:
    if not isinstance(host, str):
        raise TypeError(f"host must be a str, not {type(host).__name__}")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise TypeError(f"port must be an int in 1..65535, not {port!r}")
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")


class ClientBase:
    """Blocking client of one service; a context manager that closes the connection."""

    #: The exceptions of the service's IDL (set by the generated class).
    _exceptions: ClassVar[Exceptions] = {}

    def __init__(self, host: str, port: int, name: str, timeout: float = 10) -> None:
        _check_endpoint(host, port, name)
        self._name = name
        self._client = Client(host, port, timeout=timeout)

    def _call(self, signature: Signature[R], *args: object) -> R:
        params = [self._name, *signature.encode_args(args)]
        try:
            result = self._client.call(signature.name, params)
        except RemoteError as error:
            raise (declared(error, self._exceptions) or error) from None
        return signature.decode_result(result)

    def get_config(self) -> str:
        """The server's JSON config text."""
        return self._call(sig.GET_CONFIG)

    def save(self, id: str) -> dict[str, str]:
        """Save the model as ``id`` on every server; returns ``{server: path}``."""
        return self._call(sig.SAVE, id)

    def load(self, id: str) -> bool:
        """Load the model saved as ``id``; the running model is untouched on failure."""
        return self._call(sig.LOAD, id)

    def get_status(self) -> dict[str, dict[str, str]]:
        """Status of every server, keyed ``ip_port``."""
        return self._call(sig.GET_STATUS)

    def do_mix(self) -> bool:
        """Run one model mix now (servers in a ZooKeeper cluster only)."""
        return self._call(sig.DO_MIX)

    def get_proxy_status(self) -> dict[str, dict[str, str]]:
        """Status of the proxy this client talks to."""
        return self._call(sig.GET_PROXY_STATUS)

    def get_name(self) -> str:
        return self._name

    def set_name(self, name: str) -> None:
        """Send ``name`` as the cluster name from now on."""
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, not {type(name).__name__}")
        self._name = name

    def get_client(self) -> Client:
        """The underlying RPC client."""
        return self._client

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClientBase:
    """asyncio client of one service; an async context manager."""

    #: The exceptions of the service's IDL (set by the generated class).
    _exceptions: ClassVar[Exceptions] = {}

    def __init__(self, host: str, port: int, name: str, timeout: float = 10) -> None:
        _check_endpoint(host, port, name)
        self._name = name
        self._client = AsyncClient(host, port, timeout=timeout)

    async def _call(self, signature: Signature[R], *args: object) -> R:
        params = [self._name, *signature.encode_args(args)]
        try:
            result = await self._client.call(signature.name, params)
        except RemoteError as error:
            raise (declared(error, self._exceptions) or error) from None
        return signature.decode_result(result)

    async def get_config(self) -> str:
        return await self._call(sig.GET_CONFIG)

    async def save(self, id: str) -> dict[str, str]:
        return await self._call(sig.SAVE, id)

    async def load(self, id: str) -> bool:
        return await self._call(sig.LOAD, id)

    async def get_status(self) -> dict[str, dict[str, str]]:
        return await self._call(sig.GET_STATUS)

    async def do_mix(self) -> bool:
        return await self._call(sig.DO_MIX)

    async def get_proxy_status(self) -> dict[str, dict[str, str]]:
        return await self._call(sig.GET_PROXY_STATUS)

    def get_name(self) -> str:
        return self._name

    def set_name(self, name: str) -> None:
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, not {type(name).__name__}")
        self._name = name

    def get_client(self) -> AsyncClient:
        return self._client

    async def close(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
