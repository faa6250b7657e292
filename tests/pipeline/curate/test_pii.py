"""PII masking: each kind is masked and counted; checksums keep ordinary numbers untouched."""

from __future__ import annotations

from collections import Counter

import pytest

from factories import chat_record
from flywheel.pipeline.curate import iban_ok, luhn_ok, mask_record, mask_text


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("write to jane.doe+news@example.co.uk today", "EMAIL"),
        ("call +1 (415) 555-0132 now", "PHONE"),
        ("call 020 7946 0958", "PHONE"),
        ("card 4111 1111 1111 1111 expires", "CARD"),
        ("card 5500-0000-0000-0004", "CARD"),
        ("iban DE89 3704 0044 0532 0130 00 please", "IBAN"),
        ("iban GB82WEST12345698765432", "IBAN"),
        ("server 10.0.0.254 is down", "IP"),
        ("v6 2001:db8:85a3::8a2e:370:7334 ok", "IP"),
        ("ssn 123-45-6789", "SSN"),
    ],
)
def test_each_kind_is_masked_and_counted(text: str, kind: str) -> None:
    counts: Counter[str] = Counter()
    out = mask_text(text, counts)
    assert f"<{kind}>" in out
    assert counts[kind] == 1


@pytest.mark.parametrize(
    "text",
    [
        "in 2024 we sold 12345 units at 3.14 each",
        "version 1.2.3 of the package",
        "card 4111 1111 1111 1112 fails luhn",
        "iban DE89 3704 0044 0532 0130 01 fails mod-97",
        "ip 999.1.1.1 is not an address",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert mask_text(text) == text


def test_checksums() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("GB82 WEST 1234 5698 7654 32") and not iban_ok("GB82 WEST 1234 5698 7654 33")


def test_mask_record_masks_request_and_teacher_text_without_changing_the_input() -> None:
    record = chat_record("my mail is a@b.io", "I wrote to a@b.io")
    counts: Counter[str] = Counter()
    out = mask_record(record, counts)
    assert out["request"]["messages"][1]["content"] == "my mail is <EMAIL>"
    assert out["response"]["choices"][0]["message"]["content"] == "I wrote to <EMAIL>"
    assert counts == Counter({"EMAIL": 2})
    assert record["request"]["messages"][1]["content"] == "my mail is a@b.io"
