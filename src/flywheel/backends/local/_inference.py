"""Batched chat generation with a local transformers model (base, or with a LoRA adapter merged in)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flywheel.backends._types import ChatRequest, Generation
from flywheel.backends.local._chat import prompt_ids
from flywheel.backends.local._loading import LoadedModel, acquire_model, release_model, require_local
from flywheel.backends.local._sources import ModelSource, resolve_model_source
from flywheel.backends.local._threads import ThreadLease, engine_step
from flywheel.backends.local._tools import parse_tool_calls
from flywheel.errors import BackendError

log = logging.getLogger(__name__)

# End-of-turn markers of common chat templates; generation stops at any that the vocabulary has.
_END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>")
# Share a batch's common prompt prefix only when that saves at least this many tokens of prefill beyond the prefix
# itself: the extra forward call has a fixed cost of about 40 tokens of batched prefill (SmolLM2-135M, fp32, 2 CPU
# cores: ~35 ms per call against ~0.95 ms per token in a batch of 32).
_MIN_SHARED_SAVING = 48


@dataclass
class _Prepared:
    index: int
    request: ChatRequest
    ids: list[int]
    max_new: int

    @property
    def group(self) -> tuple[tuple[str, ...], float]:
        # Requests share a generate() call only if they stop on the same strings and sample the same way.
        return tuple(self.request.stop or ()), float(self.request.temperature or 0.0)


class LocalInferenceBackend:
    """Chat completions from a model on this machine (CPU, or the GPU when there is one).

    Requests are sorted by prompt length and generated in batches (left-padded), so padding stays small; results come
    back in request order. The prompt prefix that all requests of a batch share (typically the system prompt) is run
    once per batch, not once per request. Greedy decoding unless a request sets ``temperature > 0``; greedy answers
    do not depend on the batch size (on CPU the model runs in float32 unless ``dtype`` says otherwise, see
    :func:`~flywheel.backends.local._device.choose_inference_dtype`). ``latency_s`` of a sample is the wall time of
    the batch that produced it (what a caller waiting for that answer experiences).

    Args:
        model: packaged short name, local HF directory, local GGUF file or hub id (default: the packaged SmolLM2).
        adapter_dir: a LoRA adapter (PEFT format) to apply to ``model`` — customized inference.
        device: ``auto`` (default), ``cpu``, ``cuda`` or ``cuda:N``.
        dtype: ``auto`` (default: float32 on CPU, bfloat16 on CUDA), ``bfloat16``, ``float16`` or ``float32``.
        cache_dir: folder for the one-time GGUF → safetensors conversion (e.g. ``<data dir>/cache``).
        max_batch_size: most requests per forward pass.
        max_batch_tokens: most (prompt + new) tokens per batch, so long prompts get smaller batches.
        default_max_tokens: new-token limit for requests without ``max_tokens``.
        cpu_threads: this process's CPU thread budget (``FLYWHEEL_CPU_THREADS``; default: every core it may use). A
            ``generate`` call on the CPU runs on its share of it (see :mod:`~flywheel.backends.local._threads`).
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        adapter_dir: str | Path | None = None,
        device: str | None = None,
        dtype: str | None = None,
        cache_dir: str | Path | None = None,
        max_batch_size: int = 32,
        max_batch_tokens: int = 16384,
        default_max_tokens: int = 256,
        name: str = "local",
        cpu_threads: int | None = None,
    ) -> None:
        require_local()
        self.name = name
        self.source: ModelSource = resolve_model_source(model)
        self.adapter_dir = Path(adapter_dir) if adapter_dir is not None else None
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._device_arg = device
        self._dtype_arg = dtype
        self.max_batch_size = max(1, max_batch_size)
        self.max_batch_tokens = max(1, max_batch_tokens)
        self.default_max_tokens = default_max_tokens
        self.cpu_threads = cpu_threads
        self._loaded: LoadedModel | None = None

    # ------------------------------------------------------------------------------------------------ lifecycle

    def load(self) -> LoadedModel:
        """Load (or reuse from the process cache) the model; generate() calls this on first use."""
        if self._loaded is None:
            from flywheel.backends.local._device import choose_device, choose_inference_dtype

            device = choose_device(self._device_arg)
            dtype = choose_inference_dtype(device, self._dtype_arg)
            self._loaded = acquire_model(self.source, device, dtype, self.cache_dir, self.adapter_dir)
        return self._loaded

    def close(self) -> None:
        """Stop using the model; it stays in the process cache until ``release_models()`` (end of job)."""
        if self._loaded is not None:
            release_model(self._loaded)
            self._loaded = None

    @property
    def device(self) -> str:
        """Where the model runs (loads it if needed)."""
        return self.load().device

    @property
    def dtype(self) -> Any:
        """The torch dtype the model runs in (loads it if needed)."""
        return self.load().dtype

    # ------------------------------------------------------------------------------------------------ generation

    def generate(self, requests: Sequence[ChatRequest]) -> list[Generation]:
        """One :class:`Generation` per request, in order; a failing request gets ``error`` set instead of raising."""
        from flywheel.backends.local._device import choose_device

        device = self._loaded.device if self._loaded is not None else choose_device(self._device_arg)
        with engine_step(self.cpu_threads, device=device) as lease:
            return self._generate(requests, lease)

    def _generate(self, requests: Sequence[ChatRequest], lease: ThreadLease) -> list[Generation]:
        loaded = self.load()
        tokenizer = loaded.tokenizer
        context = int(getattr(loaded.model.config, "max_position_embeddings", 0) or 0)
        results: list[Generation | None] = [None] * len(requests)
        prepared: list[_Prepared] = []
        for index, request in enumerate(requests):
            max_new = request.max_tokens if request.max_tokens is not None else self.default_max_tokens
            try:
                ids = prompt_ids(tokenizer, request.messages, request.tools)
            except Exception as exc:  # a template error on one conversation must not sink the batch
                results[index] = Generation(content=None, error=f"Could not format the prompt: {exc}")
                continue
            if context and len(ids) + max_new > context:
                results[index] = Generation(
                    content=None,
                    prompt_tokens=len(ids),
                    error=f"Prompt has {len(ids)} tokens and asks for {max_new} more, over the model's context of "
                    f"{context} tokens; shorten the prompt or lower max_tokens.",
                )
                continue
            prepared.append(_Prepared(index, request, ids, max(1, max_new)))

        for batch in self._batches(prepared):
            lease.rebalance()  # a checkpoint: steps that started or ended since the last batch change the share
            for item, generation in zip(batch, self._run_batch(loaded, batch), strict=True):
                results[item.index] = generation
        return [r if r is not None else Generation(content=None, error="not generated") for r in results]

    def _batches(self, prepared: list[_Prepared]) -> list[list[_Prepared]]:
        ordered = sorted(prepared, key=lambda p: (p.group, len(p.ids), p.max_new))
        batches: list[list[_Prepared]] = []
        current: list[_Prepared] = []
        for item in ordered:
            if current:
                longest = max(len(item.ids), *(len(p.ids) for p in current))
                new = max(item.max_new, *(p.max_new for p in current))
                too_many = len(current) + 1 > self.max_batch_size
                too_long = (len(current) + 1) * (longest + new) > self.max_batch_tokens
                if too_many or too_long or item.group != current[0].group:
                    batches.append(current)
                    current = []
            current.append(item)
        if current:
            batches.append(current)
        return batches

    def _run_batch(self, loaded: LoadedModel, batch: list[_Prepared]) -> list[Generation]:
        try:
            return self._generate_batch(loaded, batch)
        except Exception as exc:
            if len(batch) > 1:
                # Out of memory or a bad row: retry one by one so only the culprit fails.
                log.warning("Batch of %d failed (%s); retrying one by one", len(batch), exc)
                return [self._run_batch(loaded, [item])[0] for item in batch]
            kind = "out of memory" if "out of memory" in str(exc).lower() else type(exc).__name__
            return [
                Generation(
                    content=None, prompt_tokens=len(batch[0].ids), error=f"Generation failed ({kind}): {exc}"
                )
            ]

    def _generate_batch(self, loaded: LoadedModel, batch: list[_Prepared]) -> list[Generation]:
        import torch
        from transformers import GenerationConfig

        tokenizer = loaded.tokenizer
        pad_id = int(tokenizer.pad_token_id)
        rows = [p.ids for p in batch]
        width = max(len(ids) for ids in rows)
        shared = shared_prefix_length(rows)
        input_ids, attention = padded_batch(rows, pad_id, shared)
        stop, temperature = batch[0].group
        eos_ids = eos_token_ids(loaded.model, tokenizer, loaded.source.spec)
        config = GenerationConfig(
            max_new_tokens=max(p.max_new for p in batch),
            do_sample=temperature > 0,
            temperature=temperature if temperature > 0 else None,
            top_p=None,
            top_k=None,
            eos_token_id=eos_ids,
            pad_token_id=pad_id,
        )
        kwargs: dict[str, Any] = {}
        if stop:
            kwargs = {"stop_strings": list(stop), "tokenizer": tokenizer}
        start = time.perf_counter()
        with torch.inference_mode():
            if shared:
                name, cache = prefix_cache(loaded.model, rows[0][:shared], len(rows), loaded.device)
                kwargs[name] = cache
            output = loaded.model.generate(
                input_ids=input_ids.to(loaded.device),
                attention_mask=attention.to(loaded.device),
                generation_config=config,
                **kwargs,
            )
        latency = time.perf_counter() - start
        new_tokens = output[:, width:].tolist()

        generations = []
        for item, tokens in zip(batch, new_tokens, strict=True):
            kept: list[int] = []
            for token in tokens[: item.max_new]:
                if token in eos_ids:
                    break
                kept.append(token)
            text = tokenizer.decode(kept, skip_special_tokens=True)
            text = _cut_at_stop(text, item.request.stop)
            if item.request.tools:
                content, tool_calls = parse_tool_calls(text, item.request.tools)
            else:
                content, tool_calls = text, None
            generations.append(
                Generation(
                    content=content,
                    tool_calls=tool_calls,
                    prompt_tokens=len(item.ids),
                    completion_tokens=len(kept),
                    latency_s=latency,
                    raw_text=text,
                )
            )
        return generations


