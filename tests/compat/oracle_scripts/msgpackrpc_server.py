"""A msgpack-rpc-python 0.4.1 server (old venv) for interop tests and the RPC benchmark.

Binds 127.0.0.1 on the port given as argv[1] (0 = any free port), prints "PORT <n>" on
stdout once listening, and serves until killed. Every method takes the cluster name
first, as Jubatus calls do.
"""

import sys
import time

import msgpackrpc
from msgpackrpc.transport import tcp
from tornado import netutil


class Handlers:
    def echo(self, name, value):
        return value

    def echo_params(self, *params):
        return list(params)

    def add(self, name, a, b):
        return a + b

    def fail(self, name, message):
        raise Exception(message.decode("utf-8") if isinstance(message, bytes) else message)

    def sleep(self, name, seconds):
        time.sleep(seconds)
        return True

    def sample(self, name):
        return {
            "text": "h\u00e9llo",
            "blob": b"\x00\x01\xff",
            "numbers": [1, -2, 3.5, 2**40],
            "flags": [True, False, None],
            "nested": {"k": [["a", 1.0]]},
        }


class LocalTransport(tcp.ServerTransport):
    """Listen on 127.0.0.1 only (msgpackrpc itself binds every interface)."""

    def listen(self, server):
        self._server = server
        self._mp_server = tcp.MessagePackServer(
            self, io_loop=server._loop._ioloop, encodings=self._encodings
        )
        self.sockets = netutil.bind_sockets(self._address.port, "127.0.0.1")
        self._mp_server.add_sockets(self.sockets)


class LocalBuilder:
    ServerTransport = LocalTransport


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = msgpackrpc.Server(Handlers(), builder=LocalBuilder)
    server.listen(msgpackrpc.Address("127.0.0.1", port))
    bound = server._listeners[0].sockets[0].getsockname()[1]
    sys.stdout.write(f"PORT {bound}\n")
    sys.stdout.flush()
    server.start()


if __name__ == "__main__":
    main()
