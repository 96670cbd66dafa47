"""The talent dbt models on DuckDB: latest row per id, normalized text and skills, hashes, tests.

One `dbt build --select talent` (about 20 s) on raw tables written the way the ingest assets write
them: the committed samples, plus rows that exercise every rule of the models.
"""

import datetime
import hashlib
import json
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster_dbt import DagsterDbtTranslator
from dbt.cli.main import dbtRunner
from harness import REPO_ROOT

from dagster_autopilot.records import RecordSpec, read_records, record_hash
from dagster_autopilot.samples.talent import CANDIDATE_SPEC, JOB_SPEC

SAMPLES = REPO_ROOT / "data" / "talent"
# The raw table contract: the spec's columns, then the ingest's bookkeeping columns.
BOOKKEEPING_COLUMNS = (
    "record_hash varchar, source_file varchar, line_number integer, ingested_at timestamp"
)
MONDAY = datetime.datetime(2026, 1, 5, 1, 0)
TUESDAY = MONDAY + datetime.timedelta(days=1)


def raw_row(spec: RecordSpec, values: dict, source_file: str, line: int, at: datetime.datetime):
    record = {name: values.get(name) for name in spec.columns}
    return (*record.values(), record_hash(record, spec), source_file, line, at)


def sample_rows(spec: RecordSpec, file_name: str, count: int) -> list[tuple]:
    records = read_records(SAMPLES / file_name, spec).records[:count]
    return [raw_row(spec, r, file_name, r["line_number"], MONDAY) for r in records]


def candidate(candidate_id: str, **values) -> dict:
    defaults = {"full_name": "Sam Doe", "title": "Analyst", "skills": "sql", "summary": "Likes data."}
    return {"candidate_id": candidate_id, **defaults, **values}


def candidate_rows() -> list[tuple]:
    first = read_records(SAMPLES / "candidates_sample.jsonl", CANDIDATE_SPEC).records[0]
    row = lambda values, file="landing.jsonl", line=1, at=MONDAY: raw_row(  # noqa: E731
        CANDIDATE_SPEC, values, file, line, at
    )
    return [
        *sample_rows(CANDIDATE_SPEC, "candidates_sample.jsonl", 20),
        # The first sample candidate again, exactly as it was stored: still one row.
        raw_row(CANDIDATE_SPEC, first, "candidates_sample.jsonl", first["line_number"], MONDAY),
        # A changed record: the newer ingestion wins, whatever its file and line.
        row(candidate("changed", title="Old title", skills="cobol"), "z.jsonl", 9, MONDAY),
        row(
            candidate(
                "changed",
                full_name="  Ada   Lovelace ",
                title="  Senior   DATA Engineer ",
                skills="Python, SQL;python ; dbt;;",
                summary="  Builds \t PIPELINES.  ",
                years_experience=9,
            ),
            "a.jsonl",
            1,
            TUESDAY,
        ),
        # Same ingestion time: the later file wins; same file too: the later line wins.
        row(candidate("tie-file", title="from b"), "b.jsonl", 1),
        row(candidate("tie-file", title="from a"), "a.jsonl", 5),
        row(candidate("tie-line", title="line 7"), "a.jsonl", 7),
        row(candidate("tie-line", title="line 3"), "a.jsonl", 3),
        # Skills sort by bytes on every adapter, and repeats in another case collapse.
        row(candidate("bytes", skills="Go;C++;c#;go")),
        # Nothing but delimiters and blanks: no skills, no summary, the title alone is embedded.
        row(candidate("bare", skills=" ; ;", summary="   ")),
        # Parseable but implausible: the range test warns instead of failing the build.
        row(candidate("veteran", years_experience=99)),
    ]


def job_rows() -> list[tuple]:
    row = lambda values, at: raw_row(JOB_SPEC, values, "jobs.jsonl", 1, at)  # noqa: E731
    job = {"job_id": "job-new", "title": "Data Engineer", "skills": "sql;dbt", "description": "Hi."}
    return [
        *sample_rows(JOB_SPEC, "jobs_sample.jsonl", 10),
        row({**job, "company": "Old Name"}, MONDAY),
        row({**job, "company": "  ACME   Corp ", "title": " Lead  Data Engineer"}, TUESDAY),
    ]


