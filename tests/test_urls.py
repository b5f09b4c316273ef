"""Password masking: every way a password can appear in a URL or a line of text around one."""

from __future__ import annotations

import pytest

from apps.masking import mask_url, scrub


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


def test_scrub_masks_a_password_wherever_a_driver_echoes_it() -> None:
    url = "postgresql://bench:s3cr%2Ft@db:5432/bench"
    message = 'password authentication failed for "s3cr/t" (sent s3cr%2Ft) at postgresql://bench:s3cr%2Ft@db:5432'
    assert scrub(message, url) == (
        'password authentication failed for "***" (sent ***) at postgresql://bench:***@db:5432'
    )


def test_scrub_masks_a_short_password_only_where_it_stands_alone() -> None:
    # A one-letter password must not turn every "p" of the message into "***".
    url = "postgresql://bench:p@127.0.0.1:1/bench"
    assert scrub("connection to port 1 failed: password p rejected", url) == (
        "connection to port 1 failed: password *** rejected"
    )


def test_scrub_without_a_password_only_masks_urls() -> None:
    assert scrub("port 5432 refused", "postgresql://bench@db/bench") == "port 5432 refused"
    assert scrub("x", "not a url at all: [") == "x"
