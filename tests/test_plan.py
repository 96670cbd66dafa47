"""`autopilot plan`: a copy of the project built once through the shipped automation sensor (its
cursor stored in the instance as the daemon stores it), then edited for real and reloaded as
`dg dev` does, with real dbt compilation.

Each plan is checked three ways: its changes and rebuilds exactly; that it changed nothing in the
instance (runs, events, the stored cursor); and that the sensor's ticks then request what it said:
the next tick exactly the assets it marks for the next tick, and every tick through the tables'
06:00 cron tick, together, exactly the assets it lists as rebuilt.
"""

import datetime
import json
import statistics
from pathlib import Path

import dagster as dg
import pytest
from harness import MONDAY_1AM, SensorTicker, copy_project, load_defs, with_policies
from test_explain import store_sensor_cursor, stored_cursor
from typer.testing import CliRunner

from dagster_autopilot import cli
from dagster_autopilot.automation.plan import as_markdown, as_text, plan
from dagster_autopilot.automation.sensor import AutopilotAutomationSensor

TICK = datetime.timedelta(seconds=30)
SIX = "2026-01-05T06:00:00+00:00"
STG_ORDERS = Path("analytics_dbt/models/staging/stg_orders.sql")
SEGMENTS = Path("analytics_dbt/models/marts/customer_segments.sql")
TABLES = {"customer_orders", "customer_segments", "daily_revenue", "order_summary"}


def _sensor(defs: dg.Definitions) -> AutopilotAutomationSensor:
    return next(s for s in defs.sensors if isinstance(s, AutopilotAutomationSensor))


class Planner(SensorTicker):
    """Ticks the shipped sensor, storing its cursor in the instance after each tick as the daemon
    does, and plans as of the next tick."""

    def tick(self, advance: datetime.timedelta = TICK) -> set[str]:
        requested = super().tick(advance)
        store_sensor_cursor(self.instance, self.sensor.name, self.cursor)
        return requested

    def reload(self, project_root: Path) -> None:
        super().reload(project_root)
        self.sensor = _sensor(self.defs)

    def plan(self) -> dict:
        """`plan` at the next tick's time; checks that it changed nothing in the instance."""
        before = self._state()
        result = plan(self.defs, self.instance, evaluation_time=self.now + TICK)
        assert self._state() == before, "plan launched a run, wrote an event or moved the cursor"
        json.dumps(result)  # what `--json` prints
        return result

    def _state(self):
        return (
            self.instance.get_runs_count(),
            self.instance.event_log_storage.get_maximum_record_id(),
            stored_cursor(self.instance, self.sensor.name),
        )

    def check_against_ticks(self, result: dict) -> None:
        """The next tick requests what `result` says it does, and the ticks through the 06:00 cron
        tick rebuild exactly the assets it lists."""
        requested = self.tick()
        assert requested == set(result["next_tick"])
        assert requested == {r["asset"] for r in result["rebuilds"] if r["requested_on_next_tick"]}
        rebuilt = set()
        while requested:
            rebuilt |= requested
            self.run_requested(requested)
            requested = self.tick()
        requested = self.tick(self.now.replace(hour=6, minute=0, second=30) - self.now)
        while requested:
            rebuilt |= requested
            self.run_requested(requested)
            requested = self.tick()
        assert rebuilt == {r["asset"] for r in result["rebuilds"]}


@pytest.fixture
def planner(tmp_path: Path):
    """A copy of the project, never materialized, its sensor ticked once at Monday 01:00 UTC."""
    root = copy_project(tmp_path / "project")
    defs = load_defs(root)
    with dg.instance_for_test() as instance:
        store_sensor_cursor(instance, _sensor(defs).name, None)
        yield root, Planner(defs, instance, MONDAY_1AM, sensor=_sensor(defs))


@pytest.fixture
def built(planner):
    """The copy with every asset built (its stand-in runs record the change metadata)."""
    root, ticker = planner
    ticker.tick()
    ticker.run_requested(_all_assets(ticker.defs))
    ticker.run_requested(["stg_orders"])  # a second run, for the duration estimate
    assert ticker.tick() == set()
    return root, ticker


