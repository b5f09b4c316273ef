"""provision_mongo and seed_mongo: the secantusdb surrogate's lifecycle, given URLs, seeding, leftovers."""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pymongo import MongoClient

from apps.dataset import seed_items
from apps.mongo_items import COUNTERS_COLLECTION, ITEMS_COLLECTION
from bench.databases.backend import Database
from bench.databases.mongo.backend import (
    DATASET_COLLECTION,
    LOCAL_HOST,
    LOCAL_PORT,
    MongoBackend,
    MongoServer,
    NoMongoServerError,
    ServerFacts,
    check_capacity,
    provision_mongo,
    seed_mongo,
)
from bench.databases.mongo.server import (
    CONFIG_FILE,
    DIR_PREFIX,
    SERVER_FILE,
    answers_ping,
    locate_surrogate,
    remove_stale_workdirs,
)
from bench.databases.registry import get_backend
from bench.databases.throwaway.workdirs import OWNER_FILE, process_start_time
from bench.records.errors import BenchError
from bench.system.processes import free_port

Doc = dict[str, Any]

pytestmark = pytest.mark.skipif(locate_surrogate() is None, reason="secantusd-py (the secantusdb surrogate) is missing")
needs_no_local_mongod = pytest.mark.skipif(
    answers_ping(LOCAL_HOST, LOCAL_PORT), reason=f"a MongoDB server answers on {LOCAL_HOST}:{LOCAL_PORT}"
)