def shared_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """How many leading tokens to compute once for all ``rows``: their common prefix, less one token (each row must
    feed at least its last token to get next-token logits), or 0 where sharing would save less than it costs.

    Computing the prefix once saves ``rows - 1`` copies of it and costs one more forward call (the prefix itself
    plus a fixed overhead), hence the ``rows - 2``."""
    if len(rows) < 2:
        return 0
    limit = min(len(r) for r in rows) - 1
    first = rows[0]
    length = 0
    while length < limit and all(r[length] == first[length] for r in rows):
        length += 1
    return length if (len(rows) - 2) * length >= _MIN_SHARED_SAVING else 0


def padded_batch(rows: Sequence[Sequence[int]], pad_id: int, shared: int = 0) -> tuple[Any, Any]:
    """``input_ids`` and ``attention_mask`` for ``rows``: each row is ``[first shared tokens | padding | rest]``, all
    as wide as the longest row. With ``shared=0`` this is plain left padding. Padding therefore never sits inside the
    shared prefix (so its cached keys/values serve every row) and every row's next token is at the same column;
    generate() numbers positions from the attention mask, so padding takes no position."""
    import torch

    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for row, ids in enumerate(rows):
        tokens = torch.tensor(list(ids), dtype=torch.long)
        input_ids[row, :shared] = tokens[:shared]
        attention[row, :shared] = 1
        input_ids[row, width - (len(ids) - shared) :] = tokens[shared:]
        attention[row, width - (len(ids) - shared) :] = 1
    return input_ids, attention


