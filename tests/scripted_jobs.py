"""Job orchestration test kit: a store with classification logs and scripted model backends.

The scripted backends make these tests fast and deterministic; they test orchestration (steps, statuses,
cancellation, persistence), never the engine's quality.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from factories import chat_record
from flywheel.backends import ChatRequest, Generation
from flywheel.backends.scripted import ScriptedInferenceBackend, ScriptedTrainingBackend, last_user_text
from flywheel.config import FlywheelConfig, LoRAConfig, NIMConfig, TrainingConfig
from flywheel.pipeline.ingest import ingest_objects
from flywheel.service.jobs import JobRepository, JobRequest, JobRunner, submit_job
from flywheel.store import open_store

TOPICS = ["business", "sport", "tech"]


def classification_logs(
    n: int = 90, workload_id: str = "news", client_id: str = "web"
) -> list[dict[str, Any]]:
    return [
        chat_record(
            f"Headline {i} about {TOPICS[i % 3]} number {i * 7}",
            f"[[[{TOPICS[i % 3]}]]]",
            workload_id=workload_id,
            client_id=client_id,
            timestamp=1_760_000_000 + i,
        )
        for i in range(n)
    ]


def knows_topics(request: ChatRequest) -> str:
    """A candidate that gets every label right (the topic word is in the headline)."""
    text = last_user_text(request)
    return next((f"[[[{t}]]]" for t in TOPICS if t in text), "no idea")


def always_business(_request: ChatRequest) -> str:
    return "[[[business]]]"


class ScriptedBackends:
    """A BackendFactory answering with ``rule``; ``on_generate`` lets a test act mid-evaluation."""

    def __init__(
        self,
        rule: Callable[[ChatRequest], str | Generation] = always_business,
        *,
        fail_inference: bool = False,
        fail_training: bool = False,
        on_generate: Callable[[], None] | None = None,
        step_s: float = 0.0,
    ) -> None:
        self.rule = rule
        self.fail_inference = fail_inference
        self.fail_training = fail_training
        self.on_generate = on_generate
        self.step_s = step_s
        self.released = 0
        self.adapters: list[Path | None] = []

    def inference(self, nim: NIMConfig, *, adapter_dir: Path | None = None) -> Any:
        if self.fail_inference:
            raise RuntimeError("model server is down")
        self.adapters.append(adapter_dir)
        backend = ScriptedInferenceBackend(rule=self.rule, name=nim.model_name, adapter_dir=adapter_dir)
        if self.on_generate is None:
            return backend
        hook = self.on_generate
        original = backend.generate

        def generate(requests: Any) -> Any:
            hook()
            return original(requests)

        backend.generate = generate  # type: ignore[method-assign]
        return backend

    def training(self, nim: NIMConfig, training: TrainingConfig, lora: LoRAConfig) -> Any:
        if self.fail_training:
            raise RuntimeError("out of memory")
        return ScriptedTrainingBackend(base_model=nim.model_name, epochs=training.epochs, step_s=self.step_s)

    def release(self) -> None:
        self.released += 1


def job_config(**overrides: Any) -> FlywheelConfig:
    data: dict[str, Any] = {
        "nims": [
            {"model_name": "tiny", "backend": "scripted", "customization_enabled": True},
        ],
        "data_split_config": {"eval_size": 20, "val_ratio": 0.1, "min_total_records": 30, "random_seed": 1},
        "icl_config": {"max_examples": 2, "example_selection": "uniform_distribution"},
        "training_config": {"epochs": 1, "batch_size": 4},
    }
    data.update(overrides)
    return FlywheelConfig.model_validate(data)


class Harness:
    """A store with logs, a repository and a runner over scripted backends."""

    def __init__(self, url: str, home: Path) -> None:
        self.engine = open_store(url)
        self.home = home
        self.repo = JobRepository(self.engine)
        self.backends = ScriptedBackends()

    def ingest(self, records: list[dict[str, Any]]) -> None:
        report = ingest_objects(self.engine, records, source="test")
        assert report.quarantined == 0

    def submit(self, config: FlywheelConfig | None = None, **request: Any) -> str:
        body = JobRequest(**{"workload_id": "news", "client_id": "web", **request})
        return submit_job(self.repo, config or job_config(), body)

    def runner(self) -> JobRunner:
        return JobRunner(self.repo, home=self.home, backends=self.backends, env={})

    def run(self, job_id: str) -> str:
        return self.runner().run(job_id)

    def run_in_thread(self, job_id: str) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(job_id,), daemon=True)
        thread.start()
        return thread


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, default=str)


def register_slow_scripted(step_s: float, name: str = "slow-scripted") -> None:
    """Register a scripted backend whose training takes ``step_s`` per step (for worker-crash tests)."""
    from flywheel.backends import registry

    def inference(nim: NIMConfig, *, adapter_dir: Path | None, cache_dir: Path | None, env: Any) -> Any:
        return ScriptedInferenceBackend(rule=always_business, name=nim.model_name, adapter_dir=adapter_dir)

    def training(
        nim: NIMConfig, training: TrainingConfig, lora: LoRAConfig, *, cache_dir: Path | None, env: Any
    ) -> Any:
        return ScriptedTrainingBackend(base_model=nim.model_name, epochs=training.epochs, step_s=step_s)

    registry.register(name, inference, training)
