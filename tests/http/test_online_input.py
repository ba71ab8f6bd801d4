"""Online bodies a hostile or careless client sends: too large (with and without a length),
numbers JSON does not have, text UTF-8 cannot carry. Each is a JSON error of the client's
kind (413, 422), and the gateway, and the connection, go on serving."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runtime.testing import ServerProcess, rss_mib
from tests.http.conftest import Gateway

pytestmark = pytest.mark.e2e


def test_a_body_over_max_request_is_a_413_with_or_without_its_length(
    kvs_server: ServerProcess, gateway: Callable[..., Gateway]
) -> None:
    gw = gateway("kvs", f"127.0.0.1:{kvs_server.port}", "--max-request", "4096")
    headers = {"content-type": "application/json"}
    big = b'{"key": "k", "value": "' + b"v" * 10_000_000 + b'"}'
    before = rss_mib(gw.process.pid)
    reply = gw.http.post("/v1/put", content=big, headers=headers)
    assert reply.status_code == 413
    assert reply.json()["error"] == "too_large" and "--max-request" in reply.json()["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        yield b'{"key": "k", "value": "'
        for _ in range(100):
            yield b"v" * 100_000
        yield b'"}'

    reply = gw.http.post("/v1/put", content=chunks(), headers=headers)
    assert reply.status_code == 413 and reply.json()["error"] == "too_large"
    assert rss_mib(gw.process.pid) - before < 50
    reply = gw.http.post("/v1/put", json={"key": "k", "value": "small"})
    assert reply.status_code == 200 and reply.json() == {"result": True}


def test_numbers_json_does_not_have_are_refused(classifier_gateway: Gateway) -> None:
    """Python's JSON reader takes NaN, Infinity and 1e400 (inf); a double refuses them."""
    http = classifier_gateway.http
    headers = {"content-type": "application/json"}
    for number, spelled in [("NaN", "NaN"), ("Infinity", "Infinity"), ("-1e400", "-Infinity")]:
        body = '{"data": [{"x": ' + number + "}]}"
        reply = http.post("/v1/classify", content=body, headers=headers)
        assert reply.status_code == 422, reply.text
        assert f"got {spelled} (not a number JSON has)" in reply.json()["message"]
    reply = http.post("/v1/classify", json={"data": [{"x": 1.5}]})
    assert reply.status_code == 200


def test_text_utf8_cannot_carry_is_a_422_and_the_connection_serves_on(
    kvs_gateway: Gateway,
) -> None:
    http = kvs_gateway.http
    headers = {"content-type": "application/json"}
    reply = http.post("/v1/put", content=b'{"key": "\\ud800", "value": "v"}', headers=headers)
    assert reply.status_code == 422 and reply.json()["error"] == "bad_request"
    assert "not valid Unicode" in reply.json()["message"]
    assert http.post("/v1/put", json={"key": "k", "value": "v"}).json() == {"result": True}


def test_bodies_that_cannot_be_read_are_a_422(kvs_gateway: Gateway) -> None:
    http = kvs_gateway.http
    headers = {"content-type": "application/json"}
    for body in (b'{"key": "\xff\xfe", "value": "v"}', b"[" * 100_000 + b"]" * 100_000):
        reply = http.post("/v1/put", content=body, headers=headers)
        assert reply.status_code == 422, reply.text
        assert reply.json()["error"] == "bad_request"
        assert "the body could not be read" in reply.json()["message"]
    reply = http.post(
        "/v1/jobs/put", content=b"--x\r\n", headers={"content-type": "multipart/form-data"}
    )
    assert reply.status_code == 422 and "boundary" in reply.json()["message"]
    assert http.post("/v1/put", json={"key": "k", "value": "v"}).json() == {"result": True}


def test_a_number_past_the_largest_double_says_so(classifier_gateway: Gateway) -> None:
    body = '{"data": [{"x": ' + "9" * 400 + "}]}"
    reply = classifier_gateway.http.post(
        "/v1/classify", content=body, headers={"content-type": "application/json"}
    )
    assert reply.status_code == 422
    assert "got a number past the largest double" in reply.json()["message"]


