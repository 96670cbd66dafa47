"""Code versions from the compiled SQL: what a model computes changes them, its style does not.

Every test compiles a private copy of the project with real dbt, through the same load `dg` does.
"""

import importlib.util
import itertools
import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster.components.core.component_tree import ComponentTree
from dagster_dbt import DagsterDbtTranslator
from dagster_dbt.dbt_manifest import read_manifest_path
from harness import _as_dg_loads, copy_project, load_defs

from dagster_autopilot import CustomDbtComponent
from dagster_autopilot.dbt import compiled as dbt_compiled
from dagster_autopilot.dbt import parse_cache as dbt_parse_cache

_module_ids = itertools.count()

MODELS = (
    "stg_customers",
    "stg_orders",
    "customer_orders",
    "customer_segments",
    "daily_revenue",
    "order_summary",
    "normalized_candidates",
    "normalized_jobs",
)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def specs(root: Path) -> dict[str, dg.AssetSpec]:
    return {s.key.to_user_string(): s for a in load_defs(root).assets for s in a.specs}


def versions(root: Path) -> dict[str, str | None]:
    loaded = specs(root)
    return {name: loaded[name].code_version for name in MODELS}


def changed(before: dict, after: dict) -> set[str]:
    return {name for name in before if before[name] != after[name]}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AUTOPILOT_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.delenv("AUTOPILOT_TEST_MIN_AMOUNT", raising=False)
    return copy_project(tmp_path / "project")


def test_vars_env_vars_and_macros_change_exactly_their_users(
    project: Path, monkeypatch: pytest.MonkeyPatch
):
    dbt = project / "analytics_dbt"
    marts = dbt / "models" / "marts"
    edit(dbt / "dbt_project.yml", "models:\n", "vars:\n  vip_threshold: 7000\n\nmodels:\n")
    edit(
        marts / "customer_segments.sql",
        "lifetime_value >= 1000",
        "lifetime_value >= {{ var('vip_threshold') }}",
    )
    edit(
        marts / "order_summary.sql",
        "    from orders\n",
        "    from orders\n    where amount >= {{ env_var('AUTOPILOT_TEST_MIN_AMOUNT', '0') }}\n",
    )
    base = versions(project)
    assert all(base.values())

    edit(dbt / "dbt_project.yml", "vip_threshold: 7000", "vip_threshold: 3")
    after_var = versions(project)
    assert changed(base, after_var) == {"customer_segments"}

    monkeypatch.setenv("AUTOPILOT_TEST_MIN_AMOUNT", "5")
    after_env = versions(project)
    assert changed(after_var, after_env) == {"order_summary"}

    # clean_text is called by both staging views; their children read the views, not the macro.
    edit(
        dbt / "macros" / "clean_text.sql",
        "lower(trim({{ column_name }}))",
        "lower(trim({{ column_name }}, ' '))",
    )
    after_macro = versions(project)
    assert changed(after_env, after_macro) == {"stg_customers", "stg_orders"}

    # Inside daily_revenue's is_incremental() block: only its incremental runs execute it.
    edit(marts / "daily_revenue.sql", "cast('1900-01-01' as date)", "cast('1970-01-01' as date)")
    after_incremental = versions(project)
    assert changed(after_macro, after_incremental) == {"daily_revenue"}


def test_style_changes_nothing(project: Path):
    base = versions(project)
    staging = project / "analytics_dbt" / "models" / "staging"
    # Comments, layout, keyword case and identifier quoting.
    edit(staging / "stg_orders.sql", "select * from final", "-- the result\nSELECT *\n    FROM final")
    edit(staging / "stg_orders.sql", "        customer_id,\n", '        "customer_id" , /* kept */\n')
    edit(staging / "stg_customers.sql", "    from source", "    FROM source  {# jinja comment #}")
    edit(
        project / "analytics_dbt" / "macros" / "clean_text.sql",
        "lower(trim({{ column_name }}))",
        "LOWER(\n    TRIM({{ column_name }})\n)",
    )
    assert changed(base, versions(project)) == set()
    loaded = specs(project)
    assert {loaded[name].metadata["autopilot/code_version"] for name in MODELS} == {
        dbt_compiled.COMPILED
    }


INTROSPECTIVE_MODEL = """\
{% set latest = run_query("select max(order_date) from " ~ ref('stg_orders')) %}
select * from {{ ref('stg_orders') }}
where order_date = '{{ latest.columns[0].values()[0] if execute else '2026-01-01' }}'
"""
UNPARSEABLE_MODEL = "select order_id, (( from {{ ref('stg_orders') }}\n"
PYTHON_MODEL = "def model(dbt, session):\n    return dbt.ref('stg_orders')\n"


def test_models_without_compiled_sql_fall_back_to_the_logic_hash_and_say_so(project: Path):
    marts = project / "analytics_dbt" / "models" / "marts"
    (marts / "latest_orders.sql").write_text(INTROSPECTIVE_MODEL)
    (marts / "broken_orders.sql").write_text(UNPARSEABLE_MODEL)
    (marts / "python_orders.py").write_text(PYTHON_MODEL)
    loaded = specs(project)
    python_model = loaded["python_orders"].metadata["autopilot/code_version"]
    assert python_model == f"logic hash ({dbt_compiled.PYTHON_MODEL})"
    introspective = loaded["latest_orders"].metadata
    assert introspective["autopilot/code_version"] == f"logic hash ({dbt_compiled.INTROSPECTIVE})"
    assert "code version from the logic hash (introspective query" in introspective["autopilot/policy"]
    unparseable = loaded["broken_orders"].metadata
    assert unparseable["autopilot/code_version"] == f"logic hash ({dbt_compiled.UNPARSEABLE})"
    assert "logic hash" not in loaded["stg_orders"].metadata["autopilot/policy"]

    # The fallback is the logic hash: a comment changes nothing, a logic edit changes it.
    before = {name: loaded[name].code_version for name in ("latest_orders", "broken_orders")}
    edit(marts / "latest_orders.sql", "select * from", "-- newest day only\nselect * from")
    edit(marts / "broken_orders.sql", "order_id,", "order_id, status,")
    reloaded = specs(project)
    assert reloaded["latest_orders"].code_version == before["latest_orders"]
    assert reloaded["broken_orders"].code_version != before["broken_orders"]


