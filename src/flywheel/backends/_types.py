"""The small interfaces every backend role implements, and the plain data that crosses them.

Roles: inference (chat generation), training (LoRA SFT), embeddings, merge (an adapter merged into its base model,
for export) and deployment (serving a model: ``nemo``, through the Deployment Manager). A judge is an inference backend
plus a scorer (see ``flywheel.pipeline.evaluate``). Retries, concurrency limits, timing, progress and cancellation live in
the wrappers the pipeline calls, not in each backend. :mod:`flywheel.backends.registry` builds them by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

#: An OpenAI chat message: ``{"role": ..., "content": ..., "tool_calls": [...]?}``.
Message = dict[str, Any]
#: An OpenAI tool definition: ``{"type": "function", "function": {"name", "description", "parameters"}}``.
Tool = dict[str, Any]


@dataclass
class ChatRequest:
    """One chat-completion request to a candidate or a judge."""

    messages: list[Message]
    tools: list[Tool] | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    temperature: float = 0.0
    request_id: str | None = None


@dataclass
class Generation:
    """One model answer, in the shape of an OpenAI assistant message plus measurements.

    ``error`` is set (and ``content``/``tool_calls`` empty) when this one request failed; a failed request never
    raises out of ``generate`` so that one bad prompt cannot sink a whole evaluation.
    """

    content: str | None
    tool_calls: list[dict[str, Any]] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    error: str | None = None
    raw_text: str | None = None

    def to_message(self) -> Message:
        """The answer as an OpenAI assistant message."""
        message: Message = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        return message


@dataclass(frozen=True)
class EndpointOptions:
    """How an inference backend that calls a server talks to it (a judge sets these from ``llm_judge_config``).

    ``None`` leaves the backend's default. Backends that run in this process ignore these options.
    """

    api_key: str | None = None  # sent as a bearer token; wins over nims[].api_key_env
    max_concurrency: int | None = None  # requests in flight at once
    timeout_s: float | None = None  # timeout of one HTTP attempt, in seconds
    max_retries: int | None = None  # further attempts after the first on 429, 5xx and connection errors


@runtime_checkable
class InferenceBackend(Protocol):
    """Generates chat completions for a batch of requests."""

    name: str

    def generate(self, requests: Sequence[ChatRequest]) -> list[Generation]:
        """One :class:`Generation` per request, in order."""
        ...

    def close(self) -> None:
        """Release models, connections and memory."""
        ...


@dataclass
class TrainingProgress:
    """A progress report from a training backend."""

    step: int
    total_steps: int
    epoch: float
    loss: float | None = None
    val_loss: float | None = None
    tokens_per_s: float | None = None


@dataclass
class TrainedAdapter:
    """What a training run produced."""

    adapter_dir: Path
    base_model: str
    steps_completed: int
    epochs_completed: int
    train_losses: list[tuple[int, float]] = field(default_factory=list)
    val_losses: list[tuple[int, float]] = field(default_factory=list)
    merged_dir: Path | None = None
    stopped_early: bool = False
    metrics: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class TrainingBackend(Protocol):
    """Fine-tunes a model on OpenAI-format training examples (``{"messages": [...], "tools": [...]?}``)."""

    def train(
        self,
        train: Sequence[dict[str, Any]],
        val: Sequence[dict[str, Any]],
        out_dir: Path,
        on_progress: Callable[[TrainingProgress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> TrainedAdapter: ...


@runtime_checkable
class EmbeddingBackend(Protocol):
    """Turns texts into vectors (any size; rows are not assumed normalised)."""

    def embed(self, texts: Sequence[str]) -> Any:
        """A ``numpy.ndarray`` of shape ``(len(texts), dim)``."""
        ...


@dataclass(frozen=True)
class BaseWeights:
    """Where a base model's weights are on this machine (for the model card of an export)."""

    kind: str  # how the backend found them, e.g. packaged, hf_dir, gguf, hub
    path: str  # a directory, or the hub id for kind hub
    gguf_file: str | None = None  # the GGUF file inside ``path``, if the weights are one


@runtime_checkable
class MergeBackend(Protocol):
    """Merges a LoRA adapter into one base model and saves a plain model folder (``flywheel export --merged``)."""

    def base_weights(self) -> BaseWeights:
        """Where the base model's weights are; raises :class:`~flywheel.errors.BackendError` if they are not here."""
        ...

    def save_merged(self, adapter_dir: Path, out_dir: Path, *, dtype: str = "float32") -> None:
        """Merge the PEFT adapter in ``adapter_dir`` into the base model and save it, in ``dtype``, under ``out_dir``."""
        ...


@runtime_checkable
class DeploymentBackend(Protocol):
    """Serves one candidate so that an inference backend can reach it (``nemo``: the NeMo Deployment Manager).

    Ownership is part of the role: a deployment that was there before is reused and never shut down; one this
    backend created (or that a crashed run recorded as created and passed back to the factory as
    ``started_by_flywheel=True``) is shut down by :meth:`undeploy`.
    """

    @property
    def ref(self) -> str:
        """What is served, as the serving system names it (e.g. ``namespace/name``), for the job's record."""
        ...

    @property
    def started_by_flywheel(self) -> bool:
        """Whether flywheel started this deployment (and so may shut it down)."""
        ...

    def deploy(
        self,
        on_progress: Callable[[Any], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        on_started: Callable[[Any], None] | None = None,
    ) -> str:
        """Start serving the candidate (or reuse what serves it) and wait until it is ready; returns its
        OpenAI-compatible base URL (…/v1). ``on_started`` is called as soon as this call started a deployment,
        before any wait, so the caller can record it; ``should_stop`` is asked during the wait (see
        :func:`stop_is_cancel` for what a stop does to a deployment this call started)."""
        ...

    def undeploy(self) -> None:
        """Stop serving the candidate and free what it held — only if flywheel started it."""
        ...

    def close(self) -> None:
        """Close connections (the deployment itself is left as it is)."""
        ...


@dataclass(frozen=True)
class StopCheck:
    """A ``should_stop`` that also says why it stops: ``cancelled()`` true — the job was cancelled, so work left on
    a remote platform (a customization job, a deployment this run started) is stopped too; false — only this
    worker stops (it shuts down), so remote work is left running for the worker that resumes the job to re-attach."""

    stop: Callable[[], bool]
    cancelled: Callable[[], bool]

    def __call__(self) -> bool:
        return self.stop()


def stop_is_cancel(should_stop: Callable[[], bool] | None) -> bool:
    """Whether a stop ``should_stop`` asked for is the job's cancellation (a :class:`StopCheck` says; any other
    callable's stop counts as one, so remote work is never left behind by a caller that cannot tell)."""
    cancelled = getattr(should_stop, "cancelled", None)
    return True if cancelled is None else bool(cancelled())
