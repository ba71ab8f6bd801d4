"""A kvs (put/get) on msgpack-rpc-python 0.4.1, for bench.kvs; runs in .venv-oracle.

Prints "PORT <n>" once listening on 127.0.0.1 and serves until killed.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "compat" / "oracle_scripts"))

import msgpackrpc
from msgpackrpc_server import Handlers, LocalBuilder


class KvsHandlers(Handlers):
    def __init__(self):
        self.entries = {}

    def put(self, name, key, value):
        self.entries[key] = value
        return True

    def get(self, name, key):
        return self.entries.get(key, b"")


def main():
    server = msgpackrpc.Server(KvsHandlers(), builder=LocalBuilder)
    server.listen(msgpackrpc.Address("127.0.0.1", 0))
    sys.stdout.write(f"PORT {server._listeners[0].sockets[0].getsockname()[1]}\n")
    sys.stdout.flush()
    server.start()


if __name__ == "__main__":
    main()
