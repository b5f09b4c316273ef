"""MySQL/MariaDB provisioning: given URLs, the local server, throwaway servers and their leftovers, seeding."""

from __future__ import annotations

import importlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from apps import sqla
from apps.dataset import seed_items
from apps.masking import mask_url
from apps.schema import ItemRow
from apps.settings import StartupError
from apps.sql_common import ITEMS_TABLE
from apps.sqla import SCHEMA_LOCK_NAME
from bench.databases.backend import Database
from bench.databases.mysql import backend as mysql
from bench.databases.mysql import seed as mysql_seed
from bench.databases.mysql import server as mysql_server
from bench.databases.mysql.backend import (
    LOCAL_SOURCE,
    RECORDED_SETTINGS,
    MysqlBackend,
    MysqlServer,
    check_capacity,
    provision_mysql,
    seed_mysql,
    throwaway_mysql,
)
from bench.databases.mysql.connect import pymysql_url
from bench.databases.mysql.seed import DATASET_TABLE, FINGERPRINT_SQL
from bench.databases.mysql.server import (
    CONNECTION_HEADROOM,
    MysqlBinaries,
    install_data_dir,
    locate_binaries,
    make_server_dir,
    mariadb_log,
    prepare_server_dir,
    remove_stale_servers,
    server_user,
    start_server,
    stop_server,
)
from bench.databases.registry import get_backend
from bench.databases.throwaway.workdirs import OWNER_FILE, process_start_time
from bench.records.errors import BenchError
from bench.system.processes import free_port
from tests.backends.mysql import CONNECTIONS_NEEDED

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ROWS = 1000


@pytest.fixture(scope="module")
def binaries() -> MysqlBinaries:
    found = locate_binaries()
    if found is None:
        pytest.skip("MariaDB's server binaries (mariadbd and mariadb-install-db) are not installed")
    return found


@pytest.fixture
def throwaway(mysql_server: MysqlServer) -> MysqlServer:
    """The session's server, when the harness started it: tests that change the server itself need that."""
    if not mysql_server.embedded:
        pytest.skip("the tests use a server they did not start (BENCH_TEST_MYSQL_URL, or no MariaDB binaries)")
    return mysql_server


