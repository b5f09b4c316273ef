"""Sweep configuration: defaults, then a `--config` TOML file, then CLI options; validated into a SweepSpec."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bench.plan.points import SweepSpec
from bench.plan.target import SERVICE_SETTINGS
from bench.records.errors import BenchError

# Small and fast enough for a first look (well under 3 minutes on 2 cores); every variant still appears.
QUICK_PROFILE: dict[str, Any] = {
    "pool_sizes": [2, 10],
    "max_overflows": [0, 5],
    "users": [30],
    "warmup_s": 2.0,
    "duration_s": 5.0,
    "dataset_rows": 2000,
}

# The CLI option that sets each key, so an error message names what the user typed.
OPTION_NAMES = {
    "variants": "--variant",
    "scenario": "--scenario",
    "pool_sizes": "--pool-size",
    "max_overflows": "--max-overflow",
    "users": "--users",
    "spawn_rate": "--spawn-rate",
    "warmup_s": "--warmup",
    "duration_s": "--duration",
    "repeat": "--repeat",
    "dataset_rows": "--rows",
    "pool_timeout_s": "--pool-timeout",
    "pool_pre_ping": "--pre-ping",
    "thread_tokens": "--thread-tokens",
    "workers": "--workers",
    "processes": "--processes",
    "fault": "--fault",
    "target_url": "--target-url",
    "remote_workers": "--remote-workers",
    "master_bind": "--master-bind",
    "master_port": "--master-port",
    "load_model": "--load-model",
    "rates": "--rate",
    "arrivals": "--arrivals",
    "arrival_seed": "--arrival-seed",
    "scenario_options": "--scenario-option",
    "telemetry": "--telemetry",
    "pin_cpus": "--pin-cpus",
}


def read_config_file(path: Path) -> dict[str, Any]:
    """A TOML file with the same keys as SweepSpec, at top level or under [sweep]."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchError(f"cannot read config file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"config file {path} is not valid TOML: {exc}") from None
    section = data.get("sweep", data)
    if not isinstance(section, dict):
        raise BenchError(f"config file {path}: [sweep] must be a table")
    outside = [key for key in data if key != "sweep"] if "sweep" in data else []
    if outside:  # they would be silently ignored beside a [sweep] table
        raise BenchError(
            f"config file {path}: {', '.join(map(repr, outside))} outside [sweep]; put every setting under "
            "[sweep], or none"
        )
    _refuse_booleans(section, path)
    return section


def _refuse_booleans(section: dict[str, Any], path: Path) -> None:
    """TOML's true/false where a number or a name belongs: pydantic would read `repeat = true` as 1."""
    for key, value in section.items():
        field = SweepSpec.model_fields.get(key)
        if field is None or field.annotation in (bool, list[bool]) or key == "scenario_options":
            continue
        if isinstance(value, bool) or (isinstance(value, list) and any(isinstance(item, bool) for item in value)):
            raise BenchError(f"invalid {key} in {path}: true/false where a number or a name belongs")


def parse_scenario_options(pairs: list[str] | None) -> dict[str, str] | None:
    """`-O wait_ms=50 -O steps=10,20,40` -> {"wait_ms": "50", "steps": "10,20,40"}; the scenario checks them."""
    if pairs is None:
        return None
    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise BenchError(f"invalid --scenario-option {pair!r}: write KEY=VALUE, e.g. wait_ms=50")
        options[key.strip()] = value.strip()
    return options


def build_spec(*, cli: Mapping[str, Any], config_file: Path | None = None, quick: bool = False) -> SweepSpec:
    """Merge the layers (later wins) and validate; errors come back as one line naming the culprit."""
    merged: dict[str, Any] = dict(QUICK_PROFILE) if quick else {}
    file_values = read_config_file(config_file) if config_file else {}
    merged |= file_values
    cli_values = {key: value for key, value in cli.items() if value is not None}
    merged |= cli_values
    try:
        spec = SweepSpec.model_validate(merged)
    except ValidationError as exc:
        from_file = {key for key in file_values if key not in cli_values}
        raise BenchError(_one_line(exc, from_file, config_file)) from None
    if spec.target_url is not None:
        _check_target_sweep(merged)
    return spec


def _check_target_sweep(given: Mapping[str, Any]) -> None:
    """A service bench did not start keeps its own pool and threads, and its database is not bench's to fault."""
    refused = [OPTION_NAMES[key] for key in (*SERVICE_SETTINGS, "fault") if key in given]
    if refused:
        raise BenchError(
            f"--target-url measures the service as it runs (its /health gives its settings); drop "
            f"{', '.join(refused)}, or set them where the service is started"
        )


def _one_line(exc: ValidationError, from_file: set[str], config_file: Path | None) -> str:
    error = exc.errors()[0]
    key = str(error["loc"][0]) if error["loc"] else ""
    if error["type"] == "extra_forbidden":
        known = ", ".join(SweepSpec.model_fields)
        return f"unknown setting {key!r} in {config_file or 'the configuration'} (known: {known})"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error.get("input") == "":  # "5,,10" or a trailing comma
        message = "an empty value (in a list: two commas in a row, or one at the end?)"
    if not key:  # a rule across settings (e.g. --load-model open without --rate): the message names them
        return message
    source = f"{key} in {config_file}" if key in from_file and config_file else OPTION_NAMES.get(key, key)
    return f"invalid {source}: {message}"
