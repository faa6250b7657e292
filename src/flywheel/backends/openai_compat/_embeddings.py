"""Embeddings from any OpenAI-compatible ``/v1/embeddings`` endpoint (NIM, vLLM, OpenAI, …) over httpx."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np

from flywheel.errors import BackendError


def embeddings_url(url: str) -> str:
    """Accept a base URL (``…/v1``) or the full endpoint (``…/v1/embeddings``)."""
    url = url.rstrip("/")
    return url if url.endswith("/embeddings") else f"{url}/embeddings"


class OpenAIEmbeddings:
    """:class:`~flywheel.backends.EmbeddingBackend` for an OpenAI-compatible embeddings endpoint.

    ``api_key`` is passed in by the caller (resolved from ``EMB_API_KEY`` then ``NVIDIA_API_KEY``); ``extra_body``
    adds provider fields such as NVIDIA's ``input_type``.
    """

    def __init__(
        self,
        url: str,
        model: str,
        *,
        api_key: str | None = None,
        batch_size: int = 64,
        timeout_s: float = 60.0,
        extra_body: dict[str, Any] | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        self.url = embeddings_url(url)
        self.model = model
        self.batch_size = batch_size
        self.extra_body = extra_body or {}
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = client or httpx.Client(timeout=timeout_s)
        self._headers = headers

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Float32 array of shape ``(len(texts), dim)``, in input order."""
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            body = {"model": self.model, "input": batch, **self.extra_body}
            try:
                response = self._client.post(self.url, json=body, headers=self._headers)
                response.raise_for_status()
                data = response.json()["data"]
            except httpx.HTTPStatusError as exc:
                raise BackendError(
                    f"Embedding endpoint {self.url} answered {exc.response.status_code}: {exc.response.text[:300]}"
                ) from exc
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                raise BackendError(f"Embedding request to {self.url} failed: {exc}") from exc
            if len(data) != len(batch):
                raise BackendError(
                    f"Embedding endpoint {self.url} returned {len(data)} vectors for {len(batch)} texts"
                )
            rows.extend(item["embedding"] for item in sorted(data, key=lambda d: d.get("index", 0)))
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        return np.asarray(rows, dtype=np.float32)

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()
