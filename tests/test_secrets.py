"""Database passwords never leak: a real run with password-bearing URLs, then every file it wrote and every
command's output is scanned for the password, whole, percent-encoded or in pieces."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.databases.mysql.backend import MysqlServer
from bench.databases.mysql.connect import pymysql_url
from bench.measure.server import ServerStartError, run_server

pytestmark = pytest.mark.e2e

SECRET_USER = "bench_secret_user"
# "/" and "@" must be percent-encoded in a URL, so the encoded and the decoded forms differ, and a mask that
# stops early at either character would leave a piece showing.
PASSWORD = "Sup3r/S3cret@Pw"
ENCODED_PASSWORD = quote(PASSWORD, safe="")
# Any of these in an output is a leak: the whole password in either form, or a piece a mask cut short left.
NEEDLES = (PASSWORD, ENCODED_PASSWORD, "Sup3r", "S3cret")
RUN_ID = "secret"
# Pooled variants, one per backend, sharing the settings given to the run.
VARIANTS = {"postgresql": "pg_sqla_async", "redis": "redis_async", "mysql": "mysql_sqla_async"}
URL_OPTIONS = {"postgresql": "--database-url", "redis": "--redis-url", "mysql": "--mysql-url"}
# For runs expected to fail before measuring: should one get through, it is one short point, not a default sweep.
ONE_SHORT_POINT = ("-p", "2", "-o", "0", "-u", "2", "--warmup", "0", "--duration", "1", "--rows", "200", "--no-report")


def with_credentials(url: str, user: str, password: str = PASSWORD) -> str:
    """`url` with `user` and the percent-encoded `password` in place of whatever credentials it had."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"))


def leaks(data: bytes | str) -> list[str]:
    raw = data.encode() if isinstance(data, str) else data
    return [needle for needle in NEEDLES if needle.encode() in raw]


def assert_no_leak_in_files(root: Path) -> int:
    """Every file under `root`, whatever its kind (JSON, logs, Markdown, HTML, SVG, PNG); returns how many."""
    files = [path for path in root.rglob("*") if path.is_file()]
    leaked = {str(path.relative_to(root)): found for path in files if (found := leaks(path.read_bytes()))}
    assert not leaked, f"password found in files: {leaked}"
    return len(files)


def assert_no_leak_in_output(result: subprocess.CompletedProcess[str]) -> None:
    found = leaks(result.stdout + result.stderr)
    assert not found, f"password in the output of {result.args[3:5]}: {found}\n{result.stdout}\n{result.stderr}"


def bench(*args: str, cwd: Path, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    # Without the developer's own *_URL variables: every URL the harness sees is one this test chose.
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MYSQL_URL", "REDIS_URL", "MONGO_URL")}
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=cwd, env=env | {"COLUMNS": "200"},
        capture_output=True, text=True, timeout=timeout_s, check=False,
    )  # fmt: skip


def assert_user_error(result: subprocess.CompletedProcess[str], expected: str) -> str:
    assert result.returncode == 2, result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected in lines[0], lines[0]
    assert_no_leak_in_output(result)
    return lines[0]


# ---------------------------------------------------------------- users with the password, on throwaway servers