@pytest.fixture
def own_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A temp root only this test scans for bench-mongo-* dirs (other harnesses on the machine clean /tmp too)."""
    tmp_path_factory.getbasetemp()  # settled first, so pytest's own tmp_path is not put inside this root
    root = Path(tempfile.mkdtemp(prefix="bench-test-tmp-"))
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    monkeypatch.setenv("TMPDIR", str(root))
    yield root
    remove_stale_workdirs(root)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def surrogate() -> Iterator[MongoServer]:
    with provision_mongo(url=None, connections_needed=20) as started:
        yield started


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
    workdir = Path(tempfile.mkdtemp(prefix=DIR_PREFIX))
    (workdir / OWNER_FILE).write_text(owner + "\n")
    return workdir


def _url_of(server: MongoServer) -> str:
    assert server.database.url is not None
    return server.database.url


# --- the surrogate ----------------------------------------------------------------------------------------


@needs_no_local_mongod
def test_surrogate_is_started_and_labelled_as_a_surrogate(surrogate: MongoServer) -> None:
    database = surrogate.database
    assert database.backend == "mongodb"
    assert database.surrogate and database.embedded
    assert database.label == f"secantusdb {database.version} (surrogate)" and database.version[0].isdigit()
    assert database.source == "secantusdb surrogate started by bench"
    assert database.settings["process"] == "secantus"
    assert database.settings["topology"] == "standalone"
    assert database.settings["connections_available"] == "not reported (surrogate)"
    assert database.url is not None and database.url.startswith("mongodb://127.0.0.1:")
    assert database.url.endswith("/bench")
    client: MongoClient[Doc]
    with MongoClient(database.url, serverSelectionTimeoutMS=5000) as client:
        assert client.admin.command("ping")["ok"] == 1
        assert client.admin.command("serverStatus")["pid"] == surrogate.pid


@needs_no_local_mongod
def test_surrogate_is_a_child_in_its_own_session_with_its_storage_in_its_directory(surrogate: MongoServer) -> None:
    assert surrogate.pid is not None and surrogate.workdir is not None
    assert os.getsid(surrogate.pid) == surrogate.pid  # a terminal Ctrl-C does not reach it before we stop it
    assert Path(f"/proc/{surrogate.pid}/status").read_text().split("PPid:")[1].split()[0] == str(os.getpid())
    assert (surrogate.workdir / OWNER_FILE).read_text().split()[0] == str(os.getpid())
    assert list(surrogate.workdir.glob("secantus_wt_*"))  # its ':memory:' store, removed with our directory


@needs_no_local_mongod
@pytest.mark.parametrize("raised", [None, RuntimeError, KeyboardInterrupt])
def test_leaving_the_context_stops_the_surrogate_and_removes_its_directory(
    raised: type[BaseException] | None, own_tmp: Path, tmp_path: Path
) -> None:
    log_path = tmp_path / "logs" / "secantusd.log"
    pid, workdir = 0, Path()
    try:
        with provision_mongo(url=None, connections_needed=1, log_path=log_path) as started:
            assert started.pid is not None and started.workdir is not None
            pid, workdir = started.pid, started.workdir
            assert _alive(pid) and workdir.parent == own_tmp
            if raised is not None:
                raise raised("interrupted inside the context")
    except (RuntimeError, KeyboardInterrupt) as caught:
        assert raised is not None and isinstance(caught, raised)
    assert pid and not _alive(pid)
    assert not workdir.exists()
    assert not list(own_tmp.iterdir())  # nothing else left behind either (e.g. its storage directory)
    assert "listening on 127.0.0.1" in log_path.read_text()  # the log is kept where the caller asked


@needs_no_local_mongod
def test_backend_is_registered_and_keeps_the_log_in_the_run_folder(own_tmp: Path, tmp_path: Path) -> None:
    backend = get_backend("mongodb")
    assert isinstance(backend, MongoBackend)
    assert (backend.name, backend.url_option, backend.url_env) == ("mongodb", "--mongo-url", "MONGO_URL")
    with backend.provision(url=None, connections_needed=1, dataset_rows=0, work_dir=tmp_path) as database:
        assert database.surrogate
    assert (tmp_path / "secantusd.log").stat().st_size > 0


@needs_no_local_mongod
def test_more_connections_than_the_surrogate_takes_is_refused_before_starting_it(own_tmp: Path) -> None:
    with (
        pytest.raises(BenchError, match=r"needs 995 connections .* accepts at most 1000") as raised,
        provision_mongo(url=None, connections_needed=995),
    ):
        pytest.fail("the context must not be entered")
    assert "\n" not in raised.value.message
    assert not list(own_tmp.iterdir())


@needs_no_local_mongod
def test_without_mongod_or_the_surrogate_the_error_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "elsewhere" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    assert locate_surrogate() is None
    with pytest.raises(NoMongoServerError) as raised, provision_mongo(url=None, connections_needed=1):
        pytest.fail("the context must not be entered")
    message = raised.value.message
    assert "--mongo-url / MONGO_URL" in message
    assert "docker compose up -d mongo" in message and "--mongo-url mongodb://127.0.0.1:27017/bench" in message

    program = tmp_path / "secantusd-py"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    assert locate_surrogate() == program  # on PATH, when it is not beside the interpreter


# --- given URLs -------------------------------------------------------------------------------------------


@needs_no_local_mongod
def test_given_url_of_a_surrogate_is_still_labelled_a_surrogate(surrogate: MongoServer) -> None:
    with provision_mongo(url=_url_of(surrogate), connections_needed=5) as given:
        assert given.database.surrogate and not given.database.embedded
        assert given.database.label == surrogate.database.label
        assert given.database.source == "given URL"
        assert given.pid is None and given.workdir is None
    assert surrogate.pid is not None and _alive(surrogate.pid)  # a given server is never stopped


@pytest.mark.parametrize(
    ("make_url", "cause"),
    [
        (lambda port, server_url: f"mongodb://bench:s3cret@127.0.0.1:{port}/bench", "Connection refused"),
        (lambda port, server_url: "mongodb://bench:s3cret@127.0.0.1:notaport/bench", "non-digit"),
        (
            lambda port, server_url: server_url.replace("mongodb://", "mongodb://nosuchuser:s3cret@"),
            "authentication failed",
        ),
        (lambda port, server_url: f"mongodb://bench:s3@cret@127.0.0.1:{port}/bench", "escaped"),
        (lambda port, server_url: f"postgresql://bench:s3cret@127.0.0.1:{port}/bench", "must start with mongodb://"),
    ],
    ids=["unreachable", "malformed", "bad-login", "raw-at-in-password", "other-scheme"],
)
def test_bad_given_url_is_one_line_naming_the_masked_url_and_the_cause(
    surrogate: MongoServer, make_url: Any, cause: str
) -> None:
    url = make_url(free_port(), _url_of(surrogate))
    with pytest.raises(BenchError) as raised, provision_mongo(url=url, connections_needed=1):
        pytest.fail("the context must not be entered")
    message = raised.value.message
    assert "cret" not in message  # neither the password nor a piece of it
    assert ":***@127.0.0.1" in message
    assert cause in message
    assert "\n" not in message
    assert len(message) < 400  # no topology description or raw server reply


def test_capacity_check_refuses_a_server_without_room_and_tolerates_unknown_room() -> None:
    url = "mongodb://bench:s3cret@db.example:27017/bench"
    settings = {"connections_current": "40"}
    roomy = ServerFacts(version="7.0.14", surrogate=False, connections_available=110, settings=settings)
    unknown = ServerFacts(version="7.0.14", surrogate=False, connections_available=None, settings=settings)
    check_capacity(roomy, url, 100)
    check_capacity(unknown, url, 10_000)  # serverStatus not permitted, or a surrogate: recorded, not refused

    with pytest.raises(BenchError) as raised:
        check_capacity(roomy, url, 101)
    message = raised.value.message
    assert "needs 101 connections" in message and "has 110 available (40 in use)" in message
    assert "mongodb://bench:***@db.example:27017/bench" in message and "s3cret" not in message
    assert "net.maxIncomingConnections" in message and "\n" not in message


# --- seeding ----------------------------------------------------------------------------------------------


@pytest.fixture
def seed_db(surrogate: MongoServer, request: pytest.FixtureRequest) -> Iterator[tuple[Database, MongoClient[Doc]]]:
    """The surrogate under a database name of this test's own (never the contract tests' `bench`)."""
    name = f"seed_{request.node.name.split('[')[0][-40:]}"
    url = _url_of(surrogate).rsplit("/", 1)[0] + f"/{name}"
    database = Database(backend="mongodb", url=url, label="", version="", embedded=False)
    client: MongoClient[Doc]
    with MongoClient(url) as client:
        client.drop_database(name)
        yield database, client
        client.drop_database(name)


def test_seeding_is_idempotent_and_notices_any_change(seed_db: tuple[Database, MongoClient[Doc]]) -> None:
    database, client = seed_db
    backend = MongoBackend()
    items = client.get_default_database()[ITEMS_COLLECTION]

    first = backend.seed(database, 50)
    second = backend.seed(database, 50)
    assert (first.rows, first.reused, second.reused) == (50, False, True)
    assert [{"id": d.pop("_id"), **d} for d in items.find(sort=[("_id", 1)])] == [
        item._asdict() for item in seed_items(50)
    ]

    items.update_one({"_id": 7}, {"$set": {"price": 1.0}})
    assert not backend.seed(database, 50).reused  # a changed value
    seventh = next(item for item in seed_items(50) if item.id == 7)
    assert items.find_one({"_id": 7}, {"_id": False, "price": True}) == {"price": seventh.price}
    items.delete_one({"_id": 50})
    assert not backend.seed(database, 50).reused  # a missing item
    items.insert_one({"_id": 51, "name": "extra", "description": None, "price": 1.0, "quantity": 0})
    assert not backend.seed(database, 50).reused  # an extra item
    assert not backend.seed(database, 60).reused  # another size
    assert backend.seed(database, 60).reused
    assert items.count_documents({}) == 60
    assert "ix_bench_items_name" in items.index_information()


def test_the_next_created_item_gets_id_rows_plus_one_after_every_seed(
    seed_db: tuple[Database, MongoClient[Doc]], monkeypatch: pytest.MonkeyPatch
) -> None:
    database, client = seed_db
    assert database.url is not None
    for name in list(os.environ):
        if name.startswith("BENCH_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("BENCH_DATABASE_URL", database.url)
    app = importlib.import_module("apps.mongo_pymongo").app
    body = {"name": "after seeding", "price": 1.5}

    assert not seed_mongo(database.url, 20).reused
    with TestClient(app) as service:
        assert service.post("/items", json=body).json()["id"] == 21
        assert service.get("/items", params={"limit": 2}).json() == [i._asdict() for i in seed_items(2)]
    assert not seed_mongo(database.url, 20).reused  # the created item is gone again...
    counters = client.get_default_database()[COUNTERS_COLLECTION]
    counters.update_one({"_id": ITEMS_COLLECTION}, {"$set": {"seq": 500}})  # ...and a counter moved on
    assert seed_mongo(database.url, 20).reused  # content unchanged: reused, counter put back
    with TestClient(app) as service:
        assert service.post("/items", json=body).json()["id"] == 21


def test_an_interrupted_reseed_is_not_reused(seed_db: tuple[Database, MongoClient[Doc]]) -> None:
    database, client = seed_db
    assert database.url is not None
    seed_mongo(database.url, 30)
    db = client.get_default_database()
    # As if the harness died after the marker was removed and part of the items were written.
    db[DATASET_COLLECTION].delete_many({})
    db[ITEMS_COLLECTION].delete_many({"_id": {"$gt": 10}})

    assert not seed_mongo(database.url, 30).reused
    assert db[ITEMS_COLLECTION].count_documents({}) == 30


def test_seeding_an_unreachable_server_is_one_line() -> None:
    url = f"mongodb://bench:s3cret@127.0.0.1:{free_port()}/bench"
    with pytest.raises(BenchError) as raised:
        seed_mongo(url, 10)
    assert raised.value.message.startswith("cannot connect to MongoDB at mongodb://bench:***@127.0.0.1:")
    assert "s3cret" not in raised.value.message and "\n" not in raised.value.message


# --- leftovers of harnesses that died ------------------------------------------------------------------


@needs_no_local_mongod
def test_stale_dirs_of_dead_owners_are_removed_on_next_start_and_unrelated_processes_spared(
    own_tmp: Path,
) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        dead_owner = _stale_dir(f"{_dead_pid()} 1")
        reused_pid = _stale_dir(f"{sleeper.pid} 1")  # alive, but started at another time: a reused PID
        unrelated = _stale_dir(f"{_dead_pid()}")
        (unrelated / SERVER_FILE).write_text(f"{sleeper.pid}\n")  # its surrogate's PID, now someone else's
        me = os.getpid()
        live_owner = _stale_dir(f"{me} {process_start_time(me) or ''}")
        with provision_mongo(url=None, connections_needed=1):
            pass
        assert not dead_owner.exists() and not reused_pid.exists() and not unrelated.exists()
        assert live_owner.is_dir()
        assert sleeper.poll() is None  # its PID was in a surrogate-pid file, but it is no surrogate of ours
    finally:
        sleeper.kill()
        sleeper.wait()


def test_orphaned_surrogate_is_stopped_before_its_directory_is_removed(own_tmp: Path) -> None:
    program = locate_surrogate()
    assert program is not None
    workdir = _stale_dir(f"{_dead_pid()}")
    (workdir / CONFIG_FILE).write_text("")
    port = free_port()
    orphan = subprocess.Popen(
        [str(program), "--host", "127.0.0.1", "--port", str(port), "--storage-path", ":memory:",
         "--config", str(workdir / CONFIG_FILE)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "TMPDIR": str(workdir)},
    )  # fmt: skip
    try:
        (workdir / SERVER_FILE).write_text(f"{orphan.pid} {process_start_time(orphan.pid) or ''}\n")
        deadline = time.monotonic() + 30
        while not answers_ping("127.0.0.1", port) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(workdir.glob("secantus_wt_*"))  # serving, with its storage inside the stale directory
        assert remove_stale_workdirs() == [workdir]
        # SIGTERM (a clean exit), or SIGKILL if that took longer than STOP_TIMEOUT_S on a busy machine.
        assert orphan.wait(timeout=60) in (0, -signal.SIGKILL)
        assert not workdir.exists()
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()


@needs_no_local_mongod
def test_surrogate_of_a_killed_harness_stops_and_is_cleaned_up_later(own_tmp: Path) -> None:
    script = (
        "import time\n"
        "from bench.databases.mongo.backend import provision_mongo\n"
        "with provision_mongo(url=None, connections_needed=1) as s:\n"
        "    print(s.pid, s.workdir, flush=True)\n"
        "    time.sleep(120)\n"
    )
    harness = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert harness.stdout is not None
        pid_text, workdir_text = harness.stdout.readline().split()
        pid, workdir = int(pid_text), Path(workdir_text)
        harness.send_signal(signal.SIGKILL)  # no finally, no atexit: only the kernel can tell the surrogate
        harness.wait()
        deadline = time.monotonic() + 60
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid)  # the parent-death signal (SIGKILL for the surrogate) ends it
        assert workdir.is_dir()  # nobody cleaned up...
        assert remove_stale_workdirs() == [workdir]  # ...until the next start does
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait()