@pytest.fixture
def own_tmp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temp root only this test scans for bench-mysql-* dirs (other harnesses on the machine use /tmp too).

    World-searchable, like /tmp, so the unprivileged server user can reach servers inside it.
    """
    root = Path(tempfile.mkdtemp(prefix="bench-test-tmp-"))
    root.chmod(0o755)
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    monkeypatch.setenv("TMPDIR", str(root))
    yield root
    remove_stale_servers(root)
    shutil.rmtree(root, ignore_errors=True)


def _engine(url: str) -> Engine:
    return create_engine(pymysql_url(url), poolclass=NullPool)


def _execute(url: str, *statements: str) -> None:
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def _query(url: str, statement: str) -> list[tuple[object, ...]]:
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.exec_driver_sql(statement)]
    finally:
        engine.dispose()


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
    workdir = Path(tempfile.mkdtemp(prefix="bench-mysql-"))
    (workdir / OWNER_FILE).write_text(owner + "\n")
    return workdir


def _script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


# --- a throwaway server -------------------------------------------------------------------------------


def test_throwaway_server_accepts_connections_with_the_requested_settings(throwaway: MysqlServer) -> None:
    port = make_url(throwaway.url).port
    assert throwaway.url == f"mysql://root@127.0.0.1:{port}/bench"
    assert throwaway.label.startswith("MariaDB ") and throwaway.label.split()[1] in throwaway.version
    assert throwaway.source.startswith("throwaway server from ") and throwaway.source.endswith("mariadbd")
    assert throwaway.settings == {
        "max_connections": str(CONNECTIONS_NEEDED + CONNECTION_HEADROOM),
        "innodb_buffer_pool_size": str(128 * 2**20),  # the minimum: 1000 rows need far less
        "innodb_flush_log_at_trx_commit": "1",  # durability as MariaDB ships it
        "sync_binlog": "0",
        "log_bin": "OFF",
    }
    [(database, charset, bind_address, socket)] = _query(
        throwaway.url, "SELECT DATABASE(), @@character_set_database, @@bind_address, @@socket"
    )
    assert (database, charset, bind_address) == ("bench", "utf8mb4", "127.0.0.1")
    assert throwaway.workdir is not None and Path(str(socket)).parent == throwaway.workdir


def test_throwaway_server_is_an_unprivileged_child_in_its_own_session(throwaway: MysqlServer) -> None:
    assert throwaway.pid is not None
    assert os.getsid(throwaway.pid) == throwaway.pid  # a terminal Ctrl-C does not reach it before we stop it
    status = Path(f"/proc/{throwaway.pid}/status").read_text()
    assert int(status.split("PPid:")[1].split()[0]) == os.getpid()
    uid = int(status.split("Uid:")[1].split()[0])
    if os.geteuid() == 0:  # mariadbd refuses root: it runs as `mysql` where that user exists
        names = {entry.pw_name for entry in pwd.getpwall()}
        expected = pwd.getpwnam("mysql" if "mysql" in names else "nobody").pw_uid
        assert uid == expected != 0
    else:
        assert uid == os.geteuid()


@pytest.mark.parametrize("raised", [None, KeyboardInterrupt])
def test_leaving_the_context_stops_the_server_cleanly_and_removes_its_directory(
    raised: type[BaseException] | None, binaries: MysqlBinaries, own_tmp: Path
) -> None:
    stale = _stale_dir(f"{_dead_pid()} 1")  # a dead harness's leftover: the next start removes it
    log_path = own_tmp / "logs" / "mysql.log"  # (not tmp_path: own_tmp moved the temp root under it)
    pid, workdir = 0, Path()
    try:
        with throwaway_mysql(binaries, connections_needed=1, dataset_rows=0, log_path=log_path) as started:
            assert started.pid is not None and started.workdir is not None
            pid, workdir = started.pid, started.workdir
            assert _alive(pid) and workdir.is_dir() and workdir.parent == own_tmp
            assert not stale.exists()
            if raised is not None:
                raise raised("interrupted inside the context")
    except KeyboardInterrupt as caught:
        assert raised is not None and isinstance(caught, raised)
    assert pid and not _alive(pid)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped, not a zombie
    assert not workdir.exists()
    log = log_path.read_text()  # the log outlives the server when the caller chose where it goes
    assert "Normal shutdown" in log and "Shutdown complete" in log  # SIGTERM was enough: no SIGKILL


def test_server_that_cannot_start_is_reported_with_its_log_line_and_cleaned_up(
    binaries: MysqlBinaries, own_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mysql_server, "server_options", lambda needed, rows: ["--no-such-option=1"])
    with (
        pytest.raises(BenchError) as raised,
        throwaway_mysql(binaries, connections_needed=1, dataset_rows=0),
    ):
        pytest.fail("the context must not be entered")
    message = raised.value.message
    assert message.startswith("the throwaway MariaDB exited during start-up: [ERROR] ")
    assert "no-such-option" in message and "pass --mysql-url" in message
    assert "\n" not in message
    assert not list(own_tmp.glob("bench-mysql-*"))


def test_failing_install_is_reported_with_its_error_line(binaries: MysqlBinaries, own_tmp: Path) -> None:
    broken = own_tmp / "broken"
    installer = _script(
        broken / "mariadb-install-db", "echo 'Installing tables'\necho 'FATAL ERROR: disk on fire' >&2\nexit 1"
    )
    broken.chmod(0o755)
    fake = MysqlBinaries(server=binaries.server, install_db=installer, version=binaries.version)
    with (
        pytest.raises(BenchError, match=f"^{installer} failed: FATAL ERROR: disk on fire; pass --mysql-url"),
        throwaway_mysql(fake, connections_needed=1, dataset_rows=0),
    ):
        pytest.fail("the context must not be entered")
    assert not list(own_tmp.glob("bench-mysql-*"))


# --- which binaries --------------------------------------------------------------------------------------


def test_binaries_are_found_on_path_or_in_system_dirs_and_must_be_mariadb(tmp_path: Path) -> None:
    maria = tmp_path / "maria"
    _script(maria / "mariadbd", "echo 'mariadbd  Ver 10.11.0-MariaDB for Linux on x86_64'")
    _script(maria / "mariadb-install-db", "exit 0")
    mysql8 = tmp_path / "mysql8"
    _script(mysql8 / "mysqld", "echo 'mysqld  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)'")
    _script(mysql8 / "mysql_install_db", "exit 0")
    server_only = tmp_path / "server-only"
    _script(server_only / "mariadbd", "echo 'mariadbd  Ver 10.11.0-MariaDB for Linux on x86_64'")

    on_path = locate_binaries(path=str(maria), system_dirs=[])
    in_system_dir = locate_binaries(path="", system_dirs=[maria])
    assert on_path is not None and in_system_dir is not None
    assert (on_path.server, on_path.install_db) == (maria / "mariadbd", maria / "mariadb-install-db")
    assert "10.11.0-MariaDB" in on_path.version and in_system_dir == on_path
    assert locate_binaries(path=str(mysql8), system_dirs=[]) is None  # MySQL 8 initialises differently
    assert locate_binaries(path=str(server_only), system_dirs=[]) is None


# --- a given URL, the local server, none at all ------------------------------------------------------


def test_given_url_is_checked_described_and_left_running(mysql_server: MysqlServer) -> None:
    sqlalchemy_style = mysql_server.url.replace("mysql://", "mariadb+aiomysql://", 1)
    with provision_mysql(url=sqlalchemy_style, connections_needed=5, dataset_rows=10) as given:
        assert given.url == sqlalchemy_style  # as the user gave it
        assert (given.embedded, given.source, given.pid, given.workdir) == (False, "given URL", None, None)
        assert given.version == mysql_server.version and given.settings == mysql_server.settings
    if mysql_server.pid is not None:
        assert _alive(mysql_server.pid)  # never stop a server we did not start
    assert _query(mysql_server.url, "SELECT 1") == [(1,)]


def test_capacity_check_counts_connections_already_in_use(mysql_server: MysqlServer) -> None:
    engine = _engine(mysql_server.url)
    try:
        with engine.connect() as probe:
            others = [engine.connect() for _ in range(5)]
            try:
                [(max_connections,)] = probe.exec_driver_sql("SELECT @@max_connections").all()
                threads = int(probe.exec_driver_sql("SHOW GLOBAL STATUS LIKE 'Threads_connected'").one()[1])
                free = int(max_connections) - (threads - 1)  # the probe itself is not counted
                check_capacity(probe, mysql_server.url, free)
                with pytest.raises(BenchError) as raised:
                    check_capacity(probe, mysql_server.url, free + 1)
            finally:
                for conn in others:
                    conn.close()
    finally:
        engine.dispose()
    assert threads >= 6
    message = raised.value.message
    assert f"needs {free + 1} connections" in message
    assert f"allows {free} (max_connections {max_connections} - {threads - 1} in use)" in message


def test_capacity_check_fails_clearly_when_far_too_many_connections_are_needed(mysql_server: MysqlServer) -> None:
    with (
        pytest.raises(BenchError) as raised,
        provision_mysql(url=mysql_server.url, connections_needed=100_000, dataset_rows=0),
    ):
        pytest.fail("the context must not be entered")
    message = raised.value.message
    assert message.startswith(f"the run needs 100000 connections but MySQL at {mysql_server.url} allows ")
    assert "raise max_connections" in message and "lower pool_size/max_overflow" in message
    assert "\n" not in message


def _with_user(url: str, user: str, password: str) -> str:
    return make_url(url).set(username=user, password=password).render_as_string(hide_password=False)


@pytest.mark.parametrize(
    ("make_bad_url", "cause"),
    [
        (lambda port, server: f"mysql://bench:s3cret@127.0.0.1:{port}/bench", "Connection refused"),
        (lambda port, server: "mysql://bench:s3cret@127.0.0.1:notaport/bench", "notaport"),
        (lambda port, server: _with_user(server.url, "nosuch", "s3cret"), "Access denied for user 'nosuch'"),
        # SQLAlchemy would take "cret@127.0.0.1" for the host and print it: refused before connecting
        (lambda port, server: f"mysql://bench:s3@cret@127.0.0.1:{port}/bench", "percent-encode"),
        (lambda port, server: f"postgresql://bench:s3cret@127.0.0.1:{port}/bench", "must start with mysql://"),
    ],
    ids=["unreachable", "malformed", "unknown-user", "raw-at-in-password", "wrong-scheme"],
)
def test_bad_given_url_is_one_line_naming_the_masked_url_and_the_cause(
    mysql_server: MysqlServer, make_bad_url: Callable[[int, MysqlServer], str], cause: str
) -> None:
    url = make_bad_url(free_port(), mysql_server)
    with (
        pytest.raises(BenchError) as raised,
        provision_mysql(url=url, connections_needed=1, dataset_rows=0),
    ):
        pytest.fail("the context must not be entered")
    message = raised.value.message
    assert "cret" not in message  # neither the password nor a piece of it
    assert "bench:***@127.0.0.1" in message or "nosuch:***@" in message
    assert cause in message
    assert "\n" not in message


def test_without_a_url_a_local_server_letting_root_in_is_used_and_given_a_bench_database(
    throwaway: MysqlServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = make_url(throwaway.url).port
    assert port is not None
    monkeypatch.setattr(mysql, "LOCAL_PORT", port)  # the throwaway stands in for a server on 3306
    _execute(throwaway.url, "DROP DATABASE bench")
    try:
        with provision_mysql(url=None, connections_needed=5, dataset_rows=10) as local:
            assert (local.url, local.source, local.embedded) == (throwaway.url, LOCAL_SOURCE, False)
            assert local.pid is None and local.version == throwaway.version
            assert _query(local.url, "SELECT DATABASE()") == [("bench",)]
    finally:
        _execute(throwaway.url.rsplit("/", 1)[0] + "/", "CREATE DATABASE IF NOT EXISTS bench")
        seed_mysql(throwaway.url, ROWS)  # as the other tests expect it
    assert throwaway.pid is not None and _alive(throwaway.pid)


def test_no_url_no_local_server_and_no_binaries_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mysql, "LOCAL_PORT", free_port())
    monkeypatch.setattr(mysql, "locate_binaries", lambda: locate_binaries(path="", system_dirs=[]))
    with (
        pytest.raises(BenchError) as raised,
        provision_mysql(url=None, connections_needed=1, dataset_rows=0),
    ):
        pytest.fail("the context must not be entered")
    message = raised.value.message
    assert "lets root in without a password" in message and "Connection refused" in message
    assert "no MariaDB server binaries" in message
    assert "set --mysql-url or MYSQL_URL" in message
    assert "docker compose up -d mariadb` and pass --mysql-url mysql://root:mariadb@127.0.0.1:3306/bench" in message
    assert "\n" not in message


def test_backend_is_registered_and_describes_the_server_for_the_record(
    mysql_server: MysqlServer, tmp_path: Path
) -> None:
    backend = get_backend("mysql")
    assert isinstance(backend, MysqlBackend)
    assert (backend.name, backend.url_option, backend.url_env) == ("mysql", "--mysql-url", "MYSQL_URL")
    with backend.provision(url=mysql_server.url, connections_needed=5, dataset_rows=10, work_dir=tmp_path) as db:
        assert db == Database(
            backend="mysql",
            url=mysql_server.url,
            label=mysql_server.label,
            version=mysql_server.version,
            embedded=False,
            source="given URL",
            settings=mysql_server.settings,
        )
    assert list(mysql_server.settings) == list(RECORDED_SETTINGS)
    assert not list(tmp_path.iterdir())  # no server started, so no log written


# --- leftovers of harnesses that died -----------------------------------------------------------------


def test_stale_dirs_of_dead_owners_are_removed_and_unrelated_processes_spared(own_tmp: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        dead_owner = _stale_dir(f"{_dead_pid()} 1")
        reused_pid = _stale_dir(f"{sleeper.pid} 1")  # alive, but started at another time: a reused PID
        unrelated = _stale_dir(f"{_dead_pid()}")
        (unrelated / "mariadbd.pid").write_text(f"{sleeper.pid}\n")  # its PID is taken by a non-server now
        me = os.getpid()
        live_owner = _stale_dir(f"{me} {process_start_time(me) or ''}")
        unowned_young = Path(tempfile.mkdtemp(prefix="bench-mysql-"))  # being created right now, perhaps

        removed = remove_stale_servers(own_tmp)

        assert sorted(removed) == sorted([dead_owner, reused_pid, unrelated])
        assert not dead_owner.exists() and not reused_pid.exists() and not unrelated.exists()
        assert live_owner.is_dir() and unowned_young.is_dir()
        assert sleeper.poll() is None  # its PID was in a pid file, but it is no mariadbd
    finally:
        sleeper.kill()
        sleeper.wait()


def test_orphaned_server_is_stopped_before_its_directory_is_removed(binaries: MysqlBinaries, own_tmp: Path) -> None:
    workdir = make_server_dir()
    (workdir / OWNER_FILE).write_text(f"{_dead_pid()}\n")
    log = mariadb_log(own_tmp / "orphan.log")
    process: subprocess.Popen[bytes] | None = None
    try:
        user = server_user()
        prepare_server_dir(workdir, user)
        install_data_dir(binaries, workdir, user, log)
        process, _port = start_server(binaries, workdir, user, log, ["--max-connections=5"])
        assert _alive(process.pid)

        assert remove_stale_servers(own_tmp) == [workdir]
        assert process.wait(timeout=30) == 0  # a clean shutdown, not a kill
        assert not workdir.exists()
        assert "Shutdown complete" in log.text()
    finally:
        if process is not None:
            stop_server(process)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def test_server_of_a_killed_harness_shuts_down_and_is_cleaned_up_later(binaries: MysqlBinaries, own_tmp: Path) -> None:
    script = (
        "import time\n"
        "from bench.databases.mysql.backend import locate_binaries, throwaway_mysql\n"
        "with throwaway_mysql(locate_binaries(), connections_needed=1, dataset_rows=0) as s:\n"
        "    print(s.pid, s.url, s.workdir, flush=True)\n"
        "    time.sleep(120)\n"
    )
    harness = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT)
    engine: Engine | None = None
    try:
        assert harness.stdout is not None
        pid_text, url, workdir_text = harness.stdout.readline().split()
        pid, workdir = int(pid_text), Path(workdir_text)
        # A client still connected (like an orphaned app's pool) must not keep the server alive.
        engine = _engine(url)
        client = engine.connect()
        client.exec_driver_sql("SELECT 1")
        harness.send_signal(signal.SIGKILL)  # no finally, no atexit: only the kernel can tell the server
        harness.wait()
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid)  # parent-death signal -> normal shutdown, which disconnects clients
        assert workdir.is_dir()  # nobody cleaned up...
        assert remove_stale_servers(own_tmp) == [workdir]  # ...until the next start does
    finally:
        if engine is not None:
            engine.dispose()
        if harness.poll() is None:
            harness.kill()
            harness.wait()


# --- seeding -------------------------------------------------------------------------------------------


@pytest.fixture
def url(mysql_url: str) -> Iterator[str]:
    """The session's server with neither table, so every test starts from nothing."""
    _execute(mysql_url, f"DROP TABLE IF EXISTS {ITEMS_TABLE}, {DATASET_TABLE}")
    yield mysql_url
    seed_mysql(mysql_url, ROWS)  # leave the dataset in place for whoever runs next


