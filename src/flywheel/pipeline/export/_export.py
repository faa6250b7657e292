"""Exporting a fine-tuned candidate of a finished job: its LoRA adapter, or its base model with the adapter merged in.

The straight line of :func:`export_candidate`:

    locate the job, candidate and adapter (refusing anything that cannot be exported, saying why)
    → stage the files next to the output directory (adapter copy, or the merged model from the local engine)
    → write the model card (README.md) and flywheel_export.json
    → move the staged files into the output directory

Nothing is written to the output directory until every file is staged, so a failed export leaves it as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from flywheel import __version__
from flywheel.backends.registry import backend_roles, build_merge_backend
from flywheel.errors import BackendError, ConflictError, DataError, NotFoundError
from flywheel.pipeline.export._card import render_card
from flywheel.pipeline.report import CandidateDetail, CustomizationDetail, JobDetail

#: The files of a PEFT LoRA adapter that are exported (what ``PeftModel.from_pretrained`` reads).
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
#: The machine-readable twin of the model card; also marks a directory as an earlier export (for ``force``).
FACTS_FILE = "flywheel_export.json"
CARD_FILE = "README.md"
#: Version of the ``flywheel_export.json`` layout.
EXPORT_FORMAT_VERSION = 1

ExportKind = Literal["adapter", "merged"]

#: ``datasets[].name`` of a job is ``flywheel-{kind}-{workload_id}-{created}``; kind → split name.
_DATASET_KINDS = {"eval": "eval", "icl": "icl_eval", "train": "train", "val": "val"}
_JOB_KEYS = ("id", "workload_id", "client_id", "status", "started_at", "finished_at", "workload_type")


class JobReader(Protocol):
    """What export reads of a job; :class:`flywheel.service.jobs.JobRepository` provides it."""

    def detail(self, job_id: str) -> JobDetail:
        """The job in the reference's detail shape (``nims[].evaluations[]``, ``customizations[]``)."""
        ...

    def job_config(self, job_id: str) -> dict[str, Any]:
        """The effective configuration the job ran with."""
        ...

    def adapter_path(self, job_id: str, candidate: str) -> str | None:
        """Where the candidate's completed customization saved its adapter (None if none was stored)."""
        ...


@dataclass(frozen=True)
class ExportedFile:
    """One file of an export, relative to the output directory."""

    path: str
    bytes: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "bytes": self.bytes, "sha256": self.sha256}


@dataclass
class ExportResult:
    """What :func:`export_candidate` wrote: the directory, its files and the facts of ``flywheel_export.json``."""

    out_dir: Path
    kind: ExportKind
    files: list[ExportedFile]
    facts: dict[str, Any]

    @property
    def total_bytes(self) -> int:
        """Size of every file written (model card and facts file included)."""
        return sum(f.bytes for f in self.files)

    def to_json(self) -> dict[str, Any]:
        """``{"out_dir", "kind", "total_bytes", "files": [...], "facts": {...}}``."""
        return {
            "out_dir": str(self.out_dir),
            "kind": self.kind,
            "total_bytes": self.total_bytes,
            "files": [f.to_json() for f in self.files],
            "facts": self.facts,
        }


@dataclass
class _Located:
    """A finished job's candidate whose adapter can be exported."""

    detail: JobDetail
    config: dict[str, Any]
    nim_config: dict[str, Any]
    nim_detail: CandidateDetail
    customization: CustomizationDetail
    adapter_dir: Path


def export_candidate(
    jobs: JobReader,
    job_id: str,
    candidate: str,
    out_dir: Path,
    *,
    merged: bool = False,
    force: bool = False,
    dtype: str = "float32",
    cache_dir: Path | None = None,
) -> ExportResult:
    """Export the fine-tuned ``candidate`` of finished job ``job_id`` into ``out_dir`` with a model card.

    Args:
        jobs: where jobs are read from (a :class:`~flywheel.service.jobs.JobRepository`).
        job_id: a completed job.
        candidate: the candidate's ``model_name``; its customization must have completed.
        out_dir: the output directory; it must be new or empty unless ``force``.
        merged: export the base model with the adapter merged in (a plain transformers folder) instead of the
            PEFT adapter. Needs a candidate on the local backend and ``pip install 'flywheel[local]'``.
        force: write into a non-empty ``out_dir``; the files of an earlier export there are replaced, other files
            are left alone.
        dtype: weights dtype of a merged export (``float32``, ``bfloat16`` or ``float16``).
        cache_dir: the local engine's GGUF conversion cache (``<data dir>/cache/models``), so a merge does not
            convert the base model again.

    Raises:
        NotFoundError: unknown job or candidate.
        ConflictError: the job is not completed, the candidate was not fine-tuned (or its fine-tuning failed),
            ``out_dir`` is not empty without ``force``, or ``merged`` for a base model that is not on this machine.
        DataError: the adapter files are missing, or ``out_dir`` is a file.
    """
    out_dir = Path(out_dir).expanduser()
    located = _locate(jobs, job_id, candidate)
    _check_out_dir(out_dir, force)
    kind: ExportKind = "merged" if merged else "adapter"
    base = describe_base_model(located.nim_config)
    if merged and not base["local"]:
        raise ConflictError(
            f"Candidate {candidate!r} runs on backend {base['backend']!r}, so its base weights are not on this "
            "machine and the adapter cannot be merged here. Export the adapter without --merged and merge it where "
            "the base model lives (peft: PeftModel.from_pretrained(base, DIR).merge_and_unload())."
        )
    if merged and base.get("error"):
        raise BackendError(f"Cannot merge: {base['error']}")
    with _staging(out_dir) as stage:
        if merged:
            merger = build_merge_backend(base["backend"], base["model_path"], cache_dir=cache_dir)
            merger.save_merged(located.adapter_dir, stage, dtype=dtype)
        else:
            for name in ADAPTER_FILES:
                shutil.copy2(located.adapter_dir / name, stage / name)
        facts = _facts(located, base, kind, out_dir, dtype=dtype if merged else None)
        (stage / CARD_FILE).write_text(render_card(facts), encoding="utf-8")
        files = [_describe(stage, path) for path in sorted(stage.rglob("*")) if path.is_file()]
        facts["files"] = [f.to_json() for f in files]
        (stage / FACTS_FILE).write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")
        files.append(_describe(stage, stage / FACTS_FILE))
        _publish(stage, out_dir)
    return ExportResult(out_dir=out_dir, kind=kind, files=files, facts=facts)


