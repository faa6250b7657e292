"""Device and dtype choice, and their overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from flywheel.backends.local._device import choose_device, choose_dtype
from flywheel.errors import BackendError


def test_explicit_dtypes_win_over_the_automatic_choice() -> None:
    assert choose_dtype("cpu", "float32") is torch.float32
    assert choose_dtype("cpu", "bf16") is torch.bfloat16
    assert choose_dtype("cuda", "fp16") is torch.float16


def test_automatic_cpu_dtype_is_one_of_the_two_candidates_and_is_stable() -> None:
    first = choose_dtype("cpu")
    assert first in (torch.float32, torch.bfloat16)
    assert choose_dtype("cpu", "auto") is first  # measured once per process


def test_unknown_dtype_and_device_are_rejected_with_the_choices() -> None:
    with pytest.raises(BackendError, match="Unknown dtype 'int3'"):
        choose_dtype("cpu", "int3")
    with pytest.raises(BackendError, match="Unknown device 'quantum'"):
        choose_device("quantum")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_asking_for_cuda_without_a_gpu_says_so() -> None:
    assert choose_device(None) == "cpu"
    with pytest.raises(BackendError, match="CUDA is not available"):
        choose_device("cuda")


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_dtype_override_reaches_the_loaded_weights(model_cache: Path, dtype: str) -> None:
    from flywheel.backends.local import LocalInferenceBackend

    backend = LocalInferenceBackend(device="cpu", dtype=dtype, cache_dir=model_cache)
    loaded = backend.load()
    assert loaded.device == "cpu" and backend.dtype is getattr(torch, dtype)
    assert {p.dtype for p in loaded.model.parameters()} == {getattr(torch, dtype)}
    assert {p.device.type for p in loaded.model.parameters()} == {"cpu"}
    backend.close()
