"""provision_redis and seed_redis: throwaway servers, given and local URLs, leftovers, idempotent seeding."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from apps.dataset import seed_items
from apps.redis_items import NEXT_ID_KEY, ORDER_KEY, item_key
from bench.databases.backend import Database
from bench.databases.redis.backend import CONNECTION_HEADROOM, DATASET_KEY, LOCAL_DATABASE, provision_redis, seed_redis
from bench.databases.redis.server import (
    DIR_PREFIX,
    SERVER_PID_FILE,
    remove_stale_dirs,
    server_arguments,
)
from bench.databases.throwaway.workdirs import OWNER_FILE
from bench.records.errors import BenchError
from bench.system.processes import free_port

NEEDED = 20
ROWS = 300

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server on PATH")


@pytest.fixture(scope="module")
def server() -> Iterator[Database]:
    with provision_redis(url=None, connections_needed=NEEDED, local_port=None) as started:
        yield started


@pytest.fixture
def own_tmp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temp root only this test scans for bench-redis-* dirs (other harnesses on the machine clean /tmp too)."""
    root = Path(tempfile.mkdtemp(prefix="bench-test-tmp-"))
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    monkeypatch.setenv("TMPDIR", str(root))
    yield root
    remove_stale_dirs(root)
    shutil.rmtree(root, ignore_errors=True)


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True)


def _pid_and_dir(url: str) -> tuple[int, Path]:
    with _client(url) as client:
        return int(client.info("server")["process_id"]), Path(client.config_get("dir")["dir"])


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


def _stale_dir(owner: str, server_pid: str | None = None) -> Path:
    workdir = Path(tempfile.mkdtemp(prefix=DIR_PREFIX))
    (workdir / OWNER_FILE).write_text(owner + "\n")
    if server_pid is not None:
        (workdir / SERVER_PID_FILE).write_text(server_pid + "\n")
    return workdir


def _start_time(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def _one_line_without(message: str, secret: str) -> None:
    assert "\n" not in message
    assert secret not in message


# --- a throwaway server -------------------------------------------------------------------------------


def test_throwaway_server_answers_with_persistence_off_and_room_for_the_pools(server: Database) -> None:
    installed = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, check=True).stdout
    assert server.url is not None and server.url.startswith("redis://127.0.0.1:") and server.url.endswith("/0")
    with _client(server.url) as client:
        assert client.ping() is True
    assert (server.backend, server.embedded, server.surrogate) == ("redis", True, False)
    assert f"v={server.version} " in installed
    assert server.label == f"Redis {server.version}"
    assert server.source == f"throwaway {shutil.which('redis-server')}"
    assert server.settings["maxclients"] == str(NEEDED + CONNECTION_HEADROOM)
    assert (server.settings["save"], server.settings["appendonly"]) == ("", "no")
    assert server.settings["persistence"] == "off"
    assert server.settings["maxmemory"] == "0"


def test_throwaway_server_is_our_child_in_its_own_session(server: Database) -> None:
    assert server.url is not None
    pid, workdir = _pid_and_dir(server.url)
    assert os.getsid(pid) == pid  # a terminal Ctrl-C does not reach it before we stop it
    assert int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) == os.getpid()
    assert workdir.name.startswith(DIR_PREFIX) and workdir.parent == Path(tempfile.gettempdir())
    assert (workdir / SERVER_PID_FILE).read_text().split()[0] == str(pid)


@pytest.mark.parametrize("raised", [None, RuntimeError, KeyboardInterrupt])
def test_leaving_the_context_stops_the_server_and_removes_its_directory(
    raised: type[BaseException] | None, tmp_path: Path
) -> None:
    log_path = tmp_path / "logs" / "redis.log"
    pid, workdir = 0, Path()
    try:
        with provision_redis(url=None, connections_needed=1, log_path=log_path, local_port=None) as started:
            assert started.url is not None
            pid, workdir = _pid_and_dir(started.url)
            assert _alive(pid) and workdir.is_dir()
            if raised is not None:
                raise raised("interrupted inside the context")
    except (RuntimeError, KeyboardInterrupt) as caught:
        assert raised is not None and isinstance(caught, raised)
    assert pid and not _alive(pid)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped, not a zombie
    assert not workdir.exists()
    log = log_path.read_text()  # the log outlives the server when the caller chose where it goes
    assert "Ready to accept connections" in log and "Redis is now ready to exit" in log