def test_an_upstream_whose_status_fits_no_idl_is_a_502_on_the_page_too(
    gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    """``GET /v1/upstream`` (what the page shows) answers as ``/v1/get_status`` does."""
    script = Path(__file__).with_name("slow_upstream.py")
    args = ["0", "0", "bad-status"]
    with ServerProcess(script, args, log_path=tmp_path / "upstream.log") as upstream:
        gw = gateway("kvs", f"127.0.0.1:{upstream.port}")
        for path in ("/v1/get_status", "/v1/upstream"):
            reply = gw.http.get(path)
            assert reply.status_code == 502, reply.text
            assert reply.json()["error"] == "bad_upstream_answer"


def test_a_method_without_arguments_refuses_a_body_with_some(kvs_gateway: Gateway) -> None:
    """``clear`` and ``do_mix`` take no body or ``{}``; arguments meant for another method,
    or text that is not JSON, are a 422 and nothing is called upstream."""
    http = kvs_gateway.http
    assert http.post("/v1/put", json={"key": "kept", "value": "v"}).json() == {"result": True}
    headers = {"content-type": "application/json"}
    for body in (b'{"key": "kept"}', b"[]", b"null", b"garbage", b'{"a": 1'):
        reply = http.post("/v1/clear", content=body, headers=headers)
        assert reply.status_code == 422, (body, reply.text)
        assert reply.json() == {
            "error": "bad_request",
            "message": "clear takes no argument; send no body or {}",
        }
    assert http.post("/v1/do_mix", content=b'{"x": 1}', headers=headers).status_code == 422
    assert http.post("/v1/get", json={"key": "kept"}).json() == {"result": "v"}, "not cleared"
    assert http.post("/v1/clear", content=b" {} ", headers=headers).json() == {"result": True}
    assert http.post("/v1/get", json={"key": "kept"}).json() == {"result": ""}
    assert http.post("/v1/clear").json() == {"result": True}


def test_job_uploads_over_max_upload_are_a_413_as_they_arrive(
    kvs_server: ServerProcess, gateway: Callable[..., Gateway]
) -> None:
    """The limit holds for a plain body and a multipart form, with or without a length
    (a form's file was spooled whole before its size was looked at), and a form carries
    one file."""
    gw = gateway("kvs", f"127.0.0.1:{kvs_server.port}", "--max-upload", "100000")
    line = b'{"key": "k", "value": "' + b"v" * 1000 + b'"}\n'
    big = line * 200
    reply = gw.http.post("/v1/jobs/put", content=big)
    assert reply.status_code == 413 and "--max-upload" in reply.json()["message"]
    reply = gw.http.post("/v1/jobs/put", files={"file": ("in.jsonl", big)})
    assert reply.status_code == 413 and "--max-upload" in reply.json()["message"]
    boundary = "b0undary"

    def form() -> Iterator[bytes]:  # no Content-Length: sent chunked
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
               'filename="in.jsonl"\r\n\r\n').encode()  # fmt: skip
        for _ in range(2000):  # 2 MB in all
            yield line
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    reply = gw.http.post("/v1/jobs/put", content=form(), headers=headers)
    assert reply.status_code == 413 and "--max-upload" in reply.json()["message"]
    two = {"file": ("a.jsonl", line), "other": ("b.jsonl", line)}
    reply = gw.http.post("/v1/jobs/put", files=two)
    assert reply.status_code == 422, reply.text
    assert "Too many files. Maximum number of files is 1." in reply.json()["message"]
    reply = gw.http.post("/v1/jobs/put", files={"upload": ("in.jsonl", line * 3)})
    assert reply.status_code == 202 and reply.json()["total"] == 3, reply.text


def test_flags_the_wire_cannot_carry_are_usage_errors(tmp_path: Path) -> None:
    """A ``--name`` of bytes that are not UTF-8 (argv keeps them as lone surrogates) is
    refused at start, not on every call; a bad ``--upstream`` or size too."""
    script = Path(__file__).resolve().parents[2] / "generated/http/kvs_http.py"
    for flags, said in [
        (["--upstream", "127.0.0.1:1", "--name", "\udcff"],
         "argument --name: '\\udcff' is not UTF-8 text"),
        (["--upstream", "nowhere"], "'nowhere' is not HOST:PORT"),
        (["--upstream", "127.0.0.1:1", "--max-request", "-5"],
         "argument --max-request: '-5' is not a size in bytes (1 or more)"),
        (["--upstream", "127.0.0.1:1", "--max-upload", "1e6"],
         "argument --max-upload: '1e6' is not a size in bytes (1 or more)"),
    ]:  # fmt: skip
        started = subprocess.run(
            [sys.executable, str(script), *flags, "--datadir", str(tmp_path)],
            capture_output=True, text=True, errors="surrogateescape", timeout=60,
        )  # fmt: skip
        assert started.returncode == 2 and said in started.stderr, started.stderr
