"""Jubatus's hash functions and random streams, bit for bit, for the hashed methods.

- :func:`fnv1_64`: Jubatus's ``hash_util::calc_string_hash`` (FNV-1, 64 bits, over the
  UTF-8 bytes taken as C's signed ``char``, so a byte >= 0x80 is sign-extended).
- :func:`gaussian_rows`: the standard normal numbers Jubatus's ``random_projection`` draws
  for a feature: an SFMT-607 stream seeded with the low 32 bits of the feature's hash,
  turned into normals by Box-Muller with the polynomial ``log``/``sin``/``cos`` of
  Jubatus's AVX2 and SSE2 code (Cephes's, as in Julien Pommier's ``sse_mathfunc``),
  emulated step by step in 32-bit floats, so the projections and the LSH bits agree.
- :func:`random_projection`: the 32-bit sum ``Σ value_f x normal_f`` in feature order;
  :func:`projection_bits` its signs as bit-vector words (both in C when the kernels are
  built: :mod:`engines.common.kernels`).
- :func:`minhash_values`: ``-log(h(key, j)) / value`` with Jenkins's 64-bit mix, as
  Jubatus's ``minhash``.
- :class:`MersenneTwister`: MT19937 seeded with ``init_genrand`` (Jubatus's ``mtrand``).

Normals are cached per feature name (:class:`ProjectionCache`), so a feature is hashed
once per process. Nothing here keeps model state.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from engines.common import kernels

MASK64 = (1 << 64) - 1
FNV_OFFSET = 14695981039346656037
FNV_PRIME = 1099511628211

F32 = npt.NDArray[np.float32]
U32 = npt.NDArray[np.uint32]
U64 = npt.NDArray[np.uint64]


@lru_cache(maxsize=1 << 16)
def fnv1_64(text: str) -> int:
    """Jubatus's ``calc_string_hash``: FNV-1 over the UTF-8 bytes as signed chars."""
    value = FNV_OFFSET
    for byte in text.encode("utf-8"):
        value = (value * FNV_PRIME) & MASK64
        value ^= byte if byte < 0x80 else (byte - 0x100) & MASK64
    return value


# -- SFMT-607 ------------------------------------------------------------------------------

_N = 5  # 128-bit words
_N32 = 20
_POS1 = 2
_SL1 = 15
_SL2 = 3
_SR1 = 13
_SR2 = 3
_MSK = np.array([0xFDFF37FF, 0xEF7F3F7D, 0xFF777B7D, 0x7FF7FB2F], dtype=np.uint32)
_PARITY = (0x00000001, 0x00000000, 0x00000000, 0x5986F054)


def _sfmt_init(seeds: U32) -> U32:
    """States (``len(seeds)`` x 20 words) after ``sfmt(seed)``'s constructor."""
    count = len(seeds)
    state = np.empty((count, _N32), dtype=np.uint32)
    state[:, 0] = seeds
    previous = seeds.astype(np.uint64)
    for i in range(1, _N32):
        previous = (
            np.uint64(1812433253) * (previous ^ (previous >> np.uint64(30))) + np.uint64(i)
        ) & np.uint64(0xFFFFFFFF)
        state[:, i] = previous.astype(np.uint32)
    inner = np.zeros(count, dtype=np.uint32)
    for i in range(4):
        inner ^= state[:, i] & np.uint32(_PARITY[i])
    for shift in (16, 8, 4, 2, 1):
        inner ^= inner >> np.uint32(shift)
    inner &= np.uint32(1)
    # _PARITY[0] is 1: a state failing the certification gets bit 0 of word 0 flipped.
    state[:, 0] ^= (inner == 0).astype(np.uint32)
    return state


