"""``redact_url``: the one helper every message, log line and stored source uses to print a URL without its secrets."""

from __future__ import annotations

import pytest

from flywheel.config import redact_url


@pytest.mark.parametrize(
    ("url", "secret", "kept"),
    [
        ("postgresql://fly:pg-secret@db:5432/flywheel", "pg-secret", "postgresql://fly:***@db:5432/flywheel"),
        (
            "postgresql://fly@db/flywheel?password=pg-secret",
            "pg-secret",
            "postgresql://fly@db/flywheel?password=***",
        ),
        (
            "postgresql://db/flywheel?sslmode=require&Password=pg-secret",
            "pg-secret",
            "postgresql://db/flywheel?sslmode=require&Password=***",
        ),
        ("http://es:9200/?api_key=es-secret&x=1", "es-secret", "http://es:9200/?api_key=***&x=1"),
        ("https://host/v1?token=tok-secret", "tok-secret", "https://host/v1?token=***"),
        ("https://host/v1?key=k-secret", "k-secret", "https://host/v1?key=***"),
        ("https://host/v1?client_secret=c-secret", "c-secret", "https://host/v1?client_secret=***"),
        ("https://host/cb#access_token=frag-secret", "frag-secret", "https://host/cb#access_token=***"),
        ("fly:pg-secret@db/flywheel", "pg-secret", "fly:***@db/flywheel"),  # no scheme
        ("fly:pg-secret@db:5432", "pg-secret", "fly:***@db:5432"),
        ("redis://:r-secret@redis:6379/0", "r-secret", "redis://:***@redis:6379/0"),
        ("postgresql://fly:pa/ss?wd@db/flywheel", "pa/ss?wd", "postgresql://fly:***@db/flywheel"),
        ("postgresql://fly:p@ss@db/flywheel", "p@ss", "postgresql://fly:***@db/flywheel"),
    ],
)
def test_secrets_in_userinfo_and_query_string_are_hidden(url: str, secret: str, kept: str) -> None:
    redacted = redact_url(url)
    assert secret not in redacted
    assert redacted == kept


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////tmp/flywheel.db",
        "sqlite:///relative/fly.db",
        "postgresql://fly@db/flywheel?sslmode=require",
        "http://localhost:9200",
        "https://host/users/@me",
        "localhost:5432/db",
        "not a url at all",
    ],
)
def test_urls_without_secrets_are_unchanged(url: str) -> None:
    assert redact_url(url) == url
