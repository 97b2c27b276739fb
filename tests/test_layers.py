"""The package's layers hold (import-linter's contracts in pyproject.toml), and feature_repo/ imports nothing of it."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` on the package under root, with root's pyproject.toml."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True)


def test_import_contracts_are_kept():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_package_import_of_a_higher_layer_breaks_the_contracts(tmp_path):
    """`from ownlens_ml import serving` names a module, not the package: the contracts see it."""
    shutil.copytree(ROOT / "ownlens_ml", tmp_path / "ownlens_ml", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    registry = tmp_path / "ownlens_ml" / "registry" / "__init__.py"
    registry.write_text(registry.read_text() + "\n\ndef _probe():\n    from ownlens_ml import serving, models\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0
    assert "ownlens_ml.registry is not allowed to import ownlens_ml.serving" in result.stdout
    assert "ownlens_ml.registry is not allowed to import ownlens_ml.models" in result.stdout


def test_feature_repo_imports_nothing_of_the_package():
    """Feast imports feature_repo/ on `feast apply`; the package reaches it only through Feast's registry."""
    offenders = []
    for path in sorted((ROOT / "feature_repo").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [f"{path.name}: {name}" for name in names if name.split(".")[0] == "ownlens_ml"]
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
                "import_module",
                "__import__",
            ):
                offenders.append(f"{path.name}: dynamic import at line {node.lineno}")
    assert not offenders, offenders
