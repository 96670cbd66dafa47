"""Logic code versions: comments and layout change nothing, macros reach their users."""

from dagster_autopilot.dbt.code_versions import LogicCodeVersions, normalize_sql


def test_comments_and_whitespace_are_not_logic():
    base = "select a, b from t where c = 1"
    assert normalize_sql(
        "select a,  b\n-- note\nfrom t /* x */ where c = 1 {# jinja #}"
    ) == normalize_sql(base).replace("a, b", "a, b")
    assert normalize_sql("select '--not a comment' as s") == "select '--not a comment' as s"
    assert normalize_sql("select 'a  b' as s") != normalize_sql("select 'a b' as s")


def _manifest(macro_body: str, impl_body: str = "x / 100") -> dict:
    return {
        "metadata": {"project_name": "p"},
        "macros": {
            "macro.p.to_dollars": {
                "name": "to_dollars",
                "package_name": "p",
                "macro_sql": macro_body,
                "depends_on": {"macros": []},
            },
            "macro.p.default__to_dollars": {
                "name": "default__to_dollars",
                "package_name": "p",
                "macro_sql": impl_body,
                "depends_on": {"macros": []},
            },
            "macro.dbt.is_incremental": {
                "name": "is_incremental",
                "package_name": "dbt",
                "macro_sql": "internal",
                "depends_on": {"macros": []},
            },
        },
    }


NODE = {
    "resource_type": "model",
    "raw_code": "select {{ to_dollars('x') }} from t",
    "config": {"materialized": "view"},
    "depends_on": {"macros": ["macro.p.to_dollars", "macro.dbt.is_incremental"]},
}


def test_macro_and_dispatched_implementation_edits_change_the_version():
    base = LogicCodeVersions(_manifest("dispatch")).version(NODE)
    assert LogicCodeVersions(_manifest("dispatch -- note")).version(NODE) == base
    assert LogicCodeVersions(_manifest("dispatch2")).version(NODE) != base
    assert LogicCodeVersions(_manifest("dispatch", "x / 1000")).version(NODE) != base


def test_materialization_is_logic():
    versions = LogicCodeVersions(_manifest("dispatch"))
    as_table = {**NODE, "config": {"materialized": "table"}}
    assert versions.version(as_table) != versions.version(NODE)
