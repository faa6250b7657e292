"""Loading models (and adapters) once per process, and releasing them when a job ends.

GGUF files are dequantised by transformers on every load (13–38 s for SmolLM2 on a small CPU). With a ``cache_dir``,
the first load also writes the dequantised model as a safetensors folder there; later loads (any process) read that
folder in 2–3 s.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import json
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flywheel.backends.local._sources import ModelSource
from flywheel.errors import BackendError, MissingDependencyError

log = logging.getLogger(__name__)

_CONVERTED_MARKER = "flywheel-source.json"


def require_local() -> None:
    """Raise :class:`MissingDependencyError` naming the ``local`` extra unless torch, transformers and peft import."""
    import importlib.util

    for module in ("torch", "transformers", "peft"):
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(module, "local")


@dataclass
class LoadedModel:
    """A model ready for inference, with its tokenizer and where it runs."""

    model: Any
    tokenizer: Any
    device: str
    dtype: Any
    source: ModelSource
    adapter_dir: Path | None = None
    load_s: float = 0.0
    users: int = 0


_cache: dict[tuple[str, ...], LoadedModel] = {}
_cache_lock = threading.RLock()


def clear_gguf_quantizer(model: Any) -> None:
    """Make a GGUF-loaded (already dequantised) model savable and castable.

    transformers keeps a GGUF "quantizer" on such models, which makes ``save_pretrained`` refuse with "quantized with
    gguf and is not serializable" although the weights are plain tensors by then.
    """
    for target in (model, getattr(model, "config", None)):
        if target is None:
            continue
        if getattr(target, "hf_quantizer", None) is not None:
            target.hf_quantizer = None
        if hasattr(target, "quantization_config"):
            try:
                delattr(target, "quantization_config")
            except AttributeError:
                target.quantization_config = None
    if hasattr(model, "is_quantized") and not isinstance(type(model).__dict__.get("is_quantized"), property):
        with contextlib.suppress(AttributeError):
            model.is_quantized = False


def _prepare_tokenizer(tokenizer: Any) -> Any:
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _from_pretrained(source: ModelSource, dtype: Any) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {}
    if source.gguf_file is not None:
        import importlib.util

        if importlib.util.find_spec("gguf") is None:  # transformers needs it to read GGUF files
            raise MissingDependencyError("gguf", "local")
        kwargs["gguf_file"] = source.gguf_file
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.path, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(source.path, dtype=dtype, **kwargs)
    except OSError as exc:
        hint = (
            " For a hub id, this machine needs internet access (or the model in the Hugging Face cache) and, for "
            "gated models, HF_TOKEN."
            if source.kind == "hub"
            else ""
        )
        raise BackendError(f"Could not load model {source.spec!r}: {exc}.{hint}") from exc
    if source.gguf_file is not None:
        clear_gguf_quantizer(model)
    return model, _prepare_tokenizer(tokenizer)


def _converted_dir(source: ModelSource, cache_dir: Path) -> Path:
    return cache_dir / f"{Path(source.gguf_file or 'model').stem}-{source.key}"


def load_weights(source: ModelSource, dtype: Any, cache_dir: Path | None) -> tuple[Any, Any]:
    """A fresh (uncached) model and tokenizer from ``source``; GGUF files go through the conversion cache."""
    if source.gguf_file is None or cache_dir is None:
        return _from_pretrained(source, dtype)
    import torch

    target = _converted_dir(source, cache_dir)
    if (target / _CONVERTED_MARKER).is_file():
        try:
            converted = ModelSource(spec=source.spec, kind="hf_dir", path=str(target))
            return _from_pretrained(converted, dtype)
        except BackendError:
            log.warning("Converted model at %s is unreadable; converting again", target)
    # Convert in float32 so the cached copy loses nothing, whatever dtype this process runs in.
    model, tokenizer = _from_pretrained(source, torch.float32)
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / _CONVERTED_MARKER).write_text(json.dumps({"spec": source.spec, "gguf_file": source.gguf_file}))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)  # atomic: a concurrent reader sees the old folder or the whole new one
    except OSError as exc:
        log.warning("Could not cache converted model under %s: %s", target, exc)
        shutil.rmtree(tmp, ignore_errors=True)
    return model.to(dtype), tokenizer


def _adapter_stamp(adapter_dir: Path) -> str:
    config = adapter_dir / "adapter_config.json"
    if not config.is_file():
        raise BackendError(
            f"Adapter directory {str(adapter_dir)!r} has no adapter_config.json; give the folder a LoRA training "
            "run wrote (TrainedAdapter.adapter_dir)."
        )
    weights = next(iter(sorted(adapter_dir.glob("adapter_model.*"))), None)
    stamp = weights.stat().st_mtime_ns if weights is not None else 0
    return f"{adapter_dir.resolve()}|{stamp}"


def acquire_model(
    source: ModelSource,
    device: str,
    dtype: Any,
    cache_dir: Path | None = None,
    adapter_dir: Path | None = None,
) -> LoadedModel:
    """The process-wide model for (source, device, dtype[, adapter]), loading it on first use.

    With ``adapter_dir``, a copy of the base model gets the LoRA adapter merged in (merged weights generate as fast
    as the base model), and the cached base model stays untouched. Pair every call with :func:`release_model`.
    """
    require_local()
    adapter_key = _adapter_stamp(adapter_dir) if adapter_dir is not None else ""
    key = (source.key, device, str(dtype), adapter_key)
    with _cache_lock:
        loaded = _cache.get(key)
        if loaded is None:
            start = time.perf_counter()
            if adapter_dir is None:
                model, tokenizer = load_weights(source, dtype, cache_dir)
                model.to(device)
            else:
                base = acquire_model(source, device, dtype, cache_dir)
                try:
                    model = merge_adapter(copy.deepcopy(base.model), adapter_dir)
                    tokenizer = base.tokenizer
                finally:
                    release_model(base)
            model.eval()
            loaded = LoadedModel(
                model, tokenizer, device, dtype, source, adapter_dir, time.perf_counter() - start
            )
            _cache[key] = loaded
            log.info("Loaded %s on %s/%s in %.1fs", source.spec, device, dtype, loaded.load_s)
        loaded.users += 1
        return loaded


@contextlib.contextmanager
def quiet_peft_wrapping() -> Any:
    """Hide the FutureWarning PEFT triggers by reading transformers' deprecated ``is_gradient_checkpointing`` when it
    wraps a model (a PEFT/transformers version interplay, not something a flywheel user can act on)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def merge_adapter(model: Any, adapter_dir: Path) -> Any:
    """``model`` with the LoRA adapter in ``adapter_dir`` merged into its weights (``model`` is consumed)."""
    from peft import PeftModel

    try:
        with quiet_peft_wrapping():
            peft_model = PeftModel.from_pretrained(model, str(adapter_dir))
    except (OSError, ValueError, RuntimeError) as exc:
        raise BackendError(
            f"Could not apply the adapter in {str(adapter_dir)!r} to its base model: {exc}"
        ) from exc
    return peft_model.merge_and_unload()


def release_model(loaded: LoadedModel) -> None:
    """Mark one user of ``loaded`` done. The model stays cached until :func:`release_models`."""
    with _cache_lock:
        loaded.users = max(0, loaded.users - 1)


def release_models(force: bool = False) -> int:
    """Drop cached models nobody uses (all of them with ``force``) and free their memory; returns how many.

    Call at the end of a job so that the next job's candidates do not compete for memory.
    """
    with _cache_lock:
        keys = [k for k, v in _cache.items() if force or v.users == 0]
        for key in keys:
            del _cache[key]
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover - nothing was loaded without torch
        pass
    return len(keys)


def cached_models() -> list[LoadedModel]:
    """The models loaded in this process (for diagnostics and tests)."""
    with _cache_lock:
        return list(_cache.values())


def base_model_copy(source: ModelSource, device: str, dtype: Any, cache_dir: Path | None) -> tuple[Any, Any]:
    """A private copy of a base model (for training, which changes the module tree) and its tokenizer."""
    loaded = acquire_model(source, device, dtype, cache_dir)
    try:
        return copy.deepcopy(loaded.model), loaded.tokenizer
    finally:
        release_model(loaded)
