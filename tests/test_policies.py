"""Policies from YAML rules and dbt meta reach the assets, in the documented order."""

import dagster as dg
import pytest
from harness import copy_project, load_defs

from dagster_autopilot.automation.policy import (
    AutomationPolicy,
    MaterializationPolicies,
    PolicyRule,
    as_policy,
    resolve_policy,
)


def _specs(defs: dg.Definitions) -> dict[str, dg.AssetSpec]:
    return {spec.key.to_user_string(): spec for assets in defs.assets for spec in assets.specs}


@pytest.fixture(scope="module")
def overridden_defs(tmp_path_factory) -> dg.Definitions:
    root = copy_project(tmp_path_factory.mktemp("overrides"))
    defs_yaml = root / "defs" / "analytics" / "defs.yaml"
    defs_yaml.write_text(
        defs_yaml.read_text()
        .replace(
            "  policies:\n",
            '  policies:\n    view: {cron: "30 5 * * *", rebuild: always}\n',
            1,
        )
        .replace(
            "  rules:\n",
            "  rules:\n"
            "    - fqn: analytics.marts.order_*\n"
            '      policy: {cron: "0 * * * *"}\n'
            "    - tag: finance\n"
            "      policy: none\n",
            1,
        )
    )
    schema = root / "analytics_dbt" / "models" / "marts" / "schema.yml"
    schema.write_text(
        schema.read_text()
        .replace(
            "  - name: customer_segments\n",
            "  - name: customer_segments\n    config:\n      meta:\n        dagster:\n"
            '          automation: {cron: "*/15 * * * *"}\n',
            1,
        )
        .replace(
            "  - name: daily_revenue\n",
            "  - name: daily_revenue\n    config:\n      tags: [finance]\n",
            1,
        )
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUTOPILOT_DUCKDB_PATH", str(root / "w.duckdb"))
        return load_defs(root)


def test_overrides_by_materialization_fqn_tag_and_meta(overridden_defs):
    specs = _specs(overridden_defs)
    policy = {key: spec.metadata.get("autopilot/policy") for key, spec in specs.items()}
    assert policy["stg_orders"] == "rebuild at '30 5 * * *' (UTC) every time"
    assert policy["order_summary"].startswith("rebuild at '0 * * * *' (UTC) if")
    assert policy["customer_orders"].startswith("rebuild at '0 6 * * *' (UTC) if")
    assert policy["customer_segments"].startswith("rebuild at '*/15 * * * *' (UTC) if")
    assert policy["daily_revenue"] == "no automation"
    assert specs["daily_revenue"].automation_condition is None
    assert specs["daily_revenue"].tags["dagster/materialization"] == "incremental"
    assert policy["raw_orders"] == (
        "rebuild when missing, when its code changes, or when upstream data changes"
    )


def test_later_layers_override_only_the_fields_they_set():
    defaults = MaterializationPolicies(
        table=AutomationPolicy(cron="0 6 * * *", timezone="Europe/Lisbon")
    )
    rules = [PolicyRule(tag="hourly", policy=AutomationPolicy(cron="0 * * * *"))]
    policy = resolve_policy(
        "table", ["hourly"], ["p", "m"], as_policy({"rebuild": "always"}), defaults, rules
    )
    assert (policy.cron, policy.timezone, policy.rebuild) == ("0 * * * *", "Europe/Lisbon", "always")


def test_rule_order_first_to_last_and_meta_wins():
    rules = [
        PolicyRule(fqn="p.marts.*", policy=AutomationPolicy(cron="0 1 * * *")),
        PolicyRule(fqn="p.marts.m", policy=AutomationPolicy(cron="0 2 * * *")),
    ]
    defaults = MaterializationPolicies()
    assert resolve_policy("table", [], ["p", "marts", "m"], None, defaults, rules).cron == "0 2 * * *"
    assert (
        resolve_policy("table", [], ["p", "marts", "m"], as_policy("none"), defaults, rules).enabled
        is False
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"cron": "0 25 * * *"}, "not a valid cron"),
        ({"timezone": "Mars/Olympus"}, "not a known IANA timezone"),
        ({"cronn": "0 * * * *"}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_policies_say_why(fields, message):
    with pytest.raises(ValueError, match=message):
        AutomationPolicy.model_validate(fields)


def test_rebuild_always_needs_a_cron_once_merged():
    with pytest.raises(ValueError, match=r"p\.v: `rebuild: always` needs a `cron`"):
        resolve_policy(
            "view", [], ["p", "v"], as_policy({"rebuild": "always"}), MaterializationPolicies(), []
        )


def test_a_rule_must_match_something():
    with pytest.raises(ValueError, match="needs `tag`, `fqn`"):
        PolicyRule(policy="none")


def test_guardrail_fields_and_shorthands():
    policy = AutomationPolicy.model_validate(
        {
            "freshness": {"ttl": "6h"},
            "backoff": {"base": "5m", "cap": "6h", "max_failures": 3},
            "quiet_hours": "22:00-06:00 Europe/Lisbon",
            "priority": 5,
        }
    )
    assert policy.freshness.ttl_seconds == 6 * 3600
    assert [policy.backoff.wait_seconds(n) for n in (1, 2, 3, 8)] == [300, 600, 1200, 21600]
    assert policy.quiet_window == (22 * 60, 6 * 60, "Europe/Lisbon")
    assert AutomationPolicy().backoff.max_failures == 5, "backoff is on by default"
    assert AutomationPolicy().freshness is None, "a TTL is opt-in: never time alone by default"
    # `eager` clears a cron set by an earlier layer; `lazy` and `none` turn automation off.
    defaults = MaterializationPolicies()
    assert resolve_policy("table", [], ["p", "t"], as_policy("eager"), defaults, []).cron is None
    assert resolve_policy("view", [], ["p", "v"], as_policy("lazy"), defaults, []).enabled is False


@pytest.mark.parametrize(
    ("fields", "where", "message"),
    [
        ({"freshness": {"ttl": "6 hours"}}, "freshness.ttl", "not a duration"),
        ({"backoff": {"base": "0m"}}, "backoff.base", "longer than zero"),
        ({"backoff": {"max_failures": 0}}, "backoff.max_failures", "at least 1"),
        ({"quiet_hours": "22:00-25:00"}, "quiet_hours", "not a time of day"),
        ({"quiet_hours": "22:00-06:00 Mars/Olympus"}, "quiet_hours", "not a known IANA timezone"),
        ({"priority": "high"}, "priority", "valid integer"),
        ({"backoff": {"base": "1h", "cap": "5m"}}, "backoff", "cap '5m' is shorter than base '1h'"),
        ({"backoff": {"base": "12h"}}, "backoff", "cap '6h' is shorter than base '12h'"),
    ],
)
def test_invalid_guardrails_name_the_field(fields, where, message):
    with pytest.raises(ValueError, match=message) as error:
        AutomationPolicy.model_validate(fields)
    assert where in str(error.value)


def test_a_misspelt_shorthand_lists_the_shorthands():
    with pytest.raises(ValueError, match="'eagre' is not a policy: expected `eager`, `lazy`, `none`"):
        as_policy("eagre")
    # A cap equal to its base is a constant wait.
    assert as_policy({"backoff": {"base": "5m", "cap": "5m"}}).backoff.wait_seconds(3) == 300