@pytest.fixture(scope="module")
def postgres_secret_url(postgres_url: str) -> Iterator[str]:
    """A superuser role with the password. The harness's server trusts 127.0.0.1, so the password is accepted
    and not checked: what matters here is that it travels through every part of the harness."""
    engine = create_engine(make_url(postgres_url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(f"DROP ROLE IF EXISTS {SECRET_USER}"))
            connection.execute(text(f"CREATE ROLE {SECRET_USER} LOGIN SUPERUSER PASSWORD '{PASSWORD}'"))
        yield with_credentials(postgres_url, SECRET_USER)
        with engine.connect() as connection:
            # The run may have re-created the items table as this role: give it back before dropping the role.
            connection.execute(text(f"REASSIGN OWNED BY {SECRET_USER} TO CURRENT_USER"))
            connection.execute(text(f"DROP ROLE {SECRET_USER}"))
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def redis_secret_url(redis_url: str) -> Iterator[str]:
    """An ACL user with the password, which Redis checks (the default user stays password-free for the
    other tests)."""
    with redis.Redis.from_url(redis_url) as client:
        client.acl_setuser(
            SECRET_USER, enabled=True, reset=True, passwords=[f"+{PASSWORD}"], keys=["*"], channels=["*"],
            commands=["+@all"],
        )  # fmt: skip
        yield with_credentials(redis_url, SECRET_USER)
        client.acl_deluser(SECRET_USER)


@pytest.fixture(scope="module")
def mysql_secret_url(mysql_server: MysqlServer) -> Iterator[str]:
    """A MariaDB user with the password, which the server checks."""
    engine = create_engine(pymysql_url(mysql_server.url))
    try:
        with engine.begin() as connection:
            connection.execute(text(f"DROP USER IF EXISTS '{SECRET_USER}'@'%'"))
            connection.execute(text(f"CREATE USER '{SECRET_USER}'@'%' IDENTIFIED BY :password"), {"password": PASSWORD})
            connection.execute(text(f"GRANT ALL PRIVILEGES ON *.* TO '{SECRET_USER}'@'%'"))
        yield with_credentials(mysql_server.url, SECRET_USER)
        with engine.begin() as connection:
            connection.execute(text(f"DROP USER '{SECRET_USER}'@'%'"))
    finally:
        engine.dispose()


def optional_fixture(request: pytest.FixtureRequest, name: str) -> str | None:
    """A backend's fixture value, or None where that backend is not available on this machine."""
    try:
        return str(request.getfixturevalue(name))
    except pytest.skip.Exception:
        return None


# ---------------------------------------------------------------- one real run, then every command on it


@dataclass(frozen=True)
class SecretRun:
    workdir: Path  # the commands' working directory; the results folder is inside it
    results: Path
    urls: dict[str, str]  # by backend, each with the password
    outputs: dict[str, subprocess.CompletedProcess[str]]  # by command


@pytest.fixture(scope="module")
def secret_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, postgres_secret_url: str
) -> SecretRun:
    urls = {"postgresql": postgres_secret_url}
    for backend in ("redis", "mysql"):
        if (url := optional_fixture(request, f"{backend}_secret_url")) is not None:
            urls[backend] = url
    workdir = tmp_path_factory.mktemp("secrets")
    results = workdir / "results"
    on = ("--results-dir", str(results))
    url_args = [arg for backend, url in urls.items() for arg in (URL_OPTIONS[backend], url)]
    run_args = [
        "run", "-v", ",".join(VARIANTS[backend] for backend in urls), "-p", "2", "-o", "0", "-u", "4",
        "--warmup", "1", "--duration", "2", "--rows", "200", "--run-id", RUN_ID, *url_args, *on,
    ]  # fmt: skip
    outputs = {"run": bench(*run_args, cwd=workdir, timeout_s=600)}
    assert outputs["run"].returncode == 0, outputs["run"].stderr[-3000:] + outputs["run"].stdout[-3000:]
    # compare takes two different runs: the same records under a second name.
    shutil.copytree(results / RUN_ID, results / f"{RUN_ID}-again")
    for name, args in {
        "report": ("report", RUN_ID),
        "show": ("show", RUN_ID),
        "findings": ("findings", RUN_ID),
        "compare": ("compare", RUN_ID, f"{RUN_ID}-again"),
        "list": ("list",),
    }.items():
        outputs[name] = bench(*args, *on, cwd=workdir)
    return SecretRun(workdir, results, urls, outputs)


def test_the_run_measured_every_backend_with_the_password(secret_run: SecretRun) -> None:
    # Otherwise the scans below would only prove that a password nobody used did not show up.
    run_dir = secret_run.results / RUN_ID
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "complete" and run["points_ok"] == len(secret_run.urls)
    for backend in secret_run.urls:
        recorded = run["databases"][backend]
        assert recorded["source"] == "given URL"
        assert f"{SECRET_USER}:***@" in recorded["url"], recorded["url"]


def test_every_command_succeeds_without_showing_the_password(secret_run: SecretRun) -> None:
    for name, result in secret_run.outputs.items():
        assert result.returncode == 0, f"{name}: {result.stderr[-2000:]}"
        assert_no_leak_in_output(result)
    assert RUN_ID in secret_run.outputs["list"].stdout
    assert all(VARIANTS[backend] in secret_run.outputs["show"].stdout for backend in secret_run.urls)


def test_no_file_of_the_run_holds_the_password(secret_run: SecretRun) -> None:
    run_dir = secret_run.results / RUN_ID
    # The scan must see what the reader sees: the argv, the raw logs, the reports, the text of the charts
    # (matplotlib writes each text of an SVG as a comment beside its glyphs).
    assert (run_dir / "raw").is_dir() and list(run_dir.glob("raw/*/uvicorn.log"))
    assert list(run_dir.glob("raw/*/locust.log"))
    for name in ("summary.md", "index.html", "findings.md"):
        assert (run_dir / "report" / name).is_file(), name
    svgs = list(run_dir.glob("report/*.svg"))
    assert svgs and any(b"pg_sqla_async" in svg.read_bytes() for svg in svgs)
    assert list(run_dir.glob("report/*.png"))
    argv = json.loads((run_dir / "run.json").read_text())["argv"]
    assert any(f"{SECRET_USER}:***@" in arg for arg in argv), argv
    assert assert_no_leak_in_files(secret_run.workdir) > 10


# ---------------------------------------------------------------- runs that fail, saying why without the password


