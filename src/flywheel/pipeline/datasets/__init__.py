"""Dataset artifacts: the one straight-line ``build_datasets`` (curate → split → files → ICL) and its manifest."""

from flywheel.pipeline.datasets._build import (
    ARTIFACTS,
    MANIFEST_VERSION,
    DatasetBuild,
    build_datasets,
    dataset_dir,
    read_jsonl,
)
from flywheel.pipeline.datasets._config import OVERRIDABLE, DataSettings, resolve_data_settings
from flywheel.pipeline.datasets._format import to_eval_record, to_training_example

__all__ = [
    "ARTIFACTS",
    "MANIFEST_VERSION",
    "OVERRIDABLE",
    "DataSettings",
    "DatasetBuild",
    "build_datasets",
    "dataset_dir",
    "read_jsonl",
    "resolve_data_settings",
    "to_eval_record",
    "to_training_example",
]
