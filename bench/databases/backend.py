"""What every database backend offers the harness: locate or start a server, describe it, seed it."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class SeedResult:
    rows: int
    reused: bool  # the dataset was already in place (content fingerprint matched): nothing written
    seconds: float


@dataclass(frozen=True)
class Database:
    """A server a run uses. `url` may hold a password: it goes to the apps, never unmasked into records."""

    backend: str  # "postgresql", "mysql", "mongodb", "redis", "memory"
    url: str | None  # None for the in-memory baseline
    label: str  # shown in tables and chart titles: "PostgreSQL 15.19", "secantusdb 0.7.0b3 (surrogate)"
    version: str
    embedded: bool  # started by bench for this run (and stopped by it)
    surrogate: bool = False  # a stand-in for the real server: its figures are never that server's performance
    source: str = ""  # where it came from: "given URL", "local server on the default port", a binaries dir
    settings: dict[str, str] = field(default_factory=dict)
    # Stop/start/freeze the server, for fault injection; only for a server the harness started itself.
    control: ServerControl | None = field(default=None, compare=False, repr=False)


class ServerControl(Protocol):
    """What fault injection (bench/measure/fault_injection.py) may do to a database the harness started."""

    def stop(self) -> None:
        """Shut the server down (fast: clients are disconnected); returns when it has exited."""
        ...

    def start(self) -> None:
        """Start it again on the same port with the same data; returns when it accepts connections."""
        ...

    def pause(self) -> None:
        """Freeze every process of the server (SIGSTOP): connections stay open, nothing answers."""
        ...

    def resume(self) -> None:
        """Undo pause (SIGCONT)."""
        ...


class Backend(Protocol):
    """One database system. Implementations live in bench/databases/<name>.py and are listed in registry."""

    name: str  # the `backend` value of the variants it serves
    url_option: str  # CLI option giving its URL, e.g. "--mysql-url"
    url_env: str  # environment variable giving its URL, e.g. "MYSQL_URL"

    def provision(
        self, *, url: str | None, connections_needed: int, dataset_rows: int, work_dir: Path, local: bool = True
    ) -> AbstractContextManager[Database]:
        """Use `url` as given (after checking it can take `connections_needed` more connections), or find a
        server already answering on the default local port (unless `local` is False), or start one; stop what
        was started when the context ends. BenchError (one line) when impossible."""
        ...

    def seed(self, database: Database, rows: int) -> SeedResult | None:
        """Put `apps.dataset.seed_items(rows)` in place, idempotently; None when the app seeds itself."""
        ...
