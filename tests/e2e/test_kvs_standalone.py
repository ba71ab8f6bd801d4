"""kvs from IDL to a served, saved, killed, restarted and reloaded service (real processes)."""

from __future__ import annotations

import signal
from pathlib import Path
from types import ModuleType

import pytest

from runtime.errors import RemoteError, UnknownMethod
from runtime.server.persistence import write_model_file
from runtime.testing import ServerProcess

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


def _start(kvs_dir: Path, datadir: Path, *extra: str) -> ServerProcess:
    args = [
        "--rpc-port", "0", "--configpath", str(kvs_dir / "config.json"),
        "--datadir", str(datadir), "--name", "e2e", *extra,
    ]  # fmt: skip
    return ServerProcess(kvs_dir / "kvs_impl.py", args, cwd=kvs_dir)


def test_every_method_save_kill_restart_load(
    kvs_dir: Path, kvs: ModuleType, tmp_path: Path
) -> None:
    with _start(kvs_dir, tmp_path) as server, kvs.Kvs("127.0.0.1", server.port, "e2e") as client:
        assert client.put("apple", "red") is True
        assert client.put("banana", "yellow") is True
        assert client.put("cherry", "dark red") is True
        assert client.get("apple") == "red"
        assert client.get("missing") == ""
        assert client.del_("banana") is True
        assert client.del_("banana") is False
        assert client.get_config() == '{"note": "kvs e2e"}\n'
        saved = client.save("snap")
        [(server_id, path)] = saved.items()
        assert server_id == f"127.0.0.1_{server.port}"
        assert path == str(tmp_path / f"{server_id}_kvs_snap.jubatus")
        assert Path(path).is_file()
        status = client.get_status()[server_id]
        assert status["num_keys"] == "2"
        assert status["type"] == "kvs"
        assert status["state"] == "running" and status["state.rpc"] == "running"
        assert status["update_count"] == "5"
        assert status["last_saved_path"] == path
        assert client.clear() is True
        assert client.get("apple") == ""
        server.kill()

    with _start(kvs_dir, tmp_path) as server, kvs.Kvs("127.0.0.1", server.port, "e2e") as client:
        assert client.get("apple") == ""
        # The file is named after the first server's port; load reads this server's name,
        # and says where the file is and how to load it.
        with pytest.raises(RemoteError) as missing:
            client.load("snap")
        own = tmp_path / f"127.0.0.1_{server.port}_kvs_snap.jubatus"
        assert f"cannot open input file {own}: no such file" in missing.value.message
        assert f"holds 'snap' saved by other servers: {Path(path).name}" in missing.value.message
        assert f"--model_file {path}" in missing.value.message
        with pytest.raises(RemoteError, match="no model is saved as 'other' in"):
            client.load("other")
        Path(path).rename(own)
        assert client.load("snap") is True
        assert client.get("apple") == "red"
        assert client.get("cherry") == "dark red"
        assert client.get("banana") == ""
        assert client.get_status()[f"127.0.0.1_{server.port}"]["num_keys"] == "2"
        server.stop(signal.SIGTERM)
        assert server.returncode == 0


def test_bad_input_keeps_the_model(kvs_dir: Path, kvs: ModuleType, tmp_path: Path) -> None:
    with _start(kvs_dir, tmp_path) as server, kvs.Kvs("127.0.0.1", server.port, "e2e") as client:
        server_id = f"127.0.0.1_{server.port}"
        assert client.put("k", "v") is True
        client.save("good")
        good = tmp_path / f"{server_id}_kvs_good.jubatus"
        data = good.read_bytes()

        corrupt = bytearray(data)
        corrupt[-1] ^= 0xFF
        cases = {
            "corrupt": bytes(corrupt),
            "truncated": data[: len(data) // 2],
            "empty": b"",
            "garbage": b"not a model file at all" * 10,
        }
        for model_id, service_type, version in (
            ("wrongtype", "classifier", 1),
            ("wrongver", "kvs", 7),
        ):
            write_model_file(
                tmp_path / f"{server_id}_kvs_{model_id}.jubatus",
                service_type=service_type,
                model_id=model_id,
                config_json='{"note": "kvs e2e"}\n',
                user_data_version=version,
                payload={"k": "other"},
            )
            with pytest.raises(RemoteError, match="mismatch"):
                client.load(model_id)
            assert client.get("k") == "v"
        for model_id, content in cases.items():
            (tmp_path / f"{server_id}_kvs_{model_id}.jubatus").write_bytes(content)
            with pytest.raises(RemoteError):
                client.load(model_id)
            assert client.get("k") == "v", model_id
        for hostile in ("../x", "/etc/passwd", "a/b", "..", ".hidden", "", "\x00"):
            with pytest.raises(RemoteError, match=r"model ID|empty id"):
                client.save(hostile)
            with pytest.raises(RemoteError, match=r"model ID|empty id"):
                client.load(hostile)
        with pytest.raises(RemoteError, match=r"cannot open|No such file|cannot read"):
            client.load("never-saved")
        assert client.get("k") == "v"
        assert sorted(p.name for p in tmp_path.iterdir() if "good" in p.name) == [good.name]

        # Another cluster name is served, as Jubatus serves it (its tools call with "").
        with kvs.Kvs("127.0.0.1", server.port, "another-cluster") as other:
            assert other.get("k") == "v"
        with pytest.raises(UnknownMethod):
            client.get_client().call("no_such_method", ["e2e"])
        assert client.get("k") == "v"