def run_one_point(variant: str, url_option: str, url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return bench("run", "-v", variant, *ONE_SHORT_POINT, url_option, url, "--results-dir", "results", cwd=cwd)


def test_unreachable_postgres_error_is_masked(tmp_path: Path) -> None:
    url = with_credentials("postgresql://x@127.0.0.1:1/bench", SECRET_USER)
    line = assert_user_error(run_one_point("pg_sqla_async", "--database-url", url, tmp_path), "127.0.0.1:1")
    assert f"{SECRET_USER}:***@" in line
    assert_no_leak_in_files(tmp_path)


def test_unreachable_redis_error_is_masked(tmp_path: Path) -> None:
    url = with_credentials("redis://127.0.0.1:1/0", SECRET_USER)
    line = assert_user_error(run_one_point("redis_sync", "--redis-url", url, tmp_path), "127.0.0.1:1")
    assert f"{SECRET_USER}:***@" in line
    assert_no_leak_in_files(tmp_path)


def test_wrong_redis_password_error_is_masked(tmp_path: Path, redis_secret_url: str) -> None:
    url = with_credentials(redis_secret_url, SECRET_USER, password="Sup3r/S3cret@Pw-wrong")
    line = assert_user_error(run_one_point("redis_sync", "--redis-url", url, tmp_path), "cannot use Redis")
    assert f"{SECRET_USER}:***@" in line
    assert_no_leak_in_files(tmp_path)


def test_password_for_the_password_free_default_redis_user_is_masked(tmp_path: Path, redis_url: str) -> None:
    # redis://:password@ authenticates the default user, which has no password on the throwaway server; Redis
    # refuses such an AUTH, redis-py then goes on without it, and the run works: with the password in its argv.
    url = with_credentials(redis_url, "")
    result = run_one_point("redis_sync", "--redis-url", url, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert_no_leak_in_output(result)
    (run_file,) = (tmp_path / "results").glob("*/run.json")
    assert "redis://:***@" in run_file.read_text()
    assert_no_leak_in_files(tmp_path)


def test_wrong_mysql_password_error_is_masked(tmp_path: Path, mysql_server: MysqlServer) -> None:
    # The throwaway MariaDB lets root in without a password only: this one is refused.
    url = with_credentials(mysql_server.url, "root")
    line = assert_user_error(run_one_point("mysql_sqla_sync", "--mysql-url", url, tmp_path), "Access denied")
    assert "root:***@" in line
    assert_no_leak_in_files(tmp_path)


@pytest.mark.parametrize(
    ("variant", "option", "url"),
    [
        ("pg_sqla_async", "--database-url", "postgresql://u:Sup3r/S3cret@127.0.0.1:1/bench"),
        ("mysql_sqla_sync", "--mysql-url", "mysql://u:Sup3r/S3cret@Pw@127.0.0.1:1/bench"),
        ("mysql_sqla_sync", "--mysql-url", "mysql://u:Sup3r#S3cret@127.0.0.1:1/bench"),
        ("redis_sync", "--redis-url", "redis://:Sup3r/S3cret@127.0.0.1:1/0"),
        ("redis_sync", "--redis-url", "redis://u:Sup3r?S3cret@127.0.0.1:1/0"),
        ("mongo_pymongo", "--mongo-url", "mongodb://u:Sup3r/S3cret@127.0.0.1:1/bench"),
    ],
)
def test_password_with_unencoded_reserved_characters_is_refused_masked(
    tmp_path: Path, variant: str, option: str, url: str
) -> None:
    # Parsers end the host part at the first "/", "?" or "#" and echoed the pieces as a host or port.
    line = assert_user_error(run_one_point(variant, option, url, tmp_path), "percent-encode")
    assert option in line and ":***@127.0.0.1:1/" in line
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


# ---------------------------------------------------------------- the apps' own logs


@pytest.mark.parametrize(
    ("variant", "url"),
    [
        ("pg_sqla_async", "postgresql://x@127.0.0.1:1/bench"),
        ("pg_asyncpg", "postgresql://x@127.0.0.1:1/bench"),
        ("pg_psycopg_sync", "postgresql://x@127.0.0.1:1/bench"),
        ("mysql_sqla_async", "mysql://x@127.0.0.1:1/bench"),
        ("redis_sync", "redis://x@127.0.0.1:1/0"),
        ("mongo_pymongo", "mongodb://x@127.0.0.1:1/bench?serverSelectionTimeoutMS=500&connectTimeoutMS=500"),
    ],
)
def test_app_start_up_failure_is_logged_masked(tmp_path: Path, variant: str, url: str) -> None:
    # An app that cannot reach its database logs why and exits: that log line names the database.
    log = tmp_path / "uvicorn.log"
    settings = {"BENCH_DATABASE_URL": with_credentials(url, SECRET_USER)}
    with pytest.raises(ServerStartError) as failure, run_server(variant, settings=settings, log_path=log):
        pass
    assert not leaks(str(failure.value)), failure.value
    written = log.read_text()
    assert f"{SECRET_USER}:***@" in written, written
    assert not leaks(written), written
