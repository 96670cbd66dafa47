"""Every automated asset's materialization says why the automation requested it, Python assets too."""

import datetime
import hashlib
import json

import dagster as dg

from dagster_autopilot.automation.audit import (
    EXPIRED_TAG,
    REASON_TAG,
    REASONS_BY_ASSET_TAG,
    TRIGGER_TAG,
    TRIGGER_VALUE,
)
from dagster_autopilot.automation.policy import AutomationPolicy
from dagster_autopilot.automation.run_explain import EXPLAIN_METADATA, explain_sentence
from dagster_autopilot.warehouse.connection import Warehouse


def _normalized_candidates() -> None:
    with Warehouse.from_env().connect() as session:
        session.create_table(
            "normalized_candidates",
            [("candidate_id", "text"), ("text_to_embed", "text"), ("content_hash", "text")],
        )
        texts = {"c1": "Data engineer, dbt and Dagster", "c2": "Analyst, SQL"}
        rows = [(i, t, hashlib.md5(t.encode()).hexdigest()) for i, t in texts.items()]
        session.insert("normalized_candidates", ["candidate_id", "text_to_embed", "content_hash"], rows)


def _explain_of(defs: dg.Definitions, key: str, tags: dict[str, str]) -> str | None:
    asset_key = dg.AssetKey(key)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [defs.get_assets_def(asset_key)],
            selection=[asset_key],
            resources=defs.resources,
            instance=instance,
            tags=tags,
        )
        (event,) = result.asset_materializations_for_node(f"embed_{key}")
        value = event.metadata.get(EXPLAIN_METADATA)
        return None if value is None else value.value


def test_a_python_asset_built_by_the_automation_says_why(project_defs):
    _normalized_candidates()
    tags = {
        TRIGGER_TAG: TRIGGER_VALUE,
        REASONS_BY_ASSET_TAG: json.dumps({"candidate_vectors": ["missing"]}),
    }
    assert _explain_of(project_defs, "candidate_vectors", tags) == (
        "candidate_vectors was requested by the automation because it was never materialized."
    )


def test_a_python_asset_built_by_hand_has_no_reason(project_defs):
    _normalized_candidates()
    assert _explain_of(project_defs, "candidate_vectors", {}) is None


def test_explain_sentences_for_each_reason():
    key = dg.AssetKey("customer_orders")
    at = datetime.datetime(2026, 1, 5, 7, 30, tzinfo=datetime.UTC)
    policy = AutomationPolicy(cron="0 6 * * *", freshness={"ttl": "1d"})

    def sentence(reasons: list[str], **extra) -> str | None:
        tags = {
            TRIGGER_TAG: "auto-materialize",
            REASONS_BY_ASSET_TAG: json.dumps({"customer_orders": reasons}),
            **extra,
        }
        return explain_sentence(key, tags, policy, at, updated_parents=["stg_orders"])

    prefix = "customer_orders was requested by the automation because "
    assert sentence(["missing"]) == prefix + "it was never materialized."
    assert sentence(["code_changed", "deps_updated"]) == (
        prefix + "its code changed and stg_orders was updated."
    )
    assert sentence(["cron"]) == prefix + "its cron tick at 2026-01-05T06:00:00+00:00 passed."
    expired = {EXPIRED_TAG: "2026-01-04T05:00:00+00:00"}
    assert sentence(["expired"], **expired) == (
        prefix + "its materialization of 2026-01-04T05:00:00+00:00 is older than its TTL of 1d."
    )
    assert explain_sentence(key, {REASON_TAG: "missing"}, None, at) is None, "not an automation run"