def test_server_that_cannot_start_is_reported_with_its_last_log_line_and_cleaned_up(
    own_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bindir = own_tmp / "bin"
    bindir.mkdir()
    fake = bindir / "redis-server"
    fake.write_text("#!/bin/sh\necho 'starting'\necho '# Fatal: disk on fire'\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir))
    with (
        pytest.raises(BenchError) as raised,
        provision_redis(url=None, connections_needed=1, local_port=None),
    ):
        pytest.fail("the context must not be entered")
    assert raised.value.message == (
        "the throwaway Redis exited during start-up: # Fatal: disk on fire; pass --redis-url to use an existing server"
    )
    assert not list(own_tmp.glob(f"{DIR_PREFIX}*"))


def test_server_of_a_killed_harness_exits_and_its_directory_is_removed_later(own_tmp: Path) -> None:
    script = (
        "import time\n"
        "from bench.databases.redis.backend import provision_redis\n"
        "with provision_redis(url=None, connections_needed=1, local_port=None) as db:\n"
        "    print(db.url, flush=True)\n"
        "    time.sleep(120)\n"
    )
    harness = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert harness.stdout is not None
        pid, workdir = _pid_and_dir(harness.stdout.readline().strip())
        harness.kill()  # SIGKILL: no finally, no atexit; only the kernel can tell the server
        harness.wait()
        deadline = time.monotonic() + 15
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid)
        assert workdir.is_dir()  # nobody cleaned up...
        assert remove_stale_dirs() == [workdir]  # ...until the next start does
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait()


# --- leftovers of harnesses that died -------------------------------------------------------------------


def test_stale_dirs_of_dead_owners_are_removed_and_unrelated_processes_spared(own_tmp: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        dead_owner = _stale_dir(f"{_dead_pid()} 1")
        reused_pid = _stale_dir(f"{sleeper.pid} 1")  # alive, but started at another time: a reused PID
        # The recorded "server" is alive with the right start time, but it is no redis-server.
        unrelated = _stale_dir(f"{_dead_pid()}", server_pid=f"{sleeper.pid} {_start_time(sleeper.pid)}")
        me = os.getpid()
        live_owner = _stale_dir(f"{me} {_start_time(me)}")

        with provision_redis(url=None, connections_needed=1, local_port=None):
            pass

        assert not dead_owner.exists() and not reused_pid.exists() and not unrelated.exists()
        assert live_owner.is_dir()
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_orphaned_server_is_stopped_before_its_directory_is_removed(own_tmp: Path) -> None:
    port = free_port()
    orphan = subprocess.Popen(
        ["redis-server", *server_arguments(port, own_tmp, 10)], stdout=subprocess.DEVNULL, start_new_session=True
    )
    try:
        with _client(f"redis://127.0.0.1:{port}/0") as client:
            deadline = time.monotonic() + 10
            while not _pings(client) and time.monotonic() < deadline:
                time.sleep(0.05)
        workdir = _stale_dir(f"{_dead_pid()}", server_pid=f"{orphan.pid} {_start_time(orphan.pid)}")

        assert remove_stale_dirs() == [workdir]
        assert orphan.wait(timeout=15) == 0  # a clean SIGTERM shutdown
        assert not workdir.exists()
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()


# --- a given URL, a local server, nothing at all ----------------------------------------------------------


def test_given_url_is_checked_described_and_left_running(server: Database) -> None:
    assert server.url is not None
    pid, _ = _pid_and_dir(server.url)
    db3 = server.url.removesuffix("/0") + "/3"
    with provision_redis(url=db3, connections_needed=5) as given:
        assert (given.url, given.embedded, given.source) == (db3, False, "given URL")
        assert (given.version, given.settings) == (server.version, server.settings)
    assert _alive(pid)  # never stop a server we did not start


def test_local_server_is_used_in_its_own_logical_database_and_left_running(server: Database) -> None:
    assert server.url is not None
    pid, _ = _pid_and_dir(server.url)
    port = int(server.url.rsplit(":", 1)[1].split("/")[0])
    with provision_redis(url=None, connections_needed=5, local_port=port) as local:
        assert local.url == f"redis://127.0.0.1:{port}/{LOCAL_DATABASE}"
        assert (local.embedded, local.source) == (False, "local server on the default port")
        assert _pid_and_dir(local.url)[0] == pid  # not a throwaway server of its own
    assert _alive(pid)


def test_no_url_no_local_server_and_no_binary_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with (
        pytest.raises(BenchError) as raised,
        provision_redis(url=None, connections_needed=1, local_port=free_port()),
    ):
        pytest.fail("the context must not be entered")
    message = raised.value.message
    assert "redis-server is not on PATH" in message
    assert "--redis-url" in message and "REDIS_URL" in message
    assert "docker compose up -d redis" in message and "redis://127.0.0.1:6379/0" in message


def test_capacity_check_counts_the_clients_already_connected(server: Database) -> None:
    assert server.url is not None
    maxclients = int(server.settings["maxclients"])
    others = [_client(server.url) for _ in range(5)]
    try:
        for other in others:
            other.ping()  # redis-py connects lazily
        with provision_redis(url=server.url, connections_needed=maxclients - 5):
            pass
        with (
            pytest.raises(BenchError) as raised,
            provision_redis(url=server.url, connections_needed=maxclients - 4),
        ):
            pytest.fail("the context must not be entered")
    finally:
        for other in others:
            other.close()
    message = raised.value.message
    assert f"needs {maxclients - 4} connections" in message and f"allows {maxclients - 5}" in message
    assert f"(maxclients {maxclients} - 5 connected)" in message
    assert "raise maxclients" in message and "or lower pool_size/max_overflow" in message
    assert "\n" not in message


def test_capacity_check_works_where_config_is_not_permitted(server: Database) -> None:
    assert server.url is not None
    with _client(server.url) as admin:
        admin.acl_setuser("bench_plain", enabled=True, passwords=["+s3cret"], keys=["*"], commands=["+@all", "-config"])
    plain = server.url.replace("redis://", "redis://bench_plain:s3cret@")
    try:
        with provision_redis(url=plain, connections_needed=5) as given:
            assert given.settings["maxclients"] == server.settings["maxclients"]  # from INFO instead
            assert given.settings["save"] == "unknown" and given.settings["persistence"] == "unknown"
        with (
            pytest.raises(BenchError, match=r"needs 100000 connections") as raised,
            provision_redis(url=plain, connections_needed=100_000),
        ):
            pytest.fail("the context must not be entered")
        _one_line_without(raised.value.message, "s3cret")
    finally:
        with _client(server.url) as admin:
            admin.acl_deluser("bench_plain")


@pytest.mark.parametrize(
    ("url", "cause"),
    [
        ("redis://bench:s3cret@127.0.0.1:{port}/0", "Connection refused"),
        ("redis://bench:s3cret@127.0.0.1:notaport/0", "notaport"),
        ("postgresql://bench:s3cret@127.0.0.1:{port}/bench", "must be a redis:// URL"),
    ],
    ids=["unreachable", "malformed", "wrong-scheme"],
)
def test_bad_given_url_is_one_line_naming_the_masked_url_and_the_cause(url: str, cause: str) -> None:
    with (
        pytest.raises(BenchError) as raised,
        provision_redis(url=url.format(port=free_port()), connections_needed=1),
    ):
        pytest.fail("the context must not be entered")
    message = raised.value.message
    assert "bench:***@127.0.0.1" in message and cause in message
    _one_line_without(message, "s3cret")


def test_wrong_password_is_one_line_without_it(server: Database) -> None:
    assert server.url is not None
    with (
        pytest.raises(BenchError) as raised,
        provision_redis(url=server.url.replace("redis://", "redis://nobody:s3cret@"), connections_needed=1),
    ):
        pytest.fail("the context must not be entered")
    assert "nobody:***@127.0.0.1" in raised.value.message
    _one_line_without(raised.value.message, "s3cret")


# --- seeding ---------------------------------------------------------------------------------------------


@pytest.fixture
def url(server: Database) -> Iterator[str]:
    """A logical database of the module's server, empty but for a key of someone else's."""
    assert server.url is not None
    url = server.url.removesuffix("/0") + "/5"
    with _client(url) as client:
        client.flushdb()
        client.set("someone:else", "untouched")
    yield url
    with _client(url) as client:
        assert client.get("someone:else") == "untouched"  # only bench:* keys are ever touched
        client.flushdb()


def _stored_items(url: str) -> list[tuple[object, ...]]:
    with _client(url) as client:
        ids = [int(member) for member in client.zrange(ORDER_KEY, 0, -1)]
        with client.pipeline(transaction=False) as pipe:
            for item_id in ids:
                pipe.hgetall(item_key(item_id))
            hashes = pipe.execute()
    return [
        (item_id, h["name"], h.get("description"), float(h["price"]), int(h["quantity"]), len(h))
        for item_id, h in zip(ids, hashes, strict=True)
    ]


def _expected_items(rows: int) -> list[tuple[object, ...]]:
    return [(*item, 4) for item in seed_items(rows)]


def _writes(url: str) -> int:
    """Changes the server has seen (persistence is off, so the counter never resets)."""
    with _client(url) as client:
        return int(client.info("persistence")["rdb_changes_since_last_save"])


def test_seeding_writes_exactly_the_dataset_and_the_counter(url: str) -> None:
    result = seed_redis(url, ROWS)

    assert (result.rows, result.reused) == (ROWS, False) and result.seconds > 0
    assert _stored_items(url) == _expected_items(ROWS)
    with _client(url) as client:
        assert client.get(NEXT_ID_KEY) == str(ROWS)
        assert client.hget(DATASET_KEY, "rows") == str(ROWS)


def test_untouched_dataset_is_reused_without_writing(url: str) -> None:
    seed_redis(url, ROWS)
    writes_before = _writes(url)

    again = seed_redis(url, ROWS)

    assert (again.rows, again.reused) == (ROWS, True)
    assert _writes(url) == writes_before


def _post_an_item(client: redis.Redis) -> None:
    client.hset(item_key(ROWS + 1), mapping={"name": "posted", "price": "1.5", "quantity": "1"})
    client.zadd(ORDER_KEY, {str(ROWS + 1): ROWS + 1})
    client.incr(NEXT_ID_KEY)


TAMPERING: dict[str, Callable[[redis.Redis], object]] = {
    "name": lambda c: c.hset(item_key(150), "name", "tampered"),
    "price": lambda c: c.hset(item_key(299), "price", "1.0"),
    "null-description": lambda c: c.hdel(item_key(7), "description"),
    "empty-description": lambda c: c.hset(item_key(7), "description", ""),  # not the same as null
    "extra-field": lambda c: c.hset(item_key(8), "colour", "red"),
    "deleted-hash": lambda c: c.delete(item_key(ROWS)),
    "unlisted": lambda c: c.zrem(ORDER_KEY, str(ROWS)),
    "posted": _post_an_item,
    "counter": lambda c: c.incr(NEXT_ID_KEY),
    "stale-fingerprint": lambda c: c.hset(DATASET_KEY, "fingerprint", "stale"),
    "no-fingerprint": lambda c: c.delete(DATASET_KEY),
}


@pytest.mark.parametrize("tampering", list(TAMPERING))
def test_any_change_is_noticed_and_the_dataset_restored(url: str, tampering: str) -> None:
    seed_redis(url, ROWS)
    with _client(url) as client:
        TAMPERING[tampering](client)

    result = seed_redis(url, ROWS)

    assert result.reused is False
    assert _stored_items(url) == _expected_items(ROWS)
    assert seed_redis(url, ROWS).reused is True


def test_a_different_row_count_reseeds_and_leaves_no_stale_items(url: str) -> None:
    seed_redis(url, ROWS)

    smaller = seed_redis(url, 10)

    assert (smaller.rows, smaller.reused) == (10, False)
    assert _stored_items(url) == _expected_items(10)
    with _client(url) as client:
        assert client.exists(item_key(11), item_key(ROWS)) == 0


def test_seeding_an_empty_dataset_is_idempotent_too(url: str) -> None:
    assert seed_redis(url, 0).reused is False
    assert seed_redis(url, 0).reused is True
    assert _stored_items(url) == []


@pytest.mark.parametrize("variant", ["redis_sync", "redis_async"])
def test_the_first_item_an_app_creates_after_seeding_gets_id_rows_plus_one(
    url: str, variant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_DATABASE_URL", url)
    app = importlib.import_module(f"apps.{variant}").app
    for _ in range(2):  # the second seed replaces the first POST and rewinds the counter again
        assert seed_redis(url, ROWS).reused is False
        with TestClient(app) as client:
            posted = client.post("/items", json={"name": "posted", "price": 9.99})
            listed = client.get("/items", params={"limit": 2, "offset": ROWS - 1}).json()
        assert posted.status_code == 201 and posted.json()["id"] == ROWS + 1
        assert [item["id"] for item in listed] == [ROWS, ROWS + 1]
        assert listed[0]["name"] == f"item-{ROWS:06d}"


@pytest.mark.parametrize("variant", ["redis_sync", "redis_async"])
def test_apps_store_a_null_description_as_a_missing_field_apart_from_an_empty_one(
    url: str, variant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_DATABASE_URL", url)
    with TestClient(importlib.import_module(f"apps.{variant}").app) as client:
        null_id = client.post("/items", json={"name": "null", "description": None, "price": 1}).json()["id"]
        empty_id = client.post("/items", json={"name": "empty", "description": "", "price": 1}).json()["id"]
        nulled_id = client.post("/items", json={"name": "nulled", "description": "x", "price": 1}).json()["id"]
        client.put(f"/items/{nulled_id}", json={"description": None})
        read = {
            item_id: client.get(f"/items/{item_id}").json()["description"] for item_id in (null_id, empty_id, nulled_id)
        }
    with _client(url) as raw:
        stored = {item_id: raw.hgetall(item_key(item_id)) for item_id in (null_id, empty_id, nulled_id)}
    assert read == {null_id: None, empty_id: "", nulled_id: None}
    assert "description" not in stored[null_id] and "description" not in stored[nulled_id]
    assert stored[empty_id]["description"] == ""
    assert stored[null_id]["price"] == "1.0"  # an integer price is stored as the float it is


def test_seeding_problems_are_one_line_without_the_password() -> None:
    with pytest.raises(BenchError) as raised:
        seed_redis(f"redis://bench:s3cret@127.0.0.1:{free_port()}/0", 10)
    message = raised.value.message
    assert message.startswith("cannot seed Redis at redis://bench:***@127.0.0.1:")
    assert "Connection refused" in message
    _one_line_without(message, "s3cret")
