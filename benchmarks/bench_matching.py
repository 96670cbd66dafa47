"""The matching kernel `top_k_cosine` against its baselines, side by side in one run.

Measures, on random L2-normalized float32 vectors (the issue's setting by default: 384 dimensions,
50,000 candidates x 5,000 jobs, top-10), each as a ratio measured in this same run:
- the floor: the matrix multiply alone, in the same chunks as ours (a score block of the kernel's
  `DEFAULT_SCORE_BLOCK_BYTES` per chunk, written into a preallocated block, nothing ranked);
- plain numpy: one `queries @ corpus.T`, then `np.argpartition` and a sort of the winners;
- ours: `top_k_cosine`;
- DuckDB SQL: a cross join scoring `array_cosine_similarity` on FLOAT[384] arrays, then the top-k
  per candidate by `row_number()`, on a smaller size (5,000 x 500), against ours (and the
  multiply alone, the most any kernel could gain) on that size; ours and the multiply take a few
  milliseconds there, so each turn times `--sql-calls` back-to-back calls and divides;
- incremental: 1% new candidates (`plan_matches` over every id and hash, then the new candidates
  against all jobs) against a full rebuild of every candidate; an increment takes 15-40 ms, so
  each turn times `--incremental-calls` back-to-back increments and divides, for the same reason;
- peak memory of ours at 100,000 x 100,000, in a child process: its peak resident set size
  (`VmHWM` from /proc, else `ru_maxrss`), which includes Python, the imports and the inputs. Both
  100,000-row matrices are resident, and by default the first 10,000 queries are ranked against
  the whole corpus (`--large-queries`): the kernel's own memory is one score block of a fixed size
  plus the result (12 bytes per match), so ranking all 100,000 adds 11 MB of results and about ten
  times the minutes; `--large-queries 100000` ranks them all.

Timed variants alternate (ABAB...) so a noisy neighbour slows them alike; medians are reported.

    uv run python benchmarks/bench_matching.py                 # the issue's sizes, about 2 minutes
    uv run python benchmarks/bench_matching.py --quick         # small sizes: a smoke run
    uv run python benchmarks/bench_matching.py --skip-large --json results.json
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np

from dagster_autopilot.vectors import plan_matches, top_k_cosine
from dagster_autopilot.vectors.matching import DEFAULT_SCORE_BLOCK_BYTES

TARGETS = {
    "floor": ("ours / matmul alone", 1.3, "<="),
    "sql": ("SQL / ours", 100.0, ">="),
    "incremental": ("incremental / full rebuild", 0.03, "<="),
    "memory": ("peak memory, GB", 2.0, "<="),
}


def random_unit_vectors(rows: int, dims: int, seed: int) -> np.ndarray:
    """Random float32 rows of unit norm, generated in slices so the peak memory is the result."""
    rng = np.random.default_rng(seed)
    matrix = np.empty((rows, dims), dtype=np.float32)
    for start in range(0, rows, 10_000):
        part = rng.standard_normal((min(10_000, rows - start), dims), dtype=np.float32)
        part /= np.linalg.norm(part, axis=1, keepdims=True)
        matrix[start : start + len(part)] = part
    return matrix


def matmul_alone(queries: np.ndarray, corpus: np.ndarray) -> None:
    """The floor: the same chunked multiply as the kernel, with nothing ranked."""
    rows = max(1, DEFAULT_SCORE_BLOCK_BYTES // (4 * corpus.shape[0]))
    block = np.empty((min(rows, len(queries)), corpus.shape[0]), dtype=np.float32)
    for start in range(0, len(queries), rows):
        stop = min(start + rows, len(queries))
        np.matmul(queries[start:stop], corpus.T, out=block[: stop - start])


def numpy_top_k(queries: np.ndarray, corpus: np.ndarray, top_k: int) -> np.ndarray:
    """Plain numpy, no chunking: every score at once, argpartition, then sort the winners."""
    scores = queries @ corpus.T
    top = np.argpartition(scores, scores.shape[1] - top_k, axis=1)[:, -top_k:]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


def interleaved(
    variants: dict[str, Callable[[], object]], repeats: int, calls: dict[str, int] | None = None
) -> dict[str, list[float]]:
    """Wall-clock seconds per call of each variant, run in turns (A, B, C, A, B, C, ...).

    `calls` runs a variant several times back to back in each turn (and divides): a call of a few
    milliseconds, timed once right after a multi-second DuckDB query, measures mostly what that
    query left behind (its threads winding down, cold caches), not the call.
    """
    calls = calls or {}
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, run in variants.items():
            number = calls.get(name, 1)
            start = time.perf_counter()
            for _ in range(number):
                run()
            samples[name].append((time.perf_counter() - start) / number)
    return samples


def load_duckdb_vectors(con: duckdb.DuckDBPyConnection, table: str, matrix: np.ndarray) -> None:
    """Stores `matrix` as (id, v FLOAT[d]) through a long (id, dim, value) view of numpy arrays."""
    rows, dims = matrix.shape
    long_format = {
        "id": np.repeat(np.arange(rows), dims),
        "dim": np.tile(np.arange(dims), rows),
        "value": matrix.ravel(),
    }
    con.register("long_format", long_format)
    con.execute(
        f"create table {table} as select id, list(value order by dim)::FLOAT[{dims}] as v "
        "from long_format group by id"
    )
    con.unregister("long_format")


def sql_top_k(con: duckdb.DuckDBPyConnection, top_k: int) -> list[tuple]:
    """Scores every pair in SQL, then keeps each candidate's top-k by `row_number()`.

    The scores are materialized before the window: with the window straight on the cross join
    (`qualify`), DuckDB carries both arrays through the sort and is about 17x slower (measured).
    """
    return con.execute(
        f"""
        with scored as materialized (
            select c.id as candidate_id, j.id as job_id,
                   array_cosine_similarity(c.v, j.v) as score
            from candidates as c cross join jobs as j
        )
        select candidate_id, job_id, score
        from scored
        qualify row_number() over (
            partition by candidate_id order by score desc, job_id
        ) <= {int(top_k)}
        """
    ).fetchall()


def bench_kernel(args: argparse.Namespace) -> dict:
    queries = random_unit_vectors(args.candidates, args.dims, seed=1)
    corpus = random_unit_vectors(args.jobs, args.dims, seed=2)
    samples = interleaved(
        {
            "matmul alone (same chunks)": lambda: matmul_alone(queries, corpus),
            "numpy matmul + argpartition": lambda: numpy_top_k(queries, corpus, args.top_k),
            "ours top_k_cosine": lambda: top_k_cosine(queries, corpus, args.top_k),
        },
        args.repeats,
    )
    return {"size": f"{args.candidates} x {args.jobs}", "samples": samples}


def bench_sql(args: argparse.Namespace) -> dict:
    queries = random_unit_vectors(args.sql_candidates, args.dims, seed=3)
    corpus = random_unit_vectors(args.sql_jobs, args.dims, seed=4)
    con = duckdb.connect()
    load_duckdb_vectors(con, "candidates", queries)
    load_duckdb_vectors(con, "jobs", corpus)
    results = {}
    samples = interleaved(
        {
            "duckdb cross join + row_number": lambda: results.update(sql=sql_top_k(con, args.top_k)),
            "ours top_k_cosine": lambda: results.update(ours=top_k_cosine(queries, corpus, args.top_k)),
            "matmul alone (same chunks)": lambda: matmul_alone(queries, corpus),
        },
        args.repeats,
        calls={"ours top_k_cosine": args.sql_calls, "matmul alone (same chunks)": args.sql_calls},
    )
    # Same answer? Compare each candidate's best job (top-1; exact ties aside, they must agree).
    best_sql = {}
    for candidate, job, score in results["sql"]:
        if candidate not in best_sql or (score, -job) > best_sql[candidate]:
            best_sql[candidate] = (score, -job)
    agreement = np.mean([-best_sql[i][1] == results["ours"][0][i, 0] for i in range(len(queries))])
    return {
        "size": f"{args.sql_candidates} x {args.sql_jobs}",
        "samples": samples,
        "top1_agreement": float(agreement),
        "threads": con.execute("select current_setting('threads')").fetchone()[0],
    }


def bench_incremental(args: argparse.Namespace) -> dict:
    n_new = max(1, round(args.candidates * args.new_fraction))
    every = random_unit_vectors(args.candidates + n_new, args.dims, seed=5)
    corpus = random_unit_vectors(args.jobs, args.dims, seed=6)
    candidate_ids = [f"cand-{i:07d}" for i in range(len(every))]
    job_ids = [f"job-{i:06d}" for i in range(args.jobs)]
    row_of = {cid: row for row, cid in enumerate(candidate_ids)}
    # The state before the new candidates arrived: their hashes and stored matches.
    before = candidate_ids[: args.candidates]
    indices, _ = top_k_cosine(every[: args.candidates], corpus, args.top_k)
    matches = {cid: [job_ids[j] for j in row] for cid, row in zip(before, indices, strict=True)}
    matched_candidates = {cid: f"h-{cid}" for cid in before}
    candidates_now = {cid: f"h-{cid}" for cid in candidate_ids}
    jobs_now = {jid: f"h-{jid}" for jid in job_ids}

    def incremental() -> None:
        plan = plan_matches(candidates_now, jobs_now, matched_candidates, jobs_now, matches)
        assert len(plan.rescore_candidates) == n_new and not plan.merge_candidates
        rows = [row_of[cid] for cid in plan.rescore_candidates]
        top_k_cosine(every[rows], corpus, args.top_k)

    samples = interleaved(
        {
            "full rebuild": lambda: top_k_cosine(every, corpus, args.top_k),
            f"incremental, {n_new} new candidates": incremental,
        },
        args.repeats,
        calls={f"incremental, {n_new} new candidates": args.incremental_calls},
    )
    return {"size": f"{args.candidates} + {n_new} new x {args.jobs}", "samples": samples}


def bench_memory(args: argparse.Namespace) -> dict:
    """Runs the kernel at the large size in a child process and reads its peak memory."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--memory-child",
        str(args.large),
        str(args.large_queries),
        str(args.dims),
        str(args.top_k),
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def _resident_mb(field: str) -> float | None:
    """`VmRSS` (now) or `VmHWM` (peak) of this process from /proc, in MB; None off Linux."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def memory_child(size: int, ranked_queries: int, dims: int, top_k: int) -> None:
    after_imports = _resident_mb("VmRSS")
    queries = random_unit_vectors(size, dims, seed=7)
    corpus = random_unit_vectors(size, dims, seed=8)
    after_inputs = _resident_mb("VmRSS")
    start = time.perf_counter()
    top_k_cosine(queries[:ranked_queries], corpus, top_k)
    seconds = time.perf_counter() - start
    peak = _resident_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "size": f"{size} x {size}",
        "ranked_queries": min(ranked_queries, size),
        "kernel_seconds": seconds,
        "rss_after_imports_mb": after_imports,
        "rss_after_inputs_mb": after_inputs,
        "peak_rss_mb": peak,
        "inputs_mb": (queries.nbytes + corpus.nbytes) / 2**20,
    }
    print(json.dumps(result))


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _verdict(key: str, value: float) -> str:
    _, target, direction = TARGETS[key]
    met = value <= target if direction == "<=" else value >= target
    return f"{direction} {target:g}: {'ok' if met else 'MISSED'}"


def report(results: dict) -> str:
    """The markdown table: medians, ratios, targets, and every raw sample."""
    lines = [
        "| measurement | ours | baseline | ratio | target |",
        "|---|---:|---:|---:|---|",
    ]
    kernel = results["kernel"]["samples"]
    ours = _median(kernel["ours top_k_cosine"])
    floor = _median(kernel["matmul alone (same chunks)"])
    plain = _median(kernel["numpy matmul + argpartition"])
    size = results["kernel"]["size"]
    lines.append(
        f"| top-k vs matmul alone, {size} | {ours:.2f} s | {floor:.2f} s | {ours / floor:.2f}x "
        f"| {_verdict('floor', ours / floor)} |"
    )
    lines.append(
        f"| top-k vs numpy matmul + argpartition, {size} | {ours:.2f} s | {plain:.2f} s "
        f"| {ours / plain:.2f}x | (none) |"
    )
    if "sql" in results:
        sql = results["sql"]
        sql_s = _median(sql["samples"]["duckdb cross join + row_number"])
        ours_s = _median(sql["samples"]["ours top_k_cosine"])
        floor_s = _median(sql["samples"]["matmul alone (same chunks)"])
        lines.append(
            f"| SQL cross join vs ours, {sql['size']} | {ours_s * 1000:.1f} ms | {sql_s:.2f} s "
            f"| {sql_s / ours_s:.0f}x faster | {_verdict('sql', sql_s / ours_s)} |"
        )
        lines.append(
            f"| SQL cross join vs matmul alone, {sql['size']} | {floor_s * 1000:.1f} ms "
            f"| {sql_s:.2f} s | {sql_s / floor_s:.0f}x faster | (the bound for ours) |"
        )
    incremental = results["incremental"]
    samples = incremental["samples"]
    full = _median(samples["full rebuild"])
    inc_name = next(name for name in samples if name.startswith("incremental"))
    inc = _median(samples[inc_name])
    lines.append(
        f"| {inc_name} vs full rebuild, {incremental['size']} | {inc:.3f} s | {full:.2f} s "
        f"| {inc / full:.3f}x | {_verdict('incremental', inc / full)} |"
    )
    if "memory" in results:
        memory = results["memory"]
        peak_gb = memory["peak_rss_mb"] / 1024
        lines.append(
            f"| peak memory (RSS), {memory['size']}, {memory['ranked_queries']} queries ranked "
            f"| {peak_gb:.2f} GB | | "
            f"| {_verdict('memory', peak_gb)} |"
        )
    lines += ["", "Raw samples (seconds):"]
    for part in ("kernel", "sql", "incremental"):
        if part in results:
            for name, values in results[part]["samples"].items():
                lines.append(f"- {part}, {name}: " + ", ".join(f"{v:.3f}" for v in values))
    if "sql" in results:
        lines.append(
            f"- sql: top-1 agreement with ours {results['sql']['top1_agreement']:.4f}, "
            f"duckdb threads {results['sql']['threads']}"
        )
    if "memory" in results:
        m = results["memory"]
        lines.append(
            f"- memory: RSS after imports {m['rss_after_imports_mb']:.0f} MB, after inputs "
            f"{m['rss_after_inputs_mb']:.0f} MB (inputs {m['inputs_mb']:.0f} MB), peak "
            f"{m['peak_rss_mb']:.0f} MB; kernel {m['kernel_seconds']:.1f} s"
        )
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=50_000, help="queries (candidates)")
    parser.add_argument("--jobs", type=int, default=5_000, help="corpus rows (jobs)")
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--sql-candidates", type=int, default=5_000)
    parser.add_argument("--sql-jobs", type=int, default=500)
    parser.add_argument(
        "--sql-calls",
        type=int,
        default=10,
        help="calls of ours and of the multiply per timed turn at the SQL size (1: single shots)",
    )
    parser.add_argument("--new-fraction", type=float, default=0.01, help="new candidates")
    parser.add_argument(
        "--incremental-calls",
        type=int,
        default=10,
        help="increments per timed turn, back to back (1: single shots, each right after a full "
        "rebuild)",
    )
    parser.add_argument("--large", type=int, default=100_000, help="n for the n x n memory run")
    parser.add_argument(
        "--large-queries", type=int, default=10_000, help="queries ranked in the memory run"
    )
    parser.add_argument("--skip-large", action="store_true", help="skip the memory run")
    parser.add_argument("--skip-sql", action="store_true", help="skip the DuckDB baseline")
    parser.add_argument(
        "--repeats",
        type=int,
        default=7,
        help="turns of each variant; medians are reported (with 3, one noisy turn on this shared "
        "machine moved the ratio to the multiply by up to 0.2)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 5,000 x 500, SQL 500 x 100, memory at 10,000 x 10,000, 1 repeat",
    )
    parser.add_argument("--json", type=Path, help="also write the raw results to this file")
    parser.add_argument("--memory-child", nargs=4, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:  # smaller defaults; sizes given explicitly still win
        parser.set_defaults(
            candidates=5_000,
            jobs=500,
            sql_candidates=500,
            sql_jobs=100,
            large=10_000,
            large_queries=2_000,
            repeats=1,
        )
        args = parser.parse_args(argv)
    return args


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    if args.memory_child:
        memory_child(*args.memory_child)
        return
    started = time.perf_counter()
    results: dict = {"settings": {k: str(v) for k, v in vars(args).items()}}
    print(f"kernel: {args.candidates} x {args.jobs}, {args.repeats} repeats...", flush=True)
    results["kernel"] = bench_kernel(args)
    if not args.skip_sql:
        print(f"sql: {args.sql_candidates} x {args.sql_jobs}...", flush=True)
        results["sql"] = bench_sql(args)
    print("incremental...", flush=True)
    results["incremental"] = bench_incremental(args)
    if not args.skip_large:
        print(f"memory: {args.large} x {args.large} in a child process...", flush=True)
        results["memory"] = bench_memory(args)
    results["wall_seconds"] = time.perf_counter() - started
    print()
    print(report(results))
    print(f"\n(total {results['wall_seconds']:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
