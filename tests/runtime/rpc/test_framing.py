"""The bounded request decoder: the scanner finds message ends, estimates memory from above,
and every limit is exact; the decoder delivers whole messages however the bytes are cut."""

from __future__ import annotations

import tracemalloc
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings, strategies as st

from runtime.errors import MessageTooLarge, ProtocolError
from runtime.rpc.framing import PARTIAL_LIMIT, WORST_RATIO, BoundedDecoder, Scanner

leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.binary(max_size=300)
)
values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=20) | st.dictionaries(leaves, inner, max_size=10),
    max_leaves=200,
)


def pack(value: object) -> bytes:
    packed: bytes = msgpack.packb(value, use_bin_type=False)
    return packed


def decoded_memory(packed: bytes) -> int:
    """What the C unpacker allocates for ``packed``, as tracemalloc sees it."""
    unpacker = msgpack.Unpacker(raw=True, strict_map_key=False, max_buffer_size=1 << 30)
    unpacker.feed(packed)
    tracemalloc.start()
    try:
        value = unpacker.unpack()
        memory = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    del value
    return memory


@settings(max_examples=150, deadline=None)
@given(values, st.data())
def test_the_scanner_finds_the_end_of_any_object_cut_anywhere(
    value: Any, data: st.DataObject
) -> None:
    packed = pack(value)
    trailing = pack([0, 1, b"next", []])
    stream = packed + trailing
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=5)))
    scanner = Scanner(1 << 30, 1 << 40)
    end = None
    start = 0
    for cut in [*cuts, len(stream)]:
        if end is None:
            end = scanner.feed(stream[start:cut])
        start = cut
    assert end == len(packed)


@settings(max_examples=100, deadline=None)
@given(values)
def test_the_estimate_is_never_below_what_decoding_takes(value: Any) -> None:
    packed = pack(value)
    scanner = Scanner(1 << 30, 1 << 40)
    assert scanner.feed(packed) == len(packed)
    # tracemalloc's first measurement carries a few hundred bytes of its own.
    assert scanner.estimate + 1024 >= decoded_memory(packed)


@pytest.mark.parametrize(
    "value",
    [
        [[] for _ in range(5000)],
        [{} for _ in range(5000)],
        [b"ab" for _ in range(5000)],
        [{b"a": 1} for _ in range(2000)],
        list(range(1000, 6000)),
        [[[[b"key", b"value"]], [[b"n", 1.5]], []] for _ in range(500)],
    ],
    ids=["empty lists", "empty maps", "2-byte raws", "small maps", "ints", "datums"],
)
def test_the_estimate_of_dense_objects_is_close_and_above(value: object) -> None:
    packed = pack(value)
    scanner = Scanner(1 << 30, 1 << 40)
    scanner.feed(packed)
    actual = decoded_memory(packed)
    assert actual <= scanner.estimate <= 2 * actual
    assert scanner.estimate <= WORST_RATIO * len(packed)


def test_the_size_limit_is_exact() -> None:
    body = pack([0, 1, b"m", [b"x" * 100]])
    size = len(body)
    assert Scanner(size, 1 << 30).feed(body) == size
    with pytest.raises(MessageTooLarge):
        Scanner(size - 1, 1 << 30).feed(body)
    scanner = Scanner(size - 1, 1 << 30)  # refused at the first byte over, before the rest
    with pytest.raises(MessageTooLarge):
        scanner.feed(body[: size - 1])


def test_depth_ext_and_unused_bytes_are_refused() -> None:
    with pytest.raises(ProtocolError, match="deeper than 8"):
        Scanner(1 << 20, 1 << 30, max_depth=8).feed(b"\x91" * 9 + b"\xc0")
    assert Scanner(1 << 20, 1 << 30, max_depth=8).feed(b"\x91" * 7 + b"\xc0") == 8
    with pytest.raises(ProtocolError, match="ext"):
        Scanner(1 << 20, 1 << 30).feed(b"\x91\xd4\x01\x00")
    with pytest.raises(ProtocolError, match="0xc1"):
        Scanner(1 << 20, 1 << 30).feed(b"\xc1")


def test_an_unfinished_array_of_empty_arrays_is_refused_at_the_memory_limit() -> None:
    """The attack: 8 MiB of ``0x90`` inside an array that never ends."""
    scanner = Scanner(64 << 20, 1 << 20)
    chunk = b"\x90" * 4096
    sent = 0
    with pytest.raises(MessageTooLarge, match="would take more than 1048576 bytes of memory"):
        scanner.feed(b"\xdd\x00\x00\xff\xff")  # 65535 elements: 512 KiB of slots
        while sent < 8 << 20:
            scanner.feed(chunk)
            sent += len(chunk)
    assert sent < (1 << 20) // 64  # refused long before 8 MiB, once the objects would pass 1 MiB


@settings(max_examples=60, deadline=None)
@given(st.lists(values, min_size=1, max_size=6), st.data())
def test_the_decoder_delivers_every_message_whole_however_cut(
    messages: list[Any], data: st.DataObject
) -> None:
    stream = b"".join(pack([0, i, b"m", [value]]) for i, value in enumerate(messages))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    decoder = BoundedDecoder(1 << 20)
    got: list[Any] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        decoder.push(stream[start:cut])
        start = cut
        for obj in decoder.unpacker:
            decoder.check_size(decoder.unpacker.tell())
            got.append(obj)
        decoder.settle()
    expected = msgpack.Unpacker(raw=True, strict_map_key=False)
    expected.feed(stream)
    assert got == list(expected)


def test_a_large_message_in_progress_is_held_raw_not_built() -> None:
    decoder = BoundedDecoder(4 << 20)
    message = pack([0, 7, b"put", [b"c", [[] for _ in range(50_000)]]])
    decoder.push(message[: PARTIAL_LIMIT // 2])
    assert list(decoder.unpacker) == []
    decoder.settle()
    assert decoder.held == 0  # a small leftover stays with the unpacker
    decoder.push(message[PARTIAL_LIMIT // 2 : 30_000])
    assert list(decoder.unpacker) == []
    decoder.settle()
    assert decoder.held == 30_000  # a larger one is scanned, its bytes held raw
    decoder.push(message[30_000:] + pack([0, 8, b"get", [b"c"]]))
    assert decoder.held == 0
    got = []
    for obj in decoder.unpacker:
        end = decoder.unpacker.tell()
        got.append((obj[1], decoder.estimate(end, end - decoder.boundary)))
        decoder.check_size(end)
    assert [msgid for msgid, _ in got] == [7, 8]
    assert got[0][1] < WORST_RATIO * len(message)  # the scanner's figure, not the worst case


def test_a_message_over_the_limit_is_refused_whichever_way_it_arrives() -> None:
    limit = 10_000
    big = pack([0, 1, b"put", [b"c", b"x" * limit]])
    whole = BoundedDecoder(limit)
    whole.push(big)
    [obj] = list(whole.unpacker)
    with pytest.raises(MessageTooLarge):
        whole.check_size(whole.unpacker.tell())
    in_pieces = BoundedDecoder(limit)
    with pytest.raises(MessageTooLarge):
        for start in range(0, len(big), 1000):
            in_pieces.push(big[start : start + 1000])
            assert list(in_pieces.unpacker) == []
            in_pieces.settle()
    at_limit = BoundedDecoder(len(big))
    at_limit.push(big)
    [obj] = list(at_limit.unpacker)
    at_limit.check_size(at_limit.unpacker.tell())
    assert obj[3][1] == b"x" * limit
