"""The matching kernel against brute force, and incremental plans against a full rebuild."""

import numpy as np
import pytest

from dagster_autopilot.vectors import (
    matching,
    merge_top_k,
    normalize_rows,
    plan_embedding,
    plan_matches,
    top_k_cosine,
)


def brute_force_top_k(queries: np.ndarray, corpus: np.ndarray, top_k: int):
    """Full sort of every score in float64: descending score, then lower corpus index."""
    scores = queries.astype(np.float64) @ corpus.astype(np.float64).T
    positions = np.broadcast_to(np.arange(corpus.shape[0]), scores.shape)
    order = np.lexsort((positions, -scores), axis=1)[:, :top_k]
    return order, np.take_along_axis(scores, order, axis=1)


def integer_vectors(rng: np.random.Generator, rows: int, dims: int, high: int = 50) -> np.ndarray:
    """Small integers: every dot product is exact in float32, so ties are real ties."""
    return rng.integers(-high, high + 1, size=(rows, dims)).astype(np.float32)


@pytest.mark.parametrize(
    ("n_queries", "n_corpus", "top_k", "chunk_rows", "high"),
    [
        (97, 3001, 10, 13, 2),  # pruned by groups; chunks that do not divide the queries
        (97, 3001, 10, 13, 50),  # the same with few ties
        (50, 1000, 1, None, 2),
        (40, 777, 25, 7, 2),  # 777 is prime: padding to whole groups
        (33, 60, 10, 8, 2),  # too few corpus rows per match for groups: direct ranking
        (33, 60, 10, 8, 50),
        (20, 7, 10, 3, 2),  # top_k larger than the corpus
        (5, 10, 10, 2, 2),  # top_k equal to the corpus
    ],
)
def test_top_k_equals_brute_force_on_exact_scores(n_queries, n_corpus, top_k, chunk_rows, high):
    rng = np.random.default_rng(n_queries * 1000 + n_corpus)
    # With high=2, few distinct values: many ties, at the k-th place too.
    queries = integer_vectors(rng, n_queries, 24, high=high)
    corpus = integer_vectors(rng, n_corpus, 24, high=high)
    indices, scores = top_k_cosine(queries, corpus, top_k, chunk_rows=chunk_rows)

    expected_indices, expected_scores = brute_force_top_k(queries, corpus, top_k)
    assert indices.dtype == np.int64 and scores.dtype == np.float32
    assert indices.shape == (n_queries, min(top_k, n_corpus))
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_array_equal(scores, expected_scores)


@pytest.mark.parametrize("threads", [2, 3])
def test_chunks_shared_between_threads_give_the_same_answer(threads, monkeypatch):
    # The kernel shares its chunks between as many threads as BLAS would use, each multiplying with
    # a single-threaded BLAS. Whatever that number is on the machine running the tests, each share
    # (uneven ones too) must land in its rows, and every score must be the bit-identical one that
    # one multi-threaded multiply gives (else exact ties could rank differently).
    rng = np.random.default_rng(threads)
    exact = integer_vectors(rng, 1000, 24, high=2), integer_vectors(rng, 900, 24, high=2)
    rounded = (
        normalize_rows(rng.standard_normal((1000, 384))),
        normalize_rows(rng.standard_normal((900, 384))),
    )
    monkeypatch.setattr(matching, "_blas_threads", lambda: 1)
    one_thread = top_k_cosine(*rounded, 7, chunk_rows=1000)

    monkeypatch.setattr(matching, "_blas_threads", lambda: threads)
    expected_indices, expected_scores = brute_force_top_k(*exact, 7)
    for chunk_rows in (None, 64, 333):
        indices, scores = top_k_cosine(*exact, 7, chunk_rows=chunk_rows)
        np.testing.assert_array_equal(indices, expected_indices)
        np.testing.assert_array_equal(scores, expected_scores)
        for got, expected in zip(
            top_k_cosine(*rounded, 7, chunk_rows=chunk_rows), one_thread, strict=True
        ):
            np.testing.assert_array_equal(got, expected)


def test_top_k_on_normalized_random_vectors_has_the_best_scores():
    rng = np.random.default_rng(3)
    queries = normalize_rows(rng.standard_normal((300, 64)))
    corpus = normalize_rows(rng.standard_normal((4000, 64)))
    indices, scores = top_k_cosine(queries, corpus, 10, chunk_rows=71)

    expected_indices, expected_scores = brute_force_top_k(queries, corpus, 10)
    # Float32 sums may differ in the last bit from float64: compare scores, then nearly all ids.
    np.testing.assert_allclose(scores, expected_scores, atol=1e-6)
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", queries, corpus[indices]), atol=1e-6)
    assert (indices == expected_indices).mean() > 0.999
    assert (np.diff(scores, axis=1) <= 0).all()


