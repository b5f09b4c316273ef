"""Child processes the harness starts (uvicorn, Locust, throwaway servers): started so they can always be stopped."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from bench.records.errors import BenchError

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: signal.Signals) -> Callable[[], None] | None:
    """A preexec_fn that makes the kernel send `sig` to the child if the harness dies, even by SIGKILL.

    None where there is no prctl (not Linux). subprocess runs preexec_fn after switching user and group; that
    order matters, because a credential change clears PR_SET_PDEATHSIG. Which signal is the caller's choice:
    the one that makes its server shut down promptly and cleanly.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig))
        if os.getppid() != parent:  # the harness died before the setting took effect
            os._exit(1)

    return preexec


def start_child(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    log_path: Path,
    cwd: Path | None = None,
    death_signal: signal.Signals = signal.SIGTERM,
    cpus: Sequence[int] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a child in its own session (a terminal Ctrl-C reaches only the harness, which then stops the
    child in order) with stdout and stderr in `log_path`; it gets `death_signal` if the harness dies. With
    `cpus` the child (and every process it forks, e.g. uvicorn's workers) runs only on those CPUs."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    process: subprocess.Popen[bytes]
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # Thread-safe enough: the hook only makes two syscalls (prctl, getppid), no locks or imports.
            preexec_fn=die_with_parent(death_signal),  # noqa: PLW1509
        )
    if cpus is not None:
        # Set from here, not in preexec_fn: the child is still loading Python when this runs, long before
        # it forks workers or threads, and a failure here is the harness's to report.
        try:
            os.sched_setaffinity(process.pid, set(cpus))
        except OSError as exc:
            stop_child(process)
            raise BenchError(f"cannot pin a child to CPUs {sorted(cpus)}: {exc.strerror}") from None
    return process


def stop_child(process: subprocess.Popen[bytes], *, grace_s: float = 10.0) -> int | None:
    """Ask politely (SIGTERM), then insist (SIGKILL). Only ever signals this one PID."""
    if process.poll() is None:
        try:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=grace_s)
        except ProcessLookupError:
            pass
    return process.returncode


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the kernel picks it)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            return int(sock.getsockname()[1])
    except OSError as exc:
        raise BenchError(f"no free TCP port on {host}: {exc.strerror or exc}") from None


def log_tail(path: Path, lines: int = 1) -> str:
    """The last non-empty lines of a log, for one-line error messages."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(kept[-lines:])


def python_executable() -> str:
    """The interpreter running the harness: children use the same environment and library versions."""
    return sys.executable or "python3"


def child_environment(extra: Mapping[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM takes the same path as Ctrl-C, so every child is stopped (and a run is marked incomplete)."""

    def _raise(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
