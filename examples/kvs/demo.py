"""The standalone kvs demo that ``make demo`` runs.

It starts a kvs server (no ZooKeeper) from the generated ``kvs_impl.py`` and the edited
``kvs_serv.py``, puts and reads keys through the generated client, saves the model and
stops the server. Then it shows how a saved model comes back: ``save(id)`` names the file
after the server's ``ip_port`` (as Jubatus does), so a new server on another port cannot
``load(id)`` it (the error lists the file and says how to load it); a server started with
``--model_file FILE`` starts from it, and ``load(id)`` works on the server that saved.
Every step is printed.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from kvs_client import Kvs  # noqa: E402
from runtime import RemoteError  # noqa: E402
from runtime.testing import ServerProcess  # noqa: E402

CLUSTER = "demo"


def start_server(datadir: Path, *extra: str) -> ServerProcess:
    args = [
        "--rpc-port", "0", "--name", CLUSTER,
        "--configpath", str(HERE / "config.json"), "--datadir", str(datadir), *extra,
    ]  # fmt: skip
    server = ServerProcess(HERE / "kvs_impl.py", args, cwd=HERE, log_path=datadir / "kvs.log")
    server.start()
    shown = " ".join(extra)
    print(f"started kvs server pid {server.pid} on 127.0.0.1:{server.port} {shown}".rstrip())
    return server


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="jubako-demo-") as tmp:
        datadir = Path(tmp)
        server = start_server(datadir)
        try:
            with Kvs("127.0.0.1", server.port, CLUSTER) as kvs:
                fruits = {"apple": "red", "banana": "yellow", "cherry": "dark red"}
                for key, value in fruits.items():
                    print(f"put({key!r}, {value!r}) -> {kvs.put(key, value)}")
                print(f"get('apple') -> {kvs.get('apple')!r}")
                print(f"del('banana') -> {kvs.del_('banana')}")
                [(server_id, path)] = kvs.save("demo").items()
                print(f"save('demo') -> {path} (named after the server, {server_id})")
        finally:
            server.stop()
        print(f"stopped the server (exit status {server.returncode})")

        server = start_server(datadir)  # --rpc-port 0: another port, another file name
        try:
            with Kvs("127.0.0.1", server.port, CLUSTER) as kvs:
                try:
                    kvs.load("demo")
                except RemoteError as error:
                    print(f"load('demo') on the new port fails, saying what to do:\n  {error}")
        finally:
            server.stop()

        server = start_server(datadir, "--model_file", path)
        try:
            with Kvs("127.0.0.1", server.port, CLUSTER) as kvs:
                for key in ("apple", "banana", "cherry"):
                    print(f"get({key!r}) -> {kvs.get(key)!r}")
                [path] = kvs.save("demo").values()
                print(f"save('demo') -> {path}")
                print(f"clear() -> {kvs.clear()}; get('apple') -> {kvs.get('apple')!r}")
                print(f"load('demo') -> {kvs.load('demo')}; get('apple') -> {kvs.get('apple')!r}")
                status = next(iter(kvs.get_status().values()))
                keys, updates = status["num_keys"], status["update_count"]
                print(f"status: num_keys={keys} update_count={updates}")
        finally:
            server.stop()
        print(f"stopped the server (exit status {server.returncode}); demo done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