def _sfmt_generate(state: U32) -> None:
    """One ``generate_all`` on every state (in place)."""
    words = state.reshape(len(state), _N, 4)

    def recursion(a: U32, b: U32, c: U32, d: U32) -> U32:
        a64 = a.astype(np.uint64)
        c64 = c.astype(np.uint64)
        lo = a64[:, 0] | (a64[:, 1] << np.uint64(32))
        hi = a64[:, 2] | (a64[:, 3] << np.uint64(32))
        shift = np.uint64(_SL2 * 8)
        x_lo = lo << shift
        x_hi = (hi << shift) | (lo >> np.uint64(64 - _SL2 * 8))
        lo = c64[:, 0] | (c64[:, 1] << np.uint64(32))
        hi = c64[:, 2] | (c64[:, 3] << np.uint64(32))
        shift = np.uint64(_SR2 * 8)
        y_lo = (lo >> shift) | (hi << np.uint64(64 - _SR2 * 8))
        y_hi = hi >> shift
        mask32 = np.uint64(0xFFFFFFFF)
        x = np.stack(
            [x_lo & mask32, x_lo >> np.uint64(32), x_hi & mask32, x_hi >> np.uint64(32)], axis=1
        ).astype(np.uint32)
        y = np.stack(
            [y_lo & mask32, y_lo >> np.uint64(32), y_hi & mask32, y_hi >> np.uint64(32)], axis=1
        ).astype(np.uint32)
        return a ^ x ^ ((b >> np.uint32(_SR1)) & _MSK) ^ y ^ (d << np.uint32(_SL1))

    r1 = words[:, _N - 2].copy()
    r2 = words[:, _N - 1].copy()
    for i in range(_N):
        other = i + _POS1 if i < _N - _POS1 else i + _POS1 - _N
        words[:, i] = recursion(words[:, i], words[:, other], r1, r2)
        r1 = r2
        r2 = words[:, i].copy()