def _rows(url: str) -> list[tuple[object, ...]]:
    return _query(url, f"SELECT id, name, description, price, quantity FROM {ITEMS_TABLE} ORDER BY id")


# Statement counters of the whole server: only this test uses it meanwhile (a server of someone else's that
# is busy would make the reuse test fail, never pass wrongly).
_WRITES = ("Com_insert", "Com_insert_select", "Com_delete", "Com_update", "Com_truncate", "Com_alter_table")


def _writes(url: str) -> dict[str, int]:
    names = ", ".join(f"'{name}'" for name in _WRITES)
    rows = _query(url, f"SHOW GLOBAL STATUS WHERE Variable_name IN ({names})")
    return {str(name): int(str(value)) for name, value in rows}


def test_seeding_writes_exactly_the_dataset(url: str) -> None:
    result = seed_mysql(url, ROWS)
    assert (result.rows, result.reused) == (ROWS, False)
    assert result.seconds > 0
    rows = _rows(url)
    assert [row[0] for row in rows] == list(range(1, ROWS + 1))
    assert rows == [tuple(item) for item in seed_items(ROWS)]


def test_untouched_dataset_is_reused_without_writing(url: str) -> None:
    before_first = _writes(url)
    seed_mysql(url, ROWS)
    before = _writes(url)
    assert all(before[name] > before_first[name] for name in ("Com_insert", "Com_truncate"))  # it would show

    again = seed_mysql(url, ROWS)

    assert (again.rows, again.reused) == (ROWS, True)
    assert _writes(url) == before
    database = Database(backend="mysql", url=url, label="", version="", embedded=False)
    assert MysqlBackend().seed(database, ROWS).reused is True


