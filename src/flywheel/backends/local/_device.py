"""Device and dtype choice: CUDA → bfloat16 (float16 where bf16 is unsupported); CPU → whichever of bfloat16 and
float32 multiplies faster on this CPU, measured once per process (bf16 is ≈ 2× fp32 on CPUs with AVX-512 BF16/AMX,
and much slower on CPUs without them) — except for inference on CPU, which runs in float32 (see
:func:`choose_inference_dtype`)."""

from __future__ import annotations

import threading
import time
from typing import Any

from flywheel.errors import BackendError

_DTYPES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "float16", "float16": "float16", "half": "float16",
           "fp32": "float32", "float32": "float32", "float": "float32"}  # fmt: skip
_cpu_choice: str | None = None
_lock = threading.Lock()


def choose_device(device: str | None = None) -> str:
    """``device`` if given (validated), else ``cuda`` when available, else ``cpu``."""
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    assert device is not None
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendError(
            f"Device {device!r} was asked for but CUDA is not available; use device 'cpu' or 'auto'."
        )
    try:
        torch.device(device)
    except RuntimeError as exc:
        raise BackendError(f"Unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'.") from exc
    return device


def _measure_cpu_dtype() -> str:
    import torch

    # Shapes like SmolLM2's MLP at a small batch: representative of both generation and LoRA training. The two
    # dtypes are timed interleaved and the best round counts, because other processes share the CPU; the first
    # calls are discarded because oneDNN compiles its bf16 kernels on first use.
    operands = {
        name: (
            torch.randn(128, 576, dtype=getattr(torch, name)),
            torch.randn(576, 1536, dtype=getattr(torch, name)),
        )
        for name in ("float32", "bfloat16")
    }
    for a, b in operands.values():
        for _ in range(20):
            a @ b
    best = {name: float("inf") for name in operands}
    for _ in range(7):
        for name, (a, b) in operands.items():
            start = time.perf_counter()
            for _ in range(10):
                a @ b
            best[name] = min(best[name], time.perf_counter() - start)
    # Prefer fp32 unless bf16 is clearly faster: bf16 costs precision for nothing when it is not.
    return "bfloat16" if best["bfloat16"] < 0.8 * best["float32"] else "float32"


def choose_dtype(device: str, dtype: str | None = None) -> Any:
    """The ``torch.dtype`` to run on ``device``: ``dtype`` if given, else the automatic choice."""
    import torch

    global _cpu_choice
    if dtype not in (None, "", "auto"):
        assert dtype is not None
        name = _DTYPES.get(dtype.lower())
        if name is None:
            raise BackendError(f"Unknown dtype {dtype!r}; use 'auto', 'bfloat16', 'float16' or 'float32'.")
        return getattr(torch, name)
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "cpu":
        with _lock:
            if _cpu_choice is None:
                _cpu_choice = _measure_cpu_dtype()
        return getattr(torch, _cpu_choice)
    return torch.float32


def choose_inference_dtype(device: str, dtype: str | None = None) -> Any:
    """The ``torch.dtype`` to generate in on ``device``: ``dtype`` if given, else float32 on CPU, else as
    :func:`choose_dtype`.

    Greedy answers in bfloat16 depend on the batch a prompt is generated in: CPU bf16 matmul kernels round differently
    for a different number of rows, and bf16 logits (steps of 0.125–0.25 at SmolLM2's logit scale) tie often, so any
    change of batch size or padding flips some greedy choices. Measured on the engine benchmark's 200 prompts
    (SmolLM2-135M, 4 new tokens, AVX-512 BF16/AMX CPU): batched answers equal batch-1 answers on 89 % in bf16, 93.5 %
    in bf16 with an fp32 lm_head, 100 % in float32. Padding is not the cause: in bf16, batches of equal-length
    prompts (no padding) and batches of 8 copies of one prompt each still changed 4–6 of 60 answers. A model's score
    must not depend on the evaluator's batch size, so evaluation on CPU pays for float32; computing a batch's shared
    prompt prefix once (the inference backend does) wins that speed back where prompts share a system prompt (40
    samples/s in fp32 against 35–58 in bf16 without it).
    """
    import torch

    if dtype in (None, "", "auto") and device == "cpu":
        return torch.float32
    return choose_dtype(device, dtype)
