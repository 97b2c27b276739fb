"""The generator's oracle, offered through a small interface that imported data simply lacks.

A generated platform leaves its latent truth in ``settings.truth_dir``; ``ownlens_ml.data.truth``
reads it and offers the oracles (``ORACLES``: name -> function), replaying the latent process of
``ownlens_ml.data.latent``, never the generator itself. Engines and models ask for an oracle by
name here and never import the generator. Imported data has no truth folder, so
``NoTruthError`` says why the oracle is omitted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ownlens_ml.data.truth import ORACLES
from ownlens_ml.errors import NoTruthError
from ownlens_ml.settings import Settings


def oracle(settings: Settings, name: str, rows: pd.DataFrame, **params) -> np.ndarray:
    """The truth's answer for ``rows`` from the oracle called ``name``.

    Raises:
        NoTruthError: there is no generator truth (imported data) or it has no such oracle.
    """
    meta = settings.truth_dir / "meta.json"
    if not meta.exists():
        raise NoTruthError(
            f"no generator truth in {settings.truth_dir}: the data was not generated, so no oracle can score it"
        )
    if name not in ORACLES:
        raise NoTruthError(f"the generator truth offers no {name!r} oracle; it offers: {', '.join(ORACLES)}")
    return ORACLES[name](settings, rows, **params)
