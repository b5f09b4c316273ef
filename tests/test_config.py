"""Configuration layering (defaults, --quick, TOML file, CLI) and its one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.config import QUICK_PROFILE, build_spec
from bench.errors import BenchError


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