# ------------------------------------------------------------------------------------------------ locating


def _locate(jobs: JobReader, job_id: str, candidate: str) -> _Located:
    try:
        detail = jobs.detail(job_id)
    except NotFoundError as exc:
        raise NotFoundError(f"Job {job_id!r} not found; list the jobs with `flywheel jobs list`.") from exc
    if detail["status"] != "completed":
        if detail.get("finished_at") is None:
            raise ConflictError(
                f"Job {job_id} is still {detail['status']}; export it once it has completed "
                f"(watch it with `flywheel jobs show {job_id}`)."
            )
        raise ConflictError(
            f"Job {job_id} ended {detail['status']}"
            + (f" ({detail['error']})" if detail.get("error") else "")
            + "; only a completed job's candidates can be exported. Run a new job."
        )
    names = [nim["model_name"] for nim in detail["nims"]]
    if candidate not in names:
        raise NotFoundError(
            f"Job {job_id} has no candidate {candidate!r}; its candidates are: {', '.join(names) or 'none'}."
        )
    nim_detail = next(nim for nim in detail["nims"] if nim["model_name"] == candidate)
    config = jobs.job_config(job_id)
    nim_config = next(nim for nim in config.get("nims", []) if nim["model_name"] == candidate)
    done = [c for c in nim_detail["customizations"] if c["status"] == "completed"]
    if not done:
        raise ConflictError(_not_fine_tuned(job_id, candidate, nim_config, nim_detail["customizations"]))
    stored = jobs.adapter_path(job_id, candidate)
    adapter_dir = Path(stored) if stored else None
    missing = [name for name in ADAPTER_FILES if adapter_dir is None or not (adapter_dir / name).is_file()]
    if adapter_dir is None or missing:
        where = f"in {str(adapter_dir)!r}" if adapter_dir is not None else "(no adapter path was stored)"
        raise DataError(
            f"The adapter of candidate {candidate!r} in job {job_id} is not on this machine: {', '.join(missing)} "
            f"missing {where}. The files may have been deleted, or backend {nim_config.get('backend')!r} does not "
            "write PEFT adapters here; run the job again with the local backend."
        )
    return _Located(detail, config, nim_config, nim_detail, done[-1], adapter_dir)


def _not_fine_tuned(
    job_id: str, candidate: str, nim_config: dict[str, Any], attempts: list[CustomizationDetail]
) -> str:
    if not attempts:
        return (
            f"Candidate {candidate!r} was not fine-tuned in job {job_id} (customization_enabled is "
            f"{str(bool(nim_config.get('customization_enabled'))).lower()} for it), so there is no adapter to "
            "export. Set nims[].customization_enabled: true and run a new job."
        )
    last = attempts[-1]
    return (
        f"The fine-tuning of candidate {candidate!r} in job {job_id} did not complete (status {last['status']}"
        + (f": {last['error']}" if last.get("error") else "")
        + "), so there is no adapter to export. Fix the cause and run a new job."
    )


def describe_base_model(nim: dict[str, Any]) -> dict[str, Any]:
    """The base model of a candidate (its ``nims[]`` entry): name, backend, ``model_path`` and, when its backend
    can merge adapters on this machine (``local``: true), where the weights are (as that backend resolves them)."""
    backend = nim.get("backend")
    spec = nim.get("model_path") or nim["model_name"]
    can_merge = isinstance(backend, str) and "merge" in backend_roles(backend)
    base: dict[str, Any] = {
        "model_name": nim["model_name"],
        "backend": backend,
        "model_path": spec,
        "local": can_merge,
        "source": None,
    }
    if not can_merge:
        return base
    try:
        weights = build_merge_backend(str(backend), spec).base_weights()  # path logic only; loads nothing
    except BackendError as exc:
        base["error"] = str(exc)
        return base
    base["source"] = {"kind": weights.kind, "path": weights.path, "gguf_file": weights.gguf_file}
    return base