def _all_assets(defs: dg.Definitions) -> set[str]:
    return {key.to_user_string() for key in defs.resolve_asset_graph().materializable_asset_keys}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def _rebuilds(result: dict) -> dict[str, tuple]:
    """Each rebuild as (because, columns, when, reasons)."""
    return {
        r["asset"]: (r["because"], r["columns"], r["when"], r["reasons"]) for r in result["rebuilds"]
    }


def test_a_project_never_materialized_is_missing_everywhere(planner):
    _, ticker = planner
    result = ticker.plan()
    keys = _all_assets(ticker.defs)
    assert {c["asset"] for c in result["changes"]} == keys
    assert {(c["category"], c["columns"]) for c in result["changes"]} == {("missing", "*")}
    assert {r["asset"] for r in result["rebuilds"]} == keys
    # Everything goes on the next tick but the tables, which wait for their cron tick.
    whens = {r["asset"]: r["when"] for r in result["rebuilds"]}
    assert {asset for asset, when in whens.items() if when != "next tick"} == TABLES
    assert {whens[table] for table in TABLES} == {SIX}
    assert all(r["estimated_seconds"] is None for r in result["rebuilds"])
    assert _rebuilds(result)["stg_orders"] == (
        ["raw_orders"],
        "*",
        "next tick",
        ["missing", "parent_changed"],
    )
    assert result["breaking"] is False
    ticker.check_against_ticks(result)


def test_an_added_column_rebuilds_the_view_only(built):
    root, ticker = built
    edit(root / STG_ORDERS, "customer_id,", "customer_id,\n        amount * 2 as double_amount,")
    ticker.reload(root)
    result = ticker.plan()
    assert [(c["asset"], c["category"], c["columns"]) for c in result["changes"]] == [
        ("stg_orders", "non_breaking", ["double_amount"])
    ]
    assert _rebuilds(result) == {
        "stg_orders": ([], ["double_amount"], "next tick", ["code_changed"]),
    }
    assert result["breaking"] is False
    ticker.check_against_ticks(result)


def test_a_changed_expression_rebuilds_the_marts_that_read_the_column(built):
    root, ticker = built
    edit(root / STG_ORDERS, "        customer_id,", "        customer_id + 0 as customer_id,")
    ticker.reload(root)
    result = ticker.plan()
    assert [(c["asset"], c["category"], c["columns"]) for c in result["changes"]] == [
        ("stg_orders", "breaking", ["customer_id"])
    ]
    # customer_orders groups by customer_id: every column of it changes, and its child reads them.
    # order_summary and daily_revenue do not read customer_id.
    assert _rebuilds(result) == {
        "stg_orders": ([], ["customer_id"], "next tick", ["code_changed"]),
        "customer_orders": (["stg_orders"], ["customer_id"], SIX, ["parent_changed"]),
        "customer_segments": (["customer_orders"], "*", SIX, ["parent_changed"]),
    }
    rebuild = next(r for r in result["rebuilds"] if r["asset"] == "customer_orders")
    assert (rebuild["when_kind"], rebuild["at"], rebuild["affected_columns"]) == ("cron", SIX, "*")
    assert result["breaking"] is True
    ticker.check_against_ticks(result)


def test_a_var_change_rebuilds_its_users(built):
    root, ticker = built
    edit(root / SEGMENTS, "lifetime_value >= 1000", "lifetime_value >= {{ var('vip_threshold') }}")
    project_yml = root / "analytics_dbt/dbt_project.yml"
    edit(project_yml, "models:\n", "vars:\n  vip_threshold: 1000\n\nmodels:\n")
    ticker.reload(root)
    # The compiled SQL is the same as before: nothing changed.
    assert (ticker.plan()["changes"], ticker.plan()["rebuilds"]) == ([], [])
    edit(project_yml, "vip_threshold: 1000", "vip_threshold: 3")
    ticker.reload(root)
    result = ticker.plan()
    assert [(c["asset"], c["category"], c["columns"]) for c in result["changes"]] == [
        ("customer_segments", "breaking", ["segment"])
    ]
    assert _rebuilds(result) == {
        "customer_segments": ([], ["segment"], SIX, ["code_changed"]),
    }
    ticker.check_against_ticks(result)


