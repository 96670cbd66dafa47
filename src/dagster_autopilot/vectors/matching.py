"""Exact top-k cosine matching, and the incremental plans that say what to recompute.

`top_k_cosine` is THE matching kernel: every match the pipeline stores comes from it. The planning
helpers (`plan_embedding`, `plan_matches`, `merge_top_k`) are pure functions over ids and content
hashes, so a component can do: read state -> plan -> compute -> write, and an incremental run stores
exactly what a full rebuild would.

Conventions shared by all of them:
- Ties are broken by the lower corpus index in `top_k_cosine` and by the lower job id in
  `merge_top_k`. Build the corpus in ascending id order (`sorted(jobs)`) so both agree and an
  incremental run equals a full rebuild even on ties.
- `min_score`: matches scoring below it are not stored, so a candidate may keep fewer than `top_k`
  matches. Apply it when writing a full result (`scores >= min_score`) and pass it to `merge_top_k`.
  Incremental plans stay exact with it: a candidate with fewer than `top_k` stored matches has every
  job at or above `min_score` stored, so merging in the scores against new jobs is still complete.
- A content hash should cover everything that changes a vector (the text and the embedder's name),
  and the hashes stored with the matches are the ones their vectors had when they were matched.
"""

from collections.abc import Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

# Each score block (float32, chunk rows x corpus rows) stays under this many bytes, and the kernel holds
# two of them, so its working memory is bounded whatever the number of queries. Measured here: 16 MB
# blocks (41 rows at 100k corpus rows) made the multiply itself about 2x slower; 64 MB ones kept it
# as fast as 256 MB ones.
DEFAULT_SCORE_BLOCK_BYTES = 64 * 1024 * 1024

# Below this many corpus rows per wanted match, pruning by group maxima saves nothing: rank each row
# directly.
_MIN_ROWS_PER_MATCH_FOR_GROUPS = 8


def normalize_rows(matrix: Any) -> np.ndarray:
    """Returns `matrix` as float32 with every row scaled to unit L2 norm; zero rows stay zero."""
    result = np.array(matrix, dtype=np.float32, ndmin=2, copy=True)
    norms = np.linalg.norm(result, axis=1, keepdims=True)
    np.divide(result, norms, out=result, where=norms > 0)
    return result


