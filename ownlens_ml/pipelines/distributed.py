"""Distributed XGBoost: a spec's XGBoost step trained through ``xgboost.dask``, kept as the plain model.

The spec's own estimator (its hyperparameters, early stopping, seed) is trained on Dask arrays
of the same rows by ``DaskXGBClassifier``/``DaskXGBRegressor`` and the booster is loaded back
into the spec's ``XGBClassifier``/``XGBRegressor``: the registered artifact is the same kind as
a single-machine one, so serving cannot tell how it was trained. Needs the ``cluster`` extra
(``pip install -e '.[cluster]'``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
from collections.abc import Iterator

import numpy as np

from ownlens_ml.errors import ConfigError
from ownlens_ml.settings import Settings

log = logging.getLogger(__name__)
LOCAL_WORKERS = 2
"""Workers of the LocalCluster started when no scheduler address is set."""


def is_xgboost(model) -> bool:
    """Whether ``model`` is an XGBoost scikit-learn estimator this module can train."""
    from xgboost import XGBClassifier, XGBRegressor

    return type(model) in (XGBClassifier, XGBRegressor)


@contextlib.contextmanager
def dask_client(settings: Settings) -> Iterator:
    """A Dask client on ``settings.dask_scheduler``, else on a LocalCluster of two workers (closed after).

    Raises:
        ConfigError: Dask is not installed, or the scheduler cannot be reached.
    """
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError(
            "the dask training backend needs dask[distributed]; install the cluster extra: pip install -e '.[cluster]'"
        ) from None
    if settings.dask_scheduler:
        try:
            client = Client(settings.dask_scheduler, timeout=10)
        except (OSError, TimeoutError) as exc:
            raise ConfigError(
                f"cannot reach the Dask scheduler {settings.dask_scheduler} ({exc}); "
                "start it or unset OWNLENS_DASK_SCHEDULER for a local cluster"
            ) from None
        with client:
            yield client
        return
    # the workers' scratch space: the system temp folder, not the working directory
    with (
        LocalCluster(
            n_workers=LOCAL_WORKERS, threads_per_worker=1, dashboard_address=None, local_directory=tempfile.gettempdir()
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def fit_xgboost_dask(client, model, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray):
    """Fit ``model`` (an unfitted XGBoost estimator) through ``xgboost.dask``; returns ``model``, fitted.

    The rows are split into one partition per worker; the validation rows watch early stopping
    as they do on one machine.
    """
    import dask.array as da
    from xgboost import XGBClassifier
    from xgboost import dask as dxgb  # imported explicitly: ``import xgboost`` does not load it

    workers = max(1, len(client.scheduler_info()["workers"]))

    def chunks(a: np.ndarray):
        a = np.asarray(a)
        rows = max(1, math.ceil(len(a) / workers))
        return da.from_array(a, chunks=(rows,) + a.shape[1:])

    wrapper = dxgb.DaskXGBClassifier if isinstance(model, XGBClassifier) else dxgb.DaskXGBRegressor
    distributed = wrapper(**model.get_params())
    distributed.client = client
    distributed.fit(chunks(x), chunks(y), eval_set=[(chunks(x_val), chunks(y_val))], verbose=False)
    log.info(
        "xgboost.dask: %d rows on %d workers, best iteration %s",
        len(x),
        workers,
        getattr(distributed, "best_iteration", None),
    )
    # the saved model carries the scikit-learn attributes (classes, best iteration) with the booster
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "model.ubj")
        distributed.save_model(path)
        model.load_model(path)
    return model
