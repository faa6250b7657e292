"""Running a job: the flywheel's order of work, written once.

    datasets → for every candidate: base-eval → icl-eval → [customization → customized-eval] → finalize

Every step is a durable row in ``job_steps`` with status, progress, attempts, timings, error and result. A step
that completed is never run again, so re-running a job after a crash or restart resumes where it stopped; a step
that was interrupted is re-run from its start (its partial rows are replaced). The same code runs in the
in-process executor and in Celery workers.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson
from sqlalchemy import delete, insert, select, update

from flywheel.backends import InferenceBackend, TrainingBackend, TrainingProgress
from flywheel.config import FlywheelConfig, LoRAConfig, NIMConfig, TrainingConfig
from flywheel.errors import FlywheelError, JobCancelled
from flywheel.ids import new_id
from flywheel.service.jobs._repository import JobRepository, _dumps
from flywheel.store import customizations, evaluation_samples, evaluations, job_candidates, job_steps

log = logging.getLogger(__name__)

#: Minimum seconds between two progress writes of one step (progress is cheap to compute, not to store).
PROGRESS_INTERVAL_S = 1.0


class BackendFactory(Protocol):
    """Builds the backends a job needs; the default uses the backend registry, tests may script them."""

    def inference(self, nim: NIMConfig, *, adapter_dir: Path | None = None) -> InferenceBackend: ...

    def training(self, nim: NIMConfig, training: TrainingConfig, lora: LoRAConfig) -> TrainingBackend: ...

    def release(self) -> None:
        """Free models and memory held for the job that just ended."""
        ...


def job_dir(home: Path, job_id: str) -> Path:
    """Where a job's datasets and adapters live."""
    return Path(home) / "jobs" / job_id


@dataclass(frozen=True)
class StepSpec:
    """One planned step of a job."""

    name: str
    kind: str
    candidate: str | None = None


def plan_steps(config: FlywheelConfig, candidates: list[str]) -> list[StepSpec]:
    """The steps of a job, in the order they run."""
    by_name = {n.model_name: n for n in config.nims}
    steps = [StepSpec("datasets", "datasets")]
    for name in candidates:
        steps.append(StepSpec(f"base-eval:{name}", "base-eval", name))
        steps.append(StepSpec(f"icl-eval:{name}", "icl-eval", name))
        if by_name[name].customization_enabled:
            steps.append(StepSpec(f"customization:{name}", "customization", name))
            steps.append(StepSpec(f"customized-eval:{name}", "customized-eval", name))
    steps.append(StepSpec("finalize", "finalize"))
    return steps


def create_steps(repo: JobRepository, job_id: str, steps: list[StepSpec]) -> None:
    """Insert the step rows of a new job."""
    cands = {c.model_name: c.id for c in repo.candidates(job_id)}
    with repo.engine.begin() as conn:
        for position, spec in enumerate(steps):
            conn.execute(
                insert(job_steps).values(
                    id=new_id(),
                    job_id=job_id,
                    position=position,
                    name=spec.name,
                    kind=spec.kind,
                    candidate_id=cands.get(spec.candidate) if spec.candidate else None,
                    status="pending",
                    progress=0.0,
                    attempts=0,
                )
            )


class _Throttle:
    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.last = 0.0

    def ready(self, force: bool = False) -> bool:
        now = time.monotonic()
        if force or now - self.last >= self.interval:
            self.last = now
            return True
        return False


