"""feature_repo/ stands apart from the package: it imports nothing of ownlens_ml, and the
types it declares still match the snapshot columns of ownlens_ml/db/schema.py."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest
from feast.types import Float64, Int64, String
from sqlalchemy import BigInteger, Float
from sqlalchemy import String as SqlString

from ownlens_ml.db.schema import FEATURE_TABLES

REPO = Path(__file__).resolve().parent.parent / "feature_repo"
FEAST_TYPE = {BigInteger: Int64, Float: Float64, SqlString: String}


@pytest.mark.parametrize("path", sorted(REPO.glob("*.py")), ids=lambda p: p.name)
def test_repo_file_imports_nothing_of_the_package(path: Path):
    tree = ast.parse(path.read_text())
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    imported += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not [name for name in imported if name.split(".")[0] == "ownlens_ml"], imported


def test_declared_field_types_match_the_schema_columns():
    sys.path.insert(0, str(REPO))
    try:
        fields = importlib.import_module("fields")
    finally:
        sys.path.remove(str(REPO))
        sys.modules.pop("fields", None)
    declared = {
        "customer_user_features": fields.USER_SNAPSHOT,
        "editorial_article_features": fields.ARTICLE_SNAPSHOT,
        "editorial_author_features": fields.AUTHOR_SNAPSHOT,
    }
    for table in FEATURE_TABLES:
        columns = {c.name: c for c in table.columns if not c.primary_key}
        assert declared[table.name].keys() == columns.keys(), table.name
        for name, (dtype, description) in declared[table.name].items():
            expected = next(feast for sql, feast in FEAST_TYPE.items() if isinstance(columns[name].type, sql))
            assert dtype == expected, f"{table.name}.{name}: declared {dtype}, column is {columns[name].type}"
            assert description, f"{table.name}.{name} has no description"


def test_feature_modules_import_each_other_only_downward():
    """No cycle among ownlens_ml/features/ modules, counting imports inside functions too."""
    folder = Path(__file__).resolve().parent.parent / "ownlens_ml" / "features"
    graph = {}
    for path in folder.glob("*.py"):
        tree = ast.parse(path.read_text())
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "ownlens_ml.features":
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ownlens_ml.features."):
                found.add(node.module.rsplit(".", 1)[1])
        graph[path.stem] = found - {path.stem}

    def reaches(start: str, target: str, seen: set) -> bool:
        return any(n == target or (n not in seen and reaches(n, target, seen | {n})) for n in graph.get(start, ()))

    cycles = [m for m in graph if reaches(m, m, set())]
    assert not cycles, {m: graph[m] for m in cycles}
