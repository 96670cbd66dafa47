"""What an edit rebuilds, column by column, tick by tick on the project's real definitions.

Each scenario starts from a fully built copy of the project on Monday 01:00 UTC, edits it, reloads
the definitions as `dg dev` does (the dbt project is compiled for real), and ticks through the
tables' 06:00 cron tick. The runs are the harness's stand-ins, which record the same change
metadata as the dbt component's real runs (`test_column_change_metadata_from_real_dbt_runs`).
"""

import datetime
import json
from pathlib import Path

import dagster as dg
import pytest
from harness import MONDAY_1AM, AnalyticsTicker, asset_sets, copy_project, load_defs

from dagster_autopilot.changes.affected import AFFECTED_METADATA, CHANGE_METADATA

MINUTE = datetime.timedelta(minutes=1)
HOUR = datetime.timedelta(hours=1)
MARTS = frozenset({"customer_orders", "customer_segments", "daily_revenue", "order_summary"})


@pytest.fixture(params=["duckdb", "postgres"])
def target(request, monkeypatch) -> str:
    """The dbt target the project compiles for, DuckDB or PostgreSQL: every scenario runs on both
    (compiling never connects, so no server is needed)."""
    name = request.param
    if name == "postgres":
        monkeypatch.setenv("DBT_TARGET", "postgres")
        monkeypatch.setenv("POSTGRES_USER", "compile_only")
        monkeypatch.setenv("POSTGRES_DB", "compile_only")
    return name


@pytest.fixture
def built(tmp_path: Path, target: str):
    """A copy of the project with every analytics asset built once, at Monday 01:00 UTC."""
    root = copy_project(tmp_path / "project")
    with dg.instance_for_test() as instance:
        ticker = AnalyticsTicker(load_defs(root), instance, MONDAY_1AM)
        ticker.tick()
        ticker.simulate_run(asset_sets().analytics)
        assert ticker.tick() == set()
        yield root, ticker


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def run_until_quiet(ticker, first: set[str]) -> list[set[str]]:
    """Runs each tick's requests until a tick requests nothing; the requests, tick by tick."""
    requested, history = first, []
    while requested:
        history.append(requested)
        ticker.simulate_run(requested)
        requested = ticker.tick()
    return history


def through_the_cron_tick(ticker) -> list[set[str]]:
    """Every request from now until the tables' 06:00 tick has been handled."""
    history = run_until_quiet(ticker, ticker.tick())
    # Monday 01:0x -> 06:00:30, the first tick after the tables' cron.
    until_six = ticker.now.replace(hour=6, minute=0, second=30) - ticker.now
    history += run_until_quiet(ticker, ticker.tick(until_six))
    return history


def change_recorded(ticker, key: str) -> tuple[dict, object]:
    record = ticker.instance.fetch_materializations(dg.AssetKey(key), limit=1).records[0]
    metadata = record.asset_materialization.metadata
    return metadata[CHANGE_METADATA].value, metadata[AFFECTED_METADATA].value


STG_ORDERS = Path("analytics_dbt/models/staging/stg_orders.sql")


def test_an_added_column_in_a_staging_view_rebuilds_the_view_only(built):
    root, ticker = built
    edit(root / STG_ORDERS, "customer_id,", "customer_id,\n        amount * 2 as double_amount,")
    ticker.reload(root)
    assert through_the_cron_tick(ticker) == [{"stg_orders"}]
    assert change_recorded(ticker, "stg_orders") == (
        {"category": "non_breaking", "columns": ["double_amount"]},
        ["double_amount"],
    )


def test_a_changed_expression_rebuilds_exactly_the_marts_that_read_the_column(built):
    root, ticker = built
    edit(root / STG_ORDERS, "        customer_id,", "        customer_id + 0 as customer_id,")
    ticker.reload(root)
    history = through_the_cron_tick(ticker)
    # customer_orders groups by customer_id, so every column of it changes, and its child follows
    # in the same run; order_summary and daily_revenue do not read customer_id.
    assert history == [{"stg_orders"}, {"customer_orders", "customer_segments"}]
    assert change_recorded(ticker, "stg_orders") == (
        {"category": "breaking", "columns": ["customer_id"]},
        ["customer_id"],
    )
    assert change_recorded(ticker, "customer_orders") == ({"category": "unchanged", "columns": []}, "*")


def test_a_changed_expression_of_a_column_no_mart_reads_rebuilds_the_view_only(built):
    root, ticker = built
    staging = root / "analytics_dbt/models/staging/stg_customers.sql"
    # customer_orders reads full_name (built from first_name's source, not from first_name).
    edit(staging, "trim(first_name) as first_name", "upper(trim(first_name)) as first_name")
    ticker.reload(root)
    assert through_the_cron_tick(ticker) == [{"stg_customers"}]
    assert change_recorded(ticker, "stg_customers")[1] == ["first_name"]


