"""The variants of the item service, found by reading apps/*.py without importing them."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

# Parsing instead of importing: a variant whose driver is not installed must still be listed.
APPS_DIR = Path(__file__).resolve().parent
_MARKER = "VARIANT"


class VariantSpec(TypedDict):
    """What a variant module declares as its top-level `VARIANT = {...}` literal."""

    backend: str
    mode: str
    driver: str
    pooled: bool


@dataclass(frozen=True)
class VariantInfo:
    name: str
    backend: str
    mode: str
    driver: str
    pooled: bool
    description: str

    @property
    def module(self) -> str:
        return f"{APPS_DIR.name}.{self.name}"

    @property
    def asgi_app(self) -> str:
        """The `module:attribute` that uvicorn is given."""
        return f"{self.module}:app"


def all_variants(directory: Path = APPS_DIR) -> dict[str, VariantInfo]:
    """Every module in `directory` that declares VARIANT, keyed and sorted by name."""
    found = (_read_variant(path) for path in sorted(directory.glob("*.py")) if not path.name.startswith("_"))
    return {info.name: info for info in found if info is not None}


def get_variant(name: str, directory: Path = APPS_DIR) -> VariantInfo:
    variants = all_variants(directory)
    try:
        return variants[name]
    except KeyError:
        raise KeyError(f"unknown variant {name!r}; known: {', '.join(variants)}") from None


def _read_variant(path: Path) -> VariantInfo | None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    value = _variant_literal(tree)
    if value is None:
        return None
    try:
        literal = ast.literal_eval(value)
    except ValueError:
        raise ValueError(f"{path}: {_MARKER} must be a literal dict, so it can be read without importing") from None
    spec = _checked_spec(path, literal)
    docstring = ast.get_docstring(tree)
    if not docstring:
        raise ValueError(f"{path}: a variant module needs a one-line docstring describing it")
    return VariantInfo(name=path.stem, description=docstring.splitlines()[0].strip(), **spec)


def _variant_literal(tree: ast.Module) -> ast.expr | None:
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        else:
            continue
        if any(isinstance(target, ast.Name) and target.id == _MARKER for target in targets):
            return node.value
    return None


def _checked_spec(path: Path, value: object) -> VariantSpec:
    keys = VariantSpec.__required_keys__
    if not isinstance(value, dict) or value.keys() != keys:
        raise ValueError(f"{path}: {_MARKER} must be a dict with exactly the keys {', '.join(sorted(keys))}")
    for key, kind in (("backend", str), ("mode", str), ("driver", str), ("pooled", bool)):
        if not isinstance(value[key], kind):
            raise ValueError(f"{path}: {_MARKER}[{key!r}] must be a {kind.__name__}, not {value[key]!r}")
    return VariantSpec(backend=value["backend"], mode=value["mode"], driver=value["driver"], pooled=value["pooled"])
