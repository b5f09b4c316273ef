"""Working directories of throwaway servers (`<tmp>/bench-<kind>-*`): created with an owner record, removed once
the owner died.

The owner file holds "PID START_TIME" of the harness process, so a later run can clean up after a harness that was
killed before it could (SIGKILL, power loss). Each kind of server says how to stop its orphaned server first.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

OWNER_FILE = "bench-owner"
# A bench-*-* dir without an owner file is only a leftover once it is older than its creation can take.
_UNOWNED_GRACE_S = 300.0
# Without /proc (macOS) a PID's start time and command line are unknown: fewer checks, never more kills.
_HAVE_PROC = Path("/proc/self/stat").exists()


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (/proc/PID/stat field 22), which tells a PID apart from its reuse."""
    fields = _proc_stat(pid)
    return fields[19] if fields is not None and len(fields) > 19 else None


def _proc_stat(pid: int) -> list[str] | None:
    """/proc/PID/stat from field 3 (state) on, or None if there is no such process (or no /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 2 (the command) may contain spaces and parentheses; everything after the last ')' is fixed.
    return stat.rsplit(")", 1)[-1].split()


def pid_alive(pid: int, start_time: str | None = None) -> bool:
    """Whether `pid` runs (zombies count as dead), and is the same process when `start_time` is known."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if not _HAVE_PROC:
        return True
    fields = _proc_stat(pid)
    if not fields or fields[0] in ("Z", "X"):
        return False
    return start_time is None or len(fields) <= 19 or fields[19] == start_time


def record_process(path: Path, pid: int) -> None:
    """Write "PID START_TIME" (the start time empty when unknown) to `path`."""
    path.write_text(f"{pid} {process_start_time(pid) or ''}\n")


def parse_process_record(text: str) -> tuple[int, str | None] | None:
    """(PID, START_TIME or None) from a "PID [START_TIME]" record; None when it holds no PID."""
    parts = text.split()
    try:
        return int(parts[0]), (parts[1] if len(parts) > 1 else None)
    except (IndexError, ValueError):
        return None


def make_workdir(prefix: str) -> Path:
    """A fresh `<tmp>/<prefix>*` directory owned (per its owner file) by this process."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix, dir=tempfile.gettempdir()))
    record_process(workdir / OWNER_FILE, os.getpid())
    return workdir


def remove_stale_workdirs(prefix: str, stop_orphan: Callable[[Path], bool], tmp: Path | None = None) -> list[Path]:
    """Remove `<prefix>*` dirs whose owning harness is gone, after `stop_orphan(workdir)` stopped their server.

    `stop_orphan` returns False when the directory must be left alone (a server that runs but cannot be told
    apart from an unrelated process, or that would not stop).
    """
    removed: list[Path] = []
    for workdir in sorted((tmp or Path(tempfile.gettempdir())).glob(f"{prefix}*")):
        try:
            if workdir.is_symlink() or not workdir.is_dir() or _owner_alive(workdir):
                continue
            if not stop_orphan(workdir):
                continue
        except OSError:
            continue
        shutil.rmtree(workdir, ignore_errors=True)
        if not workdir.exists():
            removed.append(workdir)
    return removed


def _owner_alive(workdir: Path) -> bool:
    try:
        owner = parse_process_record((workdir / OWNER_FILE).read_text())
    except FileNotFoundError:
        return time.time() - workdir.stat().st_mtime < _UNOWNED_GRACE_S
    return owner is not None and pid_alive(*owner)


def stop_if_ours(
    pid: int,
    start_time: str | None,
    is_ours: Callable[[list[str]], bool],
    *,
    first_signal: signal.Signals,
    timeout_s: float,
) -> bool:
    """Stop `pid` if it runs and its command line passes `is_ours`; whether its directory may be removed now.

    False when a live process holds the PID but cannot be verified (no /proc): the directory is then left
    alone rather than pulled from under a running server. A PID reused by an unrelated process is never
    signalled.
    """
    if not pid_alive(pid, start_time):
        return True
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except FileNotFoundError:
        return not pid_alive(pid)
    except OSError:
        return False
    if not is_ours(argv):
        return True
    return stop_process(pid, first_signal, timeout_s)


def stop_process(pid: int, first_signal: signal.Signals, timeout_s: float) -> bool:
    """Send `first_signal`, then SIGKILL, each followed by up to `timeout_s` of waiting; whether it is gone."""
    for sig in (first_signal, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout_s
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not pid_alive(pid):
            return True
    return False
