"""The generator's oracle, offered through a small interface that imported data simply lacks.

A generated platform leaves ``meta.json`` in ``settings.truth_dir`` naming the module that
provides its oracles (``ORACLES``: name -> function); engines and models ask for an oracle by
name here and never import the generator. Imported data has no truth folder, so
``NoTruthError`` says why the oracle is omitted.
"""

from __future__ import annotations

import importlib
import json

import numpy as np
import pandas as pd

from ownlens_ml.errors import NoTruthError
from ownlens_ml.settings import Settings

DEFAULT_PROVIDER = "ownlens_ml.data.truth"


def oracle(settings: Settings, name: str, rows: pd.DataFrame, **params) -> np.ndarray:
    """The truth's answer for ``rows`` from the oracle called ``name``.

    Raises:
        NoTruthError: there is no generator truth (imported data) or it has no such oracle.
    """
    meta = settings.truth_dir / "meta.json"
    if not meta.exists():
        raise NoTruthError(f"no generator truth in {settings.truth_dir}: the data was not generated, "
                           "so no oracle can score it")
    provider = json.loads(meta.read_text()).get("oracle_provider", DEFAULT_PROVIDER)
    if not provider.startswith("ownlens_ml."):
        raise NoTruthError(f"{meta} names oracle provider {provider!r} outside ownlens_ml; refusing to import it")
    oracles = getattr(importlib.import_module(provider), "ORACLES", {})
    if name not in oracles:
        raise NoTruthError(f"the generator truth offers no {name!r} oracle; it offers: {', '.join(oracles) or 'none'}")
    return oracles[name](settings, rows, **params)