@pytest.mark.parametrize(
    "tamper",
    [
        f"UPDATE {ITEMS_TABLE} SET name = 'tampered' WHERE id = 500",
        f"UPDATE {ITEMS_TABLE} SET price = price + 0.01 WHERE id = 999",
        f"DELETE FROM {ITEMS_TABLE} WHERE id = 1000",
        f"INSERT INTO {ITEMS_TABLE} (name, price, quantity) VALUES ('posted', 1.5, 1)",
        f"UPDATE {DATASET_TABLE} SET fingerprint = 'stale'",
    ],
    ids=["name", "price", "delete", "insert", "fingerprint"],
)
def test_any_change_is_noticed_and_the_dataset_restored(url: str, tamper: str) -> None:
    seed_mysql(url, ROWS)
    _execute(url, tamper)
    result = seed_mysql(url, ROWS)
    assert result.reused is False
    assert _rows(url) == [tuple(item) for item in seed_items(ROWS)]
    assert seed_mysql(url, ROWS).reused is True


def test_data_from_another_generator_is_reseeded_even_with_a_matching_fingerprint(url: str) -> None:
    # As if apps.dataset changed since the last seed: consistent bookkeeping, but not today's rows.
    seed_mysql(url, ROWS)
    _execute(
        url,
        f"UPDATE {ITEMS_TABLE} SET quantity = quantity + 1 WHERE id = 1",
        f"DELETE FROM {DATASET_TABLE}",
        f"INSERT INTO {DATASET_TABLE} (dataset_rows, fingerprint) SELECT {ROWS}, ({FINGERPRINT_SQL})",
    )
    assert seed_mysql(url, ROWS).reused is False
    assert _rows(url)[0] == tuple(next(seed_items(1)))


