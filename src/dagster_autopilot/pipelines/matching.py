"""Matching candidates to jobs: exact cosine top-k, recomputed only where something changed.

The stored matches and a record of the content hashes they were computed from (`<output>_inputs`)
are updated in one transaction: a crash mid-write rolls back to the previous table, whole.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from dagster_autopilot.pipelines.embedding import read_vectors
from dagster_autopilot.vectors import merge_top_k, plan_matches, top_k_cosine
from dagster_autopilot.warehouse.connection import Column, Session, Warehouse

MATCH_COLUMNS: list[Column] = [
    ("candidate_id", "text"),
    ("job_id", "text"),
    ("score", "double"),
    ("rank", "integer"),
    ("matched_at", "timestamp"),
]
INPUT_COLUMNS: list[Column] = [("side", "text"), ("record_id", "text"), ("content_hash", "text")]

# Candidates scored per kernel call: bounds the Python rows built from one call's results.
CANDIDATE_BATCH_ROWS = 20_000


@dataclass(frozen=True)
class MatchSides:
    """The two vectors tables and their id columns."""

    candidates_table: str
    candidate_id: str
    jobs_table: str
    job_id: str


@dataclass
class MatchReport:
    candidates_rescored: int = 0
    candidates_merged: int = 0
    candidates_untouched: int = 0
    candidates_dropped: int = 0
    jobs_changed: int = 0
    rows: int = 0
    scores: list[float] = field(default_factory=list)
    top_matches: list[tuple] = field(default_factory=list)

    def metadata(self) -> dict[str, object]:
        import dagster as dg

        return {
            "candidates_rescored": self.candidates_rescored,
            "candidates_merged": self.candidates_merged,
            "candidates_untouched": self.candidates_untouched,
            "candidates_dropped": self.candidates_dropped,
            "jobs_changed": self.jobs_changed,
            "dagster/row_count": self.rows,
            "top_matches": dg.MetadataValue.md(_markdown_table(self.top_matches)),
            "score_distribution": dg.MetadataValue.md(_distribution(self.scores)),
        }


def inputs_table(output: str) -> str:
    return f"{output}_inputs"


@dataclass(frozen=True)
class VectorSet:
    """The ids, content hashes and float32 matrix of one vectors table, ordered by id."""

    ids: list
    hashes: list
    matrix: np.ndarray

    @classmethod
    def read(cls, session: Session, table: str, id_column: str) -> "VectorSet":
        return cls(*read_vectors(session, table, id_column))

    def hash_of(self) -> dict:
        return dict(zip(self.ids, self.hashes, strict=True))

    def subset(self, wanted: Sequence) -> "VectorSet":
        """The rows of `wanted` ids, in this set's order."""
        keep = set(wanted)
        rows = [i for i, record_id in enumerate(self.ids) if record_id in keep]
        return VectorSet([self.ids[i] for i in rows], [self.hashes[i] for i in rows], self.matrix[rows])


def match_incrementally(
    warehouse: Warehouse,
    sides: MatchSides,
    output: str,
    top_k: int,
    min_score: float,
    *,
    preview_rows: int = 10,
) -> MatchReport:
    """Matches new and changed records, keeps untouched pairs, and writes in one transaction."""
    with warehouse.connect() as session:
        candidates = VectorSet.read(session, sides.candidates_table, sides.candidate_id)
        jobs = VectorSet.read(session, sides.jobs_table, sides.job_id)
        session.create_table(output, MATCH_COLUMNS)
        session.create_table(inputs_table(output), INPUT_COLUMNS)
        stored = _stored_matches(session, output)
        settings = f"top_k={top_k};min_score={min_score}"
        matched = _stored_inputs(session, output)
        if matched["settings"] != {settings: settings}:
            # Matches made under another top_k or min_score: every candidate is rescored.
            matched = {"candidate": {}, "job": {}, "settings": {}}

        plan = plan_matches(
            candidates.hash_of(),
            jobs.hash_of(),
            matched["candidate"],
            matched["job"],
            {cid: [job for job, _, _ in pairs] for cid, pairs in stored.items()},
        )
        report = MatchReport(
            candidates_rescored=len(plan.rescore_candidates),
            candidates_merged=len(plan.merge_candidates),
            candidates_untouched=plan.untouched,
            candidates_dropped=len(plan.drop_candidates),
            jobs_changed=len(plan.changed_jobs),
        )
        inputs_changed = matched["candidate"] != candidates.hash_of() or matched["job"] != jobs.hash_of()
        if plan.has_work or inputs_changed:
            rewritten = best_jobs(candidates.subset(plan.rescore_candidates), jobs, top_k, min_score)
            rewritten.update(_merged(plan, candidates, jobs, stored, top_k, min_score))
            _write(session, output, stored, rewritten, plan.drop_candidates)
            _record_inputs(session, output, candidates, jobs, settings)
        report.rows = session.fetch_all(f"select count(*) from {output}")[0][0]
        report.scores = [row[0] for row in session.fetch_all(f"select score from {output}")]
        report.top_matches = session.fetch_all(
            f"select candidate_id, job_id, score, rank from {output} "
            f"order by score desc, candidate_id, job_id limit {int(preview_rows)}"
        )
    return report


