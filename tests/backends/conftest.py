"""Fixtures shared by the backend tests (the local engine's folder and the parity suite)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Why: the GGUF → safetensors conversion cache for the session (the packaged SmolLM2 is converted once, and
    every model-loading test after the first reads the converted folder); models are dropped from memory at the end.
    """
    yield tmp_path_factory.mktemp("model-cache")
    from flywheel.backends.local import release_models

    release_models(force=True)
