"""In-memory cosine-similarity search with numpy, any embedding size, chunked so large pools stay fast and small."""

from __future__ import annotations

import numpy as np


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"expected a 2-D array of vectors, got shape {vectors.shape}")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


class VectorIndex:
    """Exact top-k cosine search over a fixed set of vectors.

    Scores are computed by one matrix product per chunk of ``chunk_rows`` indexed vectors; ``argpartition`` keeps
    the k best per chunk, so memory stays at ``queries × chunk_rows`` floats whatever the pool size.
    """

    def __init__(self, vectors: np.ndarray, *, chunk_rows: int = 65536) -> None:
        self._matrix = _normalise(vectors)
        self.chunk_rows = chunk_rows

    def __len__(self) -> int:
        return int(self._matrix.shape[0])

    @property
    def dim(self) -> int:
        """Embedding size."""
        return int(self._matrix.shape[1])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, indices)`` of shape ``(len(queries), min(k, len(self)))``, best first."""
        q = _normalise(queries)
        if q.shape[1] != self.dim:
            raise ValueError(f"query size {q.shape[1]} does not match the index size {self.dim}")
        k = min(k, len(self))
        if k <= 0:
            empty = np.empty((q.shape[0], 0))
            return empty.astype(np.float32), empty.astype(np.int64)
        best_scores = np.full((q.shape[0], 0), -np.inf, dtype=np.float32)
        best_idx = np.empty((q.shape[0], 0), dtype=np.int64)
        for start in range(0, len(self), self.chunk_rows):
            scores = q @ self._matrix[start : start + self.chunk_rows].T
            kk = min(k, scores.shape[1])
            part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
            best_scores = np.concatenate([best_scores, np.take_along_axis(scores, part, axis=1)], axis=1)
            best_idx = np.concatenate([best_idx, part + start], axis=1)
            if best_scores.shape[1] > k:
                keep = np.argpartition(-best_scores, k - 1, axis=1)[:, :k]
                best_scores = np.take_along_axis(best_scores, keep, axis=1)
                best_idx = np.take_along_axis(best_idx, keep, axis=1)
        # Sort by score, then by index, so that ties come out in a stable order.
        order = np.lexsort((best_idx, -best_scores), axis=1)
        return np.take_along_axis(best_scores, order, axis=1), np.take_along_axis(best_idx, order, axis=1)
