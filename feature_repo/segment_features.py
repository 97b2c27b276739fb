"""The reader segment the segmentation model assigned, for later models and product services.

Written back by ``ownlens-ml segments write`` from the champion segmentation version and the
latest daily snapshot. TTL 8 days: segments are re-assigned at least weekly (one week of
cadence plus one day of grace); an older segment describes habits that may have changed.
"""

from datetime import timedelta

from data_sources import customer_user_segments_source
from entities import user
from feast import FeatureView, Field
from feast.types import Int64, String

user_segment_fv = FeatureView(
    name="user_segment",
    entities=[user],
    ttl=timedelta(days=8),
    schema=[
        Field(
            name="segment_name",
            dtype=String,
            description="The reader's segment, e.g. 'weekend reader'; 'occasional' below 2 sessions in 30 days",
        ),
        Field(
            name="segment_model_version",
            dtype=Int64,
            description="Version of the segmentation model that assigned the segment",
        ),
    ],
    source=customer_user_segments_source,
    online=True,
    description="The reader's segment from the champion segmentation model, named after its habits",
    owner="customer-analytics@ownlens.example",
    tags={"domain": "customer", "topic": "segments", "grain": "weekly"},
)
