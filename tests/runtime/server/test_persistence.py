"""The model file container: layout byte by byte, every corruption, hostile ids, atomicity."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings, strategies as st

from runtime.errors import ModelFileError
from runtime.server.persistence import (
    HEADER_SIZE,
    MAGIC,
    ModelFile,
    decode_model_file,
    encode_model_file,
    model_path,
    read_model_file,
    validate_model_id,
    write_model_file,
)

CONFIG = '{"method": "PA", "parameter": {"c": 1.0}}'
TYPE = "classifier"
PAYLOAD = {"w": [1, 2.5, b"\x00\xff"]}


def make_file(
    payload: object = PAYLOAD,
    *,
    service_type: str = TYPE,
    model_id: str = "m1",
    config_json: str = CONFIG,
    user_data_version: int = 1,
    timestamp: int = 1_700_000_000,
) -> bytes:
    return encode_model_file(
        service_type=service_type,
        model_id=model_id,
        config_json=config_json,
        user_data_version=user_data_version,
        payload=payload,
        timestamp=timestamp,
    )


def decode(data: bytes, **checks: object) -> ModelFile:
    kwargs: dict[str, object] = {
        "service_type": TYPE,
        "config_json": CONFIG,
        "user_data_version": 1,
    }
    kwargs.update(checks)
    return decode_model_file(data, **kwargs)  # type: ignore[arg-type]


def assemble(
    system_data: bytes,
    user_data: bytes,
    *,
    version: tuple[int, int, int] = (1, 1, 0),
    format_version: int = 1,
    magic: bytes = MAGIC,
) -> bytes:
    """A container with a correct CRC around arbitrary parts (for semantic checks)."""
    header = bytearray(
        struct.pack(
            ">8sQIIIIQQ", magic, format_version, *version, 0, len(system_data), len(user_data)
        )
    )
    crc = zlib.crc32(bytes(header[:28]))
    crc = zlib.crc32(bytes(header[32:48]), crc)
    crc = zlib.crc32(system_data, crc)
    crc = zlib.crc32(user_data, crc)
    header[28:32] = struct.pack(">I", crc)
    return bytes(header) + system_data + user_data


def old_spec(value: object) -> bytes:
    packed: bytes = msgpack.packb(value, use_bin_type=False)
    return packed


SYSTEM = old_spec([1, 1_700_000_000, TYPE, "m1", CONFIG])
USER = old_spec([1, {"w": 1}])


# ---------------------------------------------------------------- layout


def test_crc32_of_magic_word_matches_jubatus() -> None:
    assert zlib.crc32(b"jubatus") == 0x41918955


def test_header_layout_byte_by_byte() -> None:
    data = make_file(payload=[b"ab"], model_id="m1", config_json="{}", timestamp=1234)
    system_data = bytes.fromhex(
        "95 01 cd04d2 aa636c6173736966696572 a26d31 a27b7d".replace(" ", "")
    )
    user_data = bytes.fromhex("92 01 91 a26162".replace(" ", ""))
    assert data[0:8] == b"jubatus\x00"
    assert data[8:16] == b"\x00" * 7 + b"\x01"  # format version 1, big-endian uint64
    assert data[16:20] == b"\x00\x00\x00\x01"  # major 1
    assert data[20:24] == b"\x00\x00\x00\x01"  # minor 1
    assert data[24:28] == b"\x00\x00\x00\x01"  # maintenance 1 (1.1.1, as Jubatus 1.1.1 writes)
    assert data[32:40] == struct.pack(">Q", len(system_data))
    assert data[40:48] == struct.pack(">Q", len(user_data))
    assert data[48 : 48 + len(system_data)] == system_data
    assert data[48 + len(system_data) :] == user_data
    expected_crc = zlib.crc32(data[32:48] + system_data + user_data, zlib.crc32(data[0:28]))
    assert data[28:32] == struct.pack(">I", expected_crc)
    assert len(data) == HEADER_SIZE + len(system_data) + len(user_data)


def test_strings_and_bytes_are_packed_in_the_old_spec() -> None:
    config = '{"x": "' + "a" * 40 + '"}'  # 49 characters: str8 (d9) in the new spec
    data = make_file(payload={"k": b"v" * 40}, config_json=config)
    system_size = struct.unpack(">Q", data[32:40])[0]
    system_data = data[48 : 48 + system_size]
    user_data = data[48 + system_size :]
    assert b"\xda\x00\x31" + config.encode() in system_data
    assert b"\xda\x00\x28" + b"v" * 40 in user_data
    assert b"\xd9" not in system_data + user_data
    assert b"\xc4" not in system_data + user_data


# ---------------------------------------------------------------- round trip


def test_round_trip_through_a_file(tmp_path: Path) -> None:
    path = tmp_path / "127.0.0.1_9199_classifier_m1.jubatus"
    payload = {"labels": ["pos", "neg"], "w": {"x": 0.5}, "blob": b"\x00\x01\xff", "n": -3}
    write_model_file(
        path,
        service_type=TYPE,
        model_id="m1",
        config_json=CONFIG,
        user_data_version=7,
        payload=payload,
        timestamp=42,
    )
    model = read_model_file(path, service_type=TYPE, config_json=CONFIG, user_data_version=7)
    assert model == ModelFile(
        timestamp=42,
        service_type=TYPE,
        model_id="m1",
        config_json=CONFIG,
        user_data_version=7,
        payload={
            b"labels": [b"pos", b"neg"],
            b"w": {b"x": 0.5},
            b"blob": b"\x00\x01\xff",
            b"n": -3,
        },
    )


def test_default_timestamp_is_now(tmp_path: Path) -> None:
    import time

    before = int(time.time())
    path = tmp_path / "f.jubatus"
    write_model_file(
        path, service_type=TYPE, model_id="m", config_json="{}", user_data_version=1, payload=None
    )
    model = read_model_file(path, service_type=None, user_data_version=None)
    assert before <= model.timestamp <= int(time.time())
    assert model.payload is None


def test_checks_may_be_skipped_with_none() -> None:
    model = decode_model_file(
        make_file(service_type="other", user_data_version=9),
        service_type=None,
        config_json=None,
        user_data_version=None,
    )
    assert (model.service_type, model.user_data_version) == ("other", 9)


def test_config_is_compared_as_json_not_as_text() -> None:
    same = '{ "parameter" : {"c":1.0},\n "method":"PA" }'
    assert decode(make_file(), config_json=same).config_json == CONFIG


@pytest.mark.parametrize(
    "current",
    [
        '{"method": "PA", "parameter": {"c": 1}}',  # 1 is not 1.0
        '{"method": "PA", "parameter": {"c": true}}',
        '{"method": "PA"}',
        '{"method": "PA", "parameter": {"c": 1.0}, "x": null}',
        '["method"]',
    ],
)
def test_different_config_is_refused(current: str) -> None:
    with pytest.raises(ModelFileError, match=r"^server config mismatched: .*, expected "):
        decode(make_file(), config_json=current)


def test_invalid_current_config_is_reported() -> None:
    with pytest.raises(ModelFileError, match=r"current config is not valid JSON"):
        decode(make_file(), config_json="{")


def test_saved_config_that_is_not_json_mismatches() -> None:
    data = make_file(config_json="not json")
    with pytest.raises(ModelFileError, match=r"server config mismatched: not json"):
        decode(data)


def test_saved_id_is_not_compared() -> None:
    assert decode(make_file(model_id="renamed")).model_id == "renamed"


payloads = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.binary(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.binary(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(payload=payloads, version=st.integers(0, 2**64 - 1))
def test_round_trip_property(payload: object, version: int) -> None:
    data = make_file(payload=payload, user_data_version=version)
    model = decode(data, user_data_version=version)
    assert model.payload == payload
    assert model.user_data_version == version


# ---------------------------------------------------------------- corruption


def test_every_single_byte_flip_is_detected() -> None:
    data = make_file()
    for offset in range(len(data)):
        corrupt = bytearray(data)
        corrupt[offset] ^= 0x41
        with pytest.raises(ModelFileError):
            decode(bytes(corrupt))


@pytest.mark.parametrize(
    ("offset", "message"),
    [
        (0, "^invalid file format$"),
        (7, "^invalid file format$"),
        (15, "^invalid format version: 65, expected 1$"),
        (19, r"^cannot load model file created before v1\.0\.0: 65\.1\.1$"),
        (23, "^invalid crc32 checksum: "),  # minor is not compared, but it is in the CRC
        (27, "^invalid crc32 checksum: "),
        (30, "^invalid crc32 checksum: "),
        (39, "^(truncated model file|invalid file format: .* unexpected bytes)"),
        (47, "^(truncated model file|invalid file format: .* unexpected bytes)"),
        (50, "^invalid crc32 checksum: "),  # system data
        (-3, "^invalid crc32 checksum: "),  # user data
    ],
)
def test_flip_in_each_region_names_the_check(offset: int, message: str) -> None:
    corrupt = bytearray(make_file())
    corrupt[offset] ^= 0x40
    with pytest.raises(ModelFileError, match=message):
        decode(bytes(corrupt))


def test_crc_message_gives_actual_then_expected_in_hex() -> None:
    data = bytearray(make_file())
    stored = struct.unpack(">I", data[28:32])[0]
    data[28:32] = struct.pack(">I", stored ^ 1)
    with pytest.raises(ModelFileError) as info:
        decode(bytes(data))
    assert str(info.value) == f"invalid crc32 checksum: {stored:x}, expected {stored ^ 1:x}"


def test_major_version_zero_is_refused_but_other_minor_versions_load() -> None:
    with pytest.raises(ModelFileError, match=r"created before v1\.0\.0: 0\.9\.9"):
        decode(assemble(SYSTEM, USER, version=(0, 9, 9)))
    with pytest.raises(ModelFileError, match=r"created before v1\.0\.0: 2\.0\.0"):
        decode(assemble(SYSTEM, USER, version=(2, 0, 0)))
    assert decode(assemble(SYSTEM, USER, version=(1, 0, 7))).payload == {b"w": 1}


def test_wrong_format_version() -> None:
    with pytest.raises(ModelFileError, match=r"^invalid format version: 2, expected 1$"):
        decode(assemble(SYSTEM, USER, format_version=2))


def test_wrong_magic() -> None:
    with pytest.raises(ModelFileError, match=r"^invalid file format$"):
        decode(assemble(SYSTEM, USER, magic=b"jubatus!"))


def test_wrong_type() -> None:
    with pytest.raises(ModelFileError, match=r"^server type mismatched: classifier, expected kvs$"):
        decode(make_file(), service_type="kvs")


def test_wrong_user_data_version() -> None:
    with pytest.raises(ModelFileError, match=r"^user data version mismatched: 1, expected 2$"):
        decode(make_file(), user_data_version=2)


@pytest.mark.parametrize(
    ("system_data", "message"),
    [
        (b"\xc1", "^system data is broken"),  # never-used msgpack byte
        (b"\x95\x01", "^system data is broken"),  # truncated array
        (old_spec([1, 2, TYPE, "m1"]), "^system data is broken"),
        (old_spec({"a": 1}), "^system data is broken"),
        (old_spec([1, 2, TYPE, "m1", CONFIG]) + b"\x00", "^system data is broken"),
        (old_spec(["1", 2, TYPE, "m1", CONFIG]), "^system data is broken"),
        (old_spec([1, 2, 3, "m1", CONFIG]), "^system data is broken"),
        (old_spec([1, 2, b"\xff\xfe", "m1", CONFIG]), "^system data is broken"),
        (
            old_spec([2, 2, TYPE, "m1", CONFIG]),
            "^invalid system data version: saved version: 2, expected 1$",
        ),
    ],
)
def test_broken_system_data(system_data: bytes, message: str) -> None:
    with pytest.raises(ModelFileError, match=message):
        decode(assemble(system_data, USER))


@pytest.mark.parametrize(
    ("user_data", "message"),
    [
        (b"\xc1", "^user data is broken"),
        (b"\x92\x01", "^user data is broken"),
        (b"", "^user data is broken"),
        (old_spec([1, 2, 3]), "^invalid user container$"),
        (old_spec([1]), "^invalid user container$"),
        (old_spec({"a": 1}), "^invalid user container$"),
        (old_spec(["1", {}]), "^user data is broken"),
        (old_spec([-1, {}]), "^user data is broken"),
    ],
)
def test_broken_user_data(user_data: bytes, message: str) -> None:
    with pytest.raises(ModelFileError, match=message):
        decode(assemble(SYSTEM, user_data))


def test_checks_run_in_jubatus_order() -> None:
    # wrong type and wrong user version: the type is reported first
    data = make_file(service_type="kvs", user_data_version=5)
    with pytest.raises(ModelFileError, match=r"server type mismatched"):
        decode(data)
    # bad system version and wrong type: the version first
    with pytest.raises(ModelFileError, match=r"invalid system data version"):
        decode(assemble(old_spec([3, 0, "kvs", "m", "{}"]), USER))


@pytest.mark.parametrize("size", [0, 1, 7, 8, 16, 27, 47, 48, 49, 60, -20, -1])
def test_truncated_files_are_refused(size: int) -> None:
    data = make_file()
    with pytest.raises(ModelFileError, match=r"invalid file format|truncated"):
        decode(data[:size])


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(ModelFileError, match=r"1 unexpected bytes after the user data"):
        decode(make_file() + b"\x00")


@pytest.mark.parametrize(
    ("system_size", "user_size"),
    [(2**64 - 1, 0), (0, 2**64 - 1), (2**63, 2**63), (2**40, 10), (10, 2**40)],
)
def test_huge_length_fields_are_refused_without_allocating(
    system_size: int, user_size: int
) -> None:
    header = bytearray(make_file()[:HEADER_SIZE])
    header[32:48] = struct.pack(">QQ", system_size, user_size)
    with pytest.raises(ModelFileError, match=r"^truncated model file: header promises"):
        decode(bytes(header) + b"\x90" * 100)


def test_garbage_is_refused() -> None:
    with pytest.raises(ModelFileError, match=r"^invalid file format$"):
        decode(os.urandom(1000).replace(b"j", b"k"))


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jubatus"
    path.write_bytes(b"")
    with pytest.raises(ModelFileError, match=r"^invalid file format$"):
        read_model_file(path, service_type=TYPE, user_data_version=1)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"^cannot open input file"):
        read_model_file(tmp_path, service_type=TYPE, user_data_version=1)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"^cannot open input file .*No such file"):
        read_model_file(tmp_path / "nope.jubatus", service_type=TYPE, user_data_version=1)


def test_model_file_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        decode(b"")


# ---------------------------------------------------------------- ids and paths


@pytest.mark.parametrize(
    "model_id", ["m1", "a b", "model-1_x.v2", "x" * 100, "~!@#$%^&*()", "a..b", "end."]
)
def test_safe_ids_are_accepted(model_id: str) -> None:
    validate_model_id(model_id)


@pytest.mark.parametrize(
    ("model_id", "message"),
    [
        ("", "^empty id is not allowed$"),
        ("../x", "invalid character"),
        ("/abs", "invalid character"),
        ("a/b", "invalid character"),
        ("a\\b", "invalid character"),
        ("..", "invalid character"),
        (".", "invalid character"),
        (".hidden", "invalid character"),
        ("a\x00b", "invalid character"),
        ("tab\there", "invalid character"),
        ("del\x7f", "invalid character"),
        ("caf\u00e9", "invalid character"),
        ("\u65e5\u672c", "invalid character"),
    ],
)
def test_hostile_ids_are_refused(model_id: str, message: str) -> None:
    with pytest.raises(ModelFileError, match=message):
        validate_model_id(model_id)
    with pytest.raises(ModelFileError, match=message):
        model_path(Path("/data"), "127.0.0.1_9199", TYPE, model_id)


def test_non_string_id_is_refused() -> None:
    with pytest.raises(ModelFileError, match=r"must be a string"):
        validate_model_id(b"m1")  # type: ignore[arg-type]


def test_model_path_is_jubatus_file_name(tmp_path: Path) -> None:
    path = model_path(tmp_path, "10.0.0.1_9199", TYPE, "m1")
    assert path == tmp_path / "10.0.0.1_9199_classifier_m1.jubatus"


@pytest.mark.parametrize(
    ("server_id", "service_type"), [("a/b", TYPE), ("x_1", "../t"), ("", TYPE), ("x_1", "")]
)
def test_model_path_refuses_unsafe_parts(server_id: str, service_type: str) -> None:
    with pytest.raises(ModelFileError, match=r"cannot be part of a file name"):
        model_path(Path("/data"), server_id, service_type, "m1")


def test_model_path_refuses_names_longer_than_the_file_system_allows() -> None:
    with pytest.raises(ModelFileError, match=r"longer than 255 bytes"):
        model_path(Path("/data"), "127.0.0.1_9199", TYPE, "x" * 230)


# ---------------------------------------------------------------- atomicity


def write(path: Path, payload: object) -> None:
    write_model_file(
        path,
        service_type=TYPE,
        model_id="m1",
        config_json=CONFIG,
        user_data_version=1,
        payload=payload,
    )


def test_overwrite_replaces_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "m.jubatus"
    write(path, b"x" * 10_000)
    write(path, b"small")
    assert read_model_file(path, service_type=TYPE, user_data_version=1).payload == b"small"
    assert os.listdir(tmp_path) == ["m.jubatus"]


@pytest.mark.parametrize("payload", [object(), {"k": {1, 2}}, 2**64, [b"ok", lambda: 1]])
def test_unpackable_payload_leaves_old_file_and_no_temp_files(
    tmp_path: Path, payload: object
) -> None:
    path = tmp_path / "m.jubatus"
    write(path, {"old": 1})
    before = path.read_bytes()
    with pytest.raises(ModelFileError, match=r"^cannot pack model"):
        write(path, payload)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.jubatus"]


def test_unpackable_payload_creates_no_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError):
        write(tmp_path / "m.jubatus", object())
    assert os.listdir(tmp_path) == []


def test_write_failing_midway_leaves_old_file_and_no_temp_files(tmp_path: Path) -> None:
    """A real short write: the file-size limit stops the temporary file at 64 KiB."""
    path = tmp_path / "m.jubatus"
    write(path, {"old": 1})
    before = path.read_bytes()
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        from pathlib import Path
        from runtime.errors import ModelFileError
        from runtime.server.persistence import write_model_file
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (65536, resource.RLIM_INFINITY))
        try:
            write_model_file(Path({str(path)!r}), service_type="t", model_id="m1",
                             config_json="{{}}", user_data_version=1, payload=b"x" * 1_000_000)
        except ModelFileError as error:
            print(error)
            sys.exit(3)
        sys.exit(0)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 3, result.stderr
    assert result.stdout.startswith(f"cannot write output file {path}: File too large")
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.jubatus"]


def test_write_into_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"^cannot open output file"):
        write(tmp_path / "nope" / "m.jubatus", 1)


def test_write_over_a_directory_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "m.jubatus"
    target.mkdir()
    with pytest.raises(ModelFileError, match=r"^cannot write output file"):
        write(target, 1)
    assert os.listdir(tmp_path) == ["m.jubatus"]
    assert target.is_dir()