def test_ties_go_to_the_lower_corpus_index():
    corpus = np.ones((1000, 8), dtype=np.float32)  # every score ties, so every group maximum too
    corpus[[500, 700]] = 2.0  # two winners, then the ties
    queries = np.ones((3, 8), dtype=np.float32)
    indices, scores = top_k_cosine(queries, corpus, 5, chunk_rows=2)

    assert indices.tolist() == [[500, 700, 0, 1, 2]] * 3
    assert scores.tolist() == [[16.0, 16.0, 8.0, 8.0, 8.0]] * 3


def test_result_does_not_depend_on_chunking_and_repeats_exactly():
    rng = np.random.default_rng(5)
    queries = integer_vectors(rng, 200, 16)
    corpus = integer_vectors(rng, 2500, 16, high=2)
    first = top_k_cosine(queries, corpus, 10)
    again = top_k_cosine(queries, corpus, 10)
    rechunked = top_k_cosine(queries, corpus, 10, chunk_rows=17)
    for other in (again, rechunked):
        np.testing.assert_array_equal(first[0], other[0])
        np.testing.assert_array_equal(first[1], other[1])


def all_scores(queries: np.ndarray, corpus: np.ndarray) -> np.ndarray:
    """Every query's score against every corpus row, as the kernel computes them."""
    indices, scores = top_k_cosine(queries, corpus, len(corpus))
    result = np.empty((len(queries), len(corpus)), dtype=np.float32)
    np.put_along_axis(result, indices, scores, axis=1)
    return result


@pytest.mark.parametrize("dims", [128, 384])
def test_scores_do_not_depend_on_the_batch_shape(dims):
    # An incremental run scores a few candidates, or all candidates against a few jobs, and must
    # store what a full run would, down to the last bit: else two identical jobs (exact ties) can
    # swap ranks. Tiny multiplies are where BLAS switches kernels, so they are here.
    rng = np.random.default_rng(dims)
    queries = normalize_rows(rng.standard_normal((300, dims)))
    corpus = normalize_rows(rng.standard_normal((700, dims)))
    corpus[400] = corpus[5]  # twins: they must tie wherever they are scored
    full = all_scores(queries, corpus)
    np.testing.assert_array_equal(full[:, 5], full[:, 400])

    corpus_subsets = ([400], [400, 9], [5, 400, 3], list(range(0, 700, 5)), [*range(700)])
    for query_rows in ([7], [3, 250], list(range(0, 300, 4)), list(range(300))):
        for corpus_rows in corpus_subsets:
            k = min(5, len(corpus_rows))
            indices, scores = top_k_cosine(queries[query_rows], corpus[corpus_rows], k)
            expected = full[np.ix_(query_rows, corpus_rows)]
            positions = np.broadcast_to(np.arange(len(corpus_rows)), expected.shape)
            np.testing.assert_array_equal(indices, np.lexsort((positions, -expected))[:, :k])
            np.testing.assert_array_equal(scores, np.take_along_axis(expected, indices, axis=1))
    indices, scores = top_k_cosine(queries, corpus, 10, chunk_rows=7)
    np.testing.assert_array_equal(scores, np.take_along_axis(full, indices, axis=1))


def test_many_tied_scores_still_give_the_lower_indices():
    # Every score ties, so every score survives the bound: the block is ranked in halves.
    corpus = np.ones((3000, 8), dtype=np.float32)
    queries = np.ones((70, 8), dtype=np.float32)
    indices, scores = top_k_cosine(queries, corpus, 4)
    assert indices.tolist() == [[0, 1, 2, 3]] * 70
    assert scores.tolist() == [[8.0] * 4] * 70


@pytest.mark.parametrize(
    ("n_queries", "n_corpus", "top_k", "shape"),
    [(0, 10, 5, (0, 5)), (4, 0, 5, (4, 0)), (4, 10, 0, (4, 0)), (0, 0, 3, (0, 0))],
)
def test_empty_inputs_give_empty_results(n_queries, n_corpus, top_k, shape):
    indices, scores = top_k_cosine(np.zeros((n_queries, 8)), np.zeros((n_corpus, 8)), top_k)
    assert indices.shape == shape and indices.dtype == np.int64
    assert scores.shape == shape and scores.dtype == np.float32


