"""Helpers shared by the Python-asset components."""

import dagster as dg


def table_name(asset_key: str) -> str:
    """The warehouse table of an asset: the last part of its key (`talent/matches` -> `matches`)."""
    return dg.AssetKey.from_user_string(asset_key).path[-1]
