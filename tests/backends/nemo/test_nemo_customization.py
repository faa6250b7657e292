"""Customization: NeMo Customizer LoRA jobs with the blueprint's hyperparameters, progress and loss curves, cancel
propagated to the platform, crash-safe job records and the customized model awaited in the NIM's list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from backends.nemo.emulator import FakeClock, NemoEmulator, Phase, stalls, trains, trains_then_fails
from flywheel.backends import TrainingBackend, TrainingProgress
from flywheel.backends.nemo import (
    JOB_RECORD,
    MANIFEST,
    CustomizationJobRef,
    CustomizedModel,
    NemoCustomization,
    PlatformClient,
)
from flywheel.config import CustomizerConfig, LoRAConfig, NIMConfig, TrainingConfig
from flywheel.errors import BackendError, ConfigError, JobCancelled

NS = "flywheel-test"
MODEL = "meta/llama-3.2-1b-instruct"
NIM = NIMConfig(
    model_name=MODEL,
    backend="nemo",
    tag="1.8.3",
    gpus=1,
    customization_enabled=True,
    customizer_configs=CustomizerConfig(target=f"{MODEL}@2.0", gpus=1, max_seq_length=8192),
)
OUTPUT = f"{NS}/customized-meta-llama-3.2-1b-instruct"


def _records(n: int, tag: str = "t") -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"{tag} {i}"},
                {"role": "assistant", "content": f"[[[{tag}]]]"},
            ]
        }
        for i in range(n)
    ]


def _trainer(client: PlatformClient, clock: FakeClock, **options: Any) -> NemoCustomization:
    training = options.pop("training", TrainingConfig(epochs=2, batch_size=4, learning_rate=2e-4))
    lora = options.pop("lora", LoRAConfig(adapter_dim=16, adapter_dropout=0.05))
    options.setdefault("stall_timeout_s", 600.0)
    return NemoCustomization(client, NIM, training, lora, clock=clock, sleep=clock.sleep, **options)


def test_train_runs_a_customizer_job_with_the_blueprints_settings_and_streams_progress_and_losses(
    emu: NemoEmulator, client: PlatformClient, clock: FakeClock, tmp_path: Path
) -> None:
    emu.script("customization", trains(running_reads=4))
    progress: list[TrainingProgress] = []
    trainer = _trainer(client, clock)
    assert isinstance(trainer, TrainingBackend)
    adapter = trainer.train(_records(8), _records(2, "v"), tmp_path / "adapter", on_progress=progress.append)
    # The config and the job, as the reference sends them (hyperparameters from training_config / lora_config).
    [config] = emu.requests_to("POST", r"/v1/customization/configs")
    assert config.json() == {
        "name": "llama-3.2-1b-instruct@v1.0.0+dfw",
        "namespace": NS,
        "target": f"{MODEL}@2.0",
        "training_options": [
            {
                "training_type": "sft",
                "finetuning_type": "lora",
                "num_gpus": 1,
                "num_nodes": 1,
                "tensor_parallel_size": 1,
                "data_parallel_size": 1,
                "use_sequence_parallel": False,
                "micro_batch_size": 1,
            }
        ],
        "training_precision": "bf16-mixed",
        "max_seq_length": 8192,
    }
    [create] = emu.requests_to("POST", r"/v1/customization/jobs")
    job = create.json()
    assert job["config"] == f"{NS}/llama-3.2-1b-instruct@v1.0.0+dfw" and job["output_model"] == OUTPUT
    assert job["hyperparameters"] == {
        "training_type": "sft",
        "finetuning_type": "lora",
        "epochs": 2,
        "batch_size": 4,
        "learning_rate": 2e-4,
        "lora": {"adapter_dim": 16, "adapter_dropout": 0.05},
    }
    dataset = job["dataset"]
    assert dataset["namespace"] == NS and emu.repo_files(NS, dataset["name"]).keys() == {
        "training/train_data.jsonl",
        "validation/val_data.jsonl",
    }
    # 8 records / batch 4 = 2 steps per epoch, 2 epochs: progress at every new step, with the losses so far.
    assert [p.step for p in progress] == [1, 2, 3, 4] and {p.total_steps for p in progress} == {4}
    assert [p.epoch for p in progress] == [0.5, 1.0, 1.5, 2.0]
    assert all(p.loss is not None for p in progress) and progress[0].val_loss is None
    assert progress[1].val_loss is not None  # validated at the end of the first epoch
    assert [s for s, _ in adapter.train_losses] == [1, 2, 3, 4] and [s for s, _ in adapter.val_losses] == [
        2,
        4,
    ]
    assert adapter.train_losses[-1][1] < adapter.train_losses[0][1]
    assert adapter.steps_completed == 4 and adapter.epochs_completed == 2 and adapter.base_model == MODEL
    # The customized model is named in the adapter folder, where the inference backend finds it.
    customized = CustomizedModel.read(adapter.adapter_dir)
    assert customized.model.startswith(OUTPUT + "@cust-") and customized.model in emu.served_models()
    assert adapter.metrics["customized_model"] == customized.model and emu.created["customization_job"] == 1


def test_the_job_is_recorded_before_it_is_polled_and_a_rerun_follows_it_instead_of_starting_another(
    emu: NemoEmulator, client: PlatformClient, clock: FakeClock, tmp_path: Path
) -> None:
    emu.script("customization", trains(running_reads=2))
    created: list[CustomizationJobRef] = []

    def crash(job: CustomizationJobRef) -> None:
        created.append(job)
        assert json.loads((tmp_path / JOB_RECORD).read_text())["job_id"] == job.job_id  # on disk already
        assert emu.requests_to("GET", rf"/v1/customization/jobs/{job.job_id}/status") == []  # not polled yet
        raise KeyboardInterrupt  # the worker dies here

    with pytest.raises(KeyboardInterrupt):
        _trainer(client, clock, on_job_created=crash).train(_records(8), [], tmp_path)
    adapter = _trainer(client, clock).train(_records(8), [], tmp_path)  # the next attempt, same step folder
    assert (
        emu.created["customization_job"] == 1 and adapter.metrics["customization_job_id"] == created[0].job_id
    )
    assert (tmp_path / MANIFEST).is_file()


def test_cancel_is_propagated_to_the_platform_job(
    emu: NemoEmulator, client: PlatformClient, clock: FakeClock, tmp_path: Path
) -> None:
    emu.script("customization", [Phase("created", 1), Phase("running", None)])
    progress: list[TrainingProgress] = []
    with pytest.raises(JobCancelled, match="cancelled on the platform"):
        _trainer(client, clock).train(
            _records(8), [], tmp_path, on_progress=progress.append, should_stop=lambda: clock.now >= 90
        )
    [job_id] = list(emu.customization_jobs)
    assert len(emu.requests_to("POST", rf"/v1/customization/jobs/{job_id}/cancel")) == 1
    assert emu.customization_jobs[job_id].lifecycle.status == "cancelling"
    assert not (tmp_path / MANIFEST).exists()


def test_a_worker_that_stops_without_a_cancel_leaves_the_platform_job_running_to_reattach_later(
    emu: NemoEmulator, client: PlatformClient, clock: FakeClock, tmp_path: Path
) -> None:
    from flywheel.backends import StopCheck

    emu.script("customization", [Phase("created", 1), Phase("running", None)])
    only_the_worker = StopCheck(stop=lambda: clock.now >= 90, cancelled=lambda: False)
    with pytest.raises(JobCancelled, match="followed again"):
        _trainer(client, clock).train(_records(8), [], tmp_path, should_stop=only_the_worker)
    [job_id] = list(emu.customization_jobs)
    assert emu.created["customization_cancel"] == 0
    assert emu.customization_jobs[job_id].lifecycle.status == "running"
    assert json.loads((tmp_path / JOB_RECORD).read_text())["job_id"] == job_id


def test_a_failed_job_ends_the_run_with_the_platforms_reason(
    emu: NemoEmulator, client: PlatformClient, clock: FakeClock, tmp_path: Path
) -> None:
    emu.script("customization", trains_then_fails(2, detail="NotEnoughResources"))
    with pytest.raises(BackendError, match=r"failed: NotEnoughResources.*lacks the GPUs"):
        _trainer(client, clock).train(_records(8), [], tmp_path)
    assert clock.now == 60.0  # two polls after the create, at the 30 s default interval


def test_a_job_cancelled_by_someone_else_is_reported_as_such(
    emu: NemoEmulator, client: PlatformClient, clock: FakeClock, tmp_path: Path
) -> None:
    emu.script(
        "customization", [Phase("created", 1), Phase("pending", 1), Phase("cancelled", None, "by an admin")]
    )
    with pytest.raises(
        BackendError, match=r"was cancelled on the platform \(not by this run\)\. by an admin"
    ):
        _trainer(client, clock).train(_records(8), [], tmp_path)


def test_pending_is_a_normal_wait_and_a_job_stuck_without_progress_is_cancelled_after_the_stall_timeout(
    emu: NemoEmulator, client: PlatformClient, clock: FakeClock, tmp_path: Path
) -> None:
    emu.script("customization", [Phase("created", 1), *stalls("pending")])
    with pytest.raises(BackendError, match=r"made no progress for 300s.*it was cancelled"):
        _trainer(client, clock, stall_timeout_s=300.0).train(_records(8), [], tmp_path)
    [job_id] = list(emu.customization_jobs)
    assert clock.now == 300.0  # pending from the first read on, so the stall clock ran from 0
    assert len(emu.requests_to("POST", rf"/v1/customization/jobs/{job_id}/cancel")) == 1


def test_a_lost_answer_to_the_job_creation_is_not_retried_into_a_second_job(
    emu: NemoEmulator, client: PlatformClient, clock: FakeClock, tmp_path: Path
) -> None:
    emu.fail("POST", r"/v1/customization/jobs", 503, "upstream timeout", times=1)
    with pytest.raises(BackendError, match="HTTP 503"):
        _trainer(client, clock).train(_records(8), [], tmp_path)
    assert (
        len(emu.requests_to("POST", r"/v1/customization/jobs")) == 1 and not (tmp_path / JOB_RECORD).exists()
    )


def test_optional_hyperparameters_follow_the_config() -> None:
    from flywheel.backends.nemo import PlatformEndpoints

    client = PlatformClient(PlatformEndpoints("http://n", "http://m", "http://d", NS))
    training = TrainingConfig(epochs=1, batch_size=64, learning_rate=1e-4, max_steps=100)
    lora = LoRAConfig(
        adapter_dim=16, adapter_alpha=32, sequence_packing_enabled=True, target_modules=["*_proj"]
    )
    hyper = NemoCustomization(client, NIM, training, lora).hyperparameters()
    client.close()
    assert hyper["max_steps"] == 100 and hyper["sequence_packing_enabled"] is True
    assert hyper["lora"] == {
        "adapter_dim": 16,
        "adapter_dropout": 0.1,
        "alpha": 32,
        "target_modules": ["*_proj"],
    }


def test_a_candidate_without_customizer_configs_cannot_be_customized(client: PlatformClient) -> None:
    with pytest.raises(ConfigError, match="customizer_configs"):
        NemoCustomization(client, NIMConfig(model_name=MODEL, backend="nemo"), TrainingConfig(), LoRAConfig())