@pytest.mark.parametrize(
    ("queries", "corpus", "top_k", "chunk_rows", "message"),
    [
        (np.ones((2, 3)), np.ones((4, 5)), 1, None, "dimensions"),
        (np.array([[np.nan, 1.0]]), np.ones((4, 2)), 1, None, "NaN"),
        (np.ones((2, 2)), np.ones((4, 2)), -1, None, "top_k"),
        (np.ones((2, 2)), np.ones((4, 2)), 1, 0, "chunk_rows"),
        (np.ones(3), np.ones((4, 3)), 1, None, "2-D"),
    ],
)
def test_bad_inputs_are_refused(queries, corpus, top_k, chunk_rows, message):
    with pytest.raises(ValueError, match=message):
        top_k_cosine(queries, corpus, top_k, chunk_rows=chunk_rows)


def test_normalize_rows_makes_unit_rows_and_keeps_zero_rows():
    normalized = normalize_rows([[3.0, 4.0], [0.0, 0.0], [-2.0, 0.0]])
    assert normalized.dtype == np.float32
    np.testing.assert_allclose(normalized, [[0.6, 0.8], [0.0, 0.0], [-1.0, 0.0]])


def test_plan_embedding_embeds_new_and_changed_and_deletes_gone():
    plan = plan_embedding(
        source={"b": "h2", "a": "h1-new", "d": "h4"},
        stored={"a": "h1", "b": "h2", "c": "h3"},
    )
    assert plan.to_embed == ["a", "d"]
    assert plan.to_delete == ["c"]
    assert plan.unchanged == 1


def test_plan_matches_first_run_rescores_everything():
    plan = plan_matches({"c2": "x", "c1": "y"}, {"j1": "z"}, {}, {}, {})
    assert plan.rescore_candidates == ["c1", "c2"]
    assert plan.merge_candidates == []
    assert plan.changed_jobs == ["j1"]
    assert plan.has_work


def test_plan_matches_with_nothing_changed_has_no_work():
    candidates, jobs = {"c1": "a", "c2": "b"}, {"j1": "x", "j2": "y"}
    plan = plan_matches(candidates, jobs, candidates, jobs, {"c1": ["j2"], "c2": []})
    assert not plan.has_work
    assert plan.untouched == 2


def test_plan_matches_sorts_each_change_into_its_case():
    matched_candidates = {"keep": "k", "edit": "e", "gone": "g", "holds_edited": "h", "holds_gone": "i"}
    matched_jobs = {"j_same": "1", "j_edit": "2", "j_gone": "3"}
    matches = {
        "keep": ["j_same"],
        "edit": ["j_same"],
        "gone": ["j_same"],
        "holds_edited": ["j_same", "j_edit"],
        "holds_gone": ["j_gone"],
    }
    candidates = {"keep": "k", "edit": "e2", "holds_edited": "h", "holds_gone": "i", "new": "n"}
    jobs = {"j_same": "1", "j_edit": "2b", "j_new": "4"}

    plan = plan_matches(candidates, jobs, matched_candidates, matched_jobs, matches)

    assert plan.rescore_candidates == ["edit", "holds_edited", "holds_gone", "new"]
    assert plan.merge_candidates == ["keep"]
    assert plan.changed_jobs == ["j_edit", "j_new"]
    assert plan.drop_candidates == ["gone"]
    assert plan.untouched == 0


def test_plan_matches_finds_gone_candidates_only_where_there_are_some():
    matched = {"a": "1", "b": "2"}
    matches = {"a": ["j"], "b": ["j"]}
    jobs = {"j": "x"}
    grown = plan_matches({"a": "1", "b": "2", "c": "3"}, jobs, matched, jobs, matches)
    assert (grown.rescore_candidates, grown.drop_candidates) == (["c"], [])
    # Same number of candidates as matched ones, but "b" was replaced by "c".
    replaced = plan_matches({"a": "1", "c": "3"}, jobs, matched, jobs, matches)
    assert (replaced.rescore_candidates, replaced.drop_candidates) == (["c"], ["b"])
    # Stored matches of a candidate missing from the matched hashes still get dropped.
    stray = plan_matches({"a": "1", "b": "2"}, jobs, matched, jobs, {**matches, "old": ["j"]})
    assert stray.drop_candidates == ["old"]


def test_merge_top_k_keeps_the_best_and_breaks_ties_by_lower_id():
    ids, scores = merge_top_k(["j5", "j2"], [0.9, 0.5], ["j3", "j1", "j4"], [0.5, 0.7, 0.1], 3)
    assert ids == ["j5", "j1", "j2"]
    assert scores == pytest.approx([0.9, 0.7, 0.5])


def test_merge_top_k_drops_new_scores_below_min_score_and_can_keep_fewer_than_top_k():
    ids, scores = merge_top_k(["j1"], [0.8], ["j2", "j3"], [0.6, 0.2], 5, min_score=0.5)
    assert ids == ["j1", "j2"]
    assert scores == pytest.approx([0.8, 0.6])


