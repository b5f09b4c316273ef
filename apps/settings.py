"""Service settings from BENCH_* environment variables, validated once when a variant starts."""

from __future__ import annotations

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from apps.dataset import DEFAULT_ROWS

ENV_PREFIX = "BENCH_"


class StartupError(RuntimeError):
    """A problem the user can fix before the service can start; the message is one line."""


class AppSettings(BaseSettings):
    # extra="ignore": the harness and the tests share the BENCH_ namespace (e.g. BENCH_TEST_DATABASE_URL).
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    database_url: str | None = None
    # SQLAlchemy reads pool_size=0 and max_overflow=-1 as "unlimited", which is not a point worth measuring.
    pool_size: int = Field(default=5, ge=1)
    max_overflow: int = Field(default=10, ge=0)
    pool_timeout_s: float = Field(default=30, gt=0, allow_inf_nan=False)
    pool_pre_ping: bool = False
    # anyio's default limiter caps how many sync `def` routes run at once, whatever the pool allows.
    thread_tokens: int = Field(default=40, ge=1)
    # Only the in-memory variant reads this; the databases are seeded by the harness.
    dataset_rows: int = Field(default=DEFAULT_ROWS, ge=0)
    # /metrics instrumentation (pool checkout timing, event-loop lag); off installs none of it, which is how
    # the harness measures what it costs.
    telemetry: bool = True


def load_settings() -> AppSettings:
    """Read the environment; raise StartupError naming each bad variable if any is invalid."""
    try:
        return AppSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{ENV_PREFIX}{str(error['loc'][0]).upper()}={error['input']!r}: {error['msg']}" for error in exc.errors()
        )
        raise StartupError(f"invalid settings: {problems}") from None
