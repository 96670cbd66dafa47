"""Every field of `AutomationPolicy` has a tick case whose policy is loaded from a component's YAML.

Each case is marked `@pytest.mark.policy_field("<field>")`; the last test reads the marks of the
whole test folder and fails when a field has none. The cases here put their policies in the
analytics dbt component's `rules:` on a copy of the project and tick its shipped sensor's
evaluation (`evaluate_tick`) over the assets each case is about.
"""

import ast
import datetime
from pathlib import Path

import dagster as dg
import pytest
from harness import (
    MONDAY_1AM,
    SEEDS,
    VIEWS,
    SensorTicker,
    copy_project,
    load_defs,
    run_at_clock,
)

from dagster_autopilot.automation.policy import AutomationPolicy
from dagster_autopilot.automation.sensor import AutopilotAutomationSensor

MINUTE = datetime.timedelta(minutes=1)
HOUR = datetime.timedelta(hours=1)
TESTS = Path(__file__).parent

# One rule per case, each on an asset no other rule touches, after the shipped `tag: talent` rule.
RULES = """\
    - fqn: "*.raw_customers"
      policy: {quiet_hours: "00:00-02:00 UTC"}
    - fqn: "*.raw_orders"
      policy: {backoff: {base: 10m, cap: 1h, max_failures: 2}}
    - fqn: "*.stg_customers"
      policy: none
    - fqn: "*.stg_orders"
      policy: {freshness: {ttl: 6h}, priority: 7}
    - fqn: "*.customer_orders"
      policy: {timezone: Asia/Tokyo}
    - fqn: "*.order_summary"
      policy: {rebuild: always}
"""


@pytest.fixture(scope="module")
def yaml_defs(tmp_path_factory) -> dg.Definitions:
    root = copy_project(tmp_path_factory.mktemp("policy_fields"))
    defs_yaml = root / "defs" / "analytics" / "defs.yaml"
    text = defs_yaml.read_text()
    shipped_rule = "  rules:\n    - tag: talent\n      policy:\n        cron: null\n"
    assert shipped_rule in text
    defs_yaml.write_text(text.replace(shipped_rule, shipped_rule + RULES, 1))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUTOPILOT_DUCKDB_PATH", str(root / "w.duckdb"))
        return load_defs(root)


@pytest.fixture
def ticker_over(yaml_defs):
    """A `SensorTicker` whose sensor, built like the shipped one, targets only `keys`."""
    with dg.instance_for_test() as instance:

        def make(*keys: str) -> SensorTicker:
            shipped = next(s for s in yaml_defs.sensors if isinstance(s, AutopilotAutomationSensor))
            sensor = AutopilotAutomationSensor(shipped.name, target=dg.AssetSelection.assets(*keys))
            defs = dg.Definitions(
                assets=yaml_defs.assets, sensors=[sensor], resources=yaml_defs.resources
            )
            return SensorTicker(defs, instance, MONDAY_1AM, sensor=sensor)

        yield make


@pytest.mark.policy_field("enabled")
def test_a_rule_of_none_turns_a_missing_view_off(ticker_over):
    ticker = ticker_over(*(SEEDS | VIEWS))
    assert ticker.tick() == (SEEDS | VIEWS) - {"stg_customers", "raw_customers"}
    run_at_clock(ticker, SEEDS | VIEWS)
    run_at_clock(ticker, {"raw_customers"})
    assert [ticker.tick(HOUR) for _ in range(3)] == [set()] * 3, "never, though upstream changed"


@pytest.mark.policy_field("quiet_hours")
def test_a_missing_seed_waits_for_the_end_of_its_quiet_hours(ticker_over):
    ticker = ticker_over("raw_customers")
    assert ticker.tick() == set(), "01:00:30 is inside 00:00-02:00 UTC"
    assert ticker.tick(58 * MINUTE) == set(), "01:58:30"
    assert ticker.tick(2 * MINUTE) == {"raw_customers"}, "02:00:30"


