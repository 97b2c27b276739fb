"""Entities: the things OwnLens features describe."""

from feast import Entity, ValueType

user = Entity(
    name="user",
    join_keys=["user_id"],
    value_type=ValueType.INT64,
    description="A reader of one brand",
    owner="ml-platform@ownlens.example",
)
article = Entity(
    name="article",
    join_keys=["article_id"],
    value_type=ValueType.INT64,
    description="A published article",
    owner="ml-platform@ownlens.example",
)
author = Entity(
    name="author",
    join_keys=["author_id"],
    value_type=ValueType.INT64,
    description="An article's author",
    owner="ml-platform@ownlens.example",
)
brand = Entity(
    name="brand",
    join_keys=["brand_id"],
    value_type=ValueType.INT64,
    description="A publication of the publisher",
    owner="ml-platform@ownlens.example",
)
