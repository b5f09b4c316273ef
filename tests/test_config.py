"""Configuration layering (defaults, --quick, TOML file, CLI) and its one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.plan.config import QUICK_PROFILE, build_spec, parse_scenario_options
from bench.records.errors import BenchError


def test_cli_overrides_file_which_overrides_quick_profile(tmp_path: Path) -> None:
    config = tmp_path / "sweep.toml"
    config.write_text('[sweep]\npool_sizes = [3, 7]\nduration_s = 4\nvariants = ["pg_sqla_async"]\n')
    spec = build_spec(cli={"duration_s": "6", "users": None}, config_file=config, quick=True)
    assert spec.pool_sizes == [3, 7]  # from the file, over the quick profile
    assert spec.duration_s == 6  # from the CLI, over the file
    assert spec.users == QUICK_PROFILE["users"]  # from the quick profile
    assert spec.variants == ["pg_sqla_async"]


def test_top_level_keys_work_without_a_sweep_table(tmp_path: Path) -> None:
    config = tmp_path / "sweep.toml"
    config.write_text("max_overflows = [0, 4]\n")
    assert build_spec(cli={}, config_file=config).max_overflows == [0, 4]


@pytest.mark.parametrize(
    ("cli", "expected"),
    [
        ({"pool_sizes": ["0"]}, "invalid --pool-size"),
        ({"max_overflows": ["-1"]}, "invalid --max-overflow"),
        ({"users": ["zero"]}, "invalid --users"),
        ({"duration_s": "0"}, "invalid --duration"),
        ({"variants": ["nope"]}, "unknown variant nope"),
        ({"rates": ["fast"]}, "invalid --rate"),
        ({"load_model": "open"}, "the open load model needs --rate"),
        ({"scenario_options": {"no_such_option": "1"}}, "no_such_option"),
    ],
)
def test_cli_errors_name_the_option(cli: dict[str, object], expected: str) -> None:
    with pytest.raises(BenchError) as caught:
        build_spec(cli=cli)
    assert expected in caught.value.message
    assert "\n" not in caught.value.message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("pool_sizes = [", "not valid TOML"),
        ("pool_size = [2]\n", "unknown setting 'pool_size'"),
        ("duration_s = -5\n", "invalid duration_s in"),
        ("[sweep]\nusers = 'many'\n", "invalid users in"),
        ("sweep = 3\n", "[sweep] must be a table"),
    ],
)
def test_config_file_errors_name_the_key_and_file(tmp_path: Path, content: str, expected: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(content)
    with pytest.raises(BenchError) as caught:
        build_spec(cli={}, config_file=config)
    assert expected in caught.value.message


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="does not exist"):
        build_spec(cli={}, config_file=tmp_path / "absent.toml")


def test_scenario_options_are_parsed_and_every_default_is_recorded() -> None:
    spec = build_spec(cli={"scenario": "io_wait", "scenario_options": parse_scenario_options(["wait_ms=20"])})
    assert spec.scenario_options["wait_ms"] == 20
    read_heavy = build_spec(cli={})
    assert read_heavy.scenario_options  # its defaults, even when none were given


def test_scenario_options_from_a_config_file_may_be_typed(tmp_path: Path) -> None:
    config = tmp_path / "io.toml"
    config.write_text('scenario = "io_wait"\n[scenario_options]\nwait_ms = 75\n')
    assert build_spec(cli={}, config_file=config).scenario_options["wait_ms"] == 75


@pytest.mark.parametrize("pair", ["wait_ms", "=5", "wait_ms=", "  =  "])
def test_malformed_scenario_option_pairs_are_one_line_errors(pair: str) -> None:
    with pytest.raises(BenchError, match="KEY=VALUE"):
        parse_scenario_options([pair])