@pytest.mark.policy_field("backoff")
def test_a_failing_seed_backs_off_then_pauses(ticker_over):
    ticker = ticker_over("raw_orders")
    assert ticker.tick() == {"raw_orders"}
    assert not run_at_clock(ticker, {"raw_orders"}, fail=True).success
    assert ticker.tick(9 * MINUTE) == set(), "held for the 10 minute base"
    assert ticker.tick(MINUTE) == {"raw_orders"}
    assert not run_at_clock(ticker, {"raw_orders"}, fail=True).success
    assert [ticker.tick(HOUR) for _ in range(3)] == [set()] * 3, "paused after 2 failures"


@pytest.mark.policy_field("freshness")
@pytest.mark.policy_field("priority")
def test_an_expired_view_is_requested_with_its_priority(ticker_over):
    ticker = ticker_over("stg_orders")
    run_at_clock(ticker, SEEDS)
    assert ticker.tick() == {"stg_orders"}, "missing, its parents built"
    assert ticker.requests[0].tags["dagster/priority"] == "7"
    run_at_clock(ticker, SEEDS | VIEWS)
    assert ticker.tick(6 * HOUR - MINUTE) == set(), "fresh for 6 h"
    assert ticker.tick(MINUTE) == {"stg_orders"}, "then expired"
    assert ticker.requests[0].tags["autopilot/reason"] == "expired"
    assert ticker.requests[0].tags["dagster/priority"] == "7"


@pytest.mark.policy_field("cron")
@pytest.mark.policy_field("timezone")
def test_a_table_waits_for_its_cron_in_its_timezone(ticker_over):
    # The tables' 06:00 cron, in Asia/Tokyo for customer_orders: 21:00 UTC.
    ticker = ticker_over("customer_orders", "daily_revenue")
    run_at_clock(ticker, SEEDS | VIEWS)
    assert ticker.tick() == set()
    assert ticker.tick(5 * HOUR) == {"daily_revenue"}, "06:00:30 UTC"
    run_at_clock(ticker, {"daily_revenue"})
    assert ticker.tick(14 * HOUR + 58 * MINUTE) == set(), "20:58:30 UTC"
    assert ticker.tick(2 * MINUTE) == {"customer_orders"}, "21:00:30 UTC is 06:00:30 in Tokyo"


@pytest.mark.policy_field("rebuild")
def test_rebuild_always_rebuilds_an_unchanged_table_at_its_cron(ticker_over):
    ticker = ticker_over("order_summary", "daily_revenue")
    run_at_clock(ticker, SEEDS | VIEWS | {"order_summary", "daily_revenue"})
    assert ticker.tick() == set(), "01:00:30"
    # Nothing changed upstream: at 06:00 only `rebuild: always` asks for a build.
    assert ticker.tick(5 * HOUR) == {"order_summary"}, "06:00:30"
    run_at_clock(ticker, {"order_summary"})
    assert ticker.tick(HOUR) == set()
    assert ticker.tick(23 * HOUR) == {"order_summary"}, "and again the next day"


def _marked_fields(path: Path) -> dict[str, set[str]]:
    """The `policy_field` marks in a test file, by field: the tests that carry each."""
    found: dict[str, set[str]] = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            if (
                isinstance(decorator, ast.Call)
                and ast.unparse(decorator.func) == "pytest.mark.policy_field"
            ):
                for arg in decorator.args:
                    found.setdefault(ast.literal_eval(arg), set()).add(f"{path.name}::{node.name}")
    return found


def test_every_policy_field_has_a_yaml_loaded_tick_case():
    covered: dict[str, set[str]] = {}
    for path in sorted(TESTS.glob("test_*.py")):
        for name, tests in _marked_fields(path).items():
            covered.setdefault(name, set()).update(tests)
    assert set(covered) - set(AutomationPolicy.model_fields) == set(), "marks naming no field"
    missing = set(AutomationPolicy.model_fields) - set(covered)
    assert missing == set(), f"policy fields with no YAML-loaded tick case: {sorted(missing)}"
