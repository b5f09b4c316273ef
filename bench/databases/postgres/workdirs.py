"""Cluster working directories (`<tmp>/bench-pg-*`): an owned working directory (see `workdirs`) per cluster.

A directory holds data/, socket/, postgres.log and the owner file, so a later run can clean up after a harness
that was killed before it could (SIGKILL, power loss), stopping its postmaster first.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from bench.databases.throwaway import workdirs

DIR_PREFIX = "bench-pg-"
STOP_TIMEOUT_S = 10.0


def make_cluster_dir() -> Path:
    """A fresh `bench-pg-*` directory owned (per its owner file) by this process."""
    return workdirs.make_workdir(DIR_PREFIX)


def remove_stale_clusters(tmp: Path | None = None) -> list[Path]:
    """Remove `bench-pg-*` dirs whose owning harness is gone, stopping their postmaster first if it runs."""
    return workdirs.remove_stale_workdirs(DIR_PREFIX, _stop_orphaned_postmaster, tmp)


def _stop_orphaned_postmaster(workdir: Path) -> bool:
    """Stop the postmaster recorded in `workdir`'s data directory, if it is alive and really serves it."""
    datadir = workdir / "data"
    try:
        pid = int((datadir / "postmaster.pid").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return True
    return workdirs.stop_if_ours(
        pid,
        None,  # postmaster.pid holds no start time; the command line check tells a reused PID apart
        lambda argv: _is_postmaster_of(argv, datadir),
        first_signal=signal.SIGINT,  # fast shutdown: disconnect clients, checkpoint, exit
        timeout_s=STOP_TIMEOUT_S,
    )


def _is_postmaster_of(argv: list[str], datadir: Path) -> bool:
    if not argv or Path(argv[0]).name not in ("postgres", "postmaster") or "-D" not in argv[:-1]:
        return False
    given = argv[argv.index("-D") + 1]
    return os.path.realpath(given) == os.path.realpath(datadir)
