"""Fixtures for the local engine tests.

The packaged SmolLM2 GGUF is converted to safetensors once per test session (``model_cache`` in
``tests/backends/conftest.py``; the conversion is itself under test: every model-loading test after the first reads
the converted folder), and loaded models are shared through the engine's own process cache, so the slow tests pay
for one GGUF load, not one per test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.backends.local import resolve_model_source


@pytest.fixture(scope="session")
def packaged_gguf() -> Path:
    """Why: tests that address the model by file path need the installed GGUF's location."""
    source = resolve_model_source("smollm2-135m-instruct")
    assert source.gguf_file is not None
    return Path(source.path) / source.gguf_file
