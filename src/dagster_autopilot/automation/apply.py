"""The one entry point that puts a policy on an asset, for dbt models and Python assets alike."""

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass

import dagster as dg

from dagster_autopilot import _dagster_internals as internals
from dagster_autopilot.automation import labels
from dagster_autopilot.automation.conditions import condition_for
from dagster_autopilot.automation.policy import AutomationPolicy, PolicyInput, as_policy

POLICY_METADATA = "autopilot/policy"
"""Asset metadata: the resolved policy, in words."""
POLICY_JSON_METADATA = "autopilot/policy_config"
"""Asset metadata: the resolved policy as JSON, read back by the sensor's audit and the status."""
PRIORITY_METADATA = "autopilot/priority"
"""Asset metadata: the policy's priority, which becomes the run tag `dagster/priority`."""
RUN_TAGS_METADATA = "autopilot/run_tags"
"""Asset metadata: tags (a JSON object) that every automation run building the asset carries, e.g.
`autopilot/dbt_project`, which the production run queue limits to one run per dbt project."""
AUTOMATION_TAG = "autopilot/automation"
"""Asset tag: `on_change`, `on_cron` or `off`, so selections such as `tag:autopilot/automation=off`
find the assets that only run when asked."""


@dataclass(frozen=True)
class PolicyAttributes:
    """What a policy sets on an asset spec: its automation condition, metadata and tags to add."""

    automation_condition: dg.AutomationCondition | None
    metadata: Mapping[str, object]
    tags: Mapping[str, str]


def policy_attributes(policy: AutomationPolicy | PolicyInput | dict) -> PolicyAttributes:
    """The attributes `apply_policy` puts on a spec, for callers that set them with others at once.

    `policy` is an `AutomationPolicy` (as components hold it once validated), or, for Python code
    that builds specs by hand, a mapping in the YAML form or a shorthand (`eager`, `lazy`, `none`).
    A disabled policy has no automation condition. Assets with the same policy share one answer.
    """
    return _attributes_of(as_policy(policy))  # an AutomationPolicy passes through unchanged


@functools.lru_cache(maxsize=4096)
def _attributes_of(policy: AutomationPolicy) -> PolicyAttributes:
    # Memoized on the (frozen, hashable) policy: thousands of dbt models share a few policies.
    metadata: dict[str, object] = {
        POLICY_METADATA: policy.describe(),
        POLICY_JSON_METADATA: policy.model_dump_json(exclude_defaults=True),
    }
    if policy.priority is not None:
        metadata[PRIORITY_METADATA] = policy.priority
    condition = condition_for(policy)
    if condition is not None:
        condition = internals.snapshot_once(condition)
    mode = labels.OFF if condition is None else condition.get_label()
    return PolicyAttributes(condition, metadata, {AUTOMATION_TAG: mode})


def apply_policy(spec: dg.AssetSpec, policy: AutomationPolicy | PolicyInput | dict) -> dg.AssetSpec:
    """`spec` with the policy's automation condition and its policy metadata (`policy_attributes`).

    A disabled policy removes any automation condition.
    """
    attributes = policy_attributes(policy)
    return spec.replace_attributes(
        automation_condition=attributes.automation_condition
    ).merge_attributes(metadata=attributes.metadata, tags=attributes.tags)


def policy_of(metadata) -> AutomationPolicy | None:
    """The policy `apply_policy` recorded in an asset's metadata, or None for other assets."""
    value = metadata.get(POLICY_JSON_METADATA) if metadata else None
    if value is None:
        return None
    text = value.value if isinstance(value, dg.TextMetadataValue) else value
    return AutomationPolicy.model_validate_json(text)


def run_tags_metadata(tags: dict[str, str]) -> dict[str, str]:
    """The metadata that makes an asset's automation runs carry `tags` (see `RUN_TAGS_METADATA`)."""
    return {RUN_TAGS_METADATA: json.dumps(tags, sort_keys=True)}


def with_run_tags(spec: dg.AssetSpec, tags: dict[str, str]) -> dg.AssetSpec:
    """`spec` whose automation runs carry `tags` (see `RUN_TAGS_METADATA`)."""
    return spec.merge_attributes(metadata=run_tags_metadata(tags))
