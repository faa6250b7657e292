"""LoRA fine-tuning through NeMo Customizer (the ``training`` role).

``train()`` does what the reference's ``start_customization`` does, with its quirks fixed:

1. uploads the training and validation records as one dataset (``training/train_data.jsonl`` +
   ``validation/val_data.jsonl``) named after their content hash, so a repeated call reuses it;
2. creates the customization config ``{namespace}/{model}@v1.0.0+dfw`` from ``customizer_configs`` (a 409 means
   it exists: fine) and the job, with the blueprint's hyperparameters (``training_config``, ``lora_config``);
3. records the job in the output folder (:data:`JOB_RECORD`) *before* polling it, so a call after a crash finds
   the job and follows it instead of starting another one;
4. polls ``GET /v1/customization/jobs/{id}/status`` and reports each new step with its train/val loss
   (``status_details.metrics``); ``percentage_done`` is the platform's progress, ``created``/``pending`` are normal
   waits, ``cancelling``/``cancelled`` are known states, a ``failed`` job ends with its last status-log detail;
   a job whose status and progress stay the same for ``stall_timeout_s`` is cancelled and reported;
5. on ``should_stop`` cancels the job on the platform (``POST /v1/customization/jobs/{id}/cancel``) and raises
   :class:`~flywheel.errors.JobCancelled`;
6. waits for the customized model (the job's ``output_model``) to be listed by the NIM proxy, and records it in
   the output folder (:data:`~flywheel.backends.nemo._inference.MANIFEST`) for the inference backend.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flywheel.backends._types import TrainedAdapter, TrainingProgress, stop_is_cancel
from flywheel.backends.nemo._client import PlatformClient, PlatformError
from flywheel.backends.nemo._datasets import DatasetRef, NemoDatasets
from flywheel.backends.nemo._inference import CustomizedModel
from flywheel.config._models import CustomizerConfig, LoRAConfig, NIMConfig, TrainingConfig
from flywheel.errors import BackendError, ConfigError, JobCancelled

logger = logging.getLogger(__name__)

#: The file in the output folder that names the platform job of a training run, written before it is polled.
JOB_RECORD = "nemo_job.json"
#: Job statuses: still going, and ended without a model.
WAITING = frozenset({"created", "pending", "running", "unknown", "cancelling"})
ENDED_WITHOUT_MODEL = frozenset({"failed", "cancelled"})


@dataclass(frozen=True)
class CustomizationJobRef:
    """A customization job on the platform and what it will produce."""

    job_id: str
    output_model: str
    dataset: str
    config: str

    def write(self, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / JOB_RECORD).write_text(json.dumps(self.__dict__, indent=2) + "\n")

    @classmethod
    def read(cls, out_dir: Path) -> CustomizationJobRef | None:
        try:
            data = json.loads((out_dir / JOB_RECORD).read_text())
            return cls(
                str(data["job_id"]), str(data["output_model"]), str(data["dataset"]), str(data["config"])
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BackendError(
                f"{out_dir / JOB_RECORD} is unreadable ({exc}); remove it to start a new job."
            ) from exc


def config_name(model_name: str) -> str:
    """The reference's customization config name: ``{model}@v1.0.0+dfw`` for ``{namespace}/{model}``."""
    return f"{model_name.rsplit('/', 1)[-1]}@v1.0.0+dfw"


def output_model_name(namespace: str, model_name: str) -> str:
    """The reference's output model: ``{namespace}/customized-{model_name with / → -}``."""
    return f"{namespace}/customized-{model_name.replace('/', '-')}"


