"""The scripted backend: deterministic answers and fake training for orchestration tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.backends import ChatRequest, Generation, InferenceBackend, TrainingBackend, TrainingProgress
from flywheel.backends.scripted import ScriptedInferenceBackend, ScriptedTrainingBackend
from flywheel.errors import JobCancelled


def _ask(text: str, **kwargs: object) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": text}], **kwargs)  # type: ignore[arg-type]


def test_answers_come_from_the_mapping_then_the_rule_in_request_order() -> None:
    call = Generation(content=None, tool_calls=[{"id": "call_0", "type": "function",
                                                 "function": {"name": "f", "arguments": "{}"}}])  # fmt: skip
    backend = ScriptedInferenceBackend({"a": "alpha", "t": call}, rule=lambda r: "other")
    assert isinstance(backend, InferenceBackend)
    out = backend.generate([_ask("b"), _ask("a"), _ask("t")])
    assert [g.content for g in out] == ["other", "alpha", None]
    assert out[2].tool_calls == call.tool_calls
    assert [r.messages[0]["content"] for r in backend.calls] == ["b", "a", "t"]
    backend.close()
    assert backend.closed


def test_max_tokens_and_stop_are_honoured() -> None:
    backend = ScriptedInferenceBackend(rule=lambda r: "one two three. four")
    assert backend.generate([_ask("x", max_tokens=2)])[0].content == "one two"
    assert backend.generate([_ask("x", stop=["."])])[0].content == "one two three"


def test_training_writes_an_adapter_reports_progress_and_can_be_cancelled(tmp_path: Path) -> None:
    trainer = ScriptedTrainingBackend(epochs=2)
    assert isinstance(trainer, TrainingBackend)
    examples = [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}] * 3
    progress: list[TrainingProgress] = []
    adapter = trainer.train(examples, examples[:1], tmp_path / "run", on_progress=progress.append)
    assert (adapter.adapter_dir / "scripted_adapter.json").is_file()
    assert [p.step for p in progress] == list(range(1, 7))
    assert adapter.train_losses[-1][1] < adapter.train_losses[0][1] and adapter.val_losses
    with pytest.raises(JobCancelled, match="after 1 of 6 steps"):
        trainer.train(examples, [], tmp_path / "cancelled", should_stop=lambda: len(progress) >= 7,
                      on_progress=progress.append)  # fmt: skip
