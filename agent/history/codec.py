"""A closed batch (a day) as one compressed blob: one series' points, or the
day's process rows.

Timestamps and values are float64 and come back bit for bit.  Each array is
XORed with its predecessor (regular timestamps and slowly moving values
then differ only in their low mantissa bytes), byte-shuffled (all first
bytes, then all second bytes...: the long runs of zeros end up together)
and the two are packed with msgpack and deflated with zlib.
"""
from __future__ import annotations

import zlib

import msgpack
import numpy as np

from ..errors import InputFormatError

VERSION = 1
_U8 = np.dtype("<u8")


def _xor_shuffle(values) -> bytes:
    a = np.asarray(values, dtype="<f8").view(_U8)
    x = a.copy()
    x[1:] ^= a[:-1]
    return x.view(np.uint8).reshape(-1, 8).T.tobytes()


def _unshuffle_xor(blob: bytes, n: int) -> np.ndarray:
    x = np.frombuffer(blob, dtype=np.uint8).reshape(8, n).T.copy().view(_U8).ravel()
    return np.bitwise_xor.accumulate(x).view("<f8")


def encode(times, values) -> bytes:
    if len(times) != len(values):
        raise ValueError("times and values differ in length")
    n = len(times)
    packed = msgpack.packb([VERSION, n, _xor_shuffle(times), _xor_shuffle(values)])
    return zlib.compress(packed, 6)


def decode(blob: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(times, values) as float64 arrays."""
    try:
        version, n, t, v = msgpack.unpackb(zlib.decompress(blob))
    except Exception as exc:
        raise InputFormatError(f"historian batch row unreadable: {exc}") from None
    if version != VERSION or len(t) != 8 * n or len(v) != 8 * n:
        raise InputFormatError(f"historian batch row: unknown version {version} or bad length")
    if n == 0:
        empty = np.zeros(0, dtype="<f8")
        return empty, empty
    return _unshuffle_xor(t, n), _unshuffle_xor(v, n)


def encode_rows(rows) -> bytes:
    """Process rows (tuples of numbers, strings and None): msgpack, deflated.
    Command lines repeat from one snapshot to the next, so they shrink a lot."""
    return zlib.compress(msgpack.packb([VERSION, [list(r) for r in rows]]), 6)


def decode_rows(blob: bytes) -> list[tuple]:
    try:
        version, rows = msgpack.unpackb(zlib.decompress(blob))
    except Exception as exc:
        raise InputFormatError(f"historian process row unreadable: {exc}") from None
    if version != VERSION:
        raise InputFormatError(f"historian process row: unknown version {version}")
    return [tuple(r) for r in rows]