class NemoCustomization:
    """A :class:`~flywheel.backends.TrainingBackend` that fine-tunes one candidate with NeMo Customizer.

    Args:
        client: The platform client.
        nim: The candidate (``model_name``, ``customizer_configs``).
        training, lora: The blueprint's ``training_config`` and ``lora_config``.
        poll_interval_s: Seconds between status reads.
        stall_timeout_s: A job whose status and progress stay the same this long is cancelled and reported.
        on_job_created: Called with the job right after it is created, before it is polled (a step records it).
        clock, sleep: Time source and wait function (tests pass a fake clock).
    """

    def __init__(
        self,
        client: PlatformClient,
        nim: NIMConfig,
        training: TrainingConfig,
        lora: LoRAConfig,
        *,
        poll_interval_s: float = 30.0,
        stall_timeout_s: float = 3600.0,
        on_job_created: Callable[[CustomizationJobRef], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if nim.customizer_configs is None or not nim.customizer_configs.target:
            raise ConfigError(
                f"Candidate {nim.model_name!r} is fine-tuned by NeMo Customizer and needs "
                "nims[].customizer_configs with target (the Customizer target, e.g. meta/llama-3.2-1b-instruct@2.0) "
                "and gpus.",
                problems=[("nims[].customizer_configs.target", "required for backend nemo")],
            )
        self.client = client
        self.nim = nim
        self.customizer: CustomizerConfig = nim.customizer_configs
        self.training = training
        self.lora = lora
        self.namespace = client.endpoints.namespace
        self.poll_interval_s = poll_interval_s
        self.stall_timeout_s = stall_timeout_s
        self.on_job_created = on_job_created
        self._clock = clock
        self._sleep = sleep

    # ------------------------------------------------------------------------------------------------- public API

    def train(
        self,
        train: Sequence[dict[str, Any]],
        val: Sequence[dict[str, Any]],
        out_dir: Path,
        on_progress: Callable[[TrainingProgress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> TrainedAdapter:
        """Fine-tune on ``train`` (validated on ``val``); returns the adapter folder naming the customized model."""
        out_dir = Path(out_dir)
        job = CustomizationJobRef.read(out_dir)
        if job is None:
            if should_stop is not None and should_stop():
                raise JobCancelled(
                    f"Customization of {self.nim.model_name!r} was cancelled before it started."
                )
            dataset = self._upload(train, val)
            config = self._ensure_config()
            job = self._create_job(dataset, config)
            job.write(out_dir)
            if self.on_job_created is not None:
                self.on_job_created(job)
        else:
            logger.info("following NeMo customization job %s recorded in %s", job.job_id, out_dir)
        details = self._follow(job, on_progress, should_stop)
        self._wait_served(job, should_stop)
        CustomizedModel(job.output_model, job.job_id, self.nim.model_name).write(out_dir)
        metrics = details.get("metrics") or {}
        curves = metrics.get("metrics") or {}
        return TrainedAdapter(
            adapter_dir=out_dir,
            base_model=self.nim.model_name,
            steps_completed=int(details.get("steps_completed") or 0),
            epochs_completed=int(details.get("epochs_completed") or 0),
            train_losses=_curve(curves.get("train_loss")),
            val_losses=_curve(curves.get("val_loss")),
            metrics={
                "customization_job_id": job.job_id,
                "customized_model": job.output_model,
                "percentage_done": details.get("percentage_done"),
                "best_epoch": details.get("best_epoch"),
                "elapsed_time_s": details.get("elapsed_time"),
            },
        )

    def cancel(self, job: CustomizationJobRef) -> None:
        """Ask the platform to cancel ``job``; a job that already ended is fine."""
        sdk = self.client.sdk
        try:
            self.client.call(
                f"cancel customization job {job.job_id}", lambda: sdk.customization.jobs.cancel(job.job_id)
            )
            logger.info("NeMo customization job %s cancelled", job.job_id)
        except PlatformError as exc:
            if exc.status_code not in (404, 409):  # gone, or already finished
                raise

    def close(self) -> None:
        """Close the platform client's connections (the registry gives each training backend its own client)."""
        self.client.close()

    # ------------------------------------------------------------------------------------------------- internals

    def _upload(self, train: Sequence[dict[str, Any]], val: Sequence[dict[str, Any]]) -> DatasetRef:
        if not train:
            raise BackendError(f"No training records for {self.nim.model_name!r}; nothing to fine-tune on.")
        files = {"training/train_data.jsonl": _jsonl(train)}
        if val:
            files["validation/val_data.jsonl"] = _jsonl(val)
        digest = hashlib.sha256(b"\0".join(files[k] for k in sorted(files))).hexdigest()[:16]
        return NemoDatasets(self.client, self.namespace).upload(
            f"flywheel-train-{digest}", files, description=f"flywheel training set for {self.nim.model_name}"
        )

    def _ensure_config(self) -> str:
        name = config_name(self.nim.model_name)
        cc = self.customizer
        body: dict[str, Any] = {
            "name": name,
            "namespace": self.namespace,
            "target": str(cc.target),
            "training_options": [
                {
                    "training_type": self.training.training_type,
                    "finetuning_type": self.training.finetuning_type,
                    "num_gpus": cc.gpus if cc.gpus is not None else 1,
                    "num_nodes": cc.num_nodes,
                    "tensor_parallel_size": cc.tensor_parallel_size,
                    "data_parallel_size": cc.data_parallel_size,
                    "use_sequence_parallel": cc.use_sequence_parallel,
                    "micro_batch_size": cc.micro_batch_size,
                }
            ],
            "training_precision": cc.training_precision,
            "max_seq_length": cc.max_seq_length,
        }
        sdk = self.client.sdk
        try:
            self.client.call(
                f"create customization config {self.namespace}/{name}",
                lambda: sdk.customization.configs.create(**body),
            )
        except PlatformError as exc:
            if exc.status_code != 409:
                raise
        return f"{self.namespace}/{name}"

    def hyperparameters(self) -> dict[str, Any]:
        """The job's ``hyperparameters`` from ``training_config`` and ``lora_config``."""
        lora: dict[str, Any] = {
            "adapter_dim": self.lora.adapter_dim,
            "adapter_dropout": self.lora.adapter_dropout,
        }
        if self.lora.adapter_alpha is not None:
            lora["alpha"] = self.lora.adapter_alpha
        if self.lora.target_modules:
            lora["target_modules"] = list(self.lora.target_modules)
        hyper: dict[str, Any] = {
            "training_type": self.training.training_type,
            "finetuning_type": self.training.finetuning_type,
            "epochs": self.training.epochs,
            "batch_size": self.training.batch_size,
            "learning_rate": self.training.learning_rate,
            "lora": lora,
        }
        if self.lora.sequence_packing_enabled:
            hyper["sequence_packing_enabled"] = True
        if self.training.max_steps is not None:
            hyper["max_steps"] = self.training.max_steps
        return hyper

    def _create_job(self, dataset: DatasetRef, config: str) -> CustomizationJobRef:
        sdk = self.client.sdk
        output_model = output_model_name(self.namespace, self.nim.model_name)
        body: dict[str, Any] = {
            "name": f"flywheel-{self.nim.model_name.replace('/', '-')}-{dataset.name.rsplit('-', 1)[-1]}",
            "output_model": output_model,
            "config": config,
            "dataset": {"name": dataset.name, "namespace": dataset.namespace},
            "hyperparameters": self.hyperparameters(),
        }
        # Never retried: a retry after a lost answer would start a second job.
        created = self.client.call(
            f"create customization job for {self.nim.model_name!r}",
            lambda: sdk.customization.jobs.create(**body),
            retry=False,
        )
        if not created.id:
            raise BackendError(
                f"NeMo Customizer created a job for {self.nim.model_name!r} but returned no id."
            )
        job = CustomizationJobRef(
            created.id, created.output_model or body["output_model"], dataset.name, config
        )
        logger.info("NeMo customization job %s started (output model %s)", job.job_id, job.output_model)
        return job

    def _status(self, job: CustomizationJobRef) -> dict[str, Any]:
        sdk = self.client.sdk
        details = self.client.call(
            f"get status of customization job {job.job_id}", lambda: sdk.customization.jobs.status(job.job_id)
        )
        data: dict[str, Any] = details.to_dict()
        return data

    def _follow(
        self,
        job: CustomizationJobRef,
        on_progress: Callable[[TrainingProgress], None] | None,
        should_stop: Callable[[], bool] | None,
    ) -> dict[str, Any]:
        last_change = self._clock()
        seen: tuple[Any, ...] | None = None
        reported_step = 0
        while True:
            if should_stop is not None and should_stop():
                # only this worker stops: the platform's job goes on and is re-attached when the job resumes
                if not stop_is_cancel(should_stop):
                    raise JobCancelled(
                        f"Stopped following customization job {job.job_id} of {self.nim.model_name!r}; it goes "
                        f"on on the platform and is followed again from {JOB_RECORD} when the job resumes."
                    )
                self.cancel(job)
                raise JobCancelled(
                    f"Customization of {self.nim.model_name!r} was cancelled; job {job.job_id} cancelled on the platform."
                )
            details = self._status(job)
            status = str(details.get("status") or "unknown").lower()
            steps = int(details.get("steps_completed") or 0)
            curves = (details.get("metrics") or {}).get("metrics") or {}
            if steps > reported_step and on_progress is not None:
                on_progress(self._progress(details, curves))
                reported_step = steps
            if status == "completed":
                logger.info("NeMo customization job %s completed after %d steps", job.job_id, steps)
                return details
            if status in ENDED_WITHOUT_MODEL:
                raise BackendError(self._ended_message(job, status, details))
            if status not in WAITING:
                logger.warning(
                    "NeMo customization job %s reports unknown status %r; still waiting", job.job_id, status
                )
            now = self._clock()
            state = (status, steps, details.get("percentage_done"), len(curves.get("train_loss") or []))
            if state != seen:
                seen, last_change = state, now
            elif now - last_change >= self.stall_timeout_s:
                self.cancel(job)
                raise BackendError(
                    f"NeMo customization job {job.job_id} for {self.nim.model_name!r} made no progress for "
                    f"{self.stall_timeout_s:g}s (status {status!r}, {steps} steps); it was cancelled. "
                    f"{_last_log(details) or 'No status log.'}"
                )
            self._sleep(self.poll_interval_s)

    def _progress(self, details: dict[str, Any], curves: dict[str, Any]) -> TrainingProgress:
        steps = int(details.get("steps_completed") or 0)
        per_epoch = details.get("steps_per_epoch")
        total = int(per_epoch) * self.training.epochs if per_epoch else 0
        if self.training.max_steps is not None:
            total = min(total, self.training.max_steps) if total else self.training.max_steps
        train = _curve(curves.get("train_loss"))
        val = _curve(curves.get("val_loss"))
        epoch = steps / int(per_epoch) if per_epoch else float(details.get("epochs_completed") or 0)
        return TrainingProgress(
            step=steps,
            total_steps=max(total, steps),
            epoch=epoch,
            loss=train[-1][1] if train else None,
            val_loss=val[-1][1] if val else None,
        )

    def _ended_message(self, job: CustomizationJobRef, status: str, details: dict[str, Any]) -> str:
        log = _last_log(details)
        if status == "cancelled":
            return (
                f"NeMo customization job {job.job_id} for {self.nim.model_name!r} was cancelled on the platform "
                f"(not by this run). {log or ''}".rstrip()
            )
        hint = ""
        if log and "NotEnoughResources" in log:
            hint = " The cluster lacks the GPUs the job asked for (customizer_configs.gpus); free some or ask for fewer."
        return (
            f"NeMo customization job {job.job_id} for {self.nim.model_name!r} failed: "
            f"{log or 'No error details available'}.{hint}"
        )

    def _wait_served(self, job: CustomizationJobRef, should_stop: Callable[[], bool] | None) -> None:
        started = self._clock()
        while job.output_model not in self.client.served_models():
            if self._clock() - started >= self.stall_timeout_s:
                raise BackendError(
                    f"The customized model {job.output_model!r} (job {job.job_id}) did not appear in "
                    f"{self.client.endpoints.nim_v1}/models within {self.stall_timeout_s:g}s of the job's end; "
                    "check that the base NIM is deployed with LoRA support."
                )
            if should_stop is not None and should_stop():
                raise JobCancelled(f"Stopped waiting for the customized model {job.output_model!r}.")
            self._sleep(self.poll_interval_s)


def _jsonl(records: Sequence[dict[str, Any]]) -> bytes:
    return ("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n").encode()


def _curve(points: Any) -> list[tuple[int, float]]:
    """``[{step, value, …}]`` as ``[(step, value)]``, in step order, skipping points without a value."""
    out = [
        (int(p["step"]), float(p["value"]))
        for p in points or []
        if isinstance(p, dict) and p.get("step") is not None and p.get("value") is not None
    ]
    return sorted(out)


def _last_log(details: dict[str, Any]) -> str | None:
    """The last non-empty ``detail`` (else ``message``) of the job's status logs."""
    for log in reversed(details.get("status_logs") or []):
        if isinstance(log, dict):
            text = log.get("detail") or log.get("message")
            if text:
                return str(text)
    return None