def top_k_cosine(
    queries: Any,
    corpus: Any,
    top_k: int,
    *,
    chunk_rows: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """THE matching kernel: the `top_k` corpus rows most similar to each query, exactly.

    `queries` (n_q x d) and `corpus` (n_c x d) are L2-normalized float32 matrices (see
    `normalize_rows`), so the dot product is the cosine similarity. Returns `(indices, scores)`:
    int64 corpus row indices and float32 scores, both n_q x k' with k' = min(top_k, n_c), each row
    sorted by descending score, ties broken by the lower corpus index (so the result is
    deterministic). Empty inputs give empty results of those shapes.

    Scores are `queries @ corpus.T`, computed `chunk_rows` queries at a time so peak memory is
    bounded: by default, as many rows as fit a score block of `DEFAULT_SCORE_BLOCK_BYTES`. Ranking a
    block is single-threaded numpy, so it runs in a helper thread while BLAS multiplies the next
    chunk into a second block. To rank a row, its columns are split into strided groups and only the
    k groups with the highest maxima are searched: the k best scores always lie in those groups.
    That costs one pass over the block, about 4x less than `np.argpartition` of it; rows where
    group maxima or scores tie at the k-th place fall back to an exact selection of that row.
    """
    queries = _as_matrix(queries, "queries")
    corpus = _as_matrix(corpus, "corpus")
    if queries.shape[1] != corpus.shape[1]:
        raise ValueError(
            f"queries have {queries.shape[1]} dimensions but the corpus has {corpus.shape[1]}"
        )
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k}")
    if chunk_rows is not None and chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    n_queries, n_corpus = queries.shape[0], corpus.shape[0]
    k = min(top_k, n_corpus)
    indices = np.empty((n_queries, k), dtype=np.int64)
    scores = np.empty((n_queries, k), dtype=np.float32)
    if n_queries == 0 or k == 0:
        return indices, scores

    groups = _group_count(n_corpus, k)
    # Pad each row to a whole number of groups; the padding scores -inf, so it never wins.
    width = -(-n_corpus // groups) * groups
    if chunk_rows is None:
        chunk_rows = max(1, DEFAULT_SCORE_BLOCK_BYTES // (4 * width))
    rows = min(chunk_rows, n_queries)
    chunks = range(0, n_queries, rows)
    blocks = [np.full((rows, width), -np.inf, dtype=np.float32) for _ in range(min(2, len(chunks)))]

    def rank(block: np.ndarray, start: int) -> None:
        top = _top_k_positions(block, k, groups)
        top_scores = np.take_along_axis(block, top, axis=1)
        order = np.lexsort((top, -top_scores), axis=1)
        indices[start : start + len(block)] = np.take_along_axis(top, order, axis=1)
        scores[start : start + len(block)] = np.take_along_axis(top_scores, order, axis=1)

    if len(chunks) == 1:  # nothing to overlap: a helper thread would only add its start-up
        np.matmul(queries, corpus.T, out=blocks[0][:, :n_corpus])
        rank(blocks[0], 0)
        return indices, scores
    with ThreadPoolExecutor(max_workers=1) as ranker:
        ranking = None
        for number, start in enumerate(chunks):
            stop = min(start + rows, n_queries)
            # The block ranked in the helper thread is the other one.
            block = blocks[number % 2][: stop - start]
            np.matmul(queries[start:stop], corpus.T, out=block[:, :n_corpus])
            if ranking is not None:
                ranking.result()
            ranking = ranker.submit(rank, block, start)
        ranking.result()
    return indices, scores


def _as_matrix(values: Any, name: str) -> np.ndarray:
    matrix = np.ascontiguousarray(values, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix, got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return matrix


def _group_count(n_corpus: int, k: int) -> int:
    """How many strided column groups to prune with (1: rank every column directly).

    About 2 * sqrt(k * n_corpus) balances the two small steps (choosing k of the groups, ranking the
    k * n_corpus / groups scores inside them); measured best at 5k and 100k corpus rows. The count
    is rounded so that the padding to whole groups stays under one group size.
    """
    if n_corpus < _MIN_ROWS_PER_MATCH_FOR_GROUPS * k:
        return 1
    target = 2 * round((k * n_corpus) ** 0.5)
    group_size = -(-n_corpus // target)
    return max(k + 1, -(-n_corpus // group_size))


def _top_k_positions(block: np.ndarray, k: int, groups: int) -> np.ndarray:
    """Column positions of the k largest values of each row of `block`, ties to the lower column.

    With `groups` > 1, group g holds columns g, g + groups, g + 2 * groups, ... Every value outside
    the k groups with the highest maxima is below the k-th largest maximum, so below k values of
    its row: the winners are all inside those groups, and so are any ties with the k-th winner.
    """
    n_rows, width = block.shape
    if groups == 1:
        top, exact = _k_largest_positions(block, k)
    else:
        group_size = width // groups
        group_max = block.reshape(n_rows, group_size, groups).max(axis=1)
        best_groups, exact_groups = _k_largest_positions(group_max, k)
        columns = (best_groups[:, :, None] + groups * np.arange(group_size)).reshape(n_rows, -1)
        row_starts = (np.arange(n_rows) * width)[:, None]
        best, exact = _k_largest_positions(block.ravel().take(columns + row_starts), k)
        top = np.take_along_axis(columns, best, axis=1)
        exact &= exact_groups
    for row in np.flatnonzero(~exact):
        top[row] = _k_largest_with_ties(block[row], k)
    return top


def _k_largest_positions(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the k largest values of each row (ascending), and the rows that answer is exact for.

    A row is exact when exactly k of its values reach its k-th largest value, i.e. nothing ties at
    the boundary. Other rows get placeholder positions: resolve them with `_k_largest_with_ties`.
    It partitions values rather than `np.argpartition`: numpy's value selection is SIMD and several
    times faster, and the mask then gives the positions.
    """
    n_rows, width = values.shape
    kth_largest = np.partition(values, width - k, axis=1)[:, width - k]
    reached = values >= kth_largest[:, None]
    clean = reached.sum(axis=1) == k
    if not clean.all():
        reached[~clean] = False
        reached[~clean, :k] = True
    return np.nonzero(reached)[1].reshape(n_rows, k), clean


def _k_largest_with_ties(row: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k largest values of one row; among equal values the lower positions win."""
    kth_largest = np.partition(row, row.size - k)[row.size - k]
    above = np.flatnonzero(row > kth_largest)
    tied = np.flatnonzero(row == kth_largest)[: k - above.size]
    return np.concatenate((above, tied))


@dataclass(frozen=True)
class EmbeddingPlan:
    """What an incremental embedding run has to do."""

    to_embed: list[Any]
    """Ids that are new or whose content hash changed, sorted: embed them and upsert their vectors."""
    to_delete: list[Any]
    """Ids that have a stored vector but are gone from the source, sorted: delete their vectors."""
    unchanged: int
    """How many ids keep their stored vector."""


def plan_embedding(source: Mapping[Hashable, str], stored: Mapping[Hashable, str]) -> EmbeddingPlan:
    """Compares the content hashes now (`source`) with those of the stored vectors (`stored`)."""
    to_embed = sorted(id_ for id_, hash_ in source.items() if stored.get(id_) != hash_)
    to_delete = sorted(id_ for id_ in stored if id_ not in source)
    return EmbeddingPlan(to_embed=to_embed, to_delete=to_delete, unchanged=len(source) - len(to_embed))


@dataclass(frozen=True)
class MatchPlan:
    """What an incremental matching run has to do; pairs it does not mention are kept as stored."""

    rescore_candidates: list[Any]
    """Candidates to match against all current jobs, sorted; their stored matches are replaced.
    New or changed candidates, and those whose stored matches include a changed or deleted job
    (that slot may now belong to another job)."""
    merge_candidates: list[Any]
    """Candidates that keep their stored matches and merge in their scores against `changed_jobs`
    (`merge_top_k`), sorted. Empty when no job is new or changed."""
    changed_jobs: list[Any]
    """Jobs that are new or whose content changed since the matches were computed, sorted."""
    drop_candidates: list[Any]
    """Candidates gone from the source, sorted: delete their matches."""
    untouched: int
    """How many current candidates keep their stored matches with nothing to merge."""

    @property
    def has_work(self) -> bool:
        """Whether anything has to be computed or deleted."""
        return bool(self.rescore_candidates or self.merge_candidates or self.drop_candidates)


def plan_matches(
    candidates: Mapping[Hashable, str],
    jobs: Mapping[Hashable, str],
    matched_candidates: Mapping[Hashable, str],
    matched_jobs: Mapping[Hashable, str],
    matches: Mapping[Hashable, Sequence[Hashable]],
) -> MatchPlan:
    """Decides which matches to recompute after candidates and jobs were added, changed or deleted.

    `candidates` and `jobs` map ids to their content hashes now; `matched_candidates` and
    `matched_jobs` hold the hashes they had when the stored matches were computed (every candidate
    matched then, including those left with no match by `min_score`, and every job that can appear
    in `matches`); `matches` maps a candidate id to the job ids stored for it. A first run (nothing
    stored) rescores every candidate.

    Why this is exact: a kept candidate's stored top-k was chosen among all jobs of the previous run;
    when none of its winners changed or disappeared, it is also the top-k among the jobs that are
    still unchanged, so the top-k of (stored matches + scores against the new and changed jobs) is
    the top-k against all jobs now.
    """
    changed_jobs = sorted(id_ for id_, hash_ in jobs.items() if matched_jobs.get(id_) != hash_)
    # Jobs whose stored scores are stale or gone: a candidate holding one must be rescored.
    stale_jobs = set(changed_jobs) | (matched_jobs.keys() - jobs.keys())

    rescore = {id_ for id_, hash_ in candidates.items() if matched_candidates.get(id_) != hash_}
    if stale_jobs:
        rescore.update(
            id_
            for id_, job_ids in matches.items()
            if id_ in candidates and not stale_jobs.isdisjoint(job_ids)
        )
    merge = sorted(id_ for id_ in candidates if id_ not in rescore) if changed_jobs else []
    gone = {id_ for id_ in chain(matched_candidates, matches) if id_ not in candidates}
    return MatchPlan(
        rescore_candidates=sorted(rescore),
        merge_candidates=merge,
        changed_jobs=changed_jobs,
        drop_candidates=sorted(gone),
        untouched=len(candidates) - len(rescore) - len(merge),
    )


def merge_top_k(
    existing_ids: Sequence[Any],
    existing_scores: Sequence[float],
    new_ids: Sequence[Any],
    new_scores: Sequence[float],
    top_k: int,
    *,
    min_score: float | None = None,
) -> tuple[list[Any], list[float]]:
    """Merges one candidate's stored matches with its scores against new or changed jobs.

    Returns `(ids, scores)`: at most `top_k` matches sorted by descending score, ties broken by the
    lower id (the order `top_k_cosine` gives on an id-sorted corpus). A job in both inputs keeps
    its new score. Scores below `min_score` are dropped; the stored ones already respect it.
    `new_ids` only needs the candidate's top `top_k` against the changed jobs, not all its scores.
    """
    fresh = dict(zip(new_ids, new_scores, strict=True))
    merged = [
        (float(score), id_)
        for id_, score in zip(existing_ids, existing_scores, strict=True)
        if id_ not in fresh
    ]
    merged += [
        (float(score), id_) for id_, score in fresh.items() if min_score is None or score >= min_score
    ]
    merged.sort(key=lambda pair: (-pair[0], pair[1]))
    del merged[top_k:]
    return [id_ for _, id_ in merged], [score for score, _ in merged]
