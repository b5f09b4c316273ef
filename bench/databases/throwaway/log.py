"""A throwaway server's log file, opened by the harness and read back for one-line error messages."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from apps.masking import mask_url

_MAX_READ_BYTES = 65_536  # the telling line is near the end; a log_path shared by many runs can grow large


class ServerLog:
    """The output of a server and of its installer, read back since mark().

    A line holding one of `error_markers` tells what went wrong. Which one: the last such line, or with
    `first_error` the first (for a server that follows the cause with its consequences); with `from_marker`
    without what precedes the marker (timestamps, thread ids).
    """

    def __init__(
        self, path: Path, error_markers: Sequence[str], *, first_error: bool = False, from_marker: bool = False
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.error_markers = tuple(error_markers)
        self.first_error = first_error
        self.from_marker = from_marker
        # Opened by the harness and inherited by the children, so it works whoever the server runs as.
        self.file: BinaryIO = open(path, "ab")  # noqa: SIM115 - closed by close(), outlives this call
        self.start = 0
        self.mark()

    def mark(self) -> None:
        """Read back only what is written from now on (a given log_path may hold earlier runs)."""
        self.file.flush()
        self.start = self.path.stat().st_size

    def text(self) -> str:
        self.file.flush()
        return read_since(self.path, self.start)

    def telling_line(self) -> str:
        """The most telling line since mark(): an error line (see the class docstring), else the last line."""
        lines = [line.strip() for line in self.text().splitlines() if line.strip()]
        for line in lines if self.first_error else reversed(lines):
            for marker in self.error_markers:
                if marker in line:
                    return mask_url(line[line.index(marker) :] if self.from_marker else line)
        return mask_url(lines[-1]) if lines else f"(nothing in {self.path})"

    def close(self) -> None:
        self.file.close()


def read_since(path: Path, offset: int) -> str:
    """What `path` holds from `offset` on (at most its last 64 KiB); "" when it cannot be read."""
    try:
        with open(path, "rb") as reader:
            reader.seek(max(offset, os.fstat(reader.fileno()).st_size - _MAX_READ_BYTES))
            return reader.read().decode(errors="replace")
    except OSError:
        return ""
