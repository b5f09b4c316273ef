"""Shared fixtures. Each database backend has one plugin module in tests/backends/<backend>.py providing
`<backend>_backend` (the BENCH_* environment of an app on that backend, state restored afterwards) and
whatever session fixtures start its server; every module found there is loaded here."""

from __future__ import annotations

from pathlib import Path

BACKEND_PLUGINS_DIR = Path(__file__).parent / "backends"
BACKENDS_WITH_FIXTURES = sorted(p.stem for p in BACKEND_PLUGINS_DIR.glob("*.py") if not p.stem.startswith("_"))

pytest_plugins = [f"tests.backends.{name}" for name in BACKENDS_WITH_FIXTURES]
