"""Dataset artifacts: the one straight-line ``build_datasets`` (curate → split → files → ICL) and its manifest
(:class:`DatasetManifest`). ``read_jsonl`` (from :mod:`flywheel.jsonl`) reads the files back."""

from flywheel.jsonl import read_jsonl
from flywheel.pipeline.datasets._build import (
    ARTIFACTS,
    MANIFEST_VERSION,
    DatasetBuild,
    build_datasets,
    dataset_dir,
)
from flywheel.pipeline.datasets._config import OVERRIDABLE, DataSettings, resolve_data_settings
from flywheel.pipeline.datasets._format import to_eval_record, to_training_example
from flywheel.pipeline.datasets._manifest import (
    Artifact,
    DatasetManifest,
    DatasetStats,
    SplitCounts,
    WorkloadEvidenceSummary,
)

__all__ = [
    "ARTIFACTS",
    "MANIFEST_VERSION",
    "OVERRIDABLE",
    "Artifact",
    "DataSettings",
    "DatasetBuild",
    "DatasetManifest",
    "DatasetStats",
    "SplitCounts",
    "WorkloadEvidenceSummary",
    "build_datasets",
    "dataset_dir",
    "read_jsonl",
    "resolve_data_settings",
    "to_eval_record",
    "to_training_example",
]