def test_a_var_change_rebuilds_its_users(built):
    root, ticker = built
    segments = root / "analytics_dbt/models/marts/customer_segments.sql"
    edit(segments, "lifetime_value >= 1000", "lifetime_value >= {{ var('vip_threshold') }}")
    project_yml = root / "analytics_dbt/dbt_project.yml"
    edit(project_yml, "models:\n", "vars:\n  vip_threshold: 1000\n\nmodels:\n")
    ticker.reload(root)
    # The rendered SQL is the same as before: nothing to rebuild.
    assert through_the_cron_tick(ticker) == []
    edit(project_yml, "vip_threshold: 1000", "vip_threshold: 3")
    ticker.reload(root)
    ticker.tick(23 * HOUR)  # Tuesday 05:00
    assert through_the_cron_tick(ticker) == [{"customer_segments"}]
    assert change_recorded(ticker, "customer_segments") == (
        {"category": "breaking", "columns": ["segment"]},
        ["segment"],
    )


def test_a_select_star_child_is_rebuilt_on_an_added_column(built):
    root, ticker = built
    (root / "analytics_dbt/models/staging/stg_orders_all.sql").write_text(
        "select * from {{ ref('stg_orders') }}\n"
    )
    ticker.reload(root)
    ticker.selection = ticker.selection | {"stg_orders_all"}
    assert run_until_quiet(ticker, ticker.tick()) == [{"stg_orders_all"}]
    edit(root / STG_ORDERS, "customer_id,", "customer_id,\n        1 as one,")
    ticker.reload(root)
    assert through_the_cron_tick(ticker) == [{"stg_orders"}, {"stg_orders_all"}]


NO_LOGIC_EDITS = [
    ("reformatted", STG_ORDERS, "select * from final", "SELECT *\n\n    FROM final -- the output"),
    ("keyword case, quoting", STG_ORDERS, "cast(order_date as date)", 'CAST("order_date" AS DATE)'),
    (
        "schema.yml description and test",
        Path("analytics_dbt/models/staging/schema.yml"),
        "        description: Customer first name, surrounding whitespace removed.",
        "        description: The first name, trimmed.\n        data_tests:\n          - not_null",
    ),
]


def test_edits_that_change_no_logic_rebuild_nothing(built):
    root, ticker = built
    for what, path, old, new in NO_LOGIC_EDITS:
        edit(root / path, old, new)
        ticker.reload(root)
        assert through_the_cron_tick(ticker) == [], what
        ticker.tick(23 * HOUR)  # the next day, before its cron tick


@pytest.mark.parametrize(
    "prefix",
    [
        # Compiling it needs the warehouse, which compiling never opens.
        '{% set probe = run_query("select 1") %}\n',
        # sqlglot cannot parse it (the stand-in runs never execute it).
        "{{ config(materialized='view') }}\nselect (( from x;\n",
    ],
    ids=["introspective", "unparseable"],
)
def test_a_model_without_an_analysis_counts_as_breaking_every_column(built, prefix):
    root, ticker = built
    text = (root / STG_ORDERS).read_text()
    (root / STG_ORDERS).write_text(prefix + text.replace("customer_id,", "customer_id,\n 1 as one,"))
    ticker.reload(root)
    history = through_the_cron_tick(ticker)
    assert history[0] == {"stg_orders"}
    assert set().union(*history[1:]) == MARTS
    assert change_recorded(ticker, "stg_orders") == ({"category": "unknown", "columns": "*"}, "*")


def test_a_seed_update_still_rebuilds_everything_downstream(built):
    root, ticker = built
    csv = root / "analytics_dbt/seeds/raw_orders.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([*lines, lines[-1].replace(lines[-1].split(",")[0], "99999", 1)]) + "\n")
    ticker.reload(root)
    history = through_the_cron_tick(ticker)
    # The view goes in the seed's run, as before column awareness; every mart at the cron tick.
    assert history == [{"raw_orders", "stg_orders"}, MARTS]


def test_code_version_change_detection_rebuilds_every_child(built):
    root, ticker = built
    edit(
        root / "defs/analytics/defs.yaml",
        "  policies:",
        "  change_detection: code_version\n  policies:",
    )
    ticker.reload(root)
    edit(root / STG_ORDERS, "customer_id,", "customer_id,\n        1 as one,")
    ticker.reload(root)
    history = through_the_cron_tick(ticker)
    assert history[0] == {"stg_orders"}
    assert set().union(*history[1:]) == MARTS


def test_recorded_metadata_is_json(built):
    _, ticker = built
    category, affected = change_recorded(ticker, "stg_orders")
    assert json.loads(json.dumps(category)) == {"category": "missing", "columns": "*"}
    assert affected == "*", "a first build affects every column"


def test_column_change_metadata_from_real_dbt_runs(tmp_path: Path, monkeypatch):
    """The dbt component's own runs record what the stand-in runs of these tests record."""
    monkeypatch.setenv("AUTOPILOT_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    root = copy_project(tmp_path / "project")

    def build(keys: set[str]) -> None:
        defs = load_defs(root)
        assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]
        selection = [dg.AssetKey(key) for key in keys]
        result = dg.materialize(assets, selection=selection, resources=defs.resources, instance=instance)
        assert result.success

    with dg.instance_for_test() as instance:
        build({"raw_orders", "stg_orders"})
        edit(root / STG_ORDERS, "customer_id,", "customer_id,\n        amount * 2 as double_amount,")
        build({"stg_orders"})
        record = instance.fetch_materializations(dg.AssetKey("stg_orders"), limit=1).records[0]
        metadata = record.asset_materialization.metadata
        assert metadata[CHANGE_METADATA].value == {
            "category": "non_breaking",
            "columns": ["double_amount"],
        }
        assert metadata[AFFECTED_METADATA].value == ["double_amount"]