def best_jobs(
    candidates: VectorSet, jobs: VectorSet, top_k: int, min_score: float
) -> dict[Any, list[tuple[Any, float]]]:
    """Each candidate's top-k jobs as (job_id, score) pairs, best first, scores >= `min_score`."""
    result: dict[Any, list[tuple[Any, float]]] = {}
    for start in range(0, len(candidates.ids), CANDIDATE_BATCH_ROWS):
        batch = candidates.ids[start : start + CANDIDATE_BATCH_ROWS]
        queries = candidates.matrix[start : start + CANDIDATE_BATCH_ROWS]
        indices, scores = top_k_cosine(queries, jobs.matrix, top_k)
        for cid, row_indices, row_scores in zip(batch, indices, scores, strict=True):
            result[cid] = [
                (jobs.ids[j], float(score))
                for j, score in zip(row_indices, row_scores, strict=True)
                if score >= min_score
            ]
    return result


def _merged(plan, candidates: VectorSet, jobs: VectorSet, stored, top_k, min_score) -> dict:
    """Kept candidates whose top-k changes once the new and changed jobs are scored."""
    if not plan.merge_candidates:
        return {}
    fresh = best_jobs(
        candidates.subset(plan.merge_candidates), jobs.subset(plan.changed_jobs), top_k, min_score
    )
    result = {}
    for cid, new_pairs in fresh.items():
        old_pairs = [(job, score) for job, score, _ in stored.get(cid, [])]
        ids, scores = merge_top_k(
            [job for job, _ in old_pairs],
            [score for _, score in old_pairs],
            [job for job, _ in new_pairs],
            [score for _, score in new_pairs],
            top_k,
            min_score=min_score,
        )
        merged = list(zip(ids, scores, strict=True))
        if merged != old_pairs:
            result[cid] = merged
    return result


def _write(session: Session, output: str, stored: dict, rewritten: dict, dropped: Sequence) -> None:
    """Replaces the rows of rewritten and dropped candidates; other rows stay as they are.

    A pair that survives a rewrite keeps its `matched_at`, so a rerun changes nothing.
    """
    now = datetime.now(UTC).replace(tzinfo=None)
    session.delete_ids(output, "candidate_id", [*rewritten, *dropped])
    rows = []
    for cid, pairs in rewritten.items():
        since = {job: matched_at for job, _, matched_at in stored.get(cid, [])}
        for rank, (job, score) in enumerate(pairs, start=1):
            rows.append((cid, job, score, rank, since.get(job, now)))
    session.insert(output, [name for name, _ in MATCH_COLUMNS], rows)


def _record_inputs(
    session: Session, output: str, candidates: VectorSet, jobs: VectorSet, settings: str
) -> None:
    """The content hashes and settings the matches now reflect; small, so rewritten whole."""
    session.execute(f"delete from {inputs_table(output)}")
    rows = [
        ("settings", settings, settings),
        *(("candidate", i, h) for i, h in zip(candidates.ids, candidates.hashes, strict=True)),
        *(("job", i, h) for i, h in zip(jobs.ids, jobs.hashes, strict=True)),
    ]
    session.insert(inputs_table(output), [name for name, _ in INPUT_COLUMNS], rows)


def _stored_matches(session: Session, output: str) -> dict[Any, list[tuple]]:
    pairs: dict[Any, list[tuple]] = defaultdict(list)
    sql = f"select candidate_id, job_id, score, matched_at from {output} order by candidate_id, rank"
    for cid, job, score, matched_at in session.fetch_all(sql):
        pairs[cid].append((job, score, matched_at))
    return dict(pairs)


def _stored_inputs(session: Session, output: str) -> dict[str, dict]:
    matched: dict[str, dict] = {"candidate": {}, "job": {}, "settings": {}}
    for side, record_id, digest in session.fetch_all(
        f"select side, record_id, content_hash from {inputs_table(output)}"
    ):
        matched[side][record_id] = digest
    return matched


def _markdown_table(rows: Sequence[tuple]) -> str:
    lines = ["| candidate_id | job_id | score | rank |", "| --- | --- | --- | --- |"]
    lines += [f"| {c} | {j} | {s:.3f} | {r} |" for c, j, s, r in rows]
    return "\n".join(lines)


def _distribution(scores: Sequence[float]) -> str:
    """Score quantiles and a 10-bucket histogram, as markdown."""
    if not scores:
        return "no matches"
    values = np.asarray(scores)
    quantiles = np.quantile(values, [0, 0.25, 0.5, 0.75, 1])
    counts, edges = np.histogram(values, bins=10)
    lines = [
        "min / p25 / median / p75 / max: " + " / ".join(f"{q:.3f}" for q in quantiles),
        "",
        "| score from | to | matches |",
        "| --- | --- | --- |",
    ]
    lines += [
        f"| {lo:.3f} | {hi:.3f} | {n} |" for lo, hi, n in zip(edges, edges[1:], counts, strict=False)
    ]
    return "\n".join(lines)
