"""Early count checks, with the reference's messages (spec §7.4) so that its users recognise them."""

from __future__ import annotations

from flywheel.errors import DataError


def check_raw_count(total: int, *, min_total_records: int, eval_size: int, limit: int | None) -> None:
    """Checks on the number of records read from the store, in the reference's order."""
    if total < min_total_records:
        raise DataError(
            "Not enough records found for the given workload. "
            f"A minimum of {min_total_records} records is required, but only {total} were found."
        )
    if eval_size > total:
        raise DataError(
            "eval_size cannot be larger than the total number of records. "
            f"eval_size is {eval_size}, but only {total} records were found."
        )
    if limit is not None and limit < min_total_records:
        raise DataError(
            "limit cannot be less than the minimum number of records. "
            f"limit is {limit}, but the minimum number of records is {min_total_records}."
        )


def check_selected_count(
    selected: int, *, min_total_records: int, total: int, valid_format: int, after_quality_filter: int
) -> None:
    """Check the number of records left after validation, quality filter and deduplication."""
    if selected < min_total_records:
        raise DataError(
            f"Insufficient valid records. Found {selected} but need {min_total_records}. "
            f"Total records: {total}, valid OpenAI format: {valid_format}, "
            f"after quality filters: {after_quality_filter}. Please provide more valid records."
        )