def test_merge_top_k_prefers_the_new_score_of_a_job_in_both():
    ids, scores = merge_top_k(["j1", "j2"], [0.9, 0.8], ["j1"], [0.1], 2)
    assert ids == ["j2", "j1"]
    assert scores == pytest.approx([0.8, 0.1])


# The key property: after adds, changes and deletes, an incremental run stores what a full
# rebuild would, with ties and with candidates left below top_k by min_score.

TOP_K, MIN_SCORE, DIMS = 5, 4.0, 12


def full_rebuild(candidates: dict, jobs: dict) -> dict:
    """Every candidate against every job; the corpus in ascending id order, as documented."""
    job_ids = sorted(jobs)
    candidate_ids = sorted(candidates)
    corpus = np.array([jobs[j] for j in job_ids]).reshape(len(job_ids), DIMS)
    queries = np.array([candidates[c] for c in candidate_ids]).reshape(len(candidate_ids), DIMS)
    indices, scores = top_k_cosine(queries, corpus, TOP_K, chunk_rows=7)
    return {
        cid: [(job_ids[j], float(s)) for j, s in zip(row_i, row_s, strict=True) if s >= MIN_SCORE]
        for cid, row_i, row_s in zip(candidate_ids, indices, scores, strict=True)
    }


def incremental(candidates, jobs, hashes, stored: dict, matched: tuple[dict, dict]) -> dict:
    """What a matching component does: read state -> plan -> compute -> write."""
    candidate_hashes = {c: hashes[c] for c in candidates}
    job_hashes = {j: hashes[j] for j in jobs}
    plan = plan_matches(
        candidate_hashes,
        job_hashes,
        matched[0],
        matched[1],
        {cid: [job for job, _ in pairs] for cid, pairs in stored.items()},
    )
    result = {c: pairs for c, pairs in stored.items() if c not in plan.drop_candidates}
    result.update(full_rebuild({c: candidates[c] for c in plan.rescore_candidates}, jobs))
    changed = {j: jobs[j] for j in plan.changed_jobs}
    for cid, new_pairs in full_rebuild(
        {c: candidates[c] for c in plan.merge_candidates}, changed
    ).items():
        old = result[cid]
        ids, scores = merge_top_k(
            [j for j, _ in old],
            [s for _, s in old],
            [j for j, _ in new_pairs],
            [s for _, s in new_pairs],
            TOP_K,
            min_score=MIN_SCORE,
        )
        result[cid] = list(zip(ids, scores, strict=True))
    return result, plan


def test_incremental_matching_equals_a_full_rebuild():
    rng = np.random.default_rng(11)
    version = iter(range(10**6))
    # Ids drawn at random, so new records sort between old ones, and ties compare old and new ids.
    unused_ids = iter(rng.permutation(10**5))

    def vector():
        # Few distinct values: exact scores and plenty of ties at the top-k boundary.
        return rng.integers(-1, 2, size=DIMS).astype(np.float32)

    def add(records: dict, prefix: str) -> None:
        record = f"{prefix}{next(unused_ids):05d}"
        records[record] = vector()
        hashes[record] = f"v{next(version)}"

    hashes: dict[str, str] = {}
    candidates: dict[str, np.ndarray] = {}
    jobs: dict[str, np.ndarray] = {}
    for _ in range(300):
        add(candidates, "c")
    for _ in range(120):
        add(jobs, "j")
    stored = full_rebuild(candidates, jobs)
    matched = ({c: hashes[c] for c in candidates}, {j: hashes[j] for j in jobs})
    assert 0 < sum(len(pairs) < TOP_K for pairs in stored.values()) < 150, "min_score should bite"

    seen = {"rescore": 0, "merge": 0, "drop": 0, "merge changed matches": 0}
    for _ in range(4):
        for records, prefix, count in ((candidates, "c", 300), (jobs, "j", 120)):
            ids = sorted(records)
            for record in rng.choice(ids, size=count // 20, replace=False):  # changed
                records[record] = vector()
                hashes[record] = f"v{next(version)}"
            for record in rng.choice(ids, size=count // 30, replace=False):  # deleted
                records.pop(record, None)
            for _ in range(count // 25):
                add(records, prefix)

        previous = stored
        stored, plan = incremental(candidates, jobs, hashes, stored, matched)
        matched = ({c: hashes[c] for c in candidates}, {j: hashes[j] for j in jobs})

        assert stored == full_rebuild(candidates, jobs)
        seen["rescore"] += len(plan.rescore_candidates)
        seen["merge"] += len(plan.merge_candidates)
        seen["drop"] += len(plan.drop_candidates)
        seen["merge changed matches"] += sum(stored[c] != previous[c] for c in plan.merge_candidates)
        assert len(plan.rescore_candidates) < len(candidates) / 2  # it is incremental
    assert all(seen.values()), seen
