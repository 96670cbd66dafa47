"""The policy model: how the YAML says an asset stays fresh, before it becomes a condition.

Plain pydantic models and pure functions, so a policy can be validated and tested without Dagster
running. Layers merge in this order, later ones overriding only the fields they set:
the default for the asset's kind -> each matching rule, in order -> the asset's own dbt `meta`.
"""

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import dagster as dg
from pydantic import field_validator, model_validator

from dagster_autopilot.schedules import valid_cron, valid_timezone

# The dbt materializations a policy can be declared for. Anything else in the YAML is a typo.
DBT_MATERIALIZATIONS = (
    "seed",
    "view",
    "table",
    "incremental",
    "snapshot",
    "materialized_view",
)

OPT_OUT = "none"


class AutomationPolicy(dg.Model):
    """How one asset stays fresh.

    Without `cron`, the asset is rebuilt as soon as it is stale: missing, its code changed, or
    something upstream of it was updated. With `cron`, it is rebuilt at the first tick after each
    cron time, and only if it is stale (or always, with `rebuild: always`).
    """

    cron: str | None = None
    """Cron schedule that gates rebuilds, e.g. `0 6 * * *`. Unset: rebuild on change."""

    timezone: str = "UTC"
    """IANA timezone the cron schedule is read in, e.g. `Europe/Lisbon`."""

    rebuild: Literal["when_stale", "always"] = "when_stale"
    """With `cron`: `when_stale` skips a tick when nothing changed; `always` rebuilds at every tick."""

    enabled: bool = True
    """`false` opts the asset out of automation (the string `none` is a shorthand for this)."""

    @field_validator("cron")
    @classmethod
    def _cron_is_valid(cls, cron: str | None) -> str | None:
        return cron if cron is None else valid_cron(cron)

    @field_validator("timezone")
    @classmethod
    def _timezone_is_known(cls, timezone: str) -> str:
        return valid_timezone(timezone)

    @property
    def is_cron(self) -> bool:
        return self.cron is not None

    def describe(self) -> str:
        """The policy in words, for status output and asset metadata."""
        if not self.enabled:
            return "no automation"
        if self.cron is None:
            return "rebuild when missing, when its code changes, or when upstream data changes"
        when = f"at '{self.cron}' ({self.timezone})"
        if self.rebuild == "always":
            return f"rebuild {when} every time"
        return f"rebuild {when} if missing, its code changed, or upstream data changed"


PolicyInput = AutomationPolicy | Literal["none"]


def as_policy(value: PolicyInput | Mapping[str, Any]) -> "AutomationPolicy":
    """Reads a policy from YAML or dbt meta: the string `none`, a mapping, or a model."""
    if value == OPT_OUT:
        return AutomationPolicy(enabled=False)
    if isinstance(value, AutomationPolicy):
        return value
    return AutomationPolicy.model_validate(value)


class MaterializationPolicies(dg.Model):
    """The default policy for each dbt materialization. Unlisted ones keep these defaults."""

    seed: PolicyInput = AutomationPolicy()
    """Seeds: built when missing and when their CSV changes."""
    view: PolicyInput = AutomationPolicy()
    """Views: cheap, so rebuilt as soon as their SQL or anything upstream changes."""
    table: PolicyInput = AutomationPolicy(cron="0 6 * * *")
    """Tables: rebuilt at the first tick after 06:00 UTC, when stale."""
    incremental: PolicyInput = AutomationPolicy(cron="0 6 * * *")
    """Incremental models: the table policy by default."""
    snapshot: PolicyInput = AutomationPolicy(cron="0 6 * * *")
    """Snapshots: the table policy by default."""
    materialized_view: PolicyInput = AutomationPolicy(cron="0 6 * * *")
    """Materialized views: the table policy by default."""

    def for_materialization(self, materialized: str) -> "AutomationPolicy":
        """The default for a materialization; custom materializations follow tables."""
        value = getattr(self, materialized, None) if materialized in DBT_MATERIALIZATIONS else None
        return as_policy(value if value is not None else self.table)


class PolicyRule(dg.Model):
    """Overrides the policy of the dbt nodes it matches. Give `tag`, `fqn`, or both."""

    tag: str | None = None
    """Matches nodes that carry this dbt tag."""

    fqn: str | None = None
    """Glob over the node's dotted fqn (project.folder.model), e.g. `analytics.marts.*`."""

    policy: PolicyInput
    """The fields to override (or `none` to opt the matched nodes out)."""

    @model_validator(mode="after")
    def _matches_something(self) -> "PolicyRule":
        if self.tag is None and self.fqn is None:
            raise ValueError("a rule needs `tag`, `fqn`, or both, to say which nodes it matches")
        return self

    def matches(self, tags: Iterable[str], fqn: Sequence[str]) -> bool:
        if self.tag is not None and self.tag not in tags:
            return False
        return self.fqn is None or fnmatch.fnmatchcase(".".join(fqn), self.fqn)


def merge(base: AutomationPolicy, override: AutomationPolicy) -> "AutomationPolicy":
    """`base` with the fields that `override` set explicitly."""
    return base.model_copy(update={f: getattr(override, f) for f in override.model_fields_set})


def resolve_policy(
    materialized: str,
    tags: Iterable[str],
    fqn: Sequence[str],
    meta_policy: Mapping[str, Any] | str | None,
    defaults: MaterializationPolicies,
    rules: Sequence[PolicyRule],
) -> "AutomationPolicy":
    """The policy of one node: its kind's default, then matching rules in order, then its meta."""
    tags = list(tags)
    policy = defaults.for_materialization(materialized)
    for rule in rules:
        if rule.matches(tags, fqn):
            policy = merge(policy, as_policy(rule.policy))
    if meta_policy is not None:
        policy = merge(policy, as_policy(meta_policy))
    if policy.enabled and policy.rebuild == "always" and policy.cron is None:
        # Checked on the merged policy: a rule may set `rebuild` and the defaults the `cron`.
        raise ValueError(
            f"node {'.'.join(fqn)}: `rebuild: always` needs a `cron` schedule to rebuild on"
        )
    return policy
