"""Password masking: every way a password can appear in a URL or a line of text around one."""

from __future__ import annotations

import pytest

from bench.urls import mask_url


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://bench:s3cret@db:5432/x", "postgresql://bench:***@db:5432/x"),
        ("mysql+aiomysql://root:p%40ss@127.0.0.1/bench", "mysql+aiomysql://root:***@127.0.0.1/bench"),
        ("redis://:s3cret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("mongodb://u:s3cret@h1:1,h2:2/db?authSource=admin", "mongodb://u:***@h1:1,h2:2/db?authSource=admin"),
        ("host=db user=u password=s3cret", "host=db user=u password=***"),
        ("postgresql://db/x?user=u&password=s3cret", "postgresql://db/x?user=u&password=***"),
        (
            "could not start (database bench:s3cret@db:5432/x): refused",
            "could not start (database bench:***@db:5432/x): refused",
        ),
        ("postgresql://bench@db:5432/x", "postgresql://bench@db:5432/x"),
        ("mongodb://bench:hun@ter2@host:1/db", "mongodb://bench:***@host:1/db"),
        ("a redis://:pw@h/0 and mysql://u:p2@h2/db", "a redis://:***@h/0 and mysql://u:***@h2/db"),
        ("no password here: user@host", "no password here: user@host"),
    ],
)
def test_passwords_are_masked(text: str, expected: str) -> None:
    assert mask_url(text) == expected
