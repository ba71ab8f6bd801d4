"""The model file: Jubatus's save-file container, byte for byte, written atomically.

A model file is a 48-byte big-endian header, then the *system data*, then the *user data*:

====== ==== ===========================================================================
offset size field
====== ==== ===========================================================================
0      8    magic ``b"jubatus\\0"``
8      8    format version, uint64 = 1
16     4    Jubatus major version, uint32 (we write 1.1.1; readers require major == 1)
20     4    minor, uint32
24     4    maintenance, uint32
28     4    CRC-32 (zlib) over bytes 0-27, then 32-47, then system data, then user data
32     8    system-data length, uint64
40     8    user-data length, uint64
48     n    system data: msgpack ``[1, timestamp, type, id, config_json]``
48+n   m    user data: msgpack ``[user_data_version, payload]``
====== ==== ===========================================================================

Both msgpack parts are packed in the *old* msgpack spec (``use_bin_type=False``): strings
and bytes are both "raw", as msgpack-c 0.5 inside Jubatus writes and reads them. A reader
cannot tell a string from bytes, so :func:`read_model_file` returns every raw value in the
payload as ``bytes``; the service decodes them by its own schema, as the RPC layer does
with wire values. (System-data strings are decoded here: they are UTF-8 text by contract.)

:func:`read_model_file` checks everything Jubatus checks, in Jubatus's order and with its
messages, plus what Jubatus leaves to chance (truncation, lengths beyond the file, trailing
bytes, unsafe ids). Every problem is a :class:`~runtime.errors.ModelFileError`.

This module never touches a running model: it only turns files into values and back.
The caller swaps its model in after a read has succeeded. A write never leaves a torn or
partial file behind: it goes to a temporary file in the same directory, is fsynced, and
replaces the target with ``os.replace`` (then the directory is fsynced).
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import struct
import time
import zlib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgpack

from runtime.errors import ModelFileError
from runtime.rpc.logbounds import shown
from runtime.version import JUBATUS_VERSION

__all__ = [
    "FORMAT_VERSION",
    "HEADER_SIZE",
    "MAGIC",
    "WRITER_VERSION",
    "ModelFile",
    "decode_model_file",
    "encode_model_file",
    "model_path",
    "read_model_file",
    "validate_model_id",
    "write_model_file",
]

log = logging.getLogger(__name__)

#: First 8 bytes of every model file.
MAGIC: Final = b"jubatus\0"
#: The container layout version; the only one that exists.
FORMAT_VERSION: Final = 1
#: The Jubatus version written into the header, the release ``--version`` and ``get_status``
#: name (readers only require major == 1).
WRITER_VERSION: Final = tuple(int(part) for part in JUBATUS_VERSION.split("."))
#: Version of the system-data array ``[version, timestamp, type, id, config]``.
SYSTEM_DATA_VERSION: Final = 1
#: Size of the fixed header in bytes.
HEADER_SIZE: Final = 48
#: File name suffix of model files.
SUFFIX: Final = ".jubatus"

# magic, format version, major, minor, maintenance, crc32, system length, user length
_HEADER: Final = struct.Struct(">8sQIIIIQQ")
_CRC_OFFSET: Final = 28
_CRC_END: Final = 32
_NAME_MAX: Final = 255


@dataclass(frozen=True, slots=True)
class ModelFile:
    """The verified contents of a model file.

    ``payload`` is the service's model as msgpack decoded it, with every raw value as
    ``bytes`` (see the module docstring).
    """

    timestamp: int
    service_type: str
    model_id: str
    config_json: str
    user_data_version: int
    payload: object


def validate_model_id(model_id: str) -> None:
    """Refuse an id that is not a safe file-name part.

    Jubatus refuses an empty id and any byte ``/`` or outside 0x20..0x7E. We also refuse
    ``\\``, ``.``/``..`` and a leading ``.`` so that an id can never name a hidden file,
    a directory or a path outside the data directory.

    :raises ModelFileError: with Jubatus's message for the empty id and for bad characters.
    """
    if not isinstance(model_id, str):
        raise ModelFileError(f"model ID must be a string, not {type(model_id).__name__}")
    if model_id == "":
        raise ModelFileError("empty id is not allowed")
    if len(model_id) > _NAME_MAX:
        raise ModelFileError(
            f"model ID is longer than {_NAME_MAX} characters: {shown(model_id)}"
        )
    for char in model_id:
        if char in "/\\" or not " " <= char <= "~":
            raise ModelFileError(f"model ID contains invalid character: {model_id!r}")
    if model_id.startswith("."):
        raise ModelFileError(f"model ID contains invalid character (leading '.'): {model_id!r}")


def model_path(datadir: Path, server_id: str, service_type: str, model_id: str) -> Path:
    """``<datadir>/<ip>_<port>_<type>_<id>.jubatus``, the file ``save(id)`` writes.

    ``server_id`` is ``<ip>_<port>``. The id is validated (:func:`validate_model_id`); the
    other parts must not contain path separators either.

    :raises ModelFileError: for an unsafe id or part, or a name longer than 255 bytes.
    """
    validate_model_id(model_id)
    for label, part in (("server id", server_id), ("service type", service_type)):
        if not part or any(c in "/\\\0" for c in part):
            raise ModelFileError(f"{label} cannot be part of a file name: {part!r}")
    name = f"{server_id}_{service_type}_{model_id}{SUFFIX}"
    if len(name.encode("utf-8")) > _NAME_MAX:
        raise ModelFileError(f"model file name is longer than {_NAME_MAX} bytes: {name!r}")
    return Path(datadir) / name


def _crc32(header: bytes, system_data: bytes, user_data: bytes) -> int:
    crc = zlib.crc32(header[:_CRC_OFFSET])
    crc = zlib.crc32(header[_CRC_END:HEADER_SIZE], crc)
    crc = zlib.crc32(system_data, crc)
    return zlib.crc32(user_data, crc)


def _pack(value: object, what: str) -> bytes:
    try:
        packed: bytes = msgpack.packb(value, use_bin_type=False)
    except (TypeError, ValueError, OverflowError) as error:
        raise ModelFileError(f"cannot pack {what}: {error}") from error
    return packed


def encode_model_file(
    *,
    service_type: str,
    model_id: str,
    config_json: str,
    user_data_version: int,
    payload: object,
    timestamp: int | None = None,
) -> bytes:
    """The bytes of a model file (header, system data, user data), built in memory.

    :raises ModelFileError: when the payload or a field cannot be packed.
    """
    if timestamp is None:
        timestamp = int(time.time())
    system_data = _pack(
        [SYSTEM_DATA_VERSION, timestamp, service_type, model_id, config_json], "system data"
    )
    user_data = _pack([user_data_version, payload], "model")
    header = bytearray(
        _HEADER.pack(MAGIC, FORMAT_VERSION, *WRITER_VERSION, 0, len(system_data), len(user_data))
    )
    struct.pack_into(">I", header, _CRC_OFFSET, _crc32(bytes(header), system_data, user_data))
    return bytes(header) + system_data + user_data


def write_model_file(
    path: Path,
    *,
    service_type: str,
    model_id: str,
    config_json: str,
    user_data_version: int,
    payload: object,
    timestamp: int | None = None,
) -> None:
    """Write a model file atomically: the old file stays intact until the new one is whole.

    The bytes are built in memory first, written to a temporary file beside ``path``,
    fsynced, moved over ``path`` with ``os.replace``, and the directory is fsynced. On
    any failure the temporary file is removed and ``path`` is as it was.

    :raises ModelFileError: ``"cannot pack ..."`` for a payload msgpack cannot pack,
        ``"cannot write output file ..."`` for an I/O error.
    """
    path = Path(path)
    data = encode_model_file(
        service_type=service_type,
        model_id=model_id,
        config_json=config_json,
        user_data_version=user_data_version,
        payload=payload,
        timestamp=timestamp,
    )
    directory = path.parent
    temp = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except OSError as error:
        raise ModelFileError(f"cannot open output file {path}: {error.strerror}") from error
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except OSError as error:
        _remove_quietly(temp)
        raise ModelFileError(f"cannot write output file {path}: {error.strerror}") from error
    except BaseException:
        _remove_quietly(temp)
        raise
    _fsync_directory(directory)
    log.debug("wrote model file %s (%d bytes)", path, len(data))


#: A temporary file of :func:`write_model_file`: ``.<model file name>.<12 hex>.tmp``.
_TEMP_NAME = re.compile(r"^\.(?P<name>.+\.jubatus)\.[0-9a-f]{12}\.tmp$")
#: A temporary file this old is left from a save that cannot still be running.
STALE_SECONDS = 3600.0


def remove_stale_temps(datadir: Path, server_id: str, service_type: str) -> list[Path]:
    """Remove the temporary files of saves a crash interrupted: any of this server's
    (``<server_id>_<type>_...``, nothing of it can be running yet), and those of other
    servers of this type older than :data:`STALE_SECONDS`. Returns what was removed."""
    removed: list[Path] = []
    ours = f"{server_id}_{service_type}_"
    now = time.time()
    try:
        entries = list(os.scandir(datadir))
    except OSError as error:
        log.warning("cannot look for temporary files in %s: %s", datadir, error)
        return removed
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match is None or f"_{service_type}_" not in match["name"]:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            old = now - entry.stat(follow_symlinks=False).st_mtime > STALE_SECONDS
            if match["name"].startswith(ours) or old:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError as error:
            log.warning("cannot remove temporary file %s: %s", entry.path, error)
    return removed


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as error:  # the write already failed; report that, log this
        log.warning("cannot remove temporary file %s: %s", path, error)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable; a file system that cannot fsync a directory is tolerated."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as error:
        log.warning("cannot open directory %s to fsync it: %s", directory, error)
        return
    try:
        os.fsync(fd)
    except OSError as error:
        log.warning("cannot fsync directory %s: %s", directory, error)
    finally:
        os.close(fd)


def read_model_file(
    path: Path,
    *,
    service_type: str | None,
    config_json: str | None = None,
    user_data_version: int | None,
    older_versions: Collection[int] = (),
) -> ModelFile:
    """Read and verify a model file; nothing is applied anywhere.

    Checks, in Jubatus's order: magic, format version, major version, (our) lengths
    against the file size, CRC-32, system data, system-data version, ``service_type``
    (unless None), ``config_json`` compared as JSON values (unless None), the user
    container, ``user_data_version`` (unless None; ``older_versions`` are accepted too: a
    service that still reads an older layout names them). The saved id is not compared,
    so a file may be renamed.

    :raises ModelFileError: naming the first check that failed.
    """
    data = _read_bytes(Path(path))
    return decode_model_file(
        data,
        service_type=service_type,
        config_json=config_json,
        user_data_version=user_data_version,
        older_versions=older_versions,
    )


def _read_bytes(path: Path) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as error:
        raise ModelFileError(f"cannot open input file {path}: {error.strerror}") from error


def decode_model_file(
    data: bytes,
    *,
    service_type: str | None,
    config_json: str | None = None,
    user_data_version: int | None,
    older_versions: Collection[int] = (),
) -> ModelFile:
    """Verify and decode the bytes of a model file (see :func:`read_model_file`)."""
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        raise ModelFileError("invalid file format")
    if len(data) < HEADER_SIZE:
        raise ModelFileError(
            f"invalid file format: truncated header ({len(data)} of {HEADER_SIZE} bytes)"
        )
    _, format_version, major, minor, maintenance, crc_expected, system_size, user_size = (
        _HEADER.unpack_from(data)
    )
    if format_version != FORMAT_VERSION:
        raise ModelFileError(f"invalid format version: {format_version}, expected {FORMAT_VERSION}")
    if major != 1:
        raise ModelFileError(
            f"cannot load model file created before v1.0.0: {major}.{minor}.{maintenance}"
        )
    body = len(data) - HEADER_SIZE
    if system_size > body or user_size > body - system_size:
        raise ModelFileError(
            f"truncated model file: header promises {system_size} + {user_size} bytes of "
            f"data, the file holds {body}"
        )
    if system_size + user_size != body:
        raise ModelFileError(
            f"invalid file format: {body - system_size - user_size} unexpected bytes "
            "after the user data"
        )
    system_data = data[HEADER_SIZE : HEADER_SIZE + system_size]
    user_data = data[HEADER_SIZE + system_size :]
    crc_actual = _crc32(data[:HEADER_SIZE], system_data, user_data)
    if crc_actual != crc_expected:
        raise ModelFileError(f"invalid crc32 checksum: {crc_actual:x}, expected {crc_expected:x}")

    version, timestamp, saved_type, saved_id, saved_config = _decode_system_data(system_data)
    if version != SYSTEM_DATA_VERSION:
        raise ModelFileError(
            f"invalid system data version: saved version: {version}, expected {SYSTEM_DATA_VERSION}"
        )
    if service_type is not None and saved_type != service_type:
        raise ModelFileError(f"server type mismatched: {saved_type}, expected {service_type}")
    if config_json is not None and not _same_config(saved_config, config_json):
        raise ModelFileError(f"server config mismatched: {saved_config}, expected {config_json}")

    saved_user_version, payload = _decode_user_data(user_data)
    if (
        user_data_version is not None
        and saved_user_version != user_data_version
        and saved_user_version not in older_versions
    ):
        raise ModelFileError(
            f"user data version mismatched: {saved_user_version}, expected {user_data_version}"
        )
    return ModelFile(
        timestamp=timestamp,
        service_type=saved_type,
        model_id=saved_id,
        config_json=saved_config,
        user_data_version=saved_user_version,
        payload=payload,
    )


def _unpack(data: bytes) -> Any:
    """The one msgpack value that fills ``data`` exactly, every raw value as bytes."""
    return msgpack.unpackb(data, raw=True, strict_map_key=False, use_list=True)


_UNPACK_ERRORS: Final = (ValueError, TypeError, msgpack.UnpackException)


def _decode_system_data(data: bytes) -> tuple[int, int, str, str, str]:
    try:
        value = _unpack(data)
    except _UNPACK_ERRORS as error:
        raise ModelFileError(f"system data is broken: {error}") from None
    if not isinstance(value, list) or len(value) != 5:
        raise ModelFileError("system data is broken: not an array of 5 elements")
    version, timestamp, *texts = value
    if type(version) is not int or type(timestamp) is not int:
        raise ModelFileError("system data is broken: version and timestamp must be integers")
    decoded: list[str] = []
    for text in texts:
        if not isinstance(text, bytes):
            raise ModelFileError("system data is broken: type, id and config must be strings")
        try:
            decoded.append(text.decode("utf-8"))
        except UnicodeDecodeError:
            raise ModelFileError("system data is broken: a string is not UTF-8") from None
    return version, timestamp, decoded[0], decoded[1], decoded[2]


def _decode_user_data(data: bytes) -> tuple[int, object]:
    try:
        value = _unpack(data)
    except _UNPACK_ERRORS as error:
        raise ModelFileError(f"user data is broken: {error}") from None
    if not isinstance(value, list) or len(value) != 2:
        raise ModelFileError("invalid user container")
    version, payload = value
    if type(version) is not int or version < 0:
        raise ModelFileError("user data is broken: user data version must be an unsigned integer")
    return version, payload


def _same_config(saved: str, current: str) -> bool:
    """Whether two config texts hold the same JSON value (key order and spacing ignored)."""
    try:
        current_value = json.loads(current)
    except (ValueError, RecursionError) as error:
        raise ModelFileError(f"current config is not valid JSON: {error}") from None
    try:
        saved_value = json.loads(saved)
    except (ValueError, RecursionError):
        return False
    return _json_equal(saved_value, current_value)


def _json_equal(a: object, b: object) -> bool:
    """Structural JSON equality that keeps ``true`` apart from ``1`` and ``1`` from ``1.0``."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True  # NaN, which json accepts, equals itself here
    return a == b