def load_component(root: Path) -> tuple[CustomDbtComponent, dict]:
    """The analytics dbt component, its definitions built, and the manifest they were built from."""
    read_manifest_path.cache_clear()
    name = f"compiled_versions_defs_{next(_module_ids)}"
    spec = importlib.util.spec_from_loader(name, loader=None, is_package=True)
    module = importlib.util.module_from_spec(spec)
    module.__path__ = [str(root / "defs")]
    sys.modules[name] = module
    with _as_dg_loads(root):
        tree = ComponentTree.from_module(defs_module=module, project_root=root)
        tree.build_defs()
    (component,) = tree.get_all_components(of_type=CustomDbtComponent)
    (manifest_path,) = (root / "defs" / ".local_defs_state").glob("*/project/target/manifest.json")
    return component, json.loads(manifest_path.read_text())


def test_the_component_exposes_compiled_sql_and_its_dialect(project: Path):
    component, manifest = load_component(project)
    assert component.sql_dialect(manifest) == "duckdb"
    sql = component.compiled_sql_for(manifest, "model.analytics.stg_orders")
    assert "{{" not in sql and "lower(trim(status))" in sql
    assert '"main"."raw_orders"' in sql
    incremental = component.compiled_sql_for(manifest, "model.analytics.daily_revenue")
    assert "1900-01-01" not in incremental, "a first build: is_incremental() is false"
    assert component.compiled_sql_for(manifest, "seed.analytics.raw_orders") is None


def test_literal_keeps_dagster_dbts_hash(project: Path):
    edit(
        project / "defs" / "analytics" / "defs.yaml",
        "  policies:",
        "  code_versions: literal\n  policies:",
    )
    loaded = specs(project)
    (manifest_path,) = (project / "defs" / ".local_defs_state").glob("*/project/target/manifest.json")
    manifest = json.loads(manifest_path.read_text())
    translator = DagsterDbtTranslator()
    for unique_id, node in manifest["nodes"].items():
        if node["resource_type"] == "model":
            expected = translator.get_asset_spec(manifest, unique_id, None).code_version
            assert loaded[node["name"]].code_version == expected


HOLD_LOCK = """\
import sys, time, duckdb
connection = duckdb.connect(sys.argv[1])
print("locked", flush=True)
time.sleep(300)
"""


def test_compiling_never_opens_the_warehouse(project: Path, tmp_path: Path):
    # A dbt build in another process holds DuckDB's write lock for as long as it runs.
    warehouse = tmp_path / "warehouse.duckdb"
    with subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(warehouse)], stdout=subprocess.PIPE, text=True
    ) as holder:
        try:
            assert holder.stdout.readline().strip() == "locked"
            loaded = specs(project)
        finally:
            holder.kill()
    # daily_revenue's is_incremental() looks its table up: compiled SQL all the same.
    assert {loaded[name].metadata["autopilot/code_version"] for name in MODELS} == {
        dbt_compiled.COMPILED
    }


def test_an_edit_recompiles_only_the_models_it_reaches(project: Path, monkeypatch: pytest.MonkeyPatch):
    compiled_models: list[set[str]] = []
    compile_pass = dbt_compiled._compile

    def recording(project, dbt_manifest, fqns, tables_exist):
        compiled_models.append({fqn.rsplit(".", 1)[-1] for fqn in fqns})
        return compile_pass(project, dbt_manifest, fqns, tables_exist)

    monkeypatch.setattr(dbt_compiled, "_compile", recording)
    base = versions(project)
    assert set(MODELS) <= compiled_models[0]

    compiled_models.clear()
    assert versions(project) == base
    assert compiled_models == [], "nothing changed: nothing compiled"

    staging = project / "analytics_dbt" / "models" / "staging"
    edit(staging / "stg_orders.sql", "order_date,", "order_date, 2 as v,")
    after = versions(project)
    assert changed(base, after) == {"stg_orders"}
    # The first-build pass, then the incremental pass (no incremental model changed).
    assert compiled_models == [{"stg_orders"}, set()]


def test_a_project_prepared_by_dbts_own_process_gets_the_same_versions(
    project: Path, monkeypatch: pytest.MonkeyPatch
):
    in_process = versions(project)
    # As for a project with packages or a custom preparer: dagster-dbt starts `dbt parse`, then
    # the models are compiled here from dbt's partial parse.
    monkeypatch.setattr(dbt_parse_cache, "parses_in_process", lambda project: False)
    (state,) = (project / "defs" / ".local_defs_state").glob("*/compiled_sql.json")
    state.unlink()
    assert versions(project) == in_process
    assert json.loads(state.read_text())["models"], "compiled again, into the state's cache"


def test_compiling_one_model_prints_nothing(project: Path, capfd: pytest.CaptureFixture[str]):
    """`dg list defs --json` and `autopilot explain --json` print only their JSON on stdout."""
    versions(project)
    edit(project / "analytics_dbt/models/staging/stg_orders.sql", "order_date,", "order_date, 2 as v,")
    capfd.readouterr()
    versions(project)
    assert capfd.readouterr().out == ""
