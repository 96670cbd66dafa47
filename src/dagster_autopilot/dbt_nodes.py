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


def view_chain_lengths(manifest: Mapping[str, Any]) -> dict[str, int]:
    """For every node, how many views deep its longest chain of view ancestors (itself included) is."""
    nodes = manifest.get("nodes", {})
    lengths: dict[str, int] = {}

    def length(unique_id: str) -> int:
        if unique_id not in lengths:
            node = nodes.get(unique_id)
            if node is None or materialization(node) != "view":
                lengths[unique_id] = 0
            else:
                lengths[unique_id] = 0  # guards against a cycle while we recurse
                parents = node.get("depends_on", {}).get("nodes", [])
                lengths[unique_id] = 1 + max((length(p) for p in parents), default=0)
        return lengths[unique_id]

    for unique_id in nodes:
        length(unique_id)
    return lengths


def views_between(node: Mapping[str, Any], chains: Mapping[str, int]) -> int:
    """How many views deep the node must look to reach the real data behind its parents."""
    parents = node.get("depends_on", {}).get("nodes", [])
    return max((chains.get(p, 0) for p in parents), default=0)