class JobRunner:
    """Runs jobs of one store. ``home`` is the data directory (datasets and adapters live under it)."""

    def __init__(
        self,
        repo: JobRepository,
        *,
        home: Path,
        backends: BackendFactory,
        env: Mapping[str, str] | None = None,
        worker_id: str = "inprocess",
        lease_s: float = 60.0,
    ) -> None:
        self.repo = repo
        self.engine = repo.engine
        self.home = Path(home)
        self.backends = backends
        self.env = dict(env or {})
        self.worker_id = worker_id
        self.lease_s = lease_s

    # ------------------------------------------------------------------------------------------------ driver

    def run(self, job_id: str) -> str:
        """Run (or resume) every unfinished step of a job in this thread; return its final status."""
        while True:
            status = self.advance(job_id)
            if status is not None:
                return status

    def advance(self, job_id: str) -> str | None:
        """Run the job's next unfinished step; return the job's final status once it has one, else ``None``.

        Returns ``"busy"`` when the next step is held by another live worker (its lease has not expired).
        Never raises for a job's own failures: they end the job with the reason.
        """
        row = self.repo.get_row(job_id)
        if row.finished_at is not None:
            return str(row.status)
        config = FlywheelConfig.model_validate(orjson.loads(row.config))
        if row.status == "pending":
            self.repo.set_job(job_id, status="running")
        final: str | None = None
        try:
            if self.repo.cancel_requested(job_id):
                raise JobCancelled("Job cancelled by user.")
            step = self.next_step(job_id)
            if step is None or step.kind == "finalize":
                final = self._finalize(job_id)
            elif not self._run_step(job_id, step, config):
                return "busy"
        except _JobFailed:
            final = "failed"
        except JobCancelled as exc:
            self._end_job(job_id, "cancelled", str(exc))
            final = "cancelled"
        except Exception as exc:  # a bug must still end the job, never leave it "running"
            log.exception("job %s failed", job_id)
            cause = f"{type(exc).__name__}: {exc}"
            self._end_job(job_id, "failed", cause, f"Internal error: {cause}")
            final = "failed"
        if final is not None:
            self.backends.release()
        return final

    def next_step(self, job_id: str) -> Any | None:
        """The first step of the job that has not ended (``finalize`` is the last one), or None."""
        for step in self._steps(job_id):
            if step.status not in ("completed", "skipped", "failed", "cancelled"):
                return step
        return None

    def _steps(self, job_id: str) -> list[Any]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(job_steps).where(job_steps.c.job_id == job_id).order_by(job_steps.c.position)
                )
            )

    def _set_step(self, step_id: str, **values: Any) -> None:
        if "result" in values and not isinstance(values["result"], str | None):
            values["result"] = _dumps(values["result"])
        with self.engine.begin() as conn:
            conn.execute(update(job_steps).where(job_steps.c.id == step_id).values(**values))

    def _step_result(self, job_id: str, name: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(job_steps.c.status, job_steps.c.result).where(
                    job_steps.c.job_id == job_id, job_steps.c.name == name
                )
            ).first()
        if row is None or row.status != "completed" or not row.result:
            return None
        return dict(orjson.loads(row.result))

    def _claim(self, step: Any) -> bool:
        """Take the step under a lease unless another live worker holds it (atomic in the database)."""
        now = time.time()
        with self.engine.begin() as conn:
            result = conn.execute(
                update(job_steps)
                .where(
                    job_steps.c.id == step.id,
                    (job_steps.c.status == "pending")
                    | ((job_steps.c.status == "running") & (job_steps.c.lease_expires_at < now)),
                )
                .values(
                    status="running",
                    attempts=step.attempts + 1,
                    worker_id=self.worker_id,
                    started_at=now,
                    finished_at=None,
                    error=None,
                    progress=0.0,
                    lease_expires_at=now + self.lease_s,
                )
            )
        return bool(result.rowcount)

    def _heartbeat(self, step_id: str, stop: threading.Event) -> None:
        # Keeps the lease alive while a step works without reporting progress (model loading, a long batch).
        while not stop.wait(self.lease_s / 3):
            with self.engine.begin() as conn:
                conn.execute(
                    update(job_steps)
                    .where(job_steps.c.id == step_id, job_steps.c.worker_id == self.worker_id)
                    .values(lease_expires_at=time.time() + self.lease_s)
                )

    def _run_step(self, job_id: str, step: Any, config: FlywheelConfig) -> bool:
        """Claim and run one step; False if another live worker holds it."""
        if not self._claim(step):
            return False
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(step.id, stop), daemon=True)
        beat.start()
        try:
            self._execute_step(job_id, step, config)
        finally:
            stop.set()
        return True

    def _execute_step(self, job_id: str, step: Any, config: FlywheelConfig) -> None:
        if step.candidate_id:
            self._set_candidate(
                step.candidate_id, status="running-evals", deployment_status="ready", started=True
            )
        handler: Callable[[str, Any, FlywheelConfig], dict[str, Any]] = {
            "datasets": self._datasets,
            "base-eval": self._evaluation,
            "icl-eval": self._evaluation,
            "customized-eval": self._evaluation,
            "customization": self._customization,
        }[step.kind]
        try:
            result = handler(job_id, step, config)
        except JobCancelled:
            self._set_step(
                step.id, status="cancelled", finished_at=time.time(), error="Job cancelled by user."
            )
            raise
        except Exception as exc:
            message = str(exc) if isinstance(exc, FlywheelError) else f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, FlywheelError):
                log.error("step %s of job %s failed:\n%s", step.name, job_id, traceback.format_exc())
            self._set_step(step.id, status="failed", finished_at=time.time(), error=message)
            if step.kind == "datasets":
                # Nothing else can run without datasets: the job fails with the reason.
                self._end_job(job_id, "failed", "Datasets could not be built.", message)
                raise _JobFailed(message) from exc
            self._after_candidate_failure(job_id, step, message)
            return
        status = "skipped" if result.get("skipped") else "completed"
        self._set_step(
            step.id,
            status=status,
            finished_at=time.time(),
            progress=100.0,
            result=result,
            lease_expires_at=None,
        )
        if step.candidate_id:
            self._maybe_finish_candidate(job_id, step.candidate_id)

    # ------------------------------------------------------------------------------------------------ steps

    def _datasets(self, job_id: str, step: Any, config: FlywheelConfig) -> dict[str, Any]:
        from flywheel.pipeline.datasets import build_datasets, resolve_data_settings

        row = self.repo.get_row(job_id)
        request = orjson.loads(row.request)
        settings = resolve_data_settings(
            config, None
        )  # overrides were merged into the job's config at creation
        out_dir = job_dir(self.home, job_id) / "datasets"
        build = build_datasets(
            self.engine,
            row.workload_id,
            row.client_id,
            out_dir=out_dir,
            split=settings.split,
            icl=settings.icl,
            evaluation=settings.evaluation,
            curation=settings.curation,
            workers=settings.curation.workers,
            since=request.get("since"),
            until=request.get("until"),
        )
        manifest = build.manifest
        ts = int(row.created_at)
        names = {"eval": "eval", "icl_eval": "icl", "train": "train", "val": "val"}
        datasets = [
            {
                "name": f"flywheel-{names[key]}-{row.workload_id}-{ts}",
                "num_records": int(manifest["artifacts"][key]["records"]),
                "nmp_uri": None,
                "path": str(build.paths[key]),
            }
            for key in ("eval", "icl_eval", "train", "val")
            if key in manifest["artifacts"]
        ]
        self.repo.set_job(job_id, num_records=int(manifest["selected"]), datasets=datasets, manifest=manifest)
        return {"out_dir": str(build.out_dir), "paths": {k: str(v) for k, v in build.paths.items()}}

    def _nim(self, config: FlywheelConfig, step: Any) -> NIMConfig:
        name = step.name.split(":", 1)[1]
        return next(n for n in config.nims if n.model_name == name)

    def _evaluation(self, job_id: str, step: Any, config: FlywheelConfig) -> dict[str, Any]:
        from flywheel.pipeline.datasets import read_jsonl
        from flywheel.pipeline.experiments import run_evaluation

        nim = self._nim(config, step)
        datasets = self._step_result(job_id, "datasets")
        assert datasets is not None, "datasets step must have completed"
        key = "icl_eval" if step.kind == "icl-eval" else "eval"
        path = datasets["paths"].get(key)
        if path is None:
            return {"skipped": f"no {key} dataset was built"}
        records = read_jsonl(Path(path))
        if config.evaluation_config.limit is not None:
            records = records[: config.evaluation_config.limit]
        if not records:
            return {"skipped": f"the {key} dataset is empty"}
        adapter_dir = None
        if step.kind == "customized-eval":
            trained = self._step_result(job_id, f"customization:{nim.model_name}")
            if trained is None:
                raise FlywheelError(
                    "The customization step did not complete, so there is no model to evaluate."
                )
            adapter_dir = Path(trained["adapter_dir"])
        manifest = orjson.loads(self.repo.get_row(job_id).manifest or "{}")
        workload_type = manifest.get("workload_type") or config.evaluation_config.workload_type
        eval_id = self._start_evaluation(job_id, step, nim)
        throttle = _Throttle(PROGRESS_INTERVAL_S)

        def progress(fraction: float) -> None:
            if throttle.ready(fraction >= 1.0):
                self._set_progress(step.id, 100.0 * fraction, evaluation_id=eval_id)

        judge, no_judge_reason = self._judge(config, workload_type)
        started = time.time()
        try:
            backend = self.backends.inference(nim, adapter_dir=adapter_dir)
            result = run_evaluation(
                backend,
                records,
                workload_type=workload_type,
                judge=judge,
                candidate_model=nim.model_name,
                no_judge_reason=no_judge_reason,
                max_tokens=config.evaluation_config.max_new_tokens,
                bootstrap_samples=config.evaluation_config.bootstrap_samples,
                confidence=config.evaluation_config.confidence,
                seed=config.data_split_config.random_seed or 0,
                on_progress=progress,
                should_stop=lambda: self.repo.cancel_requested(job_id),
            )
        except JobCancelled:
            self._end_evaluation(eval_id, "cancelled", started, error="Job cancelled by user.")
            raise
        except Exception as exc:
            self._end_evaluation(eval_id, "failed", started, error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            if judge is not None:
                judge.close()
        self._store_evaluation(eval_id, result, started)
        if config.mlflow_config.enabled:
            self._track(job_id, step, nim, eval_id, result.to_json(), config, adapter_dir)
        return {"evaluation_id": eval_id, "scores": result.scores}

    def _track(
        self,
        job_id: str,
        step: Any,
        nim: NIMConfig,
        eval_id: str,
        result: dict[str, Any],
        config: FlywheelConfig,
        adapter_dir: Path | None,
    ) -> None:
        from flywheel.service.jobs._mlflow import log_evaluation

        curves = None
        if step.kind == "customized-eval":
            with self.engine.connect() as conn:
                metrics = conn.scalar(
                    select(customizations.c.metrics).where(
                        customizations.c.job_id == job_id, customizations.c.candidate_id == step.candidate_id
                    )
                )
            curves = {
                k: v for k, v in (orjson.loads(metrics) if metrics else {}).items() if k.endswith("loss")
            }
        uri = log_evaluation(
            config.mlflow_config,
            job_id=job_id,
            workload_id=self.repo.get_row(job_id).workload_id,
            candidate=nim.model_name,
            eval_type=step.kind,
            result=result,
            params={
                "epochs": config.training_config.epochs,
                "batch_size": config.training_config.batch_size,
                "learning_rate": config.training_config.learning_rate,
                "adapter_dim": config.lora_config.adapter_dim,
                "eval_size": config.data_split_config.eval_size,
            },
            manifest_path=job_dir(self.home, job_id) / "datasets" / "manifest.json",
            training_curves=curves,
            adapter_dir=adapter_dir,
        )
        if uri is not None:
            with self.engine.begin() as conn:
                conn.execute(update(evaluations).where(evaluations.c.id == eval_id).values(mlflow_uri=uri))

    def _judge(self, config: FlywheelConfig, workload_type: str) -> tuple[Any, str]:
        if workload_type == "classification":
            return None, "classification is scored without a judge"
        if (
            workload_type == "tool_calling"
            and config.evaluation_config.tool_eval_type == "tool-calling-metric"
        ):
            return None, "evaluation_config.tool_eval_type is tool-calling-metric"
        judge_config = config.llm_judge_config
        if judge_config is None:
            return None, "no LLM judge configured (llm_judge_config is null)"
        from flywheel.pipeline.evaluate import build_judge, resolve_judge_api_key

        key = resolve_judge_api_key(judge_config, self.env)

        def local_judge(cfg: Any) -> InferenceBackend:
            # A local judge is one more local candidate as far as the engine is concerned.
            nim = NIMConfig(
                model_name=cfg.model_name or cfg.model_path, backend="local", model_path=cfg.model_path
            )
            return self.backends.inference(nim)

        return build_judge(judge_config, key, local_backend_factory=local_judge), ""

    def _customization(self, job_id: str, step: Any, config: FlywheelConfig) -> dict[str, Any]:
        from flywheel.pipeline.datasets import read_jsonl

        nim = self._nim(config, step)
        datasets = self._step_result(job_id, "datasets")
        assert datasets is not None
        train = read_jsonl(Path(datasets["paths"]["train"]))
        val = read_jsonl(Path(datasets["paths"]["val"])) if "val" in datasets["paths"] else []
        if not train:
            raise FlywheelError(
                "The training set is empty; lower data_split_config.eval_size or ingest more logs."
            )
        with self.engine.begin() as conn:
            conn.execute(
                delete(customizations).where(
                    customizations.c.job_id == job_id, customizations.c.candidate_id == step.candidate_id
                )
            )
            custom_id = new_id()
            conn.execute(
                insert(customizations).values(
                    id=custom_id,
                    job_id=job_id,
                    candidate_id=step.candidate_id,
                    status="running",
                    started_at=time.time(),
                    runtime_seconds=0.0,
                    progress=0.0,
                    epochs_completed=0,
                    steps_completed=0,
                )
            )
        started = time.time()
        curve: dict[str, list[list[float]]] = {"train_loss": [], "val_loss": [], "tokens_per_s": []}
        throttle = _Throttle(PROGRESS_INTERVAL_S)

        def on_progress(p: TrainingProgress) -> None:
            if p.loss is not None:
                curve["train_loss"].append([p.step, p.loss])
            if p.val_loss is not None:
                curve["val_loss"].append([p.step, p.val_loss])
            if p.tokens_per_s is not None:
                curve["tokens_per_s"].append([p.step, p.tokens_per_s])
            pct = 100.0 * p.step / max(p.total_steps, 1)
            if throttle.ready(p.step >= p.total_steps or p.val_loss is not None):
                with self.engine.begin() as conn:
                    conn.execute(
                        update(customizations)
                        .where(customizations.c.id == custom_id)
                        .values(
                            progress=pct,
                            steps_completed=p.step,
                            epochs_completed=int(p.epoch),
                            runtime_seconds=time.time() - started,
                            metrics=_dumps(curve),
                        )
                    )
                self._set_progress(step.id, pct)

        out_dir = job_dir(self.home, job_id) / "adapters" / _safe(nim.model_name)
        try:
            trainer = self.backends.training(nim, config.training_config, config.lora_config)
            adapter = trainer.train(
                train,
                val,
                out_dir,
                on_progress=on_progress,
                should_stop=lambda: self.repo.cancel_requested(job_id),
            )
        except JobCancelled:
            self._end_customization(custom_id, "cancelled", started, curve, error="Job cancelled by user.")
            raise
        except Exception as exc:
            self._end_customization(custom_id, "failed", started, curve, error=f"{type(exc).__name__}: {exc}")
            raise
        curve["train_loss"] = [[s, v] for s, v in adapter.train_losses] or curve["train_loss"]
        curve["val_loss"] = [[s, v] for s, v in adapter.val_losses] or curve["val_loss"]
        self._end_customization(
            custom_id,
            "completed",
            started,
            {**curve, "summary": adapter.metrics, "stopped_early": adapter.stopped_early},
            adapter_path=str(adapter.adapter_dir),
            customized_model=f"{nim.model_name}@{job_id}",
            steps=adapter.steps_completed,
            epochs=adapter.epochs_completed,
        )
        return {"customization_id": custom_id, "adapter_dir": str(adapter.adapter_dir)}

    # ------------------------------------------------------------------------------------------------ rows

    def _set_progress(self, step_id: str, pct: float, *, evaluation_id: str | None = None) -> None:
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(
                update(job_steps)
                .where(job_steps.c.id == step_id)
                .values(progress=pct, lease_expires_at=now + self.lease_s)
            )
            if evaluation_id is not None:
                conn.execute(
                    update(evaluations).where(evaluations.c.id == evaluation_id).values(progress=pct)
                )

    def _start_evaluation(self, job_id: str, step: Any, nim: NIMConfig) -> str:
        eval_id = new_id()
        with self.engine.begin() as conn:
            # a re-run replaces what an interrupted attempt left behind
            old = select(evaluations.c.id).where(
                evaluations.c.job_id == job_id,
                evaluations.c.candidate_id == step.candidate_id,
                evaluations.c.eval_type == step.kind,
            )
            conn.execute(delete(evaluation_samples).where(evaluation_samples.c.evaluation_id.in_(old)))
            conn.execute(
                delete(evaluations).where(
                    evaluations.c.job_id == job_id,
                    evaluations.c.candidate_id == step.candidate_id,
                    evaluations.c.eval_type == step.kind,
                )
            )
            conn.execute(
                insert(evaluations).values(
                    id=eval_id,
                    job_id=job_id,
                    candidate_id=step.candidate_id,
                    eval_type=step.kind,
                    status="running",
                    scores="{}",
                    started_at=time.time(),
                    runtime_seconds=0.0,
                    progress=0.0,
                )
            )
        return eval_id

    def _end_evaluation(self, eval_id: str, status: str, started: float, *, error: str | None = None) -> None:
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(
                update(evaluations)
                .where(evaluations.c.id == eval_id)
                .values(status=status, finished_at=now, runtime_seconds=now - started, error=error)
            )

    def _store_evaluation(self, eval_id: str, result: Any, started: float) -> None:
        full = result.to_json(include_samples=True)
        samples = full.pop("samples", [])
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(
                update(evaluations)
                .where(evaluations.c.id == eval_id)
                .values(
                    status="completed",
                    scores=_dumps(result.scores),
                    result=_dumps(full),
                    finished_at=now,
                    runtime_seconds=now - started,
                    progress=100.0,
                )
            )
            if samples:
                conn.execute(
                    insert(evaluation_samples),
                    [
                        {
                            "evaluation_id": eval_id,
                            "position": i,
                            "record_id": s.get("record_id"),
                            "score": sample_score(s),
                            "sample": _dumps(s),
                        }
                        for i, s in enumerate(samples)
                    ],
                )

    def _end_customization(
        self,
        custom_id: str,
        status: str,
        started: float,
        metrics: dict[str, Any],
        *,
        error: str | None = None,
        adapter_path: str | None = None,
        customized_model: str | None = None,
        steps: int | None = None,
        epochs: int | None = None,
    ) -> None:
        now = time.time()
        values: dict[str, Any] = {
            "status": status,
            "finished_at": now,
            "runtime_seconds": now - started,
            "metrics": _dumps(metrics),
            "error": error,
        }
        if status == "completed":
            values.update(progress=100.0, adapter_path=adapter_path, customized_model=customized_model)
        if steps is not None:
            values["steps_completed"] = steps
        if epochs is not None:
            values["epochs_completed"] = epochs
        with self.engine.begin() as conn:
            conn.execute(update(customizations).where(customizations.c.id == custom_id).values(**values))

    def _set_candidate(self, candidate_id: str, *, started: bool = False, **values: Any) -> None:
        with self.engine.begin() as conn:
            if started:
                conn.execute(
                    update(job_candidates)
                    .where(job_candidates.c.id == candidate_id, job_candidates.c.started_at.is_(None))
                    .values(started_at=time.time())
                )
            conn.execute(
                update(job_candidates)
                .where(job_candidates.c.id == candidate_id, job_candidates.c.finished_at.is_(None))
                .values(**values)
            )

    def _after_candidate_failure(self, job_id: str, step: Any, message: str) -> None:
        """A failed step fails what depends on it (customized-eval after customization) and its candidate."""
        if step.kind == "customization":
            with self.engine.begin() as conn:
                conn.execute(
                    update(job_steps)
                    .where(
                        job_steps.c.job_id == job_id,
                        job_steps.c.candidate_id == step.candidate_id,
                        job_steps.c.kind == "customized-eval",
                        job_steps.c.status == "pending",
                    )
                    .values(status="failed", error="Customization failed, so there is no fine-tuned model.")
                )
        self._maybe_finish_candidate(job_id, step.candidate_id)

    def _maybe_finish_candidate(self, job_id: str, candidate_id: str) -> None:
        with self.engine.connect() as conn:
            rows = list(
                conn.execute(
                    select(job_steps.c.name, job_steps.c.status, job_steps.c.error).where(
                        job_steps.c.job_id == job_id, job_steps.c.candidate_id == candidate_id
                    )
                )
            )
            started = conn.scalar(
                select(job_candidates.c.started_at).where(job_candidates.c.id == candidate_id)
            )
        if any(r.status in ("pending", "running") for r in rows):
            return
        errors = [f"{r.name}: {r.error}" for r in rows if r.status == "failed"]
        now = time.time()
        self._set_candidate(
            candidate_id,
            status="failed" if errors else "completed",
            deployment_status="completed",
            error="; ".join(errors) or None,
            finished_at=now,
            runtime_seconds=now - (started or now),
        )

    def _end_job(self, job_id: str, status: str, reason: str, job_error: str | None = None) -> None:
        """End every unfinished step, evaluation, customization and candidate with ``status`` and ``reason``,
        then the job itself (with ``job_error``, default ``reason``)."""
        now = time.time()
        with self.engine.begin() as conn:
            for table in (job_steps, evaluations, customizations):
                conn.execute(
                    update(table)
                    .where(table.c.job_id == job_id, table.c.status.in_(("pending", "running")))
                    .values(status=status, error=reason, finished_at=now)
                )
            conn.execute(
                update(job_candidates)
                .where(job_candidates.c.job_id == job_id, job_candidates.c.finished_at.is_(None))
                .values(status=status, error=reason, finished_at=now)
            )
        self.repo.finish_job(job_id, status, job_error or reason)

    def _finalize(self, job_id: str) -> str:
        steps = self._steps(job_id)
        finalize = next(s for s in steps if s.kind == "finalize")
        evals = [s for s in steps if s.kind.endswith("eval")]
        completed = [s for s in evals if s.status == "completed"]
        now = time.time()
        if completed:
            status, error = "completed", None
        else:
            reasons = [f"{s.name}: {s.error}" for s in steps if s.status == "failed" and s.error]
            status = "failed"
            error = "No evaluation succeeded. " + (
                "; ".join(reasons) if reasons else "Nothing was evaluated."
            )
        self._set_step(finalize.id, status="completed", started_at=now, finished_at=now, progress=100.0)
        self.repo.finish_job(job_id, status, error)
        config = FlywheelConfig.model_validate(self.repo.job_config(job_id))
        if completed and config.mlflow_config.enabled:
            from flywheel.service.jobs._mlflow import log_report
            from flywheel.service.jobs._report import job_report

            try:
                report = job_report(self.engine, job_id)
            except Exception:  # tracking must never turn a finished job into a crashed runner
                log.exception("could not build the report of job %s for MLflow", job_id)
            else:
                log_report(config.mlflow_config, job_id=job_id, report=report)
        return status


class _JobFailed(Exception):
    """Internal: the job already failed (datasets could not be built); stop the step loop."""


#: Per-sample score used to sort and filter divergent samples, by what the sample was scored on.
SAMPLE_SCORE_KEYS = ("accuracy", "function_name_and_args_accuracy", "similarity", "rouge_l")


def sample_score(sample: dict[str, Any]) -> float | None:
    """The headline per-sample score (1 = agrees with the teacher), or None if the sample was not scored."""
    scores = sample.get("scores") or {}
    for key in SAMPLE_SCORE_KEYS:
        if scores.get(key) is not None:
            return float(scores[key])
    return None


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