def create_raw_tables(path: Path) -> None:
    with duckdb.connect(str(path)) as connection:
        for table, spec, rows in (
            ("raw_candidates", CANDIDATE_SPEC, candidate_rows()),
            ("raw_jobs", JOB_SPEC, job_rows()),
        ):
            columns = ", ".join(
                f"{name} {'integer' if kind == 'integer' else 'varchar'}"
                for name, kind in spec.columns.items()
            )
            connection.execute(f"create table main.{table} ({columns}, {BOOKKEEPING_COLUMNS})")
            placeholders = ", ".join("?" for _ in rows[0])
            connection.executemany(f"insert into main.{table} values ({placeholders})", rows)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    """The dbt project copied, raw tables created, `dbt build --select talent` run once."""
    root = tmp_path_factory.mktemp("talent_dbt")
    project = root / "analytics_dbt"
    shutil.copytree(
        REPO_ROOT / "analytics_dbt",
        project,
        ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", "*.duckdb*"),
    )
    warehouse = root / "warehouse.duckdb"
    create_raw_tables(warehouse)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUTOPILOT_DUCKDB_PATH", str(warehouse))
        patch.setenv("DBT_TARGET", "dev")
        result = dbtRunner().invoke(
            [
                "build",
                "--select",
                "talent",
                "--project-dir",
                str(project),
                "--profiles-dir",
                str(project),
            ]
        )
    manifest = json.loads((project / "target" / "manifest.json").read_text())
    return result, warehouse, manifest


def table(warehouse: Path, name: str) -> dict[str, dict]:
    # Not read-only: dbt-duckdb keeps its own connection open in this process, and DuckDB only
    # shares a file between connections of the same configuration.
    with duckdb.connect(str(warehouse)) as connection:
        cursor = connection.execute(f"select * from main.{name}")
        columns = [column[0] for column in cursor.description]
        rows = [dict(zip(columns, values, strict=True)) for values in cursor.fetchall()]
    key = "candidate_id" if name == "normalized_candidates" else "job_id"
    assert len({row[key] for row in rows}) == len(rows), f"{name}: one row per {key}"
    return {row[key]: row for row in rows}


def test_both_models_build_and_every_test_passes_but_the_implausible_years_warn(built):
    result, _, _ = built

    assert result.exception is None
    assert result.success
    statuses = {run.node.name: str(run.status) for run in result.result}
    assert statuses.pop("normalized_candidates") == "success"
    assert statuses.pop("normalized_jobs") == "success"
    assert statuses.pop("within_range_normalized_candidates_years_experience__80__0") == "warn"
    assert len(statuses) >= 16
    assert set(statuses.values()) == {"pass"}, statuses


def test_one_row_per_candidate_the_latest_one(built):
    _, warehouse, _ = built
    candidates = table(warehouse, "normalized_candidates")

    assert len(candidates) == 20 + 6
    assert candidates["tie-file"]["title"] == "from b"
    assert candidates["tie-line"]["title"] == "line 7"
    changed = candidates["changed"]
    assert (changed["source_file"], changed["ingested_at"]) == ("a.jsonl", TUESDAY)
    assert {
        name: changed[name]
        for name in ("full_name", "title", "skills", "summary", "years_experience", "text_to_embed")
    } == {
        "full_name": "Ada Lovelace",
        "title": "senior data engineer",
        "skills": "dbt;python;sql",
        "summary": "builds pipelines.",
        "years_experience": 9,
        "text_to_embed": "senior data engineer. skills: dbt, python, sql. builds pipelines.",
    }


def test_skills_are_distinct_sorted_by_bytes_and_missing_parts_are_null(built):
    _, warehouse, _ = built
    candidates = table(warehouse, "normalized_candidates")

    assert candidates["bytes"]["skills"] == "c#;c++;go"
    bare = candidates["bare"]
    assert (bare["skills"], bare["summary"], bare["text_to_embed"]) == (None, None, "analyst")
    for row in candidates.values():
        if row["skills"] is not None:
            skills = row["skills"].split(";")
            assert skills == sorted(set(skills)), row["candidate_id"]
            assert all(skill == skill.strip().lower() and skill for skill in skills)


def test_the_content_hash_is_the_md5_of_the_text_to_embed(built):
    _, warehouse, _ = built

    for name in ("normalized_candidates", "normalized_jobs"):
        rows = table(warehouse, name).values()
        assert len(rows) > 10
        for row in rows:
            assert row["content_hash"] == hashlib.md5(row["text_to_embed"].encode()).hexdigest()


def test_jobs_keep_the_company_case_and_take_the_latest_version(built):
    _, warehouse, _ = built
    jobs = table(warehouse, "normalized_jobs")

    assert len(jobs) == 10 + 1
    new = jobs["job-new"]
    assert (new["company"], new["title"], new["skills"]) == (
        "ACME Corp",
        "lead data engineer",
        "dbt;sql",
    )
    assert new["text_to_embed"] == "lead data engineer. skills: dbt, sql. hi."


def test_dagster_keys_the_sources_as_the_python_raw_assets(built):
    _, _, manifest = built
    translator = DagsterDbtTranslator()

    for model, raw in (("normalized_candidates", "raw_candidates"), ("normalized_jobs", "raw_jobs")):
        spec = translator.get_asset_spec(manifest, f"model.analytics.{model}", None)
        assert {dep.asset_key for dep in spec.deps} == {dg.AssetKey([raw])}
