"""Duplicate detection: the reference's key (ordered user contents) after normalisation, and MinHash near-duplicates."""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Sequence

import numpy as np


def normalise(text: str) -> str:
    """Collapse whitespace and case so that trivially different copies compare equal."""
    return " ".join(text.split()).casefold()


def dedup_key(user_texts: Sequence[str]) -> bytes | None:
    """A 16-byte digest of the ordered, normalised user contents; None when there is no user text (always kept)."""
    if not user_texts:
        return None
    # a list comprehension, not a generator: join makes a list of its argument anyway, and this runs per record
    joined = "\x1e".join([normalise(t) for t in user_texts])
    return hashlib.blake2b(joined.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class ExactDeduplicator:
    """First occurrence wins (records arrive newest first, so the newest copy is kept)."""

    def __init__(self) -> None:
        self._seen: set[bytes] = set()

    def is_duplicate(self, key: bytes | None) -> bool:
        """True when ``key`` was seen before; records without a key are never duplicates."""
        if key is None:
            return False
        if key in self._seen:
            return True
        self._seen.add(key)
        return False


_PRIME = (1 << 61) - 1


class MinHashDeduplicator:
    """Near-duplicate filter: MinHash signatures of character 5-grams, LSH banding, Jaccard estimate ≥ threshold.

    Memory grows with the kept records (``num_perm`` uint64 values each); it is meant for the usual job sizes
    (up to a few hundred thousand records) and is off unless ``curation.near_duplicate_threshold`` is set.
    """

    def __init__(self, threshold: float, *, num_perm: int = 64, seed: int = 1) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        self.threshold = threshold
        self.num_perm = num_perm
        rng = np.random.default_rng(seed)
        self._a = rng.integers(1, _PRIME, size=num_perm, dtype=np.uint64)
        self._b = rng.integers(0, _PRIME, size=num_perm, dtype=np.uint64)
        self.bands, self.rows = self._choose_bands(threshold, num_perm)
        self._buckets: list[dict[bytes, list[int]]] = [{} for _ in range(self.bands)]
        self._signatures: list[np.ndarray] = []

    @staticmethod
    def _choose_bands(threshold: float, num_perm: int) -> tuple[int, int]:
        # Pick the banding whose S-curve midpoint (1/b)^(1/r) is closest below the threshold: few false negatives.
        best = (num_perm, 1)
        best_gap = float("inf")
        for rows in range(1, num_perm + 1):
            if num_perm % rows:
                continue
            bands = num_perm // rows
            midpoint = (1.0 / bands) ** (1.0 / rows)
            gap = threshold - midpoint
            if 0 <= gap < best_gap:
                best, best_gap = (bands, rows), gap
        return best

    def signature(self, text: str) -> np.ndarray:
        """MinHash signature of the character 5-grams of ``text`` (normalised first).

        Character shingles (rather than word shingles) keep short texts such as headlines comparable: one edited
        word changes only a few of them.
        """
        norm = normalise(text)
        shingles = {norm[i : i + 5] for i in range(max(1, len(norm) - 4))}
        hashes = np.fromiter(
            (zlib.crc32(s.encode("utf-8", "surrogatepass")) for s in shingles),
            dtype=np.uint64,
            count=len(shingles),
        )
        # (a*x + b) mod p with wrap-around uint64 arithmetic: a cheap universal-ish hash family, fine for MinHash.
        values = (np.outer(hashes, self._a) + self._b) % np.uint64(_PRIME)
        return values.min(axis=0)

    def is_duplicate(self, text: str) -> bool:
        """True when ``text`` is near a kept text; otherwise it is kept and remembered."""
        sig = self.signature(text)
        candidates: set[int] = set()
        band_keys = []
        for band in range(self.bands):
            key = sig[band * self.rows : (band + 1) * self.rows].tobytes()
            band_keys.append(key)
            candidates.update(self._buckets[band].get(key, ()))
        for idx in candidates:
            if float(np.mean(self._signatures[idx] == sig)) >= self.threshold:
                return True
        index = len(self._signatures)
        self._signatures.append(sig)
        for band, key in enumerate(band_keys):
            self._buckets[band].setdefault(key, []).append(index)
        return False
