"""`autopilot explain`: the shipped project's definitions, ticked through its shipped automation
sensor, the sensor's cursor stored in the instance as the daemon stores it after each tick.

Each explanation is checked three ways: its sentence and fields exactly; that it changed nothing
in the instance (runs, events, the stored cursor); and that the sensor's next tick at the same time
does what it said.
"""

import datetime
import json

import dagster as dg
import pytest
from harness import MONDAY_1AM, SEEDS, SensorTicker, run_at_clock, with_policies
from typer.testing import CliRunner

from dagster_autopilot import cli
from dagster_autopilot._dagster_internals import InstigatorType, store_sensor_cursor
from dagster_autopilot.automation.explain import Explanation, explain
from dagster_autopilot.automation.sensor import AutopilotAutomationSensor
from dagster_autopilot.automation.status import automation_status

MINUTE = datetime.timedelta(minutes=1)
TICK = datetime.timedelta(seconds=30)
TO_RESUME = "materialize it successfully (a manual run will do) or change its code"


def _shipped_sensor(defs: dg.Definitions) -> AutopilotAutomationSensor:
    return next(s for s in defs.sensors if isinstance(s, AutopilotAutomationSensor))


def stored_cursor(instance: dg.DagsterInstance, sensor_name: str) -> str | None:
    states = instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
    return next(s.instigator_data.cursor for s in states if s.name == sensor_name)


class Explainer(SensorTicker):
    """A `SensorTicker` whose every tick stores the sensor's cursor in the instance, as the
    daemon does, and that explains an asset as of the next tick."""

    def tick(self, advance: datetime.timedelta = TICK) -> set[str]:
        requested = super().tick(advance)
        store_sensor_cursor(self.instance, self.sensor.name, self.cursor)
        return requested

    def explain(self, asset: str, advance: datetime.timedelta = TICK) -> Explanation:
        """`explain` at the next tick's time; checks it changed nothing, then ticks the sensor at
        that time and checks the tick did what the explanation said."""
        instance = self.instance
        before = (
            instance.get_runs_count(),
            instance.event_log_storage.get_maximum_record_id(),
            stored_cursor(instance, self.sensor.name),
        )
        explanation = explain(self.defs, instance, asset, evaluation_time=self.now + advance)
        after = (
            instance.get_runs_count(),
            instance.event_log_storage.get_maximum_record_id(),
            stored_cursor(instance, self.sensor.name),
        )
        assert after == before, "explain launched a run, wrote an event or moved the cursor"
        requested = self.tick(advance)
        assert (asset in requested) == (explanation.decision == "requested"), (
            explanation.sentence,
            requested,
        )
        return explanation


def _explainer(defs: dg.Definitions, instance: dg.DagsterInstance, sensor) -> Explainer:
    ticker = Explainer(defs, instance, MONDAY_1AM, sensor=sensor)
    store_sensor_cursor(instance, sensor.name, None)
    return ticker


@pytest.fixture
def explainer(project_defs: dg.Definitions) -> Explainer:
    with dg.instance_for_test() as instance:
        yield _explainer(project_defs, instance, _shipped_sensor(project_defs))


def _with_sensor(defs: dg.Definitions, shipped: dg.Definitions) -> dg.Definitions:
    """`defs` (e.g. from `with_policies`) with the shipped automation sensor."""
    return dg.Definitions(
        assets=defs.assets, resources=defs.resources, sensors=[_shipped_sensor(shipped)]
    )


@pytest.fixture
def policy_explainer(project_defs: dg.Definitions):
    """Builds an `Explainer` over the shipped definitions with `policies` put on named assets."""
    with dg.instance_for_test() as instance:

        def build(policies: dict[str, dict]) -> Explainer:
            defs = _with_sensor(with_policies(project_defs, policies), project_defs)
            return _explainer(defs, instance, _shipped_sensor(project_defs))

        yield build


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).isoformat()


def _guards(explanation: Explanation) -> dict[str, str]:
    return {check.guard: check.state for check in explanation.guards}


# --- Triggers ---------------------------------------------------------------------------------


