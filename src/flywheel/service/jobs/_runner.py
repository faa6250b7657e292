"""Running a job: durable steps around the pipeline's experiments. Orchestration only — persistence is the
repository's (:class:`JobRepository`), the work is the pipeline's (:mod:`flywheel.pipeline.experiments`).

    datasets → for every candidate: candidate_sequence (base-eval → icl-eval → [customization → customized-eval])
             → finalize

A candidate whose backend serves models (``nemo``: its base NIM through the Deployment Manager) is deployed before
each of its evaluations (reused when it is up), recorded in the step as soon as flywheel started it — before any
wait — and shut down when the candidate's steps have ended or the job ends, only if flywheel started it. A worker
that shuts down leaves remote work (a deployment coming up, a customization job) running; the one that resumes the
job re-attaches to it (the customization's output folder is the same on every attempt).

Every step is a durable row with status, progress, attempts, timings, error and result. A step that completed is
never run again, so re-running a job after a crash or restart resumes where it stopped; a step that was interrupted
is re-run from its start (its partial rows are replaced). The same code runs in the in-process executor and in
Celery workers.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flywheel.backends import DeploymentBackend, StopCheck, TrainingProgress
from flywheel.config._models import NMPConfig
from flywheel.errors import FlywheelError, JobCancelled
from flywheel.ids import safe_name
from flywheel.pipeline.evaluate import sample_score
from flywheel.pipeline.experiments import EVAL_DATASET, Experiment, LossCurves, customize, run_evaluation
from flywheel.service.jobs._backends import BackendFactory, ServingFactory
from flywheel.service.jobs._plan import JobSettings, job_dir
from flywheel.service.jobs._repository import JobRepository
from flywheel.service.jobs._rows import StepKind, StepRow

log = logging.getLogger(__name__)

#: Minimum seconds between two progress writes of one step (progress is cheap to compute, not to store).
PROGRESS_INTERVAL_S = 1.0
#: Jobs whose validated configuration a runner keeps (a Celery worker serves many jobs).
_JOB_CACHE_SIZE = 32
#: What :meth:`JobRunner.advance` returns when the runner was interrupted (shutdown): the job is not finished.
INTERRUPTED = "interrupted"
_CANCELLED = "Job cancelled by user."


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


class _JobFailed(Exception):
    """Internal: the job already failed (datasets could not be built); stop the step loop."""


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
        self.home = Path(home)
        self.backends = backends
        self.env = dict(env or {})
        self.worker_id = worker_id
        self.lease_s = lease_s
        self._jobs: OrderedDict[str, JobSettings] = OrderedDict()
        self._stopping = threading.Event()

    # ------------------------------------------------------------------------------------------------ driver

    def interrupt(self) -> None:
        """Shut down: running steps stop at their next check (between batches or training steps) and go back to
        ``pending`` with their lease released, so the job resumes on the next start or another worker; nothing is
        cancelled. Steps are not started any more; :meth:`advance` returns :data:`INTERRUPTED`."""
        self._stopping.set()

    def run(self, job_id: str) -> str:
        """Run (or resume) every unfinished step of a job in this thread; return its final status."""
        while True:
            status = self.advance(job_id)
            if status is not None:
                return status

    def advance(self, job_id: str) -> str | None:
        """Run the job's next unfinished step; return the job's final status once it has one, else ``None``.

        Returns ``"busy"`` when the next step is held by another live worker (its lease has not expired), and
        :data:`INTERRUPTED` once :meth:`interrupt` was called. Never raises for a job's own failures: they end the
        job with the reason.
        """
        row = self.repo.job(job_id)
        if row.finished_at is not None:
            # ended without this runner (a cancel between two steps): what it deployed is still shut down
            self._shut_down_deployments(job_id)
            return row.status
        if self._stopping.is_set():
            return INTERRUPTED
        if row.status == "pending":
            self.repo.set_job(job_id, status="running")
        final: str | None = None
        try:
            if self.repo.cancel_requested(job_id):
                raise JobCancelled(_CANCELLED)
            step = self.repo.next_step(job_id)
            if step is None or step.kind is StepKind.FINALIZE:
                final = self._finalize(self._job(job_id))
            elif not self.run_step(step):
                return "busy"
        except _JobFailed:
            final = "failed"
        except JobCancelled as exc:
            if self._interrupted(job_id):
                return INTERRUPTED
            self.repo.end_job(job_id, "cancelled", str(exc))
            final = "cancelled"
        except Exception as exc:  # a bug must still end the job, never leave it "running"
            log.exception("job %s failed", job_id)
            cause = f"{type(exc).__name__}: {exc}"
            self.repo.end_job(job_id, "failed", cause, f"Internal error: {cause}")
            final = "failed"
        if final is not None:
            self._shut_down_deployments(job_id)
            self._jobs.pop(job_id, None)
            self.backends.release()
        return final

    def next_step(self, job_id: str) -> StepRow | None:
        """The first step of the job that has not ended (``finalize`` is the last one), or None."""
        return self.repo.next_step(job_id)

    def run_step(self, step: StepRow) -> bool:
        """Claim ``step`` under a lease and run it; False if another live worker holds it."""
        if not self.repo.claim_step(step, self.worker_id, self.lease_s):
            return False
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(step.id, stop), daemon=True)
        beat.start()
        try:
            self._execute(self._job(step.job_id), step)
        finally:
            stop.set()
        return True

    def _job(self, job_id: str) -> JobSettings:
        job = self._jobs.get(job_id)
        if job is None:
            job = self._jobs[job_id] = JobSettings.from_row(self.repo.job(job_id))
            while len(self._jobs) > _JOB_CACHE_SIZE:
                self._jobs.popitem(last=False)
        return job

    def _should_stop(self, job_id: str) -> bool:
        """Polled by long work between batches and training steps."""
        return self._stopping.is_set() or self.repo.cancel_requested(job_id)

    def _stop_check(self, job_id: str) -> StopCheck:
        """:meth:`_should_stop` for remote work, saying whether the job was cancelled (stop the remote work too) or
        only this worker stops (leave it running for the worker that resumes the job)."""
        return StopCheck(lambda: self._should_stop(job_id), lambda: self.repo.cancel_requested(job_id))

    def _interrupted(self, job_id: str) -> bool:
        """The work stopped because this runner shuts down, not because the user cancelled the job."""
        return self._stopping.is_set() and not self.repo.cancel_requested(job_id)

    def _stop_reason(self, job_id: str) -> str:
        if self._interrupted(job_id):
            return f"Interrupted: worker {self.worker_id} shut down; this runs again when the job resumes."
        return _CANCELLED

    def _ending(self, job_id: str, exc: Exception) -> tuple[str, str]:
        """(status, error) of an evaluation or customization that ``exc`` ended."""
        if isinstance(exc, JobCancelled):
            return "cancelled", self._stop_reason(job_id)
        return "failed", f"{type(exc).__name__}: {exc}"

    def _heartbeat(self, step_id: str, stop: threading.Event) -> None:
        # Keeps the lease alive while a step works without reporting progress (model loading, a long batch).
        while not stop.wait(self.lease_s / 3):
            try:
                self.repo.renew_lease(step_id, self.worker_id, self.lease_s)
            except Exception:  # a store hiccup must not end the heartbeat: the step would be taken from us
                log.warning("could not renew the lease of step %s; retrying", step_id, exc_info=True)

    def _execute(self, job: JobSettings, step: StepRow) -> None:
        if step.candidate_id:
            self.repo.start_candidate(step.candidate_id)
        try:
            if step.kind is StepKind.DATASETS:
                result = self._datasets(job)
            elif step.kind is StepKind.CUSTOMIZATION:
                result = self._customization(job, step)
            else:
                result = self._evaluation(job, step)
        except JobCancelled:
            if self._interrupted(job.id):
                self.repo.release_step(step.id, self._stop_reason(job.id))
            else:
                self.repo.end_step(step.id, "cancelled", error=_CANCELLED)
            raise
        except Exception as exc:
            message = str(exc) if isinstance(exc, FlywheelError) else f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, FlywheelError):
                log.error("step %s of job %s failed:\n%s", step.name, job.id, traceback.format_exc())
            self.repo.end_step(step.id, "failed", error=message)
            if step.kind is StepKind.DATASETS:
                # Nothing else can run without datasets: the job fails with the reason.
                self.repo.end_job(job.id, "failed", "Datasets could not be built.", message)
                raise _JobFailed(message) from exc
            if step.kind is StepKind.CUSTOMIZATION and step.candidate_id:
                error = "Customization failed, so there is no fine-tuned model."
                self.repo.fail_pending_steps(job.id, step.candidate_id, StepKind.CUSTOMIZED_EVAL, error)
        else:
            self.repo.end_step(step.id, "skipped" if result.get("skipped") else "completed", result=result)
        if step.candidate_id:
            self._finish_candidate_if_done(job.id, step.candidate_id)

    # ------------------------------------------------------------------------------------------------ steps

    def _datasets(self, job: JobSettings) -> dict[str, Any]:
        from flywheel.pipeline.datasets import build_datasets

        out_dir = job_dir(self.home, job.id) / "datasets"
        build = build_datasets(
            self.repo.engine, job.workload_id, job.client_id, out_dir=out_dir, **job.dataset_options()
        )
        manifest = build.manifest
        datasets = job.dataset_entries(manifest, build.paths)
        self.repo.set_job(job.id, num_records=int(manifest["selected"]), datasets=datasets, manifest=manifest)
        return {"out_dir": str(build.out_dir), "paths": {k: str(v) for k, v in build.paths.items()}}

    def _dataset_paths(self, job: JobSettings) -> dict[str, Path]:
        """The files the datasets step built, by artifact (``eval``, ``icl_eval``, ``train``, ``val``)."""
        built = self.repo.step_result(job.id, StepKind.DATASETS)
        assert built is not None, "the datasets step must have completed"
        return {key: Path(path) for key, path in built["paths"].items()}

    def _evaluation(self, job: JobSettings, step: StepRow) -> dict[str, Any]:
        from flywheel.pipeline.datasets import read_jsonl

        key = EVAL_DATASET[Experiment(step.kind.value)]
        path = self._dataset_paths(job).get(key)
        if path is None:
            return {"skipped": f"no {key} dataset was built"}
        records = read_jsonl(path)
        if not records:
            return {"skipped": f"the {key} dataset is empty"}
        adapter_dir = None
        if step.kind is StepKind.CUSTOMIZED_EVAL:
            trained = self.repo.step_result(job.id, StepKind.CUSTOMIZATION, step.candidate)
            if trained is None:
                raise FlywheelError(
                    "The customization step did not complete, so there is no model to evaluate."
                )
            adapter_dir = Path(trained["adapter_dir"])
        assert step.candidate_id is not None
        nim = job.nim(step.candidate)
        settings = job.eval_settings((self.repo.job(job.id).manifest or {}).get("workload_type"))
        eval_id = self.repo.start_evaluation(job.id, step.candidate_id, step.kind.value)
        throttle = _Throttle(PROGRESS_INTERVAL_S)

        def progress(fraction: float) -> None:
            if throttle.ready(fraction >= 1.0):
                self.repo.step_progress(step.id, 100.0 * fraction, self.lease_s, evaluation_id=eval_id)

        judge, no_judge_reason = self._judge(job, settings.workload_type)
        started = time.time()
        try:
            self._serve(job, step)
            backend = self.backends.inference(nim, adapter_dir=adapter_dir)
            result = run_evaluation(
                backend,
                records,
                settings,
                judge=judge,
                no_judge_reason=no_judge_reason,
                candidate_model=nim.model_name,
                on_progress=progress,
                should_stop=lambda: self._should_stop(job.id),
            )
        except Exception as exc:
            status, error = self._ending(job.id, exc)
            self.repo.end_evaluation(eval_id, status, started, error=error)
            raise
        finally:
            if judge is not None:
                judge.close()
        full = result.to_json(include_samples=True)
        samples = full.pop("samples", [])
        self.repo.complete_evaluation(
            eval_id,
            started,
            scores=result.scores,
            result=full,
            samples=[(s, sample_score(s)) for s in samples],
        )
        if job.config.mlflow_config.enabled:
            from flywheel.service.jobs._mlflow import track_evaluation

            track_evaluation(
                self.repo, job.config, job_id=job.id, workload_id=job.workload_id, step=step, eval_id=eval_id,
                result=result.to_json(), adapter_dir=adapter_dir,
                manifest_path=job_dir(self.home, job.id) / "datasets" / "manifest.json",
            )  # fmt: skip
        return {"evaluation_id": eval_id, "scores": result.scores}

    def _judge(self, job: JobSettings, workload_type: str) -> tuple[Any, str]:
        from flywheel.pipeline.evaluate import build_judge, resolve_judge_api_key

        judge_config, no_judge_reason = job.judge_plan(workload_type)
        if judge_config is None:
            return None, no_judge_reason
        key = resolve_judge_api_key(judge_config, self.env)
        judge = build_judge(
            judge_config, key, inference=self.backends.inference, nmp=self._nmp(job), env=self.env
        )
        return judge, ""

    def _nmp(self, job: JobSettings) -> NMPConfig:
        """Where the NeMo platform is: the backend factory's (:class:`ConfiguredBackends` holds the service's
        ``nmp_config``, which its candidates use too), else the job's frozen copy (a factory that does not say)."""
        nmp: NMPConfig | None = getattr(self.backends, "nmp", None)
        return nmp if nmp is not None else job.config.nmp_config

    def _customization(self, job: JobSettings, step: StepRow) -> dict[str, Any]:
        from flywheel.pipeline.datasets import read_jsonl

        assert step.candidate_id is not None
        nim = job.nim(step.candidate)
        paths = self._dataset_paths(job)
        train = read_jsonl(paths["train"]) if "train" in paths else []
        val = read_jsonl(paths["val"]) if "val" in paths else []
        custom_id = self.repo.start_customization(job.id, step.candidate_id)
        started = time.time()
        curves = LossCurves()
        throttle = _Throttle(PROGRESS_INTERVAL_S)

        def on_progress(p: TrainingProgress) -> None:
            if throttle.ready(p.step >= p.total_steps or p.val_loss is not None):
                pct = 100.0 * p.step / max(p.total_steps, 1)
                self.repo.customization_progress(
                    custom_id, pct=pct, steps=p.step, epochs=int(p.epoch), runtime_s=time.time() - started,
                    metrics=curves.to_json(),
                )  # fmt: skip
                self.repo.step_progress(step.id, pct, self.lease_s)

        try:
            done = customize(
                self.backends.training(nim, job.config.training_config, job.config.lora_config),
                train,
                val,
                # the same folder on every attempt: a remote backend re-attaches to the job it recorded there
                job_dir(self.home, job.id) / "adapters" / safe_name(nim.model_name),
                curves=curves,
                on_progress=on_progress,
                should_stop=self._stop_check(job.id),
            )
        except Exception as exc:
            status, error = self._ending(job.id, exc)
            self.repo.end_customization(custom_id, status, started, curves.to_json(), error=error)
            raise
        self.repo.end_customization(
            custom_id,
            "completed",
            started,
            done.metrics(),
            adapter_path=str(done.adapter_dir),
            customized_model=f"{nim.model_name}@{job.id}",
            steps=done.adapter.steps_completed,
            epochs=done.adapter.epochs_completed,
        )
        return {"customization_id": custom_id, "adapter_dir": str(done.adapter_dir)}

    # ------------------------------------------------------------------------------------------------ serving

    def _deployment(self, nim_step: StepRow, record: dict[str, Any] | None) -> DeploymentBackend | None:
        """The deployment of the step's candidate, if its backend serves models; ``record``: the job's record of it."""
        if not isinstance(self.backends, ServingFactory):
            return None
        nim = self._job(nim_step.job_id).nim(nim_step.candidate)
        started = bool(record and record.get("started_by_flywheel"))
        return self.backends.deployment(nim, started_by_flywheel=started)

    def _deployment_record(self, job_id: str, candidate_id: str) -> tuple[StepRow, dict[str, Any]] | None:
        """The latest record of the candidate's deployment, and the step that holds it."""
        noted = [
            (s, s.result["deployment"])
            for s in self.repo.steps(job_id, candidate_id=candidate_id)
            if s.result and isinstance(s.result.get("deployment"), dict)
        ]
        return max(noted, key=lambda pair: pair[0].position) if noted else None

    def _serve(self, job: JobSettings, step: StepRow) -> None:
        """Before an evaluation: the candidate's model is served, when its backend serves models. A deployment
        flywheel starts is recorded in the step before the wait, so a worker that resumes after a crash knows it
        may shut it down."""
        assert step.candidate_id is not None
        found = self._deployment_record(job.id, step.candidate_id)
        deployment = self._deployment(step, found[1] if found else None)
        if deployment is None:
            return

        def record(status: str) -> None:
            entry = {"ref": deployment.ref, "started_by_flywheel": deployment.started_by_flywheel}
            self.repo.note_step(step.id, deployment={**entry, "status": status})

        try:
            deployment.deploy(should_stop=self._stop_check(job.id), on_started=lambda _d: record("deploying"))
        finally:
            deployment.close()
        record("ready")

    def _shut_down_deployment(self, job_id: str, candidate_id: str) -> None:
        """Shut the candidate's deployment down if flywheel started it (once); a failure is logged and recorded,
        never raised: the candidate's results stand."""
        found = self._deployment_record(job_id, candidate_id)
        if found is None:
            return
        step, record = found
        if not record.get("started_by_flywheel") or record.get("status") == "shut down":
            return
        deployment = self._deployment(step, record)
        if deployment is None:
            return
        try:
            deployment.undeploy()
            self.repo.note_step(step.id, deployment={**record, "status": "shut down"})
        except Exception as exc:
            log.warning("could not shut down deployment %s of job %s: %s", record.get("ref"), job_id, exc)
            self.repo.note_step(
                step.id, deployment={**record, "shutdown_error": f"{type(exc).__name__}: {exc}"}
            )
        finally:
            deployment.close()

    def _shut_down_deployments(self, job_id: str) -> None:
        """At the end of a job (completed, failed or cancelled): every deployment it started is shut down."""
        candidates = {s.candidate_id for s in self.repo.steps(job_id) if s.candidate_id}
        for candidate_id in sorted(candidates):
            try:
                self._shut_down_deployment(job_id, candidate_id)
            except Exception:  # building the deployment failed (configuration): the job's end must stand
                log.warning("could not shut down the deployments of job %s", job_id, exc_info=True)

    # ------------------------------------------------------------------------------------------------ endings

    def _finish_candidate_if_done(self, job_id: str, candidate_id: str) -> None:
        steps = self.repo.steps(job_id, candidate_id=candidate_id)
        if any(s.status in ("pending", "running") for s in steps):
            return
        errors = [f"{s.name}: {s.error}" for s in steps if s.status == "failed"]
        self.repo.finish_candidate(
            candidate_id, "failed" if errors else "completed", "; ".join(errors) or None
        )
        self._shut_down_deployment(job_id, candidate_id)

    def _finalize(self, job: JobSettings) -> str:
        steps = self.repo.steps(job.id)
        finalize = next(s for s in steps if s.kind is StepKind.FINALIZE)
        if any(s.kind.is_evaluation and s.status == "completed" for s in steps):
            status, error = "completed", None
        else:
            reasons = [f"{s.name}: {s.error}" for s in steps if s.status == "failed" and s.error]
            status = "failed"
            error = "No evaluation succeeded. " + (
                "; ".join(reasons) if reasons else "Nothing was evaluated."
            )
        self.repo.end_step(finalize.id, "completed", started_at=time.time())
        self.repo.finish_job(job.id, status, error)
        if status == "completed" and job.config.mlflow_config.enabled:
            from flywheel.service.jobs._mlflow import track_report

            track_report(self.repo, job.config, job.id)
        return status
