"""Time-sortable identifiers (ULID layout: 48-bit milliseconds + 80 random bits, Crockford base32)."""

from __future__ import annotations

import os
import re
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id(now: float | None = None) -> str:
    """A 26-character id that sorts by creation time (to the millisecond) and is unique in practice."""
    ms = int((time.time() if now is None else now) * 1000)
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def id_timestamp(identifier: str) -> float:
    """Seconds since the epoch encoded in an id made by :func:`new_id`."""
    value = 0
    for ch in identifier.upper():
        value = value * 32 + _ALPHABET.index(ch)
    return (value >> 80) / 1000.0


def safe_name(name: str) -> str:
    """``name`` as one file or folder name: runs of characters other than ``A-Za-z0-9._-`` become ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "_"