def test_a_missing_asset_is_requested_because_it_was_never_materialized(explainer):
    explanation = explainer.explain("raw_customers")
    assert explanation.sentence == (
        "raw_customers would be requested on the next tick because it was never materialized."
    )
    assert (explanation.decision, explanation.reasons) == ("requested", ["missing"])
    assert (explanation.trigger, explanation.triggered, explanation.mode) == (
        "stale",
        True,
        "on_change",
    )
    assert _guards(explanation) == {
        "not_busy": "allows",
        "parents_present": "allows",
        "backoff_allows": "allows",
    }
    assert (explanation.next_possible, explanation.next_possible_kind) == (
        _iso(MONDAY_1AM + TICK),
        "now",
    )
    assert explanation.sensor == "autopilot_automation_sensor"
    assert explanation.sensor_running is True


def test_a_parent_requested_on_the_same_tick_counts(explainer):
    # On the first tick raw_orders is requested too: stg_orders goes in the same run, not held
    # for its missing parent, and the parent's request counts as an update.
    explanation = explainer.explain("stg_orders")
    assert explanation.sentence == (
        "stg_orders would be requested on the next tick because it was never materialized and "
        "raw_orders was updated."
    )
    assert (explanation.reasons, explanation.updated_parents) == (
        ["missing", "deps_updated"],
        ["raw_orders"],
    )


def test_a_stopped_sensor_is_named(explainer):
    store_sensor_cursor(explainer.instance, explainer.sensor.name, None, running=False)
    explanation = explain(explainer.defs, explainer.instance, "raw_customers", MONDAY_1AM)
    assert explanation.sentence == (
        "raw_customers would be requested on the next tick because it was never materialized; "
        "but its sensor autopilot_automation_sensor is stopped, so nothing is requested until it "
        "starts."
    )
    assert (explanation.decision, explanation.sensor_running) == ("requested", False)
    assert "  sensor: autopilot_automation_sensor (STOPPED: nothing is requested until it starts)" in (
        explanation.as_text().splitlines()
    )


def test_a_cron_table_waits_for_its_cron_tick_then_the_tick_fires_it(explainer):
    explainer.run_requested(explainer.tick())
    waiting = explainer.explain("customer_orders")
    assert waiting.sentence == (
        "customer_orders would not be requested on the next tick: "
        "it waits for its cron tick at 2026-01-05T06:00:00+00:00."
    )
    assert (waiting.decision, waiting.triggered, waiting.trigger) == ("not_triggered", False, "cron")
    assert (waiting.next_possible, waiting.next_possible_kind) == (
        "2026-01-05T06:00:00+00:00",
        "cron",
    )
    assert set(_guards(waiting).values()) == {"not_reached"}
    # The same next refresh as the status command's.
    status = next(
        s
        for s in automation_status(explainer.defs, explainer.instance, explainer.now)
        if s.asset == "customer_orders"
    )
    assert (status.next_refresh, status.next_refresh_kind) == ("2026-01-05T06:00:00+00:00", "cron")

    six = MONDAY_1AM.replace(hour=6)
    fired = explainer.explain("customer_orders", advance=six + TICK - explainer.now)
    assert fired.sentence == (
        "customer_orders would be requested on the next tick because it was never materialized; "
        "raw_customers, raw_orders, stg_customers and stg_orders were updated; and its cron tick "
        "at 2026-01-05T06:00:00+00:00 passed."
    )
    assert fired.reasons == ["missing", "deps_updated", "cron"]
    assert fired.cron_tick == "2026-01-05T06:00:00+00:00"
    # Its view parents, and the real assets behind them (views store no data).
    assert fired.updated_parents == ["raw_customers", "raw_orders", "stg_customers", "stg_orders"]


def test_a_parent_update_names_the_parent(explainer):
    explainer.run_requested(explainer.tick())
    assert explainer.tick() == set()
    explainer.run_requested(["raw_orders"])
    explanation = explainer.explain("stg_orders")
    assert explanation.sentence == (
        "stg_orders would be requested on the next tick because raw_orders was updated."
    )
    assert (explanation.reasons, explanation.updated_parents) == (["deps_updated"], ["raw_orders"])
    # An up-to-date sibling is not stale; the last materialization is the evidence.
    explanation = explainer.explain("stg_customers")
    assert explanation.sentence == (
        "stg_customers would not be requested on the next tick: it is not stale since its last "
        "materialization at 2026-01-05T01:00:30+00:00."
    )
    assert (explanation.decision, explanation.next_possible) == ("not_triggered", None)


