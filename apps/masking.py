"""Masking passwords in URLs and in text that may hold one, so they never reach records, logs or reports.

Here in apps/ rather than bench/ because the apps mask what /health and their start-up errors show, and the
exhibit must not depend on the harness that measures it; bench/ imports it from here.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

# scheme://user:password@host -> scheme://user:***@host ; also password=... in query strings and DSNs.
# The password runs to the LAST "@" before the host: an unencoded "@" inside it must not leave a tail visible,
# nor an unencoded "/" (drivers then read the URL differently, but the text still shows what the user typed).
_USERINFO_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<password>\S*)@")
_QUERY_PASSWORD = re.compile(r"(?P<head>(?:[?&]|\b)password=)(?P<password>[^&\s]*)", re.IGNORECASE)
# user:password@host written without a scheme (a mistake users make, which must not leak the password either).
_BARE_USERINFO = re.compile(r"(?<![\w/:%.\-])(?P<head>[\w.\-%]+:)(?P<password>[^@\s/]+)@(?=[\w.\-\[])")


# A password this short could be any word of a message: masked only where it stands alone, so "p" does not turn
# "port" into "***ort". Longer ones are masked wherever they appear (a driver may glue them to other text).
_SHORT_PASSWORD = 3


def scrub(text: str, url: str) -> str:
    """`text` with `url`'s password masked, also where a driver echoes it outside a URL (as given and decoded)."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        for variant in sorted({password, unquote(password)}, key=len, reverse=True):
            if len(variant) > _SHORT_PASSWORD:
                text = text.replace(variant, "***")
            else:
                text = re.sub(rf"(?<![\w]){re.escape(variant)}(?![\w])", "***", text)
    return mask_url(text)


def mask_url(text: str) -> str:
    """Return `text` with every URL password replaced by `***` (works on whole log lines too)."""
    masked = _USERINFO_PASSWORD.sub(lambda m: f"{m.group('head')}***@", text)
    masked = _BARE_USERINFO.sub(lambda m: f"{m.group('head')}***@", masked)
    return _QUERY_PASSWORD.sub(lambda m: f"{m.group('head')}***", masked)
