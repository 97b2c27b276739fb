"""Model registry: immutable, checksummed model versions, movable aliases, training runs.

A version is written once, in one transaction with the training run that produced it, and
never changed. The registry stores a version's bytes and metadata and reads them back through
the codec its row names (``artifacts.py``): skops archives (no pickle: every type they name must
pass a fixed allowlist before anything is constructed) are its own; the task kinds register
theirs (``register_codec``), so the registry imports nothing of the models. The SHA-256 recorded
at registration is checked on every load. ``champion`` and ``challenger`` are aliases (MLflow's
model after stages): a row per (model, alias) whose primary key makes "one champion per model" a
database fact, moved by one atomic upsert that remembers the version it replaced.

One job per module: ``artifacts`` (formats, checksums, allowlist), ``runs`` (training runs),
``versions`` (register and read versions), ``aliases`` (promote, rollback), ``common`` (shared
helpers). ``from ownlens_ml import registry; registry.X`` reaches every public name.
"""

from __future__ import annotations

from ownlens_ml.registry.aliases import promote, rollback, set_alias
from ownlens_ml.registry.artifacts import (
    ARTIFACT_FORMAT,
    ARTIFACT_FORMATS,
    REQUIRED_METHODS,
    TRUSTED_CLASSES,
    TRUSTED_NAMESPACES,
    dump_estimator,
    load_estimator,
    register_codec,
    require_methods,
    trust_class,
)
from ownlens_ml.registry.common import REGISTRY_TABLES
from ownlens_ml.registry.runs import fail_run, runs, start_run
from ownlens_ml.registry.versions import (
    ALIASES,
    ModelVersion,
    get_version,
    list_versions,
    load_model,
    register,
)

__all__ = [
    "ALIASES",
    "ARTIFACT_FORMAT",
    "ARTIFACT_FORMATS",
    "REGISTRY_TABLES",
    "REQUIRED_METHODS",
    "TRUSTED_CLASSES",
    "TRUSTED_NAMESPACES",
    "ModelVersion",
    "dump_estimator",
    "fail_run",
    "get_version",
    "list_versions",
    "load_estimator",
    "load_model",
    "promote",
    "register",
    "register_codec",
    "require_methods",
    "rollback",
    "runs",
    "set_alias",
    "start_run",
    "trust_class",
]
