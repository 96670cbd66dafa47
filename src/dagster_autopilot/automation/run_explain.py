"""Why the automation requested a materialization, in one sentence, for its `autopilot/explain`.

Every automated asset, dbt model or Python asset, calls `explain_metadata` while it materializes.
The sentence is built from the run's audit tags (`audit.py`), with `autopilot explain`'s wording,
so the UI, the tick log and the command say the same thing.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence

import dagster as dg

from dagster_autopilot.automation import labels
from dagster_autopilot.automation.apply import policy_of
from dagster_autopilot.automation.audit import (
    EXPIRED_TAG,
    REASON_TAG,
    REASONS_BY_ASSET_TAG,
    TRIGGER_TAG,
    TRIGGER_VALUE,
)
from dagster_autopilot.automation.explain import _join, _latest_cron_tick, _reason_phrases
from dagster_autopilot.automation.policy import AutomationPolicy

EXPLAIN_METADATA = "autopilot/explain"


def explain_metadata(context: dg.AssetExecutionContext, key: dg.AssetKey) -> dict[str, object]:
    """`{"autopilot/explain": sentence}` for `key` in an automation run; empty for any other run."""
    tags = context.run.tags
    if tags.get(TRIGGER_TAG) != TRIGGER_VALUE:
        return {}
    spec = context.assets_def.specs_by_key[key]
    reasons = _reasons_of(tags, key)
    parents = _updated_parents(context, key) if labels.DEPS_UPDATED in reasons else []
    created = context.instance.get_run_record_by_id(context.run.run_id)
    requested_at = created.create_timestamp if created else datetime.datetime.now(datetime.UTC)
    sentence = explain_sentence(key, tags, policy_of(spec.metadata), requested_at, parents)
    return {} if sentence is None else {EXPLAIN_METADATA: dg.MetadataValue.text(sentence)}


def explain_sentence(
    key: dg.AssetKey,
    tags: Mapping[str, str],
    policy: AutomationPolicy | None,
    requested_at: datetime.datetime,
    updated_parents: Sequence[str] = (),
) -> str | None:
    """Why the automation requested this materialization, in one sentence; None for a run the
    automation did not request. `requested_at` is when the run was created (for the cron tick)."""
    if tags.get(TRIGGER_TAG) != TRIGGER_VALUE:
        return None
    name = key.to_user_string()
    reasons = _reasons_of(tags, key)
    if not reasons:
        return f"{name} was requested by the automation."
    policy = policy or AutomationPolicy()
    cron_tick = _latest_cron_tick(policy, requested_at) if labels.CRON in reasons else None
    known = [r for r in reasons if r != labels.CRON or cron_tick is not None]
    phrases = _reason_phrases(
        known,
        list(updated_parents),
        cron_tick,
        failed_request=False,
        expired_at=tags.get(EXPIRED_TAG),
        policy=policy,
    )
    if len(known) < len(reasons):
        phrases.append("its cron tick passed")  # a policy without a cron: no tick to name
    return f"{name} was requested by the automation because {_join(phrases)}."


def _reasons_of(tags: Mapping[str, str], key: dg.AssetKey) -> list[str]:
    """The reasons the automation requested `key`, from the run's audit tags."""
    by_asset = tags.get(REASONS_BY_ASSET_TAG)
    if by_asset:
        try:
            reasons = json.loads(by_asset).get(key.to_user_string())
        except (ValueError, AttributeError):
            reasons = None
        if isinstance(reasons, list):
            return [str(reason) for reason in reasons]
    return [reason for reason in tags.get(REASON_TAG, "").split(",") if reason in labels.REASONS]


def _updated_parents(context: dg.AssetExecutionContext, key: dg.AssetKey) -> list[str]:
    """The parents of `key` built in this run or materialized after `key`'s latest
    materialization: the parents behind a `deps_updated` reason."""
    parents = sorted(context.assets_def.asset_deps.get(key, ()))
    if not parents:
        return []
    in_run = set(context.selected_asset_keys)
    instance = context.instance
    own = instance.get_asset_records([key])
    own_last = own[0].asset_entry.last_materialization_record if own else None
    records = {r.asset_entry.asset_key: r.asset_entry for r in instance.get_asset_records(parents)}
    updated = []
    for parent in parents:
        last = records[parent].last_materialization_record if parent in records else None
        newer = last is not None and (own_last is None or last.storage_id > own_last.storage_id)
        if parent in in_run or newer:
            updated.append(parent.to_user_string())
    return updated
