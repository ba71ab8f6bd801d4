"""A kvs-like MessagePack-RPC upstream for the gateway's job tests, answering after a delay.

``python slow_upstream.py DELAY [PORT [bad-status]]``: ``get(key)`` answers ``"val:" + key``,
``put`` answers true, after ``DELAY`` seconds each (calls overlap); ``get_status`` and
``get_config`` answer at once (``bad-status``: ``get_status`` answers a list, which fits no
IDL's status). With ``CALL_LOG`` set, every ``get`` and ``put`` is appended
there as ``METHOD KEY`` when it arrives. It logs ``listening on 127.0.0.1:PORT``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import msgpack

DELAY = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 0
BAD_STATUS = sys.argv[3:4] == ["bad-status"]
LOG = open(os.environ["CALL_LOG"], "a", buffering=1) if os.environ.get("CALL_LOG") else None


def _result(method: str, params: list[Any]) -> tuple[Any, Any]:
    if method == "get":
        return None, "val:" + str(params[1])
    if method == "put":
        return None, True
    if method == "get_status":
        return None, ["not", "a", "status"] if BAD_STATUS else {"127.0.0.1_1": {"type": "kvs"}}
    if method == "get_config":
        return None, "{}"
    return "unknown method", None


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)

    async def answer(msgid: int, method: str, params: list[Any]) -> None:
        if method in ("get", "put"):
            if LOG is not None:
                LOG.write(f"{method} {params[1]}\n")
            await asyncio.sleep(DELAY)
        error, result = _result(method, params)
        if not writer.is_closing():
            writer.write(msgpack.packb([1, msgid, error, result], use_bin_type=False))

    tasks: set[asyncio.Task[None]] = set()
    while data := await reader.read(65536):
        unpacker.feed(data)
        for _, msgid, method, params in unpacker:
            task = asyncio.create_task(answer(msgid, method, params))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    writer.close()


async def main() -> None:
    server = await asyncio.start_server(_serve, "127.0.0.1", PORT, reuse_address=True)
    port = server.sockets[0].getsockname()[1]
    print(f"listening on 127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
