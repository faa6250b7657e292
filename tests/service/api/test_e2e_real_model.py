"""End to end through the HTTP API with the in-process executor and the real packaged model (no scripting).

Small on purpose (a few eval prompts, a few LoRA steps) so it runs in about a minute on a CPU; it proves the
pieces work together on the real engine, not how good the model gets (the engine's own tests cover learning).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from flywheel.config import FlywheelConfig, Settings
from flywheel.pipeline.ingest import ingest_objects
from flywheel.service.api import create_app
from flywheel.store import open_store
from scripted_jobs import classification_logs

pytestmark = pytest.mark.slow


def test_a_real_job_runs_through_the_api(sqlite_url: str, home: Path) -> None:
    config = FlywheelConfig.model_validate(
        {
            "nims": [
                {
                    "model_name": "smollm2-135m-instruct",
                    "backend": "local",
                    "customization_enabled": True,
                    "customizer_configs": {"max_seq_length": 96},
                }
            ],
            "data_split_config": {
                "eval_size": 6,
                "val_ratio": 0.1,
                "min_total_records": 20,
                "random_seed": 3,
            },
            "icl_config": {"max_examples": 2, "example_selection": "uniform_distribution"},
            "training_config": {"epochs": 1, "batch_size": 4, "max_steps": 3, "learning_rate": 0.001},
            "lora_config": {"adapter_dim": 4},
            "evaluation_config": {"max_new_tokens": 12},
        }
    )
    engine = open_store(sqlite_url)
    ingest_objects(engine, classification_logs(40), source="test")
    engine.dispose()
    settings = Settings.from_env(
        config, None, {"FLYWHEEL_DATABASE_URL": sqlite_url, "FLYWHEEL_HOME": str(home)}
    )
    with TestClient(create_app(settings)) as client:
        job_id = client.post("/api/jobs", json={"workload_id": "news", "client_id": "web"}).json()["id"]
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            detail = client.get(f"/api/jobs/{job_id}").json()
            if detail["finished_at"] is not None:
                break
            time.sleep(1)
    assert detail["status"] == "completed", detail
    (nim,) = detail["nims"]
    evals = {e["eval_type"]: e for e in nim["evaluations"]}
    assert set(evals) == {"base-eval", "icl-eval", "customized-eval"}
    for ev in evals.values():
        assert ev["error"] is None
        assert 0.0 <= ev["scores"]["f1_score"] <= 1.0
        assert ev["metrics"]["f1_score"]["n"] == 6
        assert ev["usage"]["latency_p50_s"]["value"] > 0
    (custom,) = nim["customizations"]
    assert custom["status"] == "completed" and custom["steps_completed"] == 3
    assert len(custom["metrics"]["train_loss"]) == 3
    adapter = Path(home / "jobs" / job_id / "adapters")
    assert any(adapter.rglob("adapter_model.safetensors"))
