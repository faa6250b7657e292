"""The shape of ``manifest.json`` (what a dataset build read, kept, rejected and wrote) and of the job detail's
``dataset_stats`` read off it.

Static types: :func:`~flywheel.pipeline.datasets.build_datasets` builds plain dicts of these shapes. The parts
that curation and the ICL step produce are declared next to them (:class:`CurationCounts`, :class:`EvidenceSummary`,
:class:`ICLSummary`).
"""

from __future__ import annotations

from typing import Any, TypedDict

from flywheel.pipeline.curate import CurationCounts, EvidenceSummary
from flywheel.pipeline.icl import ICLSummary


class WorkloadEvidenceSummary(EvidenceSummary):
    """What the teacher's answers showed, and the workload type that was asked for (``auto`` or a type)."""

    requested: str


class SplitCounts(TypedDict):
    """Size of one split and its class distribution (class → records)."""

    count: int
    classes: dict[str, int]


class SplitDecisions(TypedDict):
    """The seed the split used and every fallback it took, in words."""

    seed: int
    decisions: list[str]


class LeakageCheck(TypedDict):
    """Train or validation records whose user content is also in eval (deduplication keeps this at 0)."""

    train_or_val_records_sharing_eval_user_content: int


class PIISummary(TypedDict):
    """``curation.pii`` and how many values of each kind were masked."""

    mode: str
    masked: dict[str, int]


class TimeWindow(TypedDict):
    """The log timestamps the build read: ``since`` inclusive, ``until`` exclusive (epoch seconds; None = open)."""

    since: float | None
    until: float | None


class Artifact(TypedDict):
    """One JSONL file written."""

    path: str
    records: int
    sha256: str


class ManifestConfig(TypedDict):
    """The config sections the build ran with, after per-job overrides (each as ``model_dump(mode="json")``)."""

    data_split_config: dict[str, Any]
    icl_config: dict[str, Any]
    evaluation_config: dict[str, Any]
    curation: dict[str, Any]


class Processes(TypedDict):
    """Processes used by the two streaming passes."""

    scan: int
    write: int


class DatasetManifest(TypedDict):
    """``manifest.json`` of one dataset build."""

    manifest_version: int
    workload_id: str
    client_id: str
    created_at: float
    workload_type: str
    workload_evidence: WorkloadEvidenceSummary
    total: int
    rejected: dict[str, int]
    deduplicated: int
    near_duplicates: int
    selected: int
    steps: CurationCounts
    eval: SplitCounts
    train: SplitCounts
    val: SplitCounts
    split: SplitDecisions
    leakage: LeakageCheck
    pii: PIISummary
    icl: ICLSummary
    time_window: TimeWindow
    #: Artifact name (``eval``, ``icl_eval``, ``train``, ``val``) → file.
    artifacts: dict[str, Artifact]
    config: ManifestConfig
    timings_s: dict[str, float]
    processes: Processes


class DatasetStats(TypedDict):
    """The job detail's ``dataset_stats``: the manifest's counts, rejection reasons, splits and checks.

    Built from a stored manifest, so every part may be missing (None, or empty) for a manifest of an older shape.
    """

    workload_type: str | None
    workload_evidence: WorkloadEvidenceSummary | None
    #: The manifest's ``steps``.
    counts: CurationCounts | dict[str, int]
    rejected: dict[str, int]
    #: ``eval`` / ``train`` / ``val`` → size and classes.
    splits: dict[str, SplitCounts]
    split_decisions: list[str]
    leakage: LeakageCheck | None
    pii: PIISummary | None
    icl: ICLSummary | None
