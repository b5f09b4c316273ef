"""Database URL helpers: masking passwords so they never reach records, logs or reports."""

from __future__ import annotations

import re

# scheme://user:password@host -> scheme://user:***@host ; also catches passwords in query strings.
_USERINFO_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<password>[^@\s]*)@")
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&]password=)(?P<password>[^&\s]*)", re.IGNORECASE)


def mask_url(text: str) -> str:
    """Return `text` with every URL password replaced by `***` (works on whole log lines too)."""
    masked = _USERINFO_PASSWORD.sub(lambda m: f"{m.group('head')}***@", text)
    return _QUERY_PASSWORD.sub(lambda m: f"{m.group('head')}***", masked)
