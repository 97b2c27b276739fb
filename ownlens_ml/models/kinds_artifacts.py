"""The artifact codecs of the kinds whose models are not scikit-learn estimators, registered with the registry.

The registry stores bytes and metadata and reads a version back through the codec its row
names (``registry.register_codec``); it imports nothing of the models. Importing this module
(``ownlens_ml.models`` does) registers the ranking kind's ``als-npz`` and the rule kind's
``rule-json``, and admits the segmentation estimator into skops archives. Each is a plain data
format read without unpickling: numbers in a .npz (``np.load`` with ``allow_pickle=False``
refuses object arrays) beside JSON, or JSON alone. The names are those rows already carry, so
every registered version still loads.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import numpy as np

from ownlens_ml import registry
from ownlens_ml.errors import RegistryError, ValidationError
from ownlens_ml.models.customer.recommendation import Recommender
from ownlens_ml.models.customer.segmentation import ReaderSegmentation
from ownlens_ml.models.editorial.trending import TrendingRule
from ownlens_ml.models.kinds import RANKING, RULE


def dump_als_npz(model: Recommender) -> bytes:
    """A fitted ``Recommender`` as one .npz: its numeric arrays and a JSON ``meta`` member (as bytes)."""
    arrays, meta = model.to_arrays()
    buffer = io.BytesIO()
    np.savez(buffer, **arrays, meta=np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8))
    return buffer.getvalue()


def load_als_npz(data: bytes) -> Recommender:
    """The ``Recommender`` in ``dump_als_npz`` bytes; numeric arrays only, never a pickle.

    Raises:
        RegistryError: not an .npz of the recommender's arrays.
    """
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise RegistryError(f"cannot read the als-npz artifact: {exc}") from None
    unknown = sorted(set(arrays) - set(Recommender.ARRAYS) - {"meta"})
    odd = sorted(name for name, a in arrays.items() if a.dtype.kind not in "iuf")
    if unknown or odd or "meta" not in arrays:
        raise RegistryError(f"als-npz artifact has unexpected members {unknown or odd or ['no meta']}")
    try:
        return Recommender.from_arrays(arrays, json.loads(arrays.pop("meta").tobytes()))
    except (ValidationError, ValueError) as exc:
        raise RegistryError(f"als-npz artifact does not hold a recommender: {exc}") from None


def dump_rule_json(rule: Any) -> bytes:
    """A scoring rule's parameters as JSON."""
    return rule.to_json()


def load_rule_json(data: bytes) -> TrendingRule:
    """The ``TrendingRule`` in ``dump_rule_json`` bytes.

    Raises:
        RegistryError: not a rule document.
    """
    try:
        return TrendingRule.from_json(data)
    except ValidationError as exc:
        raise RegistryError(f"rule-json artifact: {exc}") from None


registry.register_codec(RANKING.artifact_format, dump_als_npz, load_als_npz)
registry.register_codec(RULE.artifact_format, dump_rule_json, load_rule_json)
registry.trust_class(ReaderSegmentation)