# ------------------------------------------------------------------------------------------------ facts


def _facts(
    located: _Located, base: dict[str, Any], kind: ExportKind, out_dir: Path, *, dtype: str | None
) -> dict[str, Any]:
    """The facts of ``flywheel_export.json`` and the model card (everything but the file list)."""
    detail, config, custom = located.detail, located.config, located.customization
    metrics = custom.get("metrics") or {}
    train_losses = metrics.get("train_loss") or []
    val_losses = [v for _, v in metrics.get("val_loss") or []]
    sizes = {
        _DATASET_KINDS.get(d["name"].split("-")[1], d["name"]): d["num_records"]
        for d in detail.get("datasets", [])
        if d.get("name", "").count("-") >= 2
    }
    return {
        "flywheel_export_version": EXPORT_FORMAT_VERSION,
        "kind": kind,
        "exported_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "flywheel_version": __version__,
        "out_dir": str(out_dir.resolve()),
        "job": {key: detail.get(key) for key in _JOB_KEYS},
        "candidate": located.nim_detail["model_name"],
        "customized_model": custom.get("customized_model"),
        "base_model": base,
        "merged_dtype": dtype,
        "data": {
            "records_used": detail.get("num_records"),
            "eval": sizes.get("eval"),
            "icl_eval": sizes.get("icl_eval"),
            "train": sizes.get("train"),
            "val": sizes.get("val"),
            "datasets": [
                {"name": d.get("name"), "num_records": d.get("num_records"), "path": d.get("path")}
                for d in detail.get("datasets", [])
            ],
        },
        "hyperparameters": {
            "training_config": config.get("training_config") or {},
            "lora_config": config.get("lora_config") or {},
            "customizer_configs": located.nim_config.get("customizer_configs"),
        },
        "customization": {
            "steps_completed": custom.get("steps_completed"),
            "epochs_completed": custom.get("epochs_completed"),
            "runtime_seconds": custom.get("runtime_seconds"),
            "first_train_loss": train_losses[0][1] if train_losses else None,
            "final_train_loss": train_losses[-1][1] if train_losses else None,
            "best_val_loss": min(val_losses) if val_losses else None,
            "stopped_early": metrics.get("stopped_early"),
            "engine": metrics.get("summary") or {},
            "adapter_path": str(located.adapter_dir),
        },
        "evaluations": {
            ev["eval_type"]: {
                "status": ev.get("status"),
                "error": ev.get("error"),
                "n": ev.get("n"),
                "metrics": ev.get("metrics") or {},
            }
            for ev in located.nim_detail["evaluations"]
        },
        "evaluation_config": config.get("evaluation_config") or {},
    }


# ------------------------------------------------------------------------------------------------ files


def _check_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"Output path {str(out_dir)!r} is a file; give a directory to export into.")
    if out_dir.is_dir() and not force:
        entries = sorted(p.name for p in out_dir.iterdir())
        if entries:
            shown = ", ".join(entries[:5]) + (", …" if len(entries) > 5 else "")
            raise ConflictError(
                f"Output directory {str(out_dir)!r} is not empty ({shown}). Choose a new or empty directory, or "
                "pass --force to write into it (the files of an earlier export there are replaced)."
            )


@contextmanager
def _staging(out_dir: Path) -> Iterator[Path]:
    """A temporary directory beside ``out_dir`` (same file system, so files move in atomically)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.export-", dir=out_dir.parent))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _publish(stage: Path, out_dir: Path) -> None:
    """Move the staged files into ``out_dir``, first removing the files an earlier export listed there."""
    out_dir.mkdir(exist_ok=True)  # not the staging directory itself: mkdtemp makes it private (mode 0700)
    for earlier in _earlier_export_files(out_dir):
        earlier.unlink(missing_ok=True)
    for path in sorted(stage.rglob("*")):
        if path.is_file():
            target = out_dir / path.relative_to(stage)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)


def _earlier_export_files(out_dir: Path) -> list[Path]:
    facts = out_dir / FACTS_FILE
    if not facts.is_file():
        return []
    try:
        listed = json.loads(facts.read_text(encoding="utf-8")).get("files") or []
    except (OSError, ValueError, AttributeError):
        return []
    root = out_dir.resolve()
    paths = [facts]
    for entry in listed:
        path = (out_dir / str(entry.get("path", ""))).resolve() if isinstance(entry, dict) else None
        if path is not None and path.is_file() and path.is_relative_to(root):
            paths.append(path)
    return paths


def _describe(root: Path, path: Path) -> ExportedFile:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return ExportedFile(path.relative_to(root).as_posix(), path.stat().st_size, digest.hexdigest())
