"""The talent assets' logic on a real DuckDB warehouse: embedding and matching.

dbt is not involved here (the normalized tables are written directly), so these run in seconds;
`test_end_to_end.py` runs the whole chain with dbt, and `test_landing.py` tests landing.
"""

import hashlib
import json

import pytest

from dagster_autopilot.pipelines import embedding, matching
from dagster_autopilot.samples.talent import generate
from dagster_autopilot.vectors import HashingEmbedder
from dagster_autopilot.warehouse.connection import Session, Warehouse

CANDIDATES = embedding.EmbeddingSource("normalized_candidates", "candidate_id", "text", "hash")
JOBS = embedding.EmbeddingSource("normalized_jobs", "job_id", "text", "hash")
SIDES = matching.MatchSides("candidate_vectors", "candidate_id", "job_vectors", "job_id")


def count(warehouse: Warehouse, table: str) -> int:
    with warehouse.connect() as session:
        return session.fetch_all(f"select count(*) from {table}")[0][0]


def write_normalized(session: Session, source: embedding.EmbeddingSource, texts: dict) -> None:
    session.execute(f"drop table if exists {source.table}")
    session.create_table(source.table, [(source.id_column, "text"), ("text", "text"), ("hash", "text")])
    rows = [(i, t, hashlib.md5(t.encode()).hexdigest()) for i, t in texts.items()]
    session.insert(source.table, [source.id_column, "text", "hash"], rows)


def talent_texts(n_candidates: int, n_jobs: int, seed: int) -> tuple[dict, dict]:
    candidates, jobs = generate(n_candidates, n_jobs, seed=seed)
    return (
        {c["candidate_id"]: f"{c['title']} {c['skills']} {c['summary']}" for c in candidates},
        {j["job_id"]: f"{j['title']} {j['skills']} {j['description']}" for j in jobs},
    )


def test_only_new_and_changed_records_are_embedded_and_removed_ones_are_deleted():
    warehouse, embedder = Warehouse.from_env(), HashingEmbedder(dimensions=64)
    texts, _ = talent_texts(50, 0, seed=2)
    with warehouse.connect() as session:
        write_normalized(session, CANDIDATES, texts)
    first = embedding.embed_incrementally(warehouse, CANDIDATES, "candidate_vectors", embedder)
    assert (first.records_embedded, first.records_unchanged, first.records_deleted) == (50, 0, 0)
    assert first.tokens == embedder.count_tokens(list(texts.values()))
    assert first.estimated_cost_usd == 0.0

    ids = sorted(texts)
    del texts[ids[0]]
    texts[ids[1]] += " Also speaks Portuguese."
    texts[ids[2]] += " Recently moved to Lisbon."
    texts.update({f"new-{n}": f"Data engineer number {n}" for n in range(3)})
    with warehouse.connect() as session:
        write_normalized(session, CANDIDATES, texts)
    second = embedding.embed_incrementally(warehouse, CANDIDATES, "candidate_vectors", embedder)
    assert (second.records_embedded, second.records_unchanged, second.records_deleted) == (5, 47, 1)
    assert second.records_total == count(warehouse, "candidate_vectors") == 52

    third = embedding.embed_incrementally(warehouse, CANDIDATES, "candidate_vectors", embedder)
    assert (third.records_embedded, third.records_deleted, third.tokens) == (0, 0, 0)


def matches_of(warehouse: Warehouse, table: str = "matches") -> list[tuple]:
    with warehouse.connect() as session:
        rows = session.fetch_all(
            f"select candidate_id, job_id, rank, score, matched_at from {table} order by 1, 3"
        )
    return [(c, j, r, round(s, 5), at) for c, j, r, s, at in rows]


def embed_and_match(warehouse: Warehouse, candidates: dict, jobs: dict, output: str) -> None:
    embedder = HashingEmbedder(dimensions=128)
    with warehouse.connect() as session:
        write_normalized(session, CANDIDATES, candidates)
        write_normalized(session, JOBS, jobs)
    embedding.embed_incrementally(warehouse, CANDIDATES, "candidate_vectors", embedder)
    embedding.embed_incrementally(warehouse, JOBS, "job_vectors", embedder)
    return matching.match_incrementally(warehouse, SIDES, output, top_k=5, min_score=0.05)


