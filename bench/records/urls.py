"""Database URL checks of the harness's own: a password most parsers would cut short (masking is apps/masking.py)."""

from __future__ import annotations

from urllib.parse import urlsplit

from apps.masking import mask_url
from bench.records.errors import BenchError


def check_credentials(url: str | None, option: str) -> None:
    """BenchError if `url`'s password holds an unencoded "/", "?" or "#": most parsers end the host part there,
    read pieces of the password as a host or port, and echo them in errors where no mask can recognise them."""
    if url is None:
        return
    try:
        netloc = urlsplit(url.strip()).netloc
    except ValueError:
        return  # the backend's own parsing reports a malformed URL
    # "user:pass" cut short: no "@" where it ends, one later on, and no port, IPv6 host or host list before it.
    _, colon, after = netloc.partition(":")
    cut_short = (
        "@" not in netloc and "@" in url and bool(colon) and not after.isdigit() and not {"[", ","} & set(netloc)
    )
    if cut_short:
        raise BenchError(
            f"the password in {option} {mask_url(url)} contains '/', '?' or '#'; percent-encode them "
            "(%2F, %3F, %23) so that every driver reads the same host and password"
        )
