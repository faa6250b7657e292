"""``build_datasets``: the curation stage, written once as a straight sequence of steps.

selection → validation → workload type → dedup (one streaming pass, compact facts only) → count checks → split →
second streaming pass: PII masking → eval / train / val files → ICL eval file → manifest.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
from sqlalchemy import Engine

from flywheel.backends._types import EmbeddingBackend
from flywheel.config import CurationConfig, DataSplitConfig, EvaluationConfig, ICLConfig
from flywheel.errors import DataError
from flywheel.ids import new_id, safe_name
from flywheel.pipeline.curate import finish_curation, scan_records, stream_records
from flywheel.pipeline.datasets._manifest import DatasetManifest
from flywheel.pipeline.datasets._write import (
    SPLITS,
    Writer,
    choose_workers,
    remove_parts,
    scan_parallel,
    write_datasets,
)
from flywheel.pipeline.icl import ICLSummary, Tokenizer, build_icl_records, embedder_from_config
from flywheel.pipeline.split import check_raw_count, check_selected_count, split_records

MANIFEST_VERSION = 1
EVAL, TRAIN, VAL = 0, 1, 2  # split codes of the second pass
ARTIFACTS = {
    "eval": "eval_data.jsonl",
    "icl_eval": "icl/eval_data.jsonl",
    "train": "training/train_data.jsonl",
    "val": "validation/val_data.jsonl",
}


@dataclass
class DatasetBuild:
    """What :func:`build_datasets` produced: the manifest (also written as ``manifest.json``) and the file paths."""

    out_dir: Path
    manifest: DatasetManifest
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def manifest_path(self) -> Path:
        """Where the manifest was written."""
        return self.out_dir / "manifest.json"


def dataset_dir(home: Path, workload_id: str, client_id: str, build_id: str | None = None) -> Path:
    """``{home}/datasets/{workload_id}/{client_id}/{build_id}`` with unsafe characters replaced."""
    return Path(home) / "datasets" / safe_name(workload_id) / safe_name(client_id) / (build_id or new_id())


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: the passes allocate millions of short-lived, acyclic objects while holding
    a million compact facts, and the collector's repeated full scans of those cost ~10-20% of the run time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@_gc_paused()
def build_datasets(
    engine: Engine,
    workload_id: str,
    client_id: str,
    *,
    out_dir: Path,
    split: DataSplitConfig,
    icl: ICLConfig,
    evaluation: EvaluationConfig,
    curation: CurationConfig,
    since: float | None = None,
    until: float | None = None,
    embedder: EmbeddingBackend | None = None,
    tokenizer: Tokenizer | None = None,
    icl_pool_size: int = 5000,
    with_icl: bool = True,
    workers: int | None = None,
) -> DatasetBuild:
    """Curate one workload's logs into eval, ICL-eval, train and val JSONL files plus ``manifest.json``.

    Pass config *after* per-job overrides (:func:`resolve_data_settings`). ``since``/``until`` bound the log
    timestamps (epoch seconds). ``embedder`` is used for semantic-similarity ICL (default: built from
    ``icl.similarity_config.embedding_nim_config``); ``tokenizer`` counts the candidate's tokens for the ICL budget.
    ICL examples come from a seeded sample of at most ``icl_pool_size`` train records. ``workers`` > 1 splits both
    streaming passes over that many forked processes (file databases on platforms with ``fork`` only; default 1);
    the output is identical for any number.

    Raises :class:`DataError` with the reference's messages when there are too few records.
    """
    timings: dict[str, float] = {}
    started = time.perf_counter()
    out_dir = Path(out_dir)

    # 1-4. selection, validation, workload type, dedup: one streaming pass.
    t0 = time.perf_counter()
    # With ``workers`` > 1 and no limit (every record is read) the pass is split over processes; with a limit,
    # reading stops early and stays sequential. One process is the default: on the 2-core machine it was measured
    # on, shared with other work, two processes cost more CPU (shipping facts, joining files) than they saved.
    n_workers = choose_workers(engine, workers)
    keep_text = curation.near_duplicate_threshold is not None
    scan_workers = n_workers if split.limit is None else 1
    if scan_workers > 1:
        scan = scan_parallel(
            engine,
            workload_id=workload_id,
            client_id=client_id,
            since=since,
            until=until,
            workers=n_workers,
            max_tool_properties=curation.max_tool_properties,
            parse_arguments=split.parse_function_arguments,
            keep_text=keep_text,
        )
    else:
        rows = stream_records(engine, workload_id, client_id, since=since, until=until)
        try:
            scan = scan_records(
                rows,
                workload_type=evaluation.workload_type,
                limit=split.limit,
                max_tool_properties=curation.max_tool_properties,
                parse_arguments=split.parse_function_arguments,
                keep_text=keep_text,
            )
        finally:
            rows.close()
    cur = finish_curation(
        scan,
        workload_type=evaluation.workload_type,
        limit=split.limit,
        near_duplicate_threshold=curation.near_duplicate_threshold,
    )
    timings["select_validate_dedup"] = time.perf_counter() - t0

    # 5. count checks, with the reference's messages.
    check_raw_count(
        cur.total, min_total_records=split.min_total_records, eval_size=split.eval_size, limit=split.limit
    )
    check_selected_count(
        len(cur.positions),
        min_total_records=split.min_total_records,
        total=cur.total,
        valid_format=cur.valid_format,
        after_quality_filter=cur.after_quality_filter,
    )

    # 6. split.
    t0 = time.perf_counter()
    result = split_records(
        cur.labels,
        eval_size=split.eval_size,
        val_ratio=split.val_ratio,
        seed=split.random_seed,
        stratify=split.stratify_enabled,
        rare_class_threshold=split.rare_class_threshold,
        min_samples_per_class=split.min_samples_per_class,
    )
    eval_keys = {cur.keys[i] for i in result.eval} - {None}
    leaked = sum(1 for i in (*result.train, *result.val) if cur.keys[i] in eval_keys)
    if leaked:  # dedup makes this impossible; checked anyway because the guarantee matters downstream
        raise DataError(f"{leaked} train/val records share user content with eval records; this is a bug.")
    timings["split"] = time.perf_counter() - t0

    # 7. second streaming pass: mask, format, write.
    t0 = time.perf_counter()
    code = np.full(cur.total, -1, dtype=np.int8)
    for split_code, indices in ((EVAL, result.eval), (TRAIN, result.train), (VAL, result.val)):
        code[[cur.positions[i] for i in indices]] = split_code
    pool_rng = np.random.default_rng(result.seed)
    pool_positions = {
        cur.positions[i]
        for i in (
            pool_rng.choice(result.train, size=icl_pool_size, replace=False)
            if len(result.train) > icl_pool_size
            else result.train
        )
    }
    targets = {name: out_dir / ARTIFACTS[name] for name in SPLITS}
    write_workers = n_workers
    try:
        eval_records, pool, masked, artifacts = write_datasets(
            engine,
            workload_id=workload_id,
            client_id=client_id,
            since=since,
            until=until,
            row_ids=cur.row_ids,
            codes=code,
            pool_positions=pool_positions,
            parse_arguments=split.parse_function_arguments,
            mask=curation.pii == "mask",
            workload_type=cur.workload_type,
            targets=targets,
            workers=write_workers,
        )
    finally:
        remove_parts(targets)
    workload_type = cur.workload_type
    timings["write"] = time.perf_counter() - t0

    # 8. ICL eval set.
    t0 = time.perf_counter()
    icl_stats: ICLSummary = {"selection": icl.example_selection, "skipped": not with_icl}
    if with_icl:
        if (
            embedder is None
            and icl.example_selection == "semantic_similarity"
            and icl.similarity_config is not None
            and icl.similarity_config.embedding_nim_config is not None
        ):
            embedder = embedder_from_config(icl.similarity_config.embedding_nim_config, os.environ)
        icl_records, stats = build_icl_records(
            eval_records, pool, icl, workload_type=workload_type, embedder=embedder, tokenizer=tokenizer
        )
        icl_stats = stats.as_dict()
        writer = Writer(out_dir / ARTIFACTS["icl_eval"])
        for rec in icl_records:
            writer.write(rec)
        artifacts["icl_eval"] = writer.close()
    timings["icl"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - started

    classes = result.class_counts(cur.labels)
    manifest: DatasetManifest = {
        "manifest_version": MANIFEST_VERSION,
        "workload_id": workload_id,
        "client_id": client_id,
        "created_at": time.time(),
        "workload_type": workload_type,
        "workload_evidence": {**cur.evidence.as_dict(), "requested": evaluation.workload_type},
        "total": cur.total,
        "rejected": dict(cur.rejected.most_common()),
        "deduplicated": cur.deduplicated,
        "near_duplicates": cur.near_duplicates,
        "selected": len(cur.positions),
        "steps": cur.counts(),
        "eval": {"count": len(result.eval), "classes": classes["eval"]},
        "train": {"count": len(result.train), "classes": classes["train"]},
        "val": {"count": len(result.val), "classes": classes["val"]},
        "split": {"seed": result.seed, "decisions": result.decisions},
        "leakage": {"train_or_val_records_sharing_eval_user_content": leaked},
        "pii": {"mode": curation.pii, "masked": dict(masked.most_common())},
        "icl": icl_stats,
        "time_window": {"since": since, "until": until},
        "artifacts": artifacts,
        "config": {
            "data_split_config": split.model_dump(mode="json"),
            "icl_config": icl.model_dump(mode="json"),
            "evaluation_config": evaluation.model_dump(mode="json"),
            "curation": curation.model_dump(mode="json"),
        },
        "timings_s": {k: round(v, 4) for k, v in timings.items()},
        "processes": {"scan": scan_workers, "write": write_workers},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    return DatasetBuild(
        out_dir=out_dir, manifest=manifest, paths={k: Path(v["path"]) for k, v in artifacts.items()}
    )