def sfmt607_stream(seeds: Sequence[int] | U32, count: int) -> U32:
    """The first ``count`` outputs of SFMT-607 for each seed (one row per seed)."""
    state = _sfmt_init(np.asarray(seeds, dtype=np.uint32))
    blocks = []
    for _ in range(-(-count // _N32)):
        _sfmt_generate(state)
        blocks.append(state.copy())
    return np.concatenate(blocks, axis=1)[:, :count] if blocks else state[:, :0]


# -- Cephes log, sin and cos in 32-bit floats ----------------------------------------------

_f = np.float32
_LOG_P = [
    _f(7.0376836292e-2),
    _f(-1.1514610310e-1),
    _f(1.1676998740e-1),
    _f(-1.2420140846e-1),
    _f(1.4249322787e-1),
    _f(-1.6668057665e-1),
    _f(2.0000714765e-1),
    _f(-2.4999993993e-1),
    _f(3.3333331174e-1),
]
_LOG_Q1 = _f(-2.12194440e-4)
_LOG_Q2 = _f(0.693359375)
_SQRTHF = _f(0.707106781186547524)
_FOPI = _f(1.27323954473516)
_DP1 = _f(-0.78515625)
_DP2 = _f(-2.4187564849853515625e-4)
_DP3 = _f(-3.77489497744594108e-8)
_SIN_P = (_f(-1.9515295891e-4), _f(8.3321608736e-3), _f(-1.6666654611e-1))
_COS_P = (_f(2.443315711809948e-005), _f(-1.388731625493765e-003), _f(4.166664568298827e-002))
_ONE = _f(1.0)
_HALF = _f(0.5)
_MINUS2 = _f(-2.0)
_SCALE = _f(1.0 / 16777216.0)
_TWOPI = _f(2.0 * math.pi)


def _log_ps(x: F32) -> F32:
    """Cephes ``logf`` as ``log256_ps`` computes it (for x > 0)."""
    x = np.maximum(x, np.float32(1.17549435e-38))
    bits = x.view(np.uint32)
    exponent = (bits >> np.uint32(23)).astype(np.int32) - np.int32(0x7F)
    x = ((bits & np.uint32(~0x7F800000 & 0xFFFFFFFF)) | np.uint32(0x3F000000)).view(np.float32)
    e = exponent.astype(np.float32) + _ONE
    mask = x < _SQRTHF
    tmp = np.where(mask, x, np.float32(0.0)).astype(np.float32)
    x = x - _ONE
    e = e - np.where(mask, _ONE, np.float32(0.0)).astype(np.float32)
    x = x + tmp
    z = x * x
    y = np.full_like(x, _LOG_P[0])
    for coefficient in _LOG_P[1:]:
        y = y * x
        y = y + coefficient
    y = y * x
    y = y * z
    y = y + e * _LOG_Q1
    y = y - z * _HALF
    x = x + y
    x = x + e * _LOG_Q2
    return x


def _sincos_ps(x: F32) -> tuple[F32, F32]:
    """Cephes ``sinf``/``cosf`` as ``sincos256_ps`` computes them."""
    sign_sin = x.view(np.uint32) & np.uint32(0x80000000)
    x = (x.view(np.uint32) & np.uint32(0x7FFFFFFF)).view(np.float32)
    y = x * _FOPI
    quadrant = y.astype(np.int32)  # truncation, as cvttps
    quadrant = (quadrant + np.int32(1)) & np.int32(~1)
    y = quadrant.astype(np.float32)
    swap_sin = ((quadrant & np.int32(4)).astype(np.uint32)) << np.uint32(29)
    poly_mask = (quadrant & np.int32(2)) == 0
    x = x + y * _DP1
    x = x + y * _DP2
    x = x + y * _DP3
    sign_cos = ((~(quadrant - np.int32(2)) & np.int32(4)).astype(np.uint32)) << np.uint32(29)
    sign_sin = sign_sin ^ swap_sin
    z = x * x
    cos_poly = np.full_like(x, _COS_P[0])
    cos_poly = cos_poly * z
    cos_poly = cos_poly + _COS_P[1]
    cos_poly = cos_poly * z
    cos_poly = cos_poly + _COS_P[2]
    cos_poly = cos_poly * z
    cos_poly = cos_poly * z
    cos_poly = cos_poly - z * _HALF
    cos_poly = cos_poly + _ONE
    sin_poly = np.full_like(x, _SIN_P[0])
    sin_poly = sin_poly * z
    sin_poly = sin_poly + _SIN_P[1]
    sin_poly = sin_poly * z
    sin_poly = sin_poly + _SIN_P[2]
    sin_poly = sin_poly * z
    sin_poly = sin_poly * x
    sin_poly = sin_poly + x
    sine = np.where(poly_mask, sin_poly, cos_poly).astype(np.float32)
    cosine = np.where(poly_mask, cos_poly, sin_poly).astype(np.float32)
    sine = (sine.view(np.uint32) ^ sign_sin).view(np.float32)
    cosine = (cosine.view(np.uint32) ^ sign_cos).view(np.float32)
    return sine, cosine


def _box_muller(radius_words: U32, angle_words: U32, exact: bool) -> tuple[F32, F32]:
    a = _ONE - (radius_words >> np.uint32(8)).astype(np.float32) * _SCALE
    b = _ONE - (angle_words >> np.uint32(8)).astype(np.float32) * _SCALE
    b = b * _TWOPI
    if exact:  # the scalar tail: the C library's logf, sinf and cosf
        radius = np.sqrt(_MINUS2 * np.log(a))
        return (radius * np.sin(b)).astype(np.float32), (radius * np.cos(b)).astype(np.float32)
    radius = np.sqrt(_log_ps(a) * _MINUS2)
    sine, cosine = _sincos_ps(b)
    return radius * sine, radius * cosine


def gaussian_rows(seeds: Sequence[int] | U32, count: int) -> F32:
    """``count`` normals per seed, as ``random_projection`` draws them (rows x count)."""
    seeds_array = np.asarray(seeds, dtype=np.uint32)
    rows = len(seeds_array)
    out = np.empty((rows, count), dtype=np.float32)
    if rows == 0 or count == 0:
        return out
    vector_part = count & ~7  # 16- and 8-wide blocks use the polynomial functions
    tail = count - vector_part
    words = sfmt607_stream(seeds_array, vector_part + 2 * ((tail + 1) // 2))
    if vector_part:
        pairs = words[:, :vector_part]
        sine, cosine = _box_muller(pairs[:, 0::2], pairs[:, 1::2], exact=False)
        out[:, 0:vector_part:2] = sine
        out[:, 1:vector_part:2] = cosine
    if tail:
        rest = words[:, vector_part:]
        sine, cosine = _box_muller(rest[:, 0::2], rest[:, 1::2], exact=True)
        out[:, vector_part::2] = sine[:, : (tail + 1) // 2]
        if tail > 1:
            out[:, vector_part + 1 :: 2] = cosine[:, : tail // 2]
    return out


class ProjectionCache:
    """Normals per feature name (``hash_num`` of them), computed once and kept (LRU)."""

    def __init__(self, hash_num: int, capacity: int = 1 << 16) -> None:
        self.hash_num = hash_num
        self.capacity = capacity
        self._rows: OrderedDict[str, F32] = OrderedDict()
        #: The rows of one datum's feature names, stacked (datums of one data set mostly
        #: share their names); up to ``capacity`` rows in all, then it starts again.
        self._matrices: dict[tuple[str, ...], F32] = {}
        self._matrix_rows = 0

    def rows(self, names: Sequence[str]) -> list[F32]:
        cached = self._rows
        missing = [name for name in dict.fromkeys(names) if name not in cached]
        if missing:
            seeds = [fnv1_64(name) & 0xFFFFFFFF for name in missing]
            table = gaussian_rows(seeds, self.hash_num)
            for name, row in zip(missing, table, strict=True):
                cached[name] = row
            while len(cached) > self.capacity:
                cached.popitem(last=False)
        return [cached[name] for name in names]

    def matrix(self, names: tuple[str, ...]) -> F32:
        """The rows of ``names`` stacked (names x hash_num), kept for the next datum with
        the same names (the normals of a name never change)."""
        stacked = self._matrices.get(names)
        if stacked is None:
            stacked = np.stack(self.rows(names))
            self._matrix_rows += len(names)
            if self._matrix_rows > self.capacity:
                self._matrices.clear()
                self._matrix_rows = len(names)
            self._matrices[names] = stacked
        return stacked


def random_projection(features: Sequence[tuple[str, float]], cache: ProjectionCache) -> F32:
    """``Σ float32(value) x normals(name)`` in 32-bit floats, in feature order (a running
    sum down the columns, as Jubatus adds feature after feature)."""
    if not features:
        return np.zeros(cache.hash_num, dtype=np.float32)
    if kernels.compiled is not None:  # the same sums, in C
        projection = np.empty(cache.hash_num, dtype=np.float32)
        _project(features, cache, projection, None)
        return projection
    if len(features) == 1:
        name, value = features[0]
        return (np.float32(value) * cache.rows([name])[0]).astype(np.float32)
    matrix = cache.matrix(tuple([name for name, _ in features]))
    values = np.array([value for _, value in features], dtype=np.float32)
    products = matrix * values[:, np.newaxis]
    summed: F32 = products.cumsum(axis=0, dtype=np.float32)[-1]
    return summed


def projection_bits(features: Sequence[tuple[str, float]], cache: ProjectionCache) -> U64:
    """``pack_bits(random_projection(features, cache) > 0)``: the signs of the projection,
    the bit vector lsh and euclid_lsh keep."""
    if kernels.compiled is None or not features:
        return pack_bits(random_projection(features, cache) > 0)
    words = np.empty(-(-cache.hash_num // 64), dtype=np.uint64)
    _project(features, cache, None, words)
    return words


def _project(
    features: Sequence[tuple[str, float]],
    cache: ProjectionCache,
    projection: F32 | None,
    words: U64 | None,
) -> None:
    """The compiled kernel's projection of ``features`` (some) into ``projection`` and/or
    its sign bits into ``words``."""
    assert kernels.compiled is not None
    matrix = cache.matrix(tuple([name for name, _ in features]))
    kernels.compiled.project(matrix, [value for _, value in features], projection, words)


def pack_bits(flags: npt.NDArray[np.bool_]) -> npt.NDArray[np.uint64]:
    """A boolean vector as Jubatus's bit vector words (bit i of word i // 64)."""
    if len(flags) % 64 == 0:  # whole words: no padding to add
        return np.packbits(flags, bitorder="little").view(np.uint64)
    padded = np.zeros(-(-len(flags) // 64) * 64, dtype=np.uint8)
    padded[: len(flags)] = flags
    return np.packbits(padded, bitorder="little").view(np.uint64)


# -- minhash -------------------------------------------------------------------------------

_HASH_PRIME = np.uint64(0xC3A5C85C97CB3127)


def _mix64(a: U64, b: U64, c: U64) -> tuple[U64, U64, U64]:
    a = a - b
    a = a - c
    a = a ^ (c >> np.uint64(43))
    b = b - c
    b = b - a
    b = b ^ (a << np.uint64(9))
    c = c - a
    c = c - b
    c = c ^ (b >> np.uint64(8))
    a = a - b
    a = a - c
    a = a ^ (c >> np.uint64(38))
    b = b - c
    b = b - a
    b = b ^ (a << np.uint64(23))
    c = c - a
    c = c - b
    c = c ^ (b >> np.uint64(5))
    a = a - b
    a = a - c
    a = a ^ (c >> np.uint64(35))
    b = b - c
    b = b - a
    b = b ^ (a << np.uint64(49))
    c = c - a
    c = c - b
    c = c ^ (b >> np.uint64(11))
    a = a - b
    a = a - c
    a = a ^ (c >> np.uint64(12))
    b = b - c
    b = b - a
    b = b ^ (a << np.uint64(18))
    c = c - a
    c = c - b
    c = c ^ (b >> np.uint64(22))
    return a, b, c


@lru_cache(maxsize=1 << 14)
def _minhash_uniform(key_hash: int, hash_num: int) -> F32:
    """``float(a) / float(2^64 - 1)`` after two mixes of ``(key_hash, j, prime)``."""
    a = np.full(hash_num, key_hash, dtype=np.uint64)
    b = np.arange(hash_num, dtype=np.uint64)
    c = np.full(hash_num, _HASH_PRIME, dtype=np.uint64)
    a, b, c = _mix64(a, b, c)
    a, b, c = _mix64(a, b, c)
    return a.astype(np.float32) / np.float32(18446744073709551615.0)


def minhash_bits(
    features: Sequence[tuple[str, float]], hash_num: int, double_value: bool
) -> npt.NDArray[np.bool_]:
    """The minhash bit vector of ``features``: bit j is the low bit of the hash of the
    feature with the smallest ``-log(u_j) / value`` (the first on ties).

    ``double_value``: the recommender divides by the value as a double, the nearest
    neighbor engine as a float.
    """
    best = np.full(hash_num, np.finfo(np.float32).max, dtype=np.float32)
    chosen = np.zeros(hash_num, dtype=np.uint64)
    with np.errstate(divide="ignore", invalid="ignore"):
        for name, value in features:
            key_hash = fnv1_64(name)
            logs = -np.log(_minhash_uniform(key_hash, hash_num))
            hashed: F32
            if double_value:
                hashed = (logs.astype(np.float64) / value).astype(np.float32)
            else:
                hashed = (logs / np.float32(value)).astype(np.float32)
            better = hashed < best
            best = np.where(better, hashed, best)
            chosen = np.where(better, np.uint64(key_hash), chosen)
    return (chosen & np.uint64(1)).astype(bool)


# -- MT19937 -------------------------------------------------------------------------------


class MersenneTwister:
    """MT19937 seeded with ``init_genrand`` (Jubatus's ``mtrand(seed)``)."""

    def __init__(self, seed: int) -> None:
        self._state = [0] * 624
        self._state[0] = seed & 0xFFFFFFFF
        for i in range(1, 624):
            previous = self._state[i - 1]
            self._state[i] = (1812433253 * (previous ^ (previous >> 30)) + i) & 0xFFFFFFFF
        self._index = 624

    def next_u32(self) -> int:
        if self._index >= 624:
            self._twist()
        y = self._state[self._index]
        self._index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C5680
        y ^= (y << 15) & 0xEFC60000
        y ^= y >> 18
        return y & 0xFFFFFFFF

    def _twist(self) -> None:
        mt = self._state
        for k in range(624):
            y = (mt[k] & 0x80000000) | (mt[(k + 1) % 624] & 0x7FFFFFFF)
            mt[k] = mt[(k + 397) % 624] ^ (y >> 1) ^ (0x9908B0DF if y & 1 else 0)
        self._index = 0

    def next_double(self) -> float:
        """[0, 1) with 53 bits, as ``next_double``."""
        a = self.next_u32() >> 5
        b = self.next_u32() >> 6
        return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0)

    def next_int(self, bound: int) -> int:
        """[0, bound), as ``next_int(a)``: ``int(next_double() * a)``."""
        return int(self.next_double() * bound)

    def state(self) -> list[int]:
        return [*self._state, self._index]

    @classmethod
    def from_state(cls, state: Sequence[int]) -> MersenneTwister:
        twister = cls(0)
        if len(state) != 625:
            raise ValueError("a Mersenne Twister state has 625 numbers")
        twister._state = [int(v) & 0xFFFFFFFF for v in state[:624]]
        twister._index = int(state[624])
        return twister
