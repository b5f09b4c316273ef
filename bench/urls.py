"""Database URL helpers: masking passwords so they never reach records, logs or reports."""

from __future__ import annotations

import re

# scheme://user:password@host -> scheme://user:***@host ; also password=... in query strings and DSNs.
# The password runs to the LAST "@" before the host: an unencoded "@" inside it must not leave a tail visible.
_USERINFO_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<password>[^\s/]*)@")
_QUERY_PASSWORD = re.compile(r"(?P<head>(?:[?&]|\b)password=)(?P<password>[^&\s]*)", re.IGNORECASE)
# user:password@host written without a scheme (a mistake users make, which must not leak the password either).
_BARE_USERINFO = re.compile(r"(?<![\w/:%.\-])(?P<head>[\w.\-%]+:)(?P<password>[^@\s/]+)@(?=[\w.\-\[])")


def mask_url(text: str) -> str:
    """Return `text` with every URL password replaced by `***` (works on whole log lines too)."""
    masked = _USERINFO_PASSWORD.sub(lambda m: f"{m.group('head')}***@", text)
    masked = _BARE_USERINFO.sub(lambda m: f"{m.group('head')}***@", masked)
    return _QUERY_PASSWORD.sub(lambda m: f"{m.group('head')}***", masked)
