"""The policy model: how the YAML says an asset stays fresh, before it becomes a condition.

A policy is validated once, where it is read (a component's YAML, a dbt node's `meta`), into an
`AutomationPolicy`: a frozen, hashable value that travels unchanged to `conditions.condition_for`.
Plain pydantic models and pure functions, so a policy can be validated and tested without Dagster
running. Layers merge in this order, later ones overriding only the fields they set:
the default for the asset's kind -> each matching rule, in order -> the asset's own dbt `meta`.
"""

import datetime
import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import dagster as dg
from pydantic import ConfigDict, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from dagster_autopilot.automation.cron import valid_cron, valid_timezone

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
# `eager`: rebuild on change (the default policy). `lazy`: no automation, runs only when asked.
SHORTHANDS = ("none", "eager", "lazy")

_DURATION_PART = re.compile(r"(\d+)\s*([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_QUIET_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})(?:\s+(\S+))?\s*$")


def parse_duration(text: str) -> datetime.timedelta:
    """`30s`, `5m`, `6h`, `1d` or a sum such as `1h30m`; a ValueError that shows the form otherwise."""
    compact = str(text).replace(" ", "")
    parts = _DURATION_PART.findall(compact)
    if not parts or "".join(f"{n}{u}" for n, u in parts) != compact:
        raise ValueError(f"'{text}' is not a duration (expected e.g. '30s', '5m', '6h', '1d', '1h30m')")
    seconds = sum(int(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    if seconds <= 0:
        raise ValueError(f"'{text}' must be longer than zero")
    return datetime.timedelta(seconds=seconds)


def _valid_duration(text: str) -> str:
    parse_duration(text)
    return text


class FreshnessPolicy(dg.Model):
    """Rebuild an asset whose latest materialization is older than `ttl`."""

    model_config = ConfigDict(frozen=True)

    ttl: str
    """How long a materialization stays fresh, e.g. `6h`, `30m`, `1d`, `1h30m`."""

    @field_validator("ttl")
    @classmethod
    def _ttl_is_a_duration(cls, ttl: str) -> str:
        return _valid_duration(ttl)

    @property
    def ttl_seconds(self) -> int:
        return int(parse_duration(self.ttl).total_seconds())


class BackoffPolicy(dg.Model):
    """Waits longer after each consecutive failure, and pauses the asset after too many.

    After n consecutive failed runs the asset is not requested again before
    `min(cap, base * 2^(n-1))` has passed since the last failure. A successful materialization
    (a manual one included) or a change to the asset's code resets the count.
    """

    model_config = ConfigDict(frozen=True)

    base: str = "5m"
    """Wait after the first failure, e.g. `5m`. Doubles with each further consecutive failure."""

    cap: str = "6h"
    """Longest wait between two attempts, e.g. `6h`."""

    max_failures: int | None = 5
    """Consecutive failures after which the asset is paused until a success or a code change.
    `null` never pauses."""

    @field_validator("base", "cap")
    @classmethod
    def _is_a_duration(cls, value: str) -> str:
        return _valid_duration(value)

    @field_validator("max_failures")
    @classmethod
    def _at_least_one(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError(f"must be at least 1 (or null to never pause), got {value}")
        return value

    @model_validator(mode="after")
    def _cap_is_not_below_base(self) -> "BackoffPolicy":
        if self.cap_seconds < self.base_seconds:
            raise ValueError(
                f"cap '{self.cap}' is shorter than base '{self.base}': expected a cap at least as long "
                "as the first wait"
            )
        return self

    @property
    def base_seconds(self) -> int:
        return int(parse_duration(self.base).total_seconds())

    @property
    def cap_seconds(self) -> int:
        return int(parse_duration(self.cap).total_seconds())

    def wait_seconds(self, failures: int) -> int:
        """Seconds to wait after the last of `failures` consecutive failures."""
        if failures <= 0:
            return 0
        return min(self.cap_seconds, self.base_seconds * 2 ** min(failures - 1, 40))


def parse_quiet_hours(text: str, default_timezone: str = "UTC") -> tuple[int, int, str]:
    """`22:00-06:00 Europe/Lisbon` as (start minute of day, end minute of day, timezone)."""
    match = _QUIET_HOURS.match(str(text))
    if match is None:
        raise ValueError(f"'{text}' is not a window (expected e.g. '22:00-06:00 Europe/Lisbon')")
    start_h, start_m, end_h, end_m, timezone = match.groups()
    minutes = []
    for hour, minute in ((start_h, start_m), (end_h, end_m)):
        if int(hour) > 23 or int(minute) > 59:
            raise ValueError(f"'{hour}:{minute}' in '{text}' is not a time of day")
        minutes.append(int(hour) * 60 + int(minute))
    if minutes[0] == minutes[1]:
        raise ValueError(f"'{text}' starts and ends at the same time")
    return minutes[0], minutes[1], valid_timezone(timezone or default_timezone)


class AutomationPolicy(dg.Model):
    """How one asset stays fresh.

    Without `cron`, the asset is rebuilt as soon as it is stale: missing, its code changed, or
    something upstream of it was updated. With `cron`, it is rebuilt at the first tick after each
    cron time, and only if it is stale (or always, with `rebuild: always`).
    """

    # Frozen, so hashable: one value from the YAML to the condition, and a cache key for it.
    model_config = ConfigDict(frozen=True)

    cron: str | None = None
    """Cron schedule that gates rebuilds, e.g. `0 6 * * *`. Unset: rebuild on change."""

    timezone: str = "UTC"
    """IANA timezone the cron schedule is read in, e.g. `Europe/Lisbon`."""

    rebuild: Literal["when_stale", "always"] = "when_stale"
    """With `cron`: `when_stale` skips a tick when nothing changed; `always` rebuilds at every tick."""

    enabled: bool = True
    """`false` opts the asset out of automation (the strings `none` and `lazy` are shorthands)."""

    freshness: FreshnessPolicy | None = None
    """Also rebuild when the latest materialization is older than a TTL, e.g. `{ttl: 6h}`."""

    backoff: BackoffPolicy = BackoffPolicy()
    """After failed runs, wait `base * 2^(n-1)` (at most `cap`) and pause after `max_failures`."""

    quiet_hours: str | None = None
    """A daily window in which nothing is requested, e.g. `22:00-06:00 Europe/Lisbon` (timezone
    defaults to `timezone`). What falls due inside it is requested right after it ends."""

    priority: int | None = None
    """Run priority, set as the `dagster/priority` tag (higher runs first in the run queue)."""

    @field_validator("cron")
    @classmethod
    def _cron_is_valid(cls, cron: str | None) -> str | None:
        return cron if cron is None else valid_cron(cron)

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours_is_a_window(cls, quiet_hours: str | None) -> str | None:
        if quiet_hours is not None:
            parse_quiet_hours(quiet_hours)
        return quiet_hours

    @field_validator("timezone")
    @classmethod
    def _timezone_is_known(cls, timezone: str) -> str:
        return valid_timezone(timezone)

    @property
    def is_cron(self) -> bool:
        return self.cron is not None

    @property
    def quiet_window(self) -> tuple[int, int, str] | None:
        """(start minute, end minute, timezone) of the quiet hours, or None."""
        if self.quiet_hours is None:
            return None
        return parse_quiet_hours(self.quiet_hours, self.timezone)

    def describe(self) -> str:
        """The policy in words, for status output and asset metadata."""
        if not self.enabled:
            return "no automation"
        if self.cron is None:
            words = "rebuild when missing, when its code changes, or when upstream data changes"
        else:
            when = f"at '{self.cron}' ({self.timezone})"
            if self.rebuild == "always":
                words = f"rebuild {when} every time"
            else:
                words = f"rebuild {when} if missing, its code changed, or upstream data changed"
        return words + self._describe_guardrails()

    def _describe_guardrails(self) -> str:
        # Only what differs from the defaults, so the common policies stay one short sentence.
        extras = []
        if self.freshness is not None:
            extras.append(f"or when older than {self.freshness.ttl}")
        if self.quiet_hours is not None:
            extras.append(f"never during {self.quiet_hours}")
        if self.backoff != BackoffPolicy():
            pause = self.backoff.max_failures
            extras.append(
                f"backoff {self.backoff.base} doubling up to {self.backoff.cap}"
                + (f", paused after {pause} failures" if pause else "")
            )
        if self.priority is not None:
            extras.append(f"priority {self.priority}")
        return "".join(f"; {extra}" for extra in extras)


PolicyInput = AutomationPolicy | Literal["none", "eager", "lazy"]


def as_policy(value: PolicyInput | Mapping[str, Any]) -> "AutomationPolicy":
    """Reads a policy from YAML or dbt meta: `none`, `eager`, `lazy`, a mapping, or a model.

    `eager` is the rebuild-on-change policy (it clears a `cron` set by an earlier layer); `lazy` and
    `none` give no automation condition, so the asset runs only when asked.
    """
    if value in (OPT_OUT, "lazy"):
        return AutomationPolicy(enabled=False)
    if value == "eager":
        return AutomationPolicy(cron=None, enabled=True)
    if isinstance(value, AutomationPolicy):
        return value
    if not isinstance(value, Mapping):
        # A ValidationError, as for a bad mapping, so that callers report both the same way.
        message = (
            f"{value!r} is not a policy: expected `eager`, `lazy`, `none`, or a mapping of policy "
            f"fields ({', '.join(AutomationPolicy.model_fields)})"
        )
        error = InitErrorDetails(type=PydanticCustomError("policy", message), loc=(), input=value)
        raise ValidationError.from_exception_data(AutomationPolicy.__name__, [error])
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

    @field_validator("*")
    @classmethod
    def _as_policy(cls, value: PolicyInput) -> "AutomationPolicy":
        # Written as a mapping or a shorthand, held as an `AutomationPolicy` once validated.
        return as_policy(value)

    def for_materialization(self, materialized: str) -> "AutomationPolicy":
        """The default for a materialization; custom materializations follow tables."""
        return getattr(self, materialized if materialized in DBT_MATERIALIZATIONS else "table")


class PolicyRule(dg.Model):
    """Overrides the policy of the dbt nodes it matches. Give `tag`, `fqn`, or both."""

    tag: str | None = None
    """Matches nodes that carry this dbt tag."""

    fqn: str | None = None
    """Glob over the node's dotted fqn (project.folder.model), e.g. `analytics.marts.*`."""

    policy: PolicyInput
    """The fields to override (or `none` to opt the matched nodes out)."""

    @field_validator("policy")
    @classmethod
    def _as_policy(cls, value: PolicyInput) -> "AutomationPolicy":
        return as_policy(value)

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
    meta_policy: AutomationPolicy | None,
    defaults: MaterializationPolicies,
    rules: Sequence[PolicyRule],
) -> "AutomationPolicy":
    """The policy of one node: its kind's default, then matching rules in order, then its meta."""
    tags = list(tags)
    policy = defaults.for_materialization(materialized)
    for rule in rules:
        if rule.matches(tags, fqn):
            policy = merge(policy, rule.policy)
    if meta_policy is not None:
        policy = merge(policy, meta_policy)
    if policy.enabled and policy.rebuild == "always" and policy.cron is None:
        # Checked on the merged policy: a rule may set `rebuild` and the defaults the `cron`.
        raise ValueError(
            f"node {'.'.join(fqn)}: `rebuild: always` needs a `cron` schedule to rebuild on"
        )
    return policy
