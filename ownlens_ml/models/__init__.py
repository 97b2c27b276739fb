"""Model specs by domain; ``get_spec`` looks one up by name."""

from __future__ import annotations

from ownlens_ml.errors import UnknownModelError
from ownlens_ml.models import kinds_artifacts  # noqa: F401, E402 - registers the kinds' artifact codecs
from ownlens_ml.models.customer import churn, conversion, engagement, recommendation, segmentation
from ownlens_ml.models.editorial import article_performance, trending
from ownlens_ml.models.spec import ModelSpec

SPECS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        churn.SPEC,
        conversion.SPEC,
        segmentation.SPEC,
        article_performance.SPEC,
        recommendation.SPEC,
        trending.SPEC,
        engagement.SPEC,
    )
}


def get_spec(name: str) -> ModelSpec:
    """The spec called ``name``; UnknownModelError lists the known ones."""
    try:
        return SPECS[name]
    except KeyError:
        raise UnknownModelError(f"no model {name!r}; known: {', '.join(sorted(SPECS))}") from None