def test_a_cron_tick_the_sensor_has_not_seen_yet_is_the_next_tick(built):
    root, ticker = built
    edit(root / SEGMENTS, "lifetime_value >= 1000", "lifetime_value >= 3")
    ticker.reload(root)
    assert ticker.tick(ticker.now.replace(hour=5, minute=59, second=40) - ticker.now) == set()
    result = ticker.plan()  # at 06:00:10: the 06:00 cron tick passed since the sensor's last tick
    assert _rebuilds(result) == {
        "customer_segments": ([], ["segment"], "next tick", ["code_changed"]),
    }
    assert ticker.tick() == {"customer_segments"}


def test_a_description_edit_changes_nothing(built):
    root, ticker = built
    edit(
        root / "analytics_dbt/models/staging/schema.yml",
        "        description: Customer first name, surrounding whitespace removed.",
        "        description: The first name, trimmed.\n        data_tests:\n          - not_null",
    )
    ticker.reload(root)
    result = ticker.plan()
    assert (result["changes"], result["rebuilds"], result["next_tick"]) == ([], [], [])
    assert as_text(result).splitlines()[1] == (
        "No changes: the code of every asset is what it was last built from."
    )
    ticker.check_against_ticks(result)


def test_quiet_hours_move_a_rebuild_to_their_end(built):
    root, ticker = built
    edit(root / STG_ORDERS, "customer_id,", "customer_id,\n        1 as one,")
    ticker.reload(root)
    defs = with_policies(ticker.defs, {"stg_orders": {"quiet_hours": "00:30-02:15"}})
    result = plan(defs, ticker.instance, ticker.now)
    rebuild = next(r for r in result["rebuilds"] if r["asset"] == "stg_orders")
    assert (rebuild["when"], rebuild["when_kind"]) == (
        "2026-01-05T02:15:00+00:00",
        "quiet_hours_end",
    )
    assert (result["next_tick"], rebuild["requested_on_next_tick"]) == (None, None), (
        "no sensor in these definitions: the next tick is not evaluated"
    )


def test_an_asset_without_automation_is_listed_and_passes_nothing_on(built):
    root, ticker = built
    edit(root / STG_ORDERS, "        customer_id,", "        customer_id + 0 as customer_id,")
    ticker.reload(root)
    defs = with_policies(ticker.defs, {"stg_orders": {"enabled": False}})
    result = plan(defs, ticker.instance, ticker.now)
    assert _rebuilds(result) == {
        "stg_orders": ([], ["customer_id"], "not automated", ["code_changed"]),
    }


def _timed_run(ticker, key: str, start: datetime.datetime, seconds: float, succeed: bool) -> None:
    """A run that starts at `start` and ends `seconds` later, materializing `key` on success."""
    from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
    from dagster._core.test_utils import freeze_time

    run = ticker.start_run([key])

    def report(event_type, data=None) -> None:
        event = DagsterEvent(
            event_type_value=event_type.value, job_name=run.job_name, event_specific_data=data
        )
        ticker.instance.report_dagster_event(event, run_id=run.run_id)

    with freeze_time(start):
        report(DagsterEventType.RUN_START)
    with freeze_time(start + datetime.timedelta(seconds=seconds)):
        if succeed:
            materialization = dg.AssetMaterialization(key)
            report(DagsterEventType.ASSET_MATERIALIZATION, StepMaterializationData(materialization))
            report(DagsterEventType.RUN_SUCCESS)
        else:
            report(DagsterEventType.RUN_FAILURE)


def test_the_estimate_is_the_median_of_the_last_successful_runs(planner):
    _, ticker = planner
    start = MONDAY_1AM
    durations = [900, 10, 30, 20, 40, 50]  # the oldest is one run too many to count
    for seconds in durations:
        _timed_run(ticker, "raw_orders", start, seconds, succeed=True)
        start += datetime.timedelta(hours=1)
    _timed_run(ticker, "raw_orders", start, 5000, succeed=False)  # a failure does not count
    rebuilds = {r["asset"]: r for r in ticker.plan()["rebuilds"]}
    assert rebuilds["raw_orders"]["estimated_seconds"] == statistics.median(durations[1:]) == 30
    assert rebuilds["stg_customers"]["estimated_seconds"] is None


# --- The command ------------------------------------------------------------------------------


