"""A LoRA adapter merged into its base model, saved as a plain transformers model folder.

The folder loads with ``AutoModelForCausalLM.from_pretrained(folder)`` alone (no PEFT, no flywheel): safetensors
weights, the tokenizer with its chat template, and a generation config that stops where the engine stops.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flywheel.backends._types import BaseWeights
from flywheel.backends.local._inference import eos_token_ids
from flywheel.backends.local._loading import clear_gguf_quantizer, load_weights, merge_adapter, require_local
from flywheel.backends.local._sources import resolve_model_source


def save_model_folder(model: Any, tokenizer: Any, out_dir: Path, name: str) -> None:
    """Save ``model`` and ``tokenizer`` under ``out_dir`` as a transformers folder with safetensors weights.

    The generation config gets every token the engine stops at (end-of-turn markers included) and a pad token, so
    ``model.generate`` on the reloaded folder ends answers where the engine's generation ended them.
    """
    clear_gguf_quantizer(model)
    model.generation_config.eos_token_id = eos_token_ids(model, tokenizer, name)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))


def save_merged_model(
    model: str | None,
    adapter_dir: Path,
    out_dir: Path,
    *,
    dtype: str = "float32",
    cache_dir: Path | None = None,
) -> None:
    """Merge the LoRA adapter in ``adapter_dir`` into base ``model`` and save the result under ``out_dir``.

    Args:
        model: the base model as a candidate's ``model_path`` names it (packaged short name, local HF directory,
            local GGUF file or hub id), resolved exactly as the local backends resolve it.
        adapter_dir: a PEFT LoRA adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``).
        out_dir: where the model folder is written (created).
        dtype: dtype of the saved weights. The merge itself runs in float32; ``float32`` (the default) keeps the
            merged weights exactly as the engine's float32 customized evaluation used them.
        cache_dir: the GGUF → safetensors conversion cache the job used (e.g. ``<data dir>/cache/models``).
    """
    require_local()
    import torch

    from flywheel.backends.local._device import choose_dtype

    source = resolve_model_source(model)
    target_dtype = choose_dtype("cpu", dtype)
    base, tokenizer = load_weights(source, torch.float32, cache_dir)
    merged = merge_adapter(base, adapter_dir).to(target_dtype)
    merged.eval()
    save_model_folder(merged, tokenizer, Path(out_dir), source.spec)


class LocalMergeBackend:
    """:class:`~flywheel.backends.MergeBackend` for a base model the local engine loads (``model`` as a candidate's
    ``model_path`` names it); nothing is resolved or loaded until a method is called."""

    def __init__(self, model: str | None, *, cache_dir: Path | None = None) -> None:
        self.model = model
        self.cache_dir = cache_dir

    def base_weights(self) -> BaseWeights:
        """Where the weights are, resolved as the local backends resolve them (path logic only; no torch)."""
        source = resolve_model_source(self.model)
        return BaseWeights(kind=source.kind, path=source.path, gguf_file=source.gguf_file)

    def save_merged(self, adapter_dir: Path, out_dir: Path, *, dtype: str = "float32") -> None:
        """See :func:`save_merged_model`."""
        save_merged_model(self.model, adapter_dir, out_dir, dtype=dtype, cache_dir=self.cache_dir)