def test_incremental_matching_equals_a_full_rebuild_and_a_rerun_changes_nothing():
    warehouse = Warehouse.from_env()
    candidates, jobs = talent_texts(120, 40, seed=3)
    first = embed_and_match(warehouse, candidates, jobs, "matches")
    assert first.candidates_rescored == 120

    job_ids, candidate_ids = sorted(jobs), sorted(candidates)
    del jobs[job_ids[0]]
    jobs[job_ids[1]] = jobs[job_ids[2]]  # a changed job, now a twin of another
    jobs["job-new"] = candidates[candidate_ids[5]]  # a new job written for one candidate
    candidates["cand-new"] = jobs[job_ids[3]]
    del candidates[candidate_ids[0]]
    update = embed_and_match(warehouse, candidates, jobs, "matches")
    assert update.candidates_dropped == 1
    assert update.jobs_changed == 2
    assert update.candidates_rescored < 120, "untouched candidates are not rescored"

    matching.match_incrementally(warehouse, SIDES, "matches_full", top_k=5, min_score=0.05)
    without_time = [row[:4] for row in matches_of(warehouse)]
    assert without_time == [row[:4] for row in matches_of(warehouse, "matches_full")]
    assert ("cand-000006", "job-new", 1) in {row[:3] for row in without_time}

    before = matches_of(warehouse)
    rerun = matching.match_incrementally(warehouse, SIDES, "matches", top_k=5, min_score=0.05)
    assert (rerun.candidates_rescored, rerun.candidates_merged) == (0, 0)
    assert matches_of(warehouse) == before


def test_a_crash_while_writing_matches_leaves_the_previous_table_whole(monkeypatch):
    warehouse = Warehouse.from_env()
    candidates, jobs = talent_texts(60, 20, seed=4)
    embed_and_match(warehouse, candidates, jobs, "matches")
    before = matches_of(warehouse)

    real_insert = Session.insert

    def crash_on_matches(self, table, column_names, rows):
        written = real_insert(self, table, column_names, rows)
        if table == "matches":
            raise RuntimeError("the machine lost power")
        return written

    monkeypatch.setattr(Session, "insert", crash_on_matches)
    jobs["job-new"] = next(iter(candidates.values()))
    with pytest.raises(RuntimeError, match="lost power"):
        embed_and_match(warehouse, candidates, jobs, "matches")
    assert matches_of(warehouse) == before


def test_estimate_cost_prices_the_pending_records_before_anything_runs(project_defs, monkeypatch):
    from typer.testing import CliRunner

    from dagster_autopilot import cli

    warehouse = Warehouse.from_env()
    candidates, jobs = talent_texts(30, 7, seed=6)
    declared = [
        (embedding.EmbeddingSource(table, id_column, "text_to_embed", "content_hash"), texts)
        for table, id_column, texts in (
            ("normalized_candidates", "candidate_id", candidates),
            ("normalized_jobs", "job_id", jobs),
        )
    ]
    with warehouse.connect() as session:
        for source, texts in declared:
            session.create_table(
                source.table,
                [(source.id_column, "text"), ("text_to_embed", "text"), ("content_hash", "text")],
            )
            session.insert(
                source.table,
                [source.id_column, "text_to_embed", "content_hash"],
                [(i, t, hashlib.md5(t.encode()).hexdigest()) for i, t in texts.items()],
            )
    monkeypatch.setattr(cli, "load_project_defs", lambda root: project_defs)

    result = CliRunner().invoke(cli.app, ["estimate-cost", "--json"])
    assert result.exit_code == 0, result.output
    estimates = {e["asset"]: e for e in json.loads(result.output)}
    assert set(estimates) == {"candidate_vectors", "job_vectors"}
    tokens = HashingEmbedder().count_tokens(list(candidates.values()))
    assert estimates["candidate_vectors"]["records_to_embed"] == 30
    assert estimates["candidate_vectors"]["tokens"] == tokens
    assert estimates["job_vectors"]["records_to_embed"] == 7
    assert estimates["candidate_vectors"]["estimated_cost_usd"] == 0.0
    with warehouse.connect() as session:
        assert not session.table_exists("candidate_vectors"), "an estimate writes nothing"