@pytest.fixture
def planned_home(tmp_path, monkeypatch):
    """DAGSTER_HOME holds an instance where the project was built, and the project's stg_orders
    has a breaking edit since."""
    root = copy_project(tmp_path / "project")
    home = tmp_path / "home"
    home.mkdir()
    # An instance folder has its dagster.yaml; without one, Dagster warns once per process on the
    # first open, into the command's output.
    (home / "dagster.yaml").write_text("")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    defs = load_defs(root)
    with dg.DagsterInstance.get() as instance:
        ticker = Planner(defs, instance, MONDAY_1AM, sensor=_sensor(defs))
        ticker.tick()
        ticker.run_requested(_all_assets(defs))
        assert ticker.tick() == set()
    edit(root / STG_ORDERS, "        customer_id,", "        customer_id + 0 as customer_id,")
    edited = load_defs(root)
    monkeypatch.setattr(cli, "load_project_defs", lambda project_root: edited)
    return home


def test_the_command_prints_text_json_and_markdown(planned_home):
    runner = CliRunner()
    at = "2026-01-05T01:05:00"
    text = runner.invoke(cli.app, ["plan", "--at", at])
    assert text.exit_code == 0, text.output
    assert text.output.splitlines()[:3] == [
        "Plan at 2026-01-05T01:05:00+00:00",
        "Changes (1):",
        "  stg_orders: breaking (customer_id)",
    ]
    as_json = runner.invoke(cli.app, ["plan", "--json", "--at", at])
    assert as_json.exit_code == 0, as_json.output
    result = json.loads(as_json.output)
    assert result["evaluated_at"] == "2026-01-05T01:05:00+00:00"
    assert [r["asset"] for r in result["rebuilds"]] == [
        "stg_orders",
        "customer_orders",
        "customer_segments",
    ]
    markdown = runner.invoke(cli.app, ["plan", "--markdown", "--at", at])
    assert markdown.exit_code == 0, markdown.output
    assert markdown.output.strip() == as_markdown(result)
    lines = markdown.output.splitlines()
    assert "| `stg_orders` | breaking | `customer_id` |" in lines
    assert (
        f"| `customer_orders` | `stg_orders` (`customer_id`) | `customer_id` | {SIX} (cron) "
        f"| {result['rebuilds'][1]['estimated_seconds']:.1f} s |"
    ) in lines
    with dg.DagsterInstance.get() as instance:
        assert instance.get_runs_count() == 1, "plan launched nothing"


def test_fail_on_breaking_exits_1(planned_home):
    result = CliRunner().invoke(cli.app, ["plan", "--fail-on", "breaking"])
    assert result.exit_code == 1
    assert "  stg_orders: breaking (customer_id)" in result.output.splitlines()


def test_fail_on_breaking_passes_an_added_column(built, tmp_path, monkeypatch):
    root, ticker = built
    edit(root / STG_ORDERS, "customer_id,", "customer_id,\n        1 as one,")
    ticker.reload(root)
    monkeypatch.setattr(cli, "load_project_defs", lambda project_root: ticker.defs)
    # The command disposes of the instance it opens; this one is the fixture's to dispose of.
    monkeypatch.setattr(ticker.instance, "dispose", lambda: None)
    monkeypatch.setattr(cli, "open_instance", lambda: ticker.instance)
    passing = CliRunner().invoke(cli.app, ["plan", "--fail-on", "breaking"])
    assert passing.exit_code == 0, passing.output
    assert "  stg_orders: non_breaking (one)" in passing.output.splitlines()
    assert CliRunner().invoke(cli.app, ["plan", "--fail-on", "any"]).exit_code == 1


def test_bad_input_is_named(tmp_path, monkeypatch, project_defs):
    monkeypatch.setattr(cli, "load_project_defs", lambda root: project_defs)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    runner = CliRunner()
    bad_time = runner.invoke(cli.app, ["plan", "--at", "tomorrow 6am"])
    assert bad_time.exit_code == 2
    assert "--at: 'tomorrow 6am' is not a time: expected an ISO 8601 time such as " in bad_time.output
    both = runner.invoke(cli.app, ["plan", "--json", "--markdown"])
    assert (both.exit_code, "--json and --markdown exclude each other" in both.output) == (2, True)
    missing = tmp_path / "nowhere"
    monkeypatch.setenv("DAGSTER_HOME", str(missing))
    result = runner.invoke(cli.app, ["plan"])
    assert result.exit_code == 1
    assert f"cannot open the Dagster instance in DAGSTER_HOME={missing} (SQLite storage under" in (
        result.output
    )


def test_the_package_exports_plan():
    import dagster_autopilot

    assert dagster_autopilot.plan is plan
