"""Masking of personal data in message text (``curation.pii: mask``).

Patterns with checksums where the format has one (Luhn for card numbers, ISO 13616 mod-97 for IBANs, octet ranges
for IPv4) so that ordinary numbers are not masked. Presidio, the maintained library for this, needs a spaCy language
model that cannot be installed offline here, and its regex recognisers alone bring no more than this module does.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from flywheel.pipeline.records import RecordView, with_choices, with_messages

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{1,4})*(?![\w:])")
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,4}(?![\w])"
)


def luhn_ok(digits: str) -> bool:
    """Luhn checksum of a digit string (card numbers)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    """ISO 13616 mod-97 check of an IBAN (spaces allowed)."""
    iban = candidate.replace(" ", "")
    if not 15 <= len(iban) <= 34:
        return False
    rearranged = iban[4:] + iban[:4]
    digits = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(digits) % 97 == 1


def _ip_ok(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _phone_ok(text: str) -> bool:
    digits = sum(ch.isdigit() for ch in text)
    # Dates, versions and plain numbers have fewer digits or no separators; phone numbers have 7 to 15 digits.
    return 7 <= digits <= 15 and (text.startswith(("+", "(")) or len(re.findall(r"[ .-]", text)) >= 1)


# Order matters: the more specific patterns run first so their matches are not split by later ones.
_RULES: list[tuple[str, re.Pattern[str], Callable[[str], bool] | None]] = [
    ("EMAIL", _EMAIL, None),
    ("IBAN", _IBAN, iban_ok),
    ("CARD", _CARD, lambda s: luhn_ok(re.sub(r"[ -]", "", s))),
    ("SSN", _SSN, None),
    ("IP", _IPV4, _ip_ok),
    ("IP", _IPV6, _ip_ok),
    ("PHONE", _PHONE, _phone_ok),
]


def mask_text(text: str, counts: Counter[str] | None = None) -> str:
    """``text`` with personal data replaced by ``<EMAIL>``, ``<PHONE>``, ``<CARD>``, ``<IBAN>``, ``<IP>``, ``<SSN>``.

    ``counts`` (if given) is increased by the number of replacements per kind.
    """
    for kind, pattern, check in _RULES:

        def replace(
            match: re.Match[str], kind: str = kind, check: Callable[[str], bool] | None = check
        ) -> str:
            if check is not None and not check(match.group(0)):
                return match.group(0)
            if counts is not None:
                counts[kind] += 1
            return f"<{kind}>"

        text = pattern.sub(replace, text)
    return text


def _mask_content(content: Any, counts: Counter[str]) -> Any:
    if isinstance(content, str):
        return mask_text(content, counts)
    if isinstance(content, list):
        return [
            {**part, "text": mask_text(part["text"], counts)}
            if isinstance(part, dict) and isinstance(part.get("text"), str)
            else part
            for part in content
        ]
    return content


def _mask_messages(messages: list[Any], counts: Counter[str]) -> list[Any]:
    return [
        {**m, "content": _mask_content(m.get("content"), counts)}
        if isinstance(m, dict) and "content" in m
        else m
        for m in messages
    ]


def mask_record(record: dict[str, Any], counts: Counter[str]) -> dict[str, Any]:
    """A copy of a validated record with the text of request messages and teacher answers masked."""
    view = RecordView(record)
    masked = with_messages(record, _mask_messages(view.messages, counts))
    choices = [
        {**c, "message": {**c["message"], "content": _mask_content(c["message"].get("content"), counts)}}
        for c in view.choices
    ]
    return with_choices(masked, choices)
