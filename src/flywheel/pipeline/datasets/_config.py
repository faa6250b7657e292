"""Per-job overrides of the data settings, validated together, with omitted fields taken from the file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flywheel.config import (
    CurationConfig,
    DataSplitConfig,
    EvaluationConfig,
    FlywheelConfig,
    ICLConfig,
    apply_overrides,
    check_icl_against_split,
    format_problems,
)
from flywheel.errors import ConfigError

OVERRIDABLE = ("data_split_config", "icl_config", "evaluation_config", "curation")


@dataclass(frozen=True)
class DataSettings:
    """The four config sections the datasets step uses, after per-job overrides."""

    split: DataSplitConfig
    icl: ICLConfig
    evaluation: EvaluationConfig
    curation: CurationConfig


def resolve_data_settings(config: FlywheelConfig, overrides: dict[str, Any] | None = None) -> DataSettings:
    """Apply per-job overrides (``{"data_split_config": {...}, "icl_config": {...}, ...}``) on top of the file.

    Every problem (unknown keys, bad values, nonsensical combinations such as ``max_examples`` above ``eval_size``)
    is collected into one :class:`ConfigError`.
    """
    overrides = overrides or {}
    problems: list[tuple[str, str]] = []
    for key in overrides:
        if key not in OVERRIDABLE:
            problems.append((key, f"cannot be overridden per job; use one of {', '.join(OVERRIDABLE)}"))
    sections: dict[str, Any] = {}
    for key in OVERRIDABLE:
        base = getattr(config, key)
        value = overrides.get(key)
        if value is not None and not isinstance(value, dict):
            problems.append((key, "must be a mapping of fields"))
            sections[key] = base
            continue
        try:
            sections[key] = apply_overrides(base, value, what=key)
        except ConfigError as exc:
            problems.extend(exc.problems)
            sections[key] = base
    if not problems:
        split: DataSplitConfig = sections["data_split_config"]
        icl: ICLConfig = sections["icl_config"]
        try:
            check_icl_against_split(icl, split)
        except ValueError as exc:
            problems.append(("icl_config", str(exc)))
        if split.limit is not None and split.eval_size >= split.limit:
            problems.append(
                (
                    "data_split_config.eval_size",
                    f"eval_size ({split.eval_size}) must be smaller than limit ({split.limit}) so that records are "
                    "left for training; lower eval_size or raise limit",
                )
            )
    if problems:
        raise ConfigError(format_problems("Invalid per-job data settings", problems), problems)
    return DataSettings(
        split=sections["data_split_config"],
        icl=sections["icl_config"],
        evaluation=sections["evaluation_config"],
        curation=sections["curation"],
    )