def test_a_different_row_count_reseeds(url: str) -> None:
    seed_mysql(url, ROWS)
    smaller = seed_mysql(url, 10)
    assert (smaller.rows, smaller.reused) == (10, False)
    assert _rows(url) == [tuple(item) for item in seed_items(10)]


def test_an_insert_without_id_after_seeding_continues_after_the_dataset(url: str) -> None:
    engine = _engine(url)
    try:
        for _ in range(2):  # the second seed replaces the first POST and rewinds AUTO_INCREMENT again
            seed_mysql(url, ROWS)
            with Session(engine) as session:
                posted = ItemRow(name="posted", description=None, price=9.99, quantity=3)
                session.add(posted)
                session.commit()
                assert posted.id == ROWS + 1
    finally:
        engine.dispose()


def test_an_interrupted_reseed_leaves_no_half_dataset_that_could_be_reused(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = 12_000  # more than one insert batch
    real_seed_items = seed_items

    def failing_after_7000(count: int) -> Iterator[object]:
        yield from islice(real_seed_items(count), 7000)
        raise RuntimeError("interrupted")

    seed_mysql(url, ROWS)
    monkeypatch.setattr(mysql_seed, "seed_items", failing_after_7000)
    with pytest.raises(RuntimeError, match="interrupted"):
        seed_mysql(url, rows)
    # The first batch was inserted, but in the transaction that never committed.
    assert _query(url, f"SELECT COUNT(*) FROM {ITEMS_TABLE}") == [(0,)]
    assert _query(url, f"SELECT COUNT(*) FROM {DATASET_TABLE}") == [(0,)]
    monkeypatch.setattr(mysql_seed, "seed_items", real_seed_items)
    assert seed_mysql(url, rows).reused is False
    assert _query(url, f"SELECT COUNT(*), MAX(id) FROM {ITEMS_TABLE}") == [(rows, rows)]


def test_prices_keep_double_precision(url: str) -> None:
    # MySQL's FLOAT is single precision: 1234.5678 would come back as 1234.57, unlike on PostgreSQL.
    seed_mysql(url, ROWS)
    prices = [1234.5678, 0.1 + 0.2, 499.99]
    engine = _engine(url)
    try:
        with Session(engine) as session:
            session.add_all(ItemRow(name=f"precise {price}", price=price, quantity=1) for price in prices)
            session.commit()
        with Session(engine) as session:
            stored = session.scalars(select(ItemRow.price).where(ItemRow.id > ROWS).order_by(ItemRow.id)).all()
        assert list(stored) == prices
    finally:
        engine.dispose()


def test_seed_connection_problems_are_one_line_without_the_password() -> None:
    with pytest.raises(BenchError) as raised:
        seed_mysql(f"mysql://bench:s3cret@127.0.0.1:{free_port()}/bench", 10)
    message = raised.value.message
    assert message.startswith("cannot seed MySQL at mysql://bench:***@127.0.0.1:")
    assert "Connection refused" in message and "s3cret" not in message and "\n" not in message


def test_a_second_seeder_waits_for_the_lock_then_gives_up_clearly(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mysql_seed, "LOCK_TIMEOUT_S", 1)
    engine = _engine(url)
    try:
        with engine.connect() as other:
            name = "LEFT(CONCAT('fastapi-db-bench:seed:', DATABASE()), 64)"
            assert other.exec_driver_sql(f"SELECT GET_LOCK({name}, 0)").scalar() == 1
            with pytest.raises(BenchError, match=r"^another bench has been seeding this database for 1 s"):
                seed_mysql(url, ROWS)
            other.exec_driver_sql(f"SELECT RELEASE_LOCK({name})")
        assert seed_mysql(url, ROWS).reused is False
    finally:
        engine.dispose()


# --- the apps' start-up on MySQL ------------------------------------------------------------------------


@pytest.fixture
def app_environment(mysql_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in list(os.environ):
        if name.startswith("BENCH_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("BENCH_DATABASE_URL", mysql_url)
    return mysql_url


@pytest.mark.parametrize("variant", ["mysql_sqla_sync", "mysql_sqla_async"])
def test_startup_creates_the_table_and_releases_the_schema_lock(app_environment: str, variant: str) -> None:
    _execute(app_environment, f"DROP TABLE IF EXISTS {ITEMS_TABLE}, {DATASET_TABLE}")
    try:
        with TestClient(importlib.import_module(f"apps.{variant}").app) as client:
            assert client.get("/items").json() == []
            # The pool keeps the connection that took the lock: it must have let go of it all the same.
            assert _query(app_environment, f"SELECT IS_FREE_LOCK('{SCHEMA_LOCK_NAME}')") == [(1,)]
    finally:
        seed_mysql(app_environment, ROWS)


def test_startup_waits_for_the_schema_lock_then_fails_in_one_line(
    app_environment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqla, "_SCHEMA_LOCK_TIMEOUT_S", 1)
    engine = _engine(app_environment)
    try:
        with engine.connect() as other:
            assert other.exec_driver_sql(f"SELECT GET_LOCK('{SCHEMA_LOCK_NAME}', 0)").scalar() == 1
            with pytest.raises(StartupError) as raised, TestClient(importlib.import_module("apps.mysql_sqla_sync").app):
                pass
    finally:
        engine.dispose()
    message = str(raised.value)
    assert message.startswith(f"mysql_sqla_sync could not start (database {mask_url(app_environment)}): ")
    assert f"another session held the lock '{SCHEMA_LOCK_NAME}' for 1 s" in message
