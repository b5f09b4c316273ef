"""Run metadata gathered automatically: machine, Python, library versions and the harness's git commit."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # bench/system/environment.py -> the project
LIBRARIES = (
    "fastapi", "starlette", "uvicorn", "uvloop", "httptools", "pydantic", "anyio", "sqlalchemy",
    "psycopg", "psycopg-binary", "psycopg-pool", "asyncpg", "pymysql", "aiomysql", "pymongo", "motor",
    "secantusdb", "redis", "hiredis", "locust", "gevent",
)  # fmt: skip


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_total_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip()


def collect_environment() -> dict[str, Any]:
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "hostname": platform.node(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_total_bytes": _memory_total_bytes(),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
        "libraries": library_versions(),
    }


def machine_label(environment: dict[str, Any]) -> str:
    """Short machine description for chart titles: '2 CPUs, 23.5 GiB, Intel Xeon ...'."""
    memory = environment.get("memory_total_bytes")
    memory_text = f", {memory / 2**30:.1f} GiB" if isinstance(memory, int) else ""
    return f"{environment.get('cpu_count', '?')} CPUs{memory_text}, {environment.get('cpu_model', '')}".strip(", ")
