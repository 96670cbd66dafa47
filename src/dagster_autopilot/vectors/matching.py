"""Exact top-k cosine matching, and the incremental plans that say what to recompute.

`top_k_cosine` is THE matching kernel: every match the pipeline stores comes from it. The planning
helpers (`plan_embedding`, `plan_matches`, `merge_top_k`) are pure functions over ids and content
hashes, so a component can do: read state -> plan -> compute -> write, and an incremental run stores
what a full rebuild would. That equality needs a pair's score not to depend on which other rows
were multiplied with it: the kernel multiplies in float64 and rounds each score to float32 once, so
the order in which a BLAS kernel sums (which depends on the batch shape and the CPU) does not reach
the stored score (tested). Otherwise scores would move by a unit in the last place, and with them
the order of exactly tied jobs (say, two identical job texts).

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

import os
from collections.abc import Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from itertools import chain
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

# Each score block (float32, corpus rows x chunk queries) stays under this many bytes, and each of the
# kernel's threads holds one at a time, so its working memory is bounded whatever the number of
# queries. Measured here: 16 MB blocks (41 queries at 100k corpus rows) made the multiply itself
# about 2x slower; 64 MB ones kept it as fast as 256 MB ones.
DEFAULT_SCORE_BLOCK_BYTES = 64 * 1024 * 1024

# OpenBLAS sends multiplies with fewer than about 1,500 output cells (or a single row or column) to
# other kernels, whose scores differ from the blocked kernel's in the last bit (measured at 64 to
# 1,536 dimensions); with at least 64 rows on both sides every score came out bit-identical to the
# same pair's in a large multiply. So zero rows pad both sides up to this many.
_MIN_MULTIPLY_SIDE = 64

# Shared between threads (see `top_k_cosine`), score blocks are smaller: at 50,000 x 5,000, chunks
# of 256 to 1,024 queries (5-20 MB) took 1.06x-1.12x the multiply alone, 3,125 (60 MB) 1.20x-1.34x.
_SHARED_SCORE_BLOCK_BYTES = 16 * 1024 * 1024

# ... but have at least this many queries (or all of them), as far as `DEFAULT_SCORE_BLOCK_BYTES`
# allows: a single-threaded multiply of fewer is slow enough that a multi-threaded BLAS on one
# chunk is faster (measured at 500 x 5,000: chunks of 64 took twice as long as one chunk of 500;
# chunks of 250 as long).
_MIN_SHARED_CHUNK_ROWS = 256

# Past this many survivors per wanted match (scores at or above the bound, normally about 1.4), the
# block's queries are ranked in halves: with many identical corpus rows they all survive, and the
# keys of every score of a 64 MB block would take about 10x its memory.
_MAX_SURVIVORS_PER_MATCH = 8


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

    Scores are computed `chunk_rows` queries at a time so peak memory is bounded: by default, as
    many as fit a score block of `DEFAULT_SCORE_BLOCK_BYTES` (but at least 64, see
    `_MIN_MULTIPLY_SIDE`). A block is `corpus @ chunk.T`, one column per query, so that each step
    of `_rank_block` is a numpy operation along whole contiguous rows, for all queries at once.

    Each block is ranked right after its multiply, by the same thread. When BLAS may use several
    threads, the chunks are shared out between as many threads of ours instead, each multiplying
    with a single-threaded BLAS into its own block: the ranking then runs on every core too.
    Leaving the multiply to a multi-threaded BLAS kept the ranking on one core while BLAS's idle
    threads spun on the others (OpenBLAS spins about 0.1 s after each call), so ranking in helper
    threads measured no faster. Peak memory is one block per thread. While the threads run, BLAS
    is limited to one thread in the whole process (`threadpoolctl`), then restored.
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

    # About 2k groups (see `_rank_block`): fewer make the bound looser, so more survivors to sort;
    # more make picking the k-th group maximum dearer. Measured flat between 16 and 40 at k = 10.
    groups = min(2 * k, n_corpus)
    if n_corpus < _MIN_MULTIPLY_SIDE:
        padding = np.zeros((_MIN_MULTIPLY_SIDE - n_corpus, corpus.shape[1]), dtype=np.float32)
        corpus = np.concatenate((corpus, padding))
    # Whole groups of rows; every row past the real corpus scores -inf, so it never wins.
    width = -(-len(corpus) // groups) * groups
    threads = _blas_threads()
    if chunk_rows is None:
        chunk_rows = _default_chunk_rows(n_queries, width, threads)
    # A block holds < 2**30 scores, so (query, score, corpus row) packs into one uint64 key.
    rows = min(chunk_rows, max(1, (2**30 - 1) // width), n_queries)
    starts = range(0, n_queries, rows)

    # The multiply runs in float64 and each score is rounded to float32 once: BLAS kernels sum in
    # an order that depends on the batch shape and the CPU (on AMD EPYC even padded float32
    # multiplies differed in the last bit), and rounding the float64 sum hides that order.
    corpus64 = corpus.astype(np.float64)

    def match_chunks(my_starts: Sequence[int]) -> None:
        buffer = np.empty(width * max(rows, _MIN_MULTIPLY_SIDE), dtype=np.float32)
        exact = np.empty((len(corpus64), max(rows, _MIN_MULTIPLY_SIDE)), dtype=np.float64)
        for start in my_starts:
            stop = min(start + rows, n_queries)
            chunk = queries[start:stop]
            if len(chunk) < _MIN_MULTIPLY_SIDE:
                chunk = np.zeros((_MIN_MULTIPLY_SIDE, queries.shape[1]), dtype=np.float32)
                chunk[: stop - start] = queries[start:stop]
            block = buffer[: width * len(chunk)].reshape(width, len(chunk))
            product = exact[:, : len(chunk)]
            np.matmul(corpus64, chunk.T.astype(np.float64), out=product)
            block[: len(corpus)] = product
            block[n_corpus:] = -np.inf
            if len(chunk) > stop - start:  # padded queries: rank only the real ones
                block = block[:, : stop - start].copy()
            _rank_block(block, k, groups, indices[start:stop], scores[start:stop])

    threads = min(threads, len(starts))
    if threads == 1:
        match_chunks(starts)
        return indices, scores
    # Each thread's share, interleaved: every chunk but the last costs the same. This thread
    # takes the first share.
    shares = [starts[i::threads] for i in range(threads)]
    with _blas().limit(limits=1, user_api="blas"):
        helpers = [_helper_threads(os.getpid()).submit(match_chunks, share) for share in shares[1:]]
        try:
            match_chunks(shares[0])
        finally:  # never leave helpers writing into the results after returning or raising
            for helper in helpers:
                helper.result()
    return indices, scores


def _default_chunk_rows(n_queries: int, width: int, threads: int) -> int:
    """Queries per chunk: as many as fit a score block of `DEFAULT_SCORE_BLOCK_BYTES`; shared
    between threads, as many as fit `_SHARED_SCORE_BLOCK_BYTES` but at least
    `_MIN_SHARED_CHUNK_ROWS`, in a number of chunks that gives every thread as many."""
    largest = max(1, DEFAULT_SCORE_BLOCK_BYTES // (4 * width))
    if threads == 1:
        return largest
    smallest = min(largest, _MIN_SHARED_CHUNK_ROWS)
    rows = min(largest, max(smallest, _SHARED_SCORE_BLOCK_BYTES // (4 * width)))
    chunks = threads * -(-n_queries // (threads * rows))
    return max(smallest, -(-n_queries // chunks))


@cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


@cache
def _helper_threads(pid: int) -> ThreadPoolExecutor:
    """Threads kept for the life of the process (by pid: a forked child starts its own): starting
    one took about 3 ms here, as long as ranking 500 queries."""
    return ThreadPoolExecutor(thread_name_prefix="top-k-cosine")


def _blas_threads() -> int:
    """How many threads BLAS would use now (it honours OMP_NUM_THREADS, OPENBLAS_NUM_THREADS...)."""
    return max((lib.num_threads for lib in _blas().select(user_api="blas").lib_controllers), default=1)


def _as_matrix(values: Any, name: str) -> np.ndarray:
    matrix = np.ascontiguousarray(values, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix, got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return matrix


def _rank_block(block: np.ndarray, k: int, groups: int, indices: np.ndarray, scores: np.ndarray) -> None:
    """Writes the k largest scores of each column of `block` (corpus rows x queries) into
    `indices` and `scores` (queries x k), by descending score, ties to the lower corpus row.

    The rows are split into `groups` strided groups (group g: rows g, g + groups, ...), each with
    at least one real corpus row. The k-th largest group maximum is at most the k-th largest score
    (the k best groups each hold a score that high), so every winner, and every score tied with
    the k-th, is at or above it. Those survivors, about 1.4k per query with 2k groups, are packed
    into uint64 keys (query, descending score, row) and sorted once: each query's first k keys
    are its answer, ties included. Over the whole block that is one pass for the group maxima
    (`np.maximum.reduce` over contiguous slabs) and one to find the survivors; everything else
    is on the survivors only.
    """
    width, n = block.shape
    group_max = np.maximum.reduce(block.reshape(width // groups, groups, n), axis=0)
    bound = np.partition(group_max, groups - k, axis=0)[groups - k]
    found = _true_positions(block >= bound)
    if found.size > _MAX_SURVIVORS_PER_MATCH * k * n and n > 1:
        del found
        half = n // 2
        for part in (slice(0, half), slice(half, n)):
            _rank_block(block[:, part].copy(), k, groups, indices[part], scores[part])
        return
    rows, columns = np.divmod(found, n)
    row_bits = max(1, (width - 1).bit_length())
    keys = columns.astype(np.uint64) << np.uint64(32 + row_bits)
    keys |= _descending_bits(block.reshape(-1).take(found)).astype(np.uint64) << np.uint64(row_bits)
    keys |= rows.astype(np.uint64)
    keys.sort()
    # Every query has at least k survivors; its keys start after those of the queries before it.
    counts = np.bincount(columns, minlength=n)
    best = keys[(np.cumsum(counts) - counts)[:, None] + np.arange(k)]
    indices[:] = best & np.uint64((1 << row_bits) - 1)
    score_keys = (best >> np.uint64(row_bits)).astype(np.uint32).view(np.int32)
    scores[:] = _flip_order(score_keys).view(np.float32)


def _true_positions(mask: np.ndarray) -> np.ndarray:
    """`np.flatnonzero(mask)`, about 2x faster when few values are True (here a few percent):
    finds the 8-byte words holding any True first, then the positions inside those words only."""
    if mask.size % 8:
        return np.flatnonzero(mask)
    words = mask.reshape(-1).view(np.uint64)
    hit = np.flatnonzero(words != 0)
    inside = np.flatnonzero(words[hit].view(np.bool_))
    return (hit[inside >> 3] << 3) | (inside & 7)


def _descending_bits(values: np.ndarray) -> np.ndarray:
    """uint32 keys in the reverse order of the float32 `values`: a larger value, a smaller key.

    -0.0 becomes +0.0 first: they are equal scores, so they must tie.
    """
    bits = values.view(np.int32)
    return _flip_order(np.where(bits == np.int32(-(2**31)), np.int32(0), bits))


def _flip_order(bits: np.ndarray) -> np.ndarray:
    """Float32 bit patterns (as int32) to uint32 keys in reverse order, and those keys back.

    Flipping every bit but the sign reverses the order of the non-negative floats, which then stay
    below 2**31 as keys; negative floats, as unsigned integers, already order in reverse above them.
    """
    return (bits ^ (~(bits >> 31) & np.int32(0x7FFFFFFF))).view(np.uint32)


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

    rescore = {
        id_ for id_, hash_ in candidates.items() if matched_candidates.get(id_, _UNMATCHED) != hash_
    }
    if stale_jobs:
        rescore.update(
            id_
            for id_, job_ids in matches.items()
            if id_ in candidates and not stale_jobs.isdisjoint(job_ids)
        )
    merge = sorted(id_ for id_ in candidates if id_ not in rescore) if changed_jobs else []
    gone = _gone_candidates(candidates, matched_candidates, matches, rescore)
    return MatchPlan(
        rescore_candidates=sorted(rescore),
        merge_candidates=merge,
        changed_jobs=changed_jobs,
        drop_candidates=sorted(gone),
        untouched=len(candidates) - len(rescore) - len(merge),
    )


_UNMATCHED = object()
"""The stored hash of a candidate that was never matched: unequal to any hash, None included."""


def _gone_candidates(
    candidates: Mapping[Hashable, str],
    matched_candidates: Mapping[Hashable, str],
    matches: Mapping[Hashable, Sequence[Hashable]],
    rescore: set[Hashable],
) -> set[Hashable]:
    """Ids in `matched_candidates` or `matches` that are not in `candidates`.

    Usually there are none, and a pass over every stored id would cost as much as the rest of a
    1% increment's plan (at 50,000 candidates). Every current candidate that was never matched is
    in `rescore`, so counting those tells whether all matched candidates are still there.
    """
    never_matched = sum(1 for id_ in rescore if id_ not in matched_candidates)
    if (
        len(candidates) - never_matched == len(matched_candidates)
        and matches.keys() <= matched_candidates.keys()
    ):
        return set()
    return {id_ for id_ in chain(matched_candidates, matches) if id_ not in candidates}


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
