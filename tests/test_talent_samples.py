"""The talent sample generator: deterministic, realistic enough to match on, fast, and able to
produce every kind of bad row the validation quarantines."""

import itertools
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from harness import REPO_ROOT
from sklearn.feature_extraction.text import TfidfVectorizer

from dagster_autopilot.records import QUARANTINE_REASONS, read_records
from dagster_autopilot.samples import talent

SAMPLES = REPO_ROOT / "data" / "talent"


def test_the_same_seed_gives_the_same_records_and_another_seed_others():
    assert talent.generate(30, 10, seed=3) == talent.generate(30, 10, seed=3)
    assert talent.generate(30, 10, seed=3) != talent.generate(30, 10, seed=4)


def test_records_carry_the_spec_columns_and_a_known_occupation():
    candidates, jobs = talent.generate(300, 100, seed=1)
    occupations = {occupation.name for occupation in talent.OCCUPATIONS}

    for records, spec in ((candidates, talent.CANDIDATE_SPEC), (jobs, talent.JOB_SPEC)):
        assert all(set(record) == {*spec.columns, "occupation"} for record in records)
        assert all(record["occupation"] in occupations for record in records)
        ids = [record[spec.id_column] for record in records]
        assert len(set(ids)) == len(ids)
        # Every occupation is drawn, so each has candidates and jobs to match.
        assert {record["occupation"] for record in records} == occupations
    assert 12 <= len(talent.OCCUPATIONS) <= 20


def test_occupations_share_skills_so_matching_is_not_a_lookup():
    skill_owners = Counter(
        skill for occupation in talent.OCCUPATIONS for skill in set(occupation.skills)
    )
    shared = {skill for skill, owners in skill_owners.items() if owners > 1}
    occupations_with_a_shared_skill = [
        o.name for o in talent.OCCUPATIONS if shared.intersection(o.skills)
    ]

    assert len(shared) >= 10
    assert len(occupations_with_a_shared_skill) >= len(talent.OCCUPATIONS) - 2


def test_jobs_find_candidates_of_their_occupation_by_words_alone():
    candidates, jobs = talent.generate(200, 50, seed=7)

    def text(record: dict) -> str:
        return " ".join((record["title"], record["skills"], record.get("summary") or ""))

    vectorizer = TfidfVectorizer().fit([text(r) for r in candidates + jobs])
    similarity = (
        vectorizer.transform([text(j) for j in jobs])
        @ vectorizer.transform([text(c) for c in candidates]).T
    ).toarray()
    top_five = np.argsort(-similarity, axis=1)[:, :5]
    hits = [
        candidates[c]["occupation"] == job["occupation"]
        for job, row in zip(jobs, top_five, strict=True)
        for c in row
    ]

    # Random ranking would give about 1/18; the occupations must come through the text.
    assert np.mean(hits) >= 0.85


@pytest.mark.parametrize("file_format", ["jsonl", "csv"])
def test_bad_rows_are_quarantined_one_kind_after_another(tmp_path: Path, file_format: str):
    candidates, _ = talent.generate(40, 0, seed=2)
    path = talent.write_records(
        tmp_path / f"candidates.{file_format}",
        candidates,
        talent.CANDIDATE_SPEC,
        file_format=file_format,
        bad_rows=2 * len(QUARANTINE_REASONS),
        seed=2,
    )

    batch = read_records(path, talent.CANDIDATE_SPEC)

    assert batch.reason_counts() == dict.fromkeys(QUARANTINE_REASONS, 2)
    assert [r["candidate_id"] for r in batch.records] == [c["candidate_id"] for c in candidates]
    assert (batch.rows_read, batch.duplicates) == (52, 0)


def test_the_committed_samples_are_what_the_documented_command_writes(tmp_path: Path):
    talent.main(["--candidates", "200", "--jobs", "50", "--seed", "7", "--out", str(tmp_path)])

    for name in ("candidates_sample.jsonl", "jobs_sample.jsonl"):
        assert (tmp_path / name).read_bytes() == (SAMPLES / name).read_bytes(), name
    candidates = read_records(SAMPLES / "candidates_sample.jsonl", talent.CANDIDATE_SPEC)
    jobs = read_records(SAMPLES / "jobs_sample.jsonl", talent.JOB_SPEC)
    assert (len(candidates.records), candidates.quarantined_count) == (200, 0)
    assert (len(jobs.records), jobs.quarantined_count) == (50, 0)


def test_fifty_thousand_candidates_generate_in_well_under_a_minute():
    started = time.perf_counter()
    candidates, _ = talent.generate(50_000, 0, seed=5)
    elapsed = time.perf_counter() - started

    assert len(candidates) == 50_000
    assert len({c["candidate_id"] for c in candidates}) == 50_000
    # Generous for a shared, slow machine; takes about 2 s on its own.
    assert elapsed < 30, f"{elapsed:.1f} s"
    names = Counter(c["full_name"] for c in itertools.islice(candidates, 1000))
    assert len(names) > 900, "names come from a pool large enough to look varied"
