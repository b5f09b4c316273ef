"""The catalog lists variants by reading their source, so adding a variant is adding a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.catalog import APPS_DIR, VariantInfo, all_variants, get_variant

SHIPPED_MODES = {"memory": "async", "pg_sqla_async": "async", "pg_sqla_blocking": "blocking", "pg_sqla_sync": "sync"}
SPEC = '{"backend": "postgresql", "mode": "async", "driver": "fake+driver", "pooled": True}'


def write_module(directory: Path, name: str, source: str) -> None:
    (directory / f"{name}.py").write_text(source, encoding="utf-8")


def test_finds_the_shipped_variants_with_their_modes() -> None:
    variants = all_variants()

    assert SHIPPED_MODES.keys() <= variants.keys()
    assert {name: variants[name].mode for name in SHIPPED_MODES} == SHIPPED_MODES
    assert list(variants) == sorted(variants)


def test_shared_modules_are_not_variants() -> None:
    names = set(all_variants())

    assert names.isdisjoint({"catalog", "contract", "settings", "schema", "sqla", "__init__"})


def test_shipped_variant_details() -> None:
    assert get_variant("pg_sqla_sync") == VariantInfo(
        name="pg_sqla_sync",
        backend="postgresql",
        mode="sync",
        driver="sqlalchemy+psycopg",
        pooled=True,
        description="PostgreSQL through SQLAlchemy's sync engine on psycopg 3; "
        "`def` routes run in FastAPI's thread pool.",
    )
    memory = get_variant("memory")
    assert (memory.backend, memory.pooled) == ("memory", False)
    assert memory.asgi_app == "apps.memory:app"
    assert APPS_DIR.joinpath("memory.py").is_file()


def test_description_is_the_first_docstring_line(tmp_path: Path) -> None:
    write_module(tmp_path, "documented", f'"""First line.\n\nMore detail that is not shown."""\n\nVARIANT = {SPEC}\n')

    assert all_variants(tmp_path)["documented"].description == "First line."


def test_variants_are_read_without_being_imported(tmp_path: Path) -> None:
    # A variant whose driver is missing must still be listed; importing this one would fail.
    write_module(tmp_path, "needs_driver", f'"""Needs a driver."""\nimport not_installed_driver\n\nVARIANT = {SPEC}\n')

    assert all_variants(tmp_path)["needs_driver"].driver == "fake+driver"


def test_annotated_declaration_is_found(tmp_path: Path) -> None:
    write_module(tmp_path, "annotated", f'"""Annotated."""\nVARIANT: VariantSpec = {SPEC}\n')

    assert list(all_variants(tmp_path)) == ["annotated"]


def test_modules_without_variant_are_ignored(tmp_path: Path) -> None:
    write_module(tmp_path, "helpers", '"""Shared helpers."""\n\nOTHER = {"backend": "memory"}\n')
    write_module(tmp_path, "nested", f'"""Nested."""\n\ndef build():\n    VARIANT = {SPEC}\n    return VARIANT\n')
    write_module(tmp_path, "real", f'"""A real one."""\nVARIANT = {SPEC}\n')

    assert list(all_variants(tmp_path)) == ["real"]


def test_unknown_name_raises_key_error_listing_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"no_such_variant.*pg_sqla_sync"):
        get_variant("no_such_variant")


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        (
            '"""Missing a key."""\nVARIANT = {"backend": "memory", "mode": "async", "driver": "dict"}\n',
            "exactly the keys",
        ),
        (
            '"""Wrong type."""\nVARIANT = {"backend": "memory", "mode": "async", "driver": "dict", "pooled": 1}\n',
            "bool",
        ),
        ('"""Computed."""\nVARIANT = dict(backend="memory")\n', "literal dict"),
        (f"VARIANT = {SPEC}\n", "docstring"),
    ],
    ids=["missing-key", "wrong-type", "not-a-literal", "no-docstring"],
)
def test_malformed_declaration_names_the_file(tmp_path: Path, source: str, problem: str) -> None:
    write_module(tmp_path, "broken", source)

    with pytest.raises(ValueError, match=problem) as raised:
        all_variants(tmp_path)

    assert "broken.py" in str(raised.value)
