"""Export a fine-tuned candidate of a finished job: its LoRA adapter (PEFT format) or, with ``merged``, its base model
with the adapter merged in (a plain transformers folder), plus a model card (README.md) and ``flywheel_export.json``.

::

    result = export_candidate(JobRepository(engine), job_id, "smollm2-135m-instruct", Path("out"), merged=True)
    result.files, result.total_bytes, result.facts["evaluations"]["customized-eval"]

Plain library code: the merge itself runs in the candidate's backend (its ``merge`` role in
:mod:`flywheel.backends.registry`; the local engine offers it).
"""

from flywheel.pipeline.export._card import load_snippet, render_card
from flywheel.pipeline.export._export import (
    ADAPTER_FILES,
    CARD_FILE,
    FACTS_FILE,
    ExportedFile,
    ExportKind,
    ExportResult,
    JobReader,
    describe_base_model,
    export_candidate,
)

__all__ = [
    "ADAPTER_FILES",
    "CARD_FILE",
    "FACTS_FILE",
    "ExportKind",
    "ExportResult",
    "ExportedFile",
    "JobReader",
    "describe_base_model",
    "export_candidate",
    "load_snippet",
    "render_card",
]
