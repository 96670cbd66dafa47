"""Facts about dbt nodes that the automation needs, read from a parsed manifest."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from dagster_autopilot.automation.policy import AutomationPolicy, as_policy


class InvalidMetaPolicyError(ValueError):
    """A dbt node's `meta.dagster.automation` is not a valid policy."""


def materialization(node: Mapping[str, Any]) -> str:
    """The node's materialization (`seed` for seeds, `snapshot` for snapshots)."""
    if node.get("resource_type") in ("seed", "snapshot"):
        return node["resource_type"]
    return node.get("config", {}).get("materialized") or "view"


def meta_policy(node: Mapping[str, Any]) -> AutomationPolicy | None:
    """The policy override in `meta: {dagster: {automation: ...}}`, validated, or None."""
    meta = node.get("meta") or node.get("config", {}).get("meta") or {}
    raw = (meta.get("dagster") or {}).get("automation")
    if raw is None:
        return None
    where = f"{node.get('original_file_path', node.get('unique_id'))} (dbt node '{node.get('name')}')"
    try:
        return as_policy(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"meta.dagster.automation.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in error.errors()
        )
        raise InvalidMetaPolicyError(f"{where}: {problems}") from None