def test_a_code_change_is_named(explainer, project_defs):
    explainer.run_requested(explainer.tick())
    assert explainer.tick() == set()

    def changed(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.key == dg.AssetKey("stg_customers"):
            return spec.replace_attributes(code_version="edited")
        return spec

    assets = [
        a.map_asset_specs(changed) if isinstance(a, dg.AssetsDefinition) else a
        for a in project_defs.assets
    ]
    explainer.defs = dg.Definitions(
        assets=assets, resources=project_defs.resources, sensors=[explainer.sensor]
    )
    explanation = explainer.explain("stg_customers")
    assert explanation.sentence == (
        "stg_customers would be requested on the next tick because its code changed."
    )
    assert explanation.reasons == ["code_changed"]


def test_an_expired_materialization_is_named_with_its_time(policy_explainer):
    explainer = policy_explainer({"stg_orders": {"freshness": {"ttl": "6h"}}})
    explainer.run_requested(explainer.tick())  # built at 01:00:30
    fresh = explainer.explain("stg_orders")
    assert fresh.sentence == (
        "stg_orders would not be requested on the next tick: it is not stale since its last "
        "materialization at 2026-01-05T01:00:30+00:00, which expires at "
        "2026-01-05T07:00:30+00:00."
    )
    assert (fresh.next_possible, fresh.next_possible_kind) == ("2026-01-05T07:00:30+00:00", "ttl")
    expired = explainer.explain(
        "stg_orders", advance=MONDAY_1AM.replace(hour=7, minute=1) - explainer.now
    )
    assert expired.sentence == (
        "stg_orders would be requested on the next tick because its materialization of "
        "2026-01-05T01:00:30+00:00 is older than its TTL of 6h."
    )
    assert (expired.trigger, expired.reasons) == ("stale_or_expired", ["expired"])
    assert expired.expired_materialization == "2026-01-05T01:00:30+00:00"


# --- Guards -----------------------------------------------------------------------------------


def test_a_run_in_progress_is_named_by_its_id(explainer):
    explainer.run_requested(explainer.tick())
    assert explainer.tick() == set()
    explainer.run_requested(["raw_orders"])
    run = explainer.start_run(["stg_orders"])
    explanation = explainer.explain("stg_orders")
    assert explanation.sentence == (
        f"stg_orders would not be requested on the next tick: run {run.run_id} (STARTED) "
        "building stg_orders is in progress (it is due because raw_orders was updated)."
    )
    assert (explanation.decision, explanation.held_by) == ("skipped_in_progress", "not_busy")
    assert [(r.asset, r.run_id, r.status) for r in explanation.in_progress] == [
        ("stg_orders", run.run_id, "STARTED")
    ]
    assert _guards(explanation) == {
        "not_busy": "holds",
        "parents_present": "not_reached",
        "backoff_allows": "not_reached",
    }
    assert explanation.next_possible is None


def test_a_parent_in_progress_and_quiet_hours_both_hold_it(policy_explainer):
    explainer = policy_explainer({"stg_orders": {"quiet_hours": "00:30-02:15"}})
    # stg_orders is in its quiet hours from the first tick: built by hand with the rest.
    explainer.run_requested(explainer.tick() | {"stg_orders"})
    assert explainer.tick() == set()
    explainer.run_requested(["raw_orders"])
    run = explainer.start_run(["raw_orders"])
    explanation = explainer.explain("stg_orders")
    assert explanation.sentence == (
        f"stg_orders would not be requested on the next tick: run {run.run_id} (STARTED) building "
        "raw_orders is in progress and it is in its quiet hours until 2026-01-05T02:15:00+00:00 "
        "(it is due because raw_orders was updated)."
    )
    assert (explanation.decision, explanation.held_by) == ("skipped_in_progress", "not_busy")
    assert [(g.guard, g.state, g.would_hold) for g in explanation.guards] == [
        ("not_busy", "holds", None),
        ("parents_present", "not_reached", None),
        ("outside_quiet_hours", "not_reached", True),
        ("backoff_allows", "not_reached", False),
    ]
    assert [(r.asset, r.run_id) for r in explanation.in_progress] == [("raw_orders", run.run_id)]
    assert explanation.quiet_until == "2026-01-05T02:15:00+00:00"
    assert explanation.next_possible is None, "a run has no known end"
    assert (
        "  guard outside_quiet_hours: not reached (holds as well: it is in its quiet hours until "
        "2026-01-05T02:15:00+00:00)"
    ) in explanation.as_text().splitlines()


def test_a_missing_parent_holds_its_child(policy_explainer):
    # stg_orders is not automated, so nothing builds it; its child's cron tick comes anyway.
    explainer = policy_explainer({"stg_orders": {"enabled": False}})
    explainer.run_requested(explainer.tick())
    six = MONDAY_1AM.replace(hour=6)
    explanation = explainer.explain("customer_orders", advance=six + TICK - explainer.now)
    assert explanation.sentence == (
        "customer_orders would not be requested on the next tick: parent stg_orders was never "
        "materialized (it is due because it was never materialized; raw_customers, raw_orders and "
        "stg_customers were updated; and its cron tick at 2026-01-05T06:00:00+00:00 passed)."
    )
    assert (explanation.decision, explanation.missing_parents) == (
        "waiting_for_parents",
        ["stg_orders"],
    )
    off = explainer.explain("stg_orders")
    assert off.sentence == (
        "stg_orders is not automated: its policy is off, so it runs only when someone materializes it."
    )
    assert (off.decision, off.mode, off.sensor) == ("off", "off", None)


def test_quiet_hours_say_until_when(policy_explainer):
    explainer = policy_explainer({"raw_customers": {"quiet_hours": "00:30-02:15"}})
    explanation = explainer.explain("raw_customers")
    assert explanation.sentence == (
        "raw_customers would not be requested on the next tick: it is in its quiet hours until "
        "2026-01-05T02:15:00+00:00 (it is due because it was never materialized)."
    )
    assert (explanation.decision, explanation.quiet_until) == (
        "quiet_hours",
        "2026-01-05T02:15:00+00:00",
    )
    assert (explanation.next_possible, explanation.next_possible_kind) == (
        "2026-01-05T02:15:00+00:00",
        "quiet_hours_end",
    )
    # At the end of the window, it goes.
    after = explainer.explain(
        "raw_customers", advance=MONDAY_1AM.replace(hour=2, minute=15) - explainer.now
    )
    assert after.decision == "requested"


def _fail_stg_customers(explainer: Explainer) -> dg.DagsterRun:
    """Seeds built at 01:00:30; stg_customers, never built, fails at 01:10:30."""
    explainer.tick()
    run_at_clock(explainer, SEEDS)
    explainer.now += 10 * MINUTE
    failed = run_at_clock(explainer, {"stg_customers"}, fail=True)
    return explainer.instance.get_run_by_id(failed.run_id)


def test_backoff_says_until_when_after_how_many_failures(policy_explainer):
    explainer = policy_explainer({})
    _fail_stg_customers(explainer)
    explanation = explainer.explain("stg_customers")
    assert explanation.sentence == (
        "stg_customers would not be requested on the next tick: it is backing off until "
        "2026-01-05T01:15:30+00:00 after 1 consecutive failure (it is due because it was never "
        "materialized and raw_customers was updated)."
    )
    assert (explanation.decision, explanation.held_by) == ("backed_off", "backoff_allows")
    assert (explanation.backoff.failures, explanation.backoff.next_allowed) == (
        1,
        "2026-01-05T01:15:30+00:00",
    )
    assert explanation.next_possible_kind == "backoff_end"
    # The status reports the same backoff.
    status = next(
        s
        for s in automation_status(explainer.defs, explainer.instance, explainer.now)
        if s.asset == "stg_customers"
    )
    assert status.backoff == explanation.backoff
    assert explainer.explain("stg_customers", advance=5 * MINUTE).decision == "requested"


def test_a_paused_asset_says_how_to_lift_the_pause(policy_explainer):
    explainer = policy_explainer({"stg_customers": {"backoff": {"base": "1m", "max_failures": 1}}})
    _fail_stg_customers(explainer)
    explanation = explainer.explain("stg_customers", advance=MINUTE * 30)
    assert explanation.sentence == (
        "stg_customers would not be requested on the next tick: it is paused after 1 consecutive "
        f"failure; to resume, {TO_RESUME} (it is due because it was never materialized and "
        "raw_customers was updated)."
    )
    assert (explanation.decision, explanation.backoff.paused, explanation.backoff.to_resume) == (
        "paused",
        True,
        TO_RESUME,
    )
    assert explanation.next_possible is None


# --- The command ------------------------------------------------------------------------------


@pytest.fixture
def dagster_home(project_defs, tmp_path, monkeypatch):
    # An instance folder has its dagster.yaml; without one, Dagster warns once per process on the
    # first open, into the command's output.
    (tmp_path / "dagster.yaml").write_text("")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.setattr(cli, "load_project_defs", lambda root: project_defs)
    return tmp_path


def test_the_command_prints_the_sentence_then_details_and_json(dagster_home, project_defs):
    with dg.DagsterInstance.get() as instance:
        explainer = _explainer(project_defs, instance, _shipped_sensor(project_defs))
        explainer.run_requested(explainer.tick())
        cursor = stored_cursor(instance, explainer.sensor.name)
    at = "2026-01-05T01:05:00"
    runner = CliRunner()
    text = runner.invoke(cli.app, ["explain", "customer_orders", "--at", at])
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    assert lines[0] == (
        "customer_orders would not be requested on the next tick: "
        "it waits for its cron tick at 2026-01-05T06:00:00+00:00."
    )
    assert "  sensor: autopilot_automation_sensor (running)" in lines
    assert "  next possible request: 2026-01-05T06:00:00+00:00 (cron)" in lines
    as_json = runner.invoke(cli.app, ["explain", "customer_orders", "--json", "--at", at])
    assert as_json.exit_code == 0, as_json.output
    fields = json.loads(as_json.output)
    assert fields["sentence"] == lines[0]
    assert fields["evaluated_at"] == "2026-01-05T01:05:00+00:00"
    assert (fields["decision"], fields["next_possible"]) == (
        "not_triggered",
        "2026-01-05T06:00:00+00:00",
    )
    with dg.DagsterInstance.get() as instance:
        assert stored_cursor(instance, explainer.sensor.name) == cursor
        assert instance.get_runs_count() == 1


def test_an_unknown_asset_names_close_matches(dagster_home):
    result = CliRunner().invoke(cli.app, ["explain", "customer_order"])
    assert result.exit_code == 1
    assert "No asset 'customer_order' in the project's definitions. Did you mean: customer_orders" in (
        result.output
    )


def test_a_bad_time_names_the_expected_format(dagster_home):
    result = CliRunner().invoke(cli.app, ["explain", "customer_orders", "--at", "tomorrow 6am"])
    assert result.exit_code == 2
    assert "--at: 'tomorrow 6am' is not a time: expected an ISO 8601 time such as " in result.output


def test_a_missing_instance_names_the_dagster_home_it_tried(dagster_home, monkeypatch):
    missing = dagster_home / "nowhere"
    monkeypatch.setenv("DAGSTER_HOME", str(missing))
    result = CliRunner().invoke(cli.app, ["explain", "customer_orders"])
    assert result.exit_code == 1
    assert f"cannot open the Dagster instance in DAGSTER_HOME={missing} (SQLite storage under" in (
        result.output
    )
    monkeypatch.delenv("DAGSTER_HOME")
    result = CliRunner().invoke(cli.app, ["explain", "customer_orders"])
    assert (result.exit_code, "DAGSTER_HOME is not set" in result.output) == (1, True)


def test_an_unreachable_database_is_named_without_its_password(dagster_home):
    (dagster_home / "dagster.yaml").write_text(
        "storage:\n"
        "  postgres:\n"
        "    postgres_db:\n"
        "      username: autopilot\n"
        "      password: do-not-print\n"
        "      hostname: 127.0.0.1\n"
        "      db_name: dagster_prod\n"
        "      port: 1\n"
    )
    result = CliRunner().invoke(cli.app, ["explain", "customer_orders"])
    assert result.exit_code == 1
    assert (
        f"cannot open the Dagster instance in DAGSTER_HOME={dagster_home} "
        "(postgres database dagster_prod on 127.0.0.1:1)"
    ) in result.output
    assert "do-not-print" not in result.output


def test_the_package_exports_explain():
    import dagster_autopilot

    assert dagster_autopilot.explain is explain
