"""Cluster working directories (`<tmp>/bench-pg-*`): created with an owner record, removed once the owner died.

A directory holds data/, socket/, postgres.log and the owner file ("PID START_TIME" of the harness process),
so a later run can clean up after a harness that was killed before it could (SIGKILL, power loss).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

DIR_PREFIX = "bench-pg-"
OWNER_FILE = "bench-owner"
STOP_TIMEOUT_S = 10.0
# A bench-pg-* dir without an owner file is only a leftover once it is older than its creation can take.
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


def make_cluster_dir() -> Path:
    """A fresh `bench-pg-*` directory owned (per its owner file) by this process."""
    workdir = Path(tempfile.mkdtemp(prefix=DIR_PREFIX, dir=tempfile.gettempdir()))
    pid = os.getpid()
    (workdir / OWNER_FILE).write_text(f"{pid} {process_start_time(pid) or ''}\n")
    return workdir


def remove_stale_clusters(tmp: Path | None = None) -> list[Path]:
    """Remove `bench-pg-*` dirs whose owning harness is gone, stopping their postmaster first if it runs."""
    removed: list[Path] = []
    for workdir in sorted((tmp or Path(tempfile.gettempdir())).glob(f"{DIR_PREFIX}*")):
        try:
            if workdir.is_symlink() or not workdir.is_dir() or _owner_alive(workdir):
                continue
            if not _stop_orphaned_postmaster(workdir / "data"):
                continue
        except OSError:
            continue
        shutil.rmtree(workdir, ignore_errors=True)
        if not workdir.exists():
            removed.append(workdir)
    return removed


def _owner_alive(workdir: Path) -> bool:
    try:
        parts = (workdir / OWNER_FILE).read_text().split()
    except FileNotFoundError:
        return time.time() - workdir.stat().st_mtime < _UNOWNED_GRACE_S
    try:
        pid = int(parts[0])
    except (IndexError, ValueError):
        return False
    return pid_alive(pid, parts[1] if len(parts) > 1 else None)


def _stop_orphaned_postmaster(datadir: Path) -> bool:
    """Stop the postmaster recorded in `datadir`, if it is alive and really serves `datadir`.

    Returns False when a live process holds the lock file but cannot be verified as that postmaster
    (no /proc): the directory is then left alone rather than pulled from under a running server.
    """
    try:
        pid = int((datadir / "postmaster.pid").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return True
    if not pid_alive(pid):
        return True
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except FileNotFoundError:
        return not pid_alive(pid)
    except OSError:
        return False
    if not _is_postmaster_of(argv, datadir):
        return True  # the PID was reused by an unrelated process: never signal it
    _signal_and_wait(pid)
    return not pid_alive(pid)


def _is_postmaster_of(argv: list[str], datadir: Path) -> bool:
    if not argv or Path(argv[0]).name not in ("postgres", "postmaster") or "-D" not in argv[:-1]:
        return False
    given = argv[argv.index("-D") + 1]
    return os.path.realpath(given) == os.path.realpath(datadir)


def _signal_and_wait(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)  # fast shutdown: disconnect clients, checkpoint, exit
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
