"""The standalone kvs demo that ``make demo`` runs.

It starts a kvs server (no ZooKeeper) from the generated ``kvs_impl.py`` and the edited
``kvs_serv.py``, puts and reads keys through the generated client, saves the model, stops
the server, starts a fresh one, loads the model back, reads the keys again, and shuts
everything down. Every step is printed.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from kvs_client import Kvs  # noqa: E402
from runtime.testing import ServerProcess  # noqa: E402

CLUSTER = "demo"


def start_server(datadir: Path, logdir: Path) -> ServerProcess:
    args = [
        "--rpc-port", "0", "--name", CLUSTER,
        "--configpath", str(HERE / "config.json"), "--datadir", str(datadir),
    ]  # fmt: skip
    server = ServerProcess(HERE / "kvs_impl.py", args, cwd=HERE, log_path=logdir / "kvs.log")
    server.start()
    print(f"started kvs server pid {server.pid} on 127.0.0.1:{server.port}")
    return server


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="jubako-demo-") as tmp:
        datadir = Path(tmp)
        server = start_server(datadir, datadir)
        try:
            with Kvs("127.0.0.1", server.port, CLUSTER) as kvs:
                fruits = {"apple": "red", "banana": "yellow", "cherry": "dark red"}
                for key, value in fruits.items():
                    print(f"put({key!r}, {value!r}) -> {kvs.put(key, value)}")
                print(f"get('apple') -> {kvs.get('apple')!r}")
                print(f"del('banana') -> {kvs.del_('banana')}")
                saved = kvs.save("demo")
                print(f"save('demo') -> {saved}")
                old_port = server.port
        finally:
            server.stop()
        print(f"stopped the server (exit status {server.returncode})")

        server = start_server(datadir, datadir)
        try:
            # save() names the file after the server (ip_port); hand it to the new one.
            [path] = saved.values()
            Path(path).rename(Path(path.replace(f"_{old_port}_", f"_{server.port}_")))
            with Kvs("127.0.0.1", server.port, CLUSTER) as kvs:
                print(f"get('apple') before load -> {kvs.get('apple')!r}")
                print(f"load('demo') -> {kvs.load('demo')}")
                for key in ("apple", "banana", "cherry"):
                    print(f"get({key!r}) -> {kvs.get(key)!r}")
                status = next(iter(kvs.get_status().values()))
                keys, updates = status["num_keys"], status["update_count"]
                print(f"status: num_keys={keys} update_count={updates}")
        finally:
            server.stop()
        print(f"stopped the server (exit status {server.returncode}); demo done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
