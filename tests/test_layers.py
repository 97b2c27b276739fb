"""The package's imports point down the layers, and models and engines never import the generator."""

from __future__ import annotations

import ast
from pathlib import Path

import ownlens_ml

PACKAGE = Path(ownlens_ml.__file__).parent
LAYERS = {
    "settings": 0, "errors": 0, "progress": 0, "clock": 0,
    "db": 1,
    "data": 2,
    "features": 3, "registry": 3, "evaluation": 3, "models": 3,
    "pipelines": 4, "serving": 4, "monitoring": 4,
    "cli": 5, "demo": 5,
}
GENERATOR = ("ownlens_ml.data.generator",)
"""The truth (``data.truth``) and the latent process it replays (``data.latent``) are not the generator."""


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every ownlens_ml module a file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("ownlens_ml")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ownlens_ml"):
            found.add(node.module)
    return found


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_imports_point_down_the_layers():
    upward = []
    for path in PACKAGE.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        me = _module(path)
        for other in _imports(path):
            if _layer(me) is not None and _layer(other) is not None and _layer(other) > _layer(me):
                upward.append(f"{me} -> {other}")
    assert not upward, upward


def test_models_and_engines_never_import_the_generator():
    offenders = [f"{_module(p)} -> {o}" for top in ("models", "pipelines", "evaluation", "features", "registry.py",
                                                       "serving", "monitoring")
                 for p in (PACKAGE / top).rglob("*.py") if (PACKAGE / top).is_dir() or p == PACKAGE / top
                 for o in _imports(p) if o.startswith(GENERATOR)]
    assert not offenders, offenders


def test_the_truth_the_oracle_reads_never_imports_the_generator():
    """evaluation.oracle imports data.truth; the chain to the generator stays cut there."""
    offenders = [f"{name} -> {o}" for name in ("truth", "latent")
                 for o in _imports(PACKAGE / "data" / f"{name}.py") if o.startswith(GENERATOR)]
    assert not offenders, offenders
    assert "ownlens_ml.data.truth" in _imports(PACKAGE / "evaluation" / "oracle.py")