def prefix_cache(model: Any, prefix: list[int], rows: int, device: str) -> tuple[str, Any]:
    """The key/value cache of ``prefix``, computed once and repeated for ``rows`` rows, and the keyword under which
    this transformers version's ``generate`` takes it (``cache`` in recent releases, ``past_key_values`` in older
    ones)."""
    import inspect

    import torch

    params = inspect.signature(model.forward).parameters
    name = "cache" if "cache" in params else "past_key_values"
    extra = {"logits_to_keep": 1} if "logits_to_keep" in params else {}  # the prefix's logits are not needed
    output = model(input_ids=torch.tensor([prefix], dtype=torch.long, device=device), use_cache=True, **extra)
    cache = getattr(output, name)
    cache.batch_repeat_interleave(rows)
    return name, cache


def eos_token_ids(model: Any, tokenizer: Any, name: str) -> list[int]:
    """The token ids generation stops at: the model's and tokenizer's end-of-sequence tokens plus every common
    end-of-turn marker the vocabulary has (chat models end a turn with one, not always with their EOS token)."""
    ids: set[int] = set()
    configured = getattr(model.generation_config, "eos_token_id", None)
    for value in (configured, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list):
            ids.update(v for v in value if isinstance(v, int))
    vocab = tokenizer.get_vocab()
    ids.update(vocab[marker] for marker in _END_OF_TURN if marker in vocab)
    if not ids:
        raise BackendError(f"Model {name!r} defines no end-of-sequence token; generation cannot stop.")
    return sorted(ids)


def _cut_at_stop(text: str, stop: list[str] | None) -> str:
    if not stop:
        return text
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return text[:cut] if cut >= 0 else text
