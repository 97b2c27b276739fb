"""The kinds own what is theirs: the registry imports no model, and serving and the registry name none."""

from __future__ import annotations

import ast
from pathlib import Path

from ownlens_ml.models import SPECS

PACKAGE = Path(__file__).resolve().parents[1] / "ownlens_ml"
GENERIC = sorted([*(PACKAGE / "registry").glob("*.py"), *(PACKAGE / "serving").glob("*.py")])


def _docstrings(tree: ast.Module) -> set[int]:
    """Strings that are statements of their own: docstrings of modules, classes, functions and attributes."""
    return {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}


def test_the_registry_imports_nothing_of_the_models():
    imports = [
        (path.name, node.module)
        for path in (PACKAGE / "registry").glob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom)
        if node.module and node.module.startswith("ownlens_ml.models")
    ]
    assert not imports, imports


def test_serving_and_the_registry_name_no_model():
    """No string in their code (docstrings aside) is a model's name or a path of one: routes come from specs."""
    named = []
    for path in GENERIC:
        tree = ast.parse(path.read_text())
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                words = set(node.value.replace("/", " ").split())
                named += [(path.name, node.value) for name in SPECS if name in words]
    assert not named, named
    assert len(GENERIC) >= 8
