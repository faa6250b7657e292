"""A deterministic scripted backend for orchestration tests (``nims[].backend: scripted``).

It answers from a mapping or a rule, "trains" by writing a small file and embeds by hashing words, so job, API and
worker tests run in milliseconds. It never stands in for the real engine in a test that claims the engine works.
"""

from __future__ import annotations

import json
import re
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flywheel.backends._types import ChatRequest, Generation, TrainedAdapter, TrainingProgress
from flywheel.errors import JobCancelled

Answer = str | Generation
Rule = Callable[[ChatRequest], Answer]


def last_user_text(request: ChatRequest) -> str:
    """The text of the last user message of ``request`` ("" if none)."""
    for message in reversed(request.messages):
        if message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


def echo_rule(request: ChatRequest) -> Answer:
    """The default rule: repeat the last user message."""
    return last_user_text(request)


class ScriptedInferenceBackend:
    """Answers each request from ``responses`` (keyed by the last user message) or, failing that, from ``rule``.

    An answer is a string (the content) or a full :class:`Generation` (e.g. with ``tool_calls``). When built with an
    ``adapter_dir`` written by :class:`ScriptedTrainingBackend`, the answers recorded there win, so a "customized"
    candidate can be scripted to differ from its base. Every request is recorded in ``calls``.
    """

    def __init__(
        self,
        responses: Mapping[str, Answer] | None = None,
        rule: Rule | None = None,
        *,
        name: str = "scripted",
        adapter_dir: str | Path | None = None,
        latency_s: float = 0.0,
    ) -> None:
        self.name = name
        self.responses: dict[str, Answer] = dict(responses or {})
        self.rule: Rule = rule or echo_rule
        self.latency_s = latency_s
        self.calls: list[ChatRequest] = []
        self.closed = False
        if adapter_dir is not None:
            trained = Path(adapter_dir) / "scripted_adapter.json"
            if trained.is_file():
                self.responses.update(json.loads(trained.read_text()).get("responses", {}))

    def generate(self, requests: Sequence[ChatRequest]) -> list[Generation]:
        """One generation per request, in order."""
        out = []
        for request in requests:
            self.calls.append(request)
            key = last_user_text(request)
            answer = self.responses[key] if key in self.responses else self.rule(request)
            if isinstance(answer, Generation):
                out.append(answer)
                continue
            text = answer
            if request.max_tokens is not None:  # a crude token = word budget keeps truncation testable
                text = " ".join(text.split(" ")[: request.max_tokens])
            for stop in request.stop or []:
                if stop and stop in text:
                    text = text[: text.index(stop)]
            out.append(
                Generation(
                    content=text,
                    prompt_tokens=sum(len(str(m.get("content") or "").split()) for m in request.messages),
                    completion_tokens=len(text.split()),
                    latency_s=self.latency_s,
                    raw_text=text,
                )
            )
        return out

    def close(self) -> None:
        """Nothing to release; recorded for tests."""
        self.closed = True


class ScriptedTrainingBackend:
    """ "Trains" by writing ``adapter/scripted_adapter.json``; reports a made-up falling loss per step.

    With ``learn_answers`` (the default), the training set's last assistant answer per user message is stored, and a
    :class:`ScriptedInferenceBackend` built with that adapter directory answers with it — a scripted "improvement".
    ``should_stop`` is honoured between steps like a real backend (raises :class:`JobCancelled`).
    """

    def __init__(
        self,
        base_model: str = "scripted",
        *,
        epochs: int = 1,
        max_steps: int | None = None,
        step_s: float = 0.0,
        learn_answers: bool = True,
    ) -> None:
        self.base_model = base_model
        self.epochs = epochs
        self.max_steps = max_steps
        self.step_s = step_s
        self.learn_answers = learn_answers

    def train(
        self,
        train: Sequence[dict[str, Any]],
        val: Sequence[dict[str, Any]],
        out_dir: Path,
        on_progress: Callable[[TrainingProgress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> TrainedAdapter:
        """Write the scripted adapter and return its description."""
        total = max(1, self.epochs * max(1, len(train)))
        if self.max_steps is not None:
            total = min(total, self.max_steps)
        losses: list[tuple[int, float]] = []
        val_losses: list[tuple[int, float]] = []
        for step in range(1, total + 1):
            if should_stop is not None and should_stop():
                raise JobCancelled(f"Training cancelled after {step - 1} of {total} steps.")
            if self.step_s:
                time.sleep(self.step_s)
            loss = 2.0 / (1.0 + step)
            losses.append((step, loss))
            val_loss = loss * 1.1 if val and step == total else None
            if val_loss is not None:
                val_losses.append((step, val_loss))
            if on_progress is not None:
                on_progress(TrainingProgress(step, total, step * self.epochs / total, loss, val_loss, 1000.0))
        responses: dict[str, str] = {}
        if self.learn_answers:
            for example in train:
                messages = example.get("messages", [])
                user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
                answer = next((m for m in reversed(messages) if m.get("role") == "assistant"), None)
                if user is not None and answer is not None and isinstance(answer.get("content"), str):
                    responses[str(user.get("content"))] = answer["content"]
        adapter_dir = Path(out_dir) / "adapter"
        adapter_dir.mkdir(parents=True, exist_ok=True)
        payload = {"base_model": self.base_model, "examples": len(train), "responses": responses}
        (adapter_dir / "scripted_adapter.json").write_text(json.dumps(payload))
        return TrainedAdapter(
            adapter_dir=adapter_dir,
            base_model=self.base_model,
            steps_completed=total,
            epochs_completed=self.epochs,
            train_losses=losses,
            val_losses=val_losses,
            metrics={"scripted": True},
        )


class ScriptedEmbeddingBackend:
    """Embeds a text as its hashed bag of words (``dim`` buckets, CRC32 of each lower-cased word), so texts that
    share words are close and the same text always gets the same vector, in any process."""

    def __init__(self, dim: int = 32) -> None:
        self.dim = dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Float32 array of shape ``(len(texts), dim)``."""
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                vectors[row, zlib.crc32(word.encode()) % self.dim] += 1.0
        return vectors
