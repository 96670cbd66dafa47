"""Landing files: each file its own unit, only settled files, chunks that resume, a small cursor.

The ingestion tests take a `warehouse` fixture: DuckDB here, PostgreSQL in
`tests/production/test_landing_postgres.py`, which runs the same tests. The sensor tests drive the
project's real `raw_candidates_arrivals` sensor and `raw_candidates` asset, tick by tick, with the
sensor's clock moved by the test.
"""

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from harness import (  # noqa: F401 (the sensor tests' fixtures)
    arrivals_fixture,
    clock_fixture,
    configured_arrivals_fixture,
    start_dg_check_defs,
)

from dagster_autopilot.pipelines import landing
from dagster_autopilot.records import QUARANTINE_REASONS
from dagster_autopilot.samples.talent import CANDIDATE_SPEC, generate, write_records
from dagster_autopilot.warehouse.connection import Warehouse

TABLE = "raw_candidates"
CSV_HEADER = "candidate_id,full_name,title,location,skills,summary,years_experience"


@pytest.fixture
def warehouse() -> Warehouse:
    return Warehouse.from_env()


def count(warehouse: Warehouse, sql: str) -> int:
    with warehouse.connect() as session:
        return session.fetch_all(sql)[0][0]


def ledger(warehouse: Warehouse, file_name: str) -> list[tuple]:
    """The file's ledger rows, each checked to account for every record it read."""
    with warehouse.connect() as session:
        mark = session.placeholder
        rows = session.fetch_all(
            f"select status, reason, records_in, records_kept, records_quarantined"
            f" from {landing.LEDGER_TABLE} where file_name = {mark} order by ingested_at",
            (file_name,),
        )
    for _, _, records_in, kept, quarantined in rows:
        assert records_in == kept + quarantined, f"{file_name}: {rows}"
    return rows


def test_each_file_and_record_is_landed_once_and_bad_rows_are_counted(
    warehouse: Warehouse, tmp_path: Path
):
    candidates, _ = generate(60, 0, seed=1)
    first = write_records(tmp_path / "a.jsonl", candidates[:40], CANDIDATE_SPEC, bad_rows=6)

    report = landing.ingest(warehouse, TABLE, CANDIDATE_SPEC, [first])
    assert (report.records_in, report.records_kept, report.records_quarantined) == (46, 40, 6)
    assert dict(report.quarantine_reasons) == dict.fromkeys(QUARANTINE_REASONS, 1)
    assert count(warehouse, f"select count(*) from {TABLE}") == 40
    assert count(warehouse, f"select count(*) from {TABLE}_quarantine") == 6

    again = landing.ingest(warehouse, TABLE, CANDIDATE_SPEC, [first])
    assert (again.files_already_ingested, again.records_in) == (["a.jsonl"], 0)

    # 10 records repeated from the first file, 20 new ones, and one changed record.
    changed = {**candidates[0], "summary": "Now leading a data platform team."}
    second = write_records(
        tmp_path / "b.csv", [*candidates[30:], changed], CANDIDATE_SPEC, file_format="csv"
    )
    report = landing.ingest(warehouse, TABLE, CANDIDATE_SPEC, [first, second])
    assert report.files_ingested == ["b.csv"]
    assert (report.records_in, report.records_new, report.records_duplicate) == (31, 21, 10)
    assert report.records_in == report.records_kept + report.records_quarantined
    assert count(warehouse, f"select count(*) from {TABLE}") == 61


def test_a_good_file_lands_beside_an_unreadable_one_which_is_rejected_once(
    warehouse: Warehouse, tmp_path: Path
):
    candidates, _ = generate(20, 0, seed=11)
    good = write_records(tmp_path / "good.jsonl", candidates[:10], CANDIDATE_SPEC)
    bad = tmp_path / "bad.csv"
    bad.write_text("candidate_id,full_name\nc1,Ann\n")  # lacks required columns

    report = landing.ingest(warehouse, TABLE, CANDIDATE_SPEC, [bad, good])
    assert report.files_ingested == ["good.jsonl"]
    assert list(report.files_rejected) == ["bad.csv"]
    assert "bad.csv" in report.files_rejected["bad.csv"], "the error names the file"
    assert report.metadata()["files_rejected"] == 1
    assert count(warehouse, f"select count(*) from {TABLE}") == 10
    [(status, reason, *_)] = ledger(warehouse, "bad.csv")
    assert status == "rejected" and reason
    with warehouse.connect() as session:
        quarantined = session.fetch_all(
            f"select source_file, line_number, reason from {TABLE}_quarantine"
        )
    assert quarantined == [("bad.csv", 0, reason)]

    again = landing.ingest(warehouse, TABLE, CANDIDATE_SPEC, [bad, good])
    assert sorted(again.files_already_ingested) == ["bad.csv", "good.jsonl"]
    assert again.files_rejected == {}, "a rejected file is not read again while unchanged"

    write_records(bad, candidates[10:], CANDIDATE_SPEC, file_format="csv")  # fixed
    fixed = landing.ingest(warehouse, TABLE, CANDIDATE_SPEC, [bad, good])
    assert fixed.files_ingested == ["bad.csv"]
    assert count(warehouse, f"select count(*) from {TABLE}") == 20


def test_a_crash_after_a_chunk_resumes_there_without_duplicates(
    warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    candidates, _ = generate(35, 0, seed=12)
    path = write_records(tmp_path / "big.csv", candidates, CANDIDATE_SPEC, file_format="csv", bad_rows=3)
    real_flush, flushes = landing._Group.flush, []

    def crash_on_third_chunk(self, *args):
        flushes.append(args)
        if len(flushes) == 3:
            raise RuntimeError("the machine lost power")
        return real_flush(self, *args)

    monkeypatch.setattr(landing._Group, "flush", crash_on_third_chunk)
    with pytest.raises(RuntimeError, match="lost power"):
        landing.ingest(warehouse, TABLE, CANDIDATE_SPEC, [path], batch_rows=10)
    stored = count(warehouse, f"select count(*) from {TABLE}")
    quarantined = count(warehouse, f"select count(*) from {TABLE}_quarantine")
    assert stored + quarantined == 20, "two chunks of ten rows committed"
    [(status, _, records_in, *_)] = ledger(warehouse, "big.csv")
    assert (status, records_in) == ("loading", 20)

    monkeypatch.setattr(landing._Group, "flush", real_flush)
    report = landing.ingest(warehouse, TABLE, CANDIDATE_SPEC, [path], batch_rows=10)
    assert report.records_in == 18, "the resumed run reads on from the third chunk"
    assert count(warehouse, f"select count(*) from {TABLE}") == 35
    assert count(warehouse, f"select count(distinct candidate_id) from {TABLE}") == 35
    assert count(warehouse, f"select count(*) from {TABLE}_quarantine") == 3
    assert ledger(warehouse, "big.csv") == [("landed", None, 38, 35, 3)]


def test_a_crash_resumes_exactly_even_when_the_chunk_size_changed(
    warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    candidates, _ = generate(35, 0, seed=12)
    path = write_records(tmp_path / "big.csv", candidates, CANDIDATE_SPEC, file_format="csv", bad_rows=3)
    real_flush, flushes = landing._Group.flush, []

    def crash_on_third_chunk(self, *args):
        flushes.append(args)
        if len(flushes) == 3:
            raise RuntimeError("the machine lost power")
        return real_flush(self, *args)

    monkeypatch.setattr(landing._Group, "flush", crash_on_third_chunk)
    with pytest.raises(RuntimeError, match="lost power"):
        landing.ingest(warehouse, TABLE, CANDIDATE_SPEC, [path], batch_rows=10)
    monkeypatch.setattr(landing._Group, "flush", real_flush)

    # A release with another chunk size resumes: its chunk of rows 15-21 holds six committed rows.
    report = landing.ingest(warehouse, TABLE, CANDIDATE_SPEC, [path], batch_rows=7)
    assert report.records_in == 18, "the resumed run reads only the rows after the committed ones"
    assert ledger(warehouse, "big.csv") == [("landed", None, 38, 35, 3)]
    assert count(warehouse, f"select count(*) from {TABLE}") == 35
    assert count(warehouse, f"select count(*) from {TABLE}_quarantine") == 3


def csv_rows(prefix: str, third: str) -> list[str]:
    """Ten good candidate rows as CSV lines, ids `prefix1`..., with `third` as the third one."""
    rows = [f"{prefix}{n},Person {n},Engineer,Oslo,sql,notes {n},{n}" for n in range(1, 11)]
    rows[2] = third
    return rows


def test_every_line_of_a_csv_with_stray_or_unclosed_quotes_lands_or_is_quarantined(
    warehouse: Warehouse, tmp_path: Path
):
    stray = tmp_path / "stray.csv"
    stray.write_text(
        "\n".join([CSV_HEADER, *csv_rows("s", 's3,P3,Engineer for 15" displays,Oslo,sql,x,3')]) + "\n"
    )
    unclosed = tmp_path / "unclosed.csv"
    unclosed.write_text("\n".join([CSV_HEADER, *csv_rows("u", 'u3,P3,"Engineer,Oslo,sql,x,3')]) + "\n")
    twice = tmp_path / "twice.csv"
    twice.write_text(CSV_HEADER + ",years_experience\nq1,P,T,L,S,x,3,4\n")

    report = landing.ingest(warehouse, TABLE, CANDIDATE_SPEC, [stray, unclosed, twice])

    assert report.files_ingested == ["stray.csv", "unclosed.csv"]
    assert ledger(warehouse, "stray.csv") == [("landed", None, 10, 10, 0)]
    assert ledger(warehouse, "unclosed.csv") == [("landed", None, 10, 9, 1)]
    [(status, reason, *_)] = ledger(warehouse, "twice.csv")
    assert (status, reason) == ("rejected", "duplicate_column")
    assert "twice.csv" in report.files_rejected["twice.csv"]
    assert "years_experience" in report.files_rejected["twice.csv"]
    with warehouse.connect() as session:
        stored = session.fetch_all(
            f"select source_file, line_number, title from {TABLE} order by source_file, line_number"
        )
        quarantined = session.fetch_all(
            f"select source_file, line_number, reason from {TABLE}_quarantine"
            " order by source_file, line_number"
        )
        last_lines = dict(session.fetch_all(f"select file_name, last_line from {landing.LEDGER_TABLE}"))
    # Each physical line after the header is a stored row or a quarantined one, on its own number.
    assert [line for name, line, _ in stored if name == "stray.csv"] == list(range(2, 12))
    assert ("stray.csv", 4, 'Engineer for 15" displays') in stored
    assert [line for name, line, _ in stored if name == "unclosed.csv"] == [2, 3, *range(5, 12)]
    assert quarantined == [("twice.csv", 0, "duplicate_column"), ("unclosed.csv", 4, "malformed_row")]
    assert (last_lines["stray.csv"], last_lines["unclosed.csv"]) == (11, 11)


def test_a_csv_without_optional_columns_lands_nulls_and_a_cr_only_file_is_rejected(
    warehouse: Warehouse, tmp_path: Path
):
    short = tmp_path / "short.csv"
    short.write_text("candidate_id,full_name,title,skills\no1,Ann,Engineer,sql\n")
    same = tmp_path / "same.jsonl"
    same.write_text('{"candidate_id": "o1", "full_name": "Ann", "title": "Engineer", "skills": "sql"}\n')
    old_mac = tmp_path / "old-mac.csv"
    old_mac.write_bytes(b"candidate_id,full_name,title,skills\ro2,Bo,Engineer,sql\r")

    report = landing.ingest(warehouse, TABLE, CANDIDATE_SPEC, [short, same, old_mac])

    assert ledger(warehouse, "short.csv") == [("landed", None, 1, 1, 0)]
    assert ledger(warehouse, "same.jsonl") == [("landed", None, 1, 1, 0)]
    assert report.records_duplicate == 1, "the same record from JSONL, missing the same columns"
    with warehouse.connect() as session:
        stored = session.fetch_all(
            f"select candidate_id, location, summary, years_experience from {TABLE}"
        )
    assert stored == [("o1", None, None, None)]
    [(status, reason, *_)] = ledger(warehouse, "old-mac.csv")
    assert (status, reason) == ("rejected", "bad_line_endings")
    assert "old-mac.csv" in report.files_rejected["old-mac.csv"]


def test_an_unexpected_error_while_reading_names_the_file(
    warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    candidates, _ = generate(3, 0, seed=22)
    path = write_records(tmp_path / "flaky.jsonl", candidates, CANDIDATE_SPEC)

    def disk_error(*args, **kwargs):
        raise OSError("Input/output error")

    monkeypatch.setattr(landing, "iter_batches", disk_error)
    with pytest.raises(RuntimeError, match=r"flaky\.jsonl.*Input/output error"):
        landing.ingest(warehouse, TABLE, CANDIDATE_SPEC, [path])


# --- The sensor, ticked on the project's real definitions. ---


def test_the_arrivals_sensor_requests_each_new_file_once(arrivals):
    sensor, folder = arrivals
    candidates, _ = generate(10, 0, seed=5)
    assert sensor.tick() == [], "an empty landing folder requests nothing"
    write_records(folder / "monday.jsonl", candidates[:5], CANDIDATE_SPEC, bad_rows=2)
    assert sensor.tick() == [], "a file seen once may still be growing"
    [request] = sensor.tick()
    assert request.asset_selection == [dg.AssetKey(TABLE)]
    assert request.tags["autopilot/arrivals"] == "monday.jsonl"
    assert sensor.tick() == [], "the same file is not picked up twice"

    write_records(folder / "tuesday.csv", candidates[5:], CANDIDATE_SPEC, file_format="csv")
    sensor.tick()
    [again] = sensor.tick()
    assert again.tags["autopilot/arrivals"] == "tuesday.csv"
    assert again.run_key != request.run_key

    (folder / "monday.jsonl").write_bytes((folder / "monday.jsonl").read_bytes())
    assert sensor.tick() + sensor.tick() == [], "a rewrite with the same bytes is not new"


def test_a_landing_run_with_a_bad_file_succeeds_and_reports_it(arrivals, warehouse: Warehouse):
    sensor, folder = arrivals
    candidates, _ = generate(3, 0, seed=16)
    write_records(folder / "good.jsonl", candidates, CANDIDATE_SPEC)
    (folder / "bad.csv").write_text("candidate_id,full_name\nc1,Ann\n")
    [request] = sensor.tick() + sensor.tick()
    result = sensor.run(request)
    assert result.success
    [materialization] = result.get_asset_materialization_events()
    metadata = materialization.materialization.metadata
    assert metadata["files_rejected"].value == 1
    assert "bad.csv" in metadata["rejected_files"].value
    assert ledger(warehouse, "good.jsonl") == [("landed", None, 3, 3, 0)]
    warnings = [
        entry.user_message
        for entry in sensor.instance.all_logs(result.run_id)
        if entry.level == logging.WARNING
    ]
    assert any("bad.csv" in message for message in warnings), warnings


@pytest.mark.parametrize(
    ("name", "complete", "cut_at"),
    [
        # Cut inside the last field: years_experience 12 would land as 1.
        ("cut.csv", None, "12\n"),
        ("cut.jsonl", None, "12}\n"),
    ],
)
def test_a_file_still_being_written_lands_once_complete(
    arrivals, warehouse: Warehouse, name, complete, cut_at
):
    sensor, folder = arrivals
    generated, _ = generate(20, 0, seed=13)
    candidates = [
        {**{name: record[name] for name in CANDIDATE_SPEC.columns}, "years_experience": 12}
        for record in generated
    ]
    path = write_records(folder / name, candidates, CANDIDATE_SPEC, file_format=name.rsplit(".", 1)[1])
    text = path.read_text()
    assert text.endswith(cut_at)
    partial = text[: -len(cut_at) + 1]  # "...,1" or '..."years_experience": 1'
    sensor.tick()
    path.write_text(partial)
    assert sensor.tick() == [], "not settled: changed since the last look"
    path.write_text(text)
    requests = sensor.tick() + sensor.tick() + sensor.tick()
    assert len(requests) == 1, "the completed file is requested once"
    assert sensor.run(requests[0]).success

    assert ledger(warehouse, name) == [("landed", None, 20, 20, 0)]
    assert count(warehouse, f"select count(*) from {TABLE}_quarantine where source_file = '{name}'") == 0
    assert (
        count(warehouse, f"select min(years_experience) from {TABLE} where source_file = '{name}'") == 12
    )


def test_only_complete_files_are_ready_by_each_convention(tmp_path: Path):
    folder = tmp_path / "landing"
    folder.mkdir()
    for name in ["a.csv", "b.jsonl", "c.csv.tmp", ".d.csv", "_e.csv", "f.txt", "g.csv.part"]:
        (folder / name).write_text("x\n")
    ready = lambda marker: sorted(p.name for p, _ in landing.ready_files(folder, marker))  # noqa: E731
    assert ready("none") == ["a.csv", "b.jsonl"]
    assert ready(".done") == []
    (folder / "a.csv.done").touch()
    assert ready(".done") == ["a.csv"]
    assert ready("_SUCCESS") == []
    (folder / "_SUCCESS").touch()
    assert ready("_SUCCESS") == ["a.csv", "b.jsonl"]
    time.sleep(0.01)  # a later file clock tick for the next write
    (folder / "h.csv").write_text("x\n")
    assert ready("_SUCCESS") == ["a.csv", "b.jsonl"], "written after the marker: next batch"


def test_a_file_renamed_from_its_tmp_name_is_requested_even_with_an_old_mtime(
    arrivals, warehouse: Warehouse
):
    sensor, folder = arrivals
    candidates, _ = generate(3, 0, seed=23)
    temporary = write_records(folder / "renamed.csv.tmp", candidates, CANDIDATE_SPEC, file_format="csv")
    hour_ago = time.time_ns() - 3600 * 10**9
    os.utime(temporary, ns=(hour_ago, hour_ago))  # as `rsync -t` keeps the source's mtime
    assert sensor.tick() + sensor.tick() == [], "a .tmp name is still being written"
    temporary.rename(folder / "renamed.csv")
    requests = sensor.tick() + sensor.tick()
    assert [r.tags["autopilot/arrivals"] for r in requests] == ["renamed.csv"]
    assert sensor.run(requests[0]).success
    assert ledger(warehouse, "renamed.csv") == [("landed", None, 3, 3, 0)]


def test_files_are_requested_only_once_the_success_marker_follows_them(
    configured_arrivals, warehouse: Warehouse
):
    build, folder = configured_arrivals
    sensor = build(completion_marker="_SUCCESS")
    candidates, _ = generate(6, 0, seed=24)
    write_records(folder / "part-1.csv", candidates[:3], CANDIDATE_SPEC, file_format="csv")
    write_records(folder / "part-2.jsonl", candidates[3:], CANDIDATE_SPEC)
    assert sensor.tick() + sensor.tick() + sensor.tick() == [], "no _SUCCESS yet"
    (folder / "_SUCCESS").touch()
    requests = sensor.tick() + sensor.tick() + sensor.tick()
    assert [r.tags["autopilot/arrivals"] for r in requests] == ["part-1.csv,part-2.jsonl"]
    assert sensor.run(requests[0]).success
    assert ledger(warehouse, "part-1.csv") == [("landed", None, 3, 3, 0)]
    assert ledger(warehouse, "part-2.jsonl") == [("landed", None, 3, 3, 0)]


def test_a_rewrite_keeping_size_and_mtime_is_seen(arrivals, warehouse: Warehouse):
    sensor, folder = arrivals
    candidates, _ = generate(4, 0, seed=14)
    path = write_records(folder / "same.jsonl", candidates[:2], CANDIDATE_SPEC)
    [first] = sensor.tick() + sensor.tick()
    assert sensor.run(first).success
    stat = path.stat()
    other = write_records(folder.parent / "other.jsonl", candidates[2:], CANDIDATE_SPEC)
    content = other.read_bytes()[: stat.st_size].ljust(stat.st_size, b"\n")
    path.write_bytes(content)  # as `cp -p` or `rsync -t` would: same size, mtime restored
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    requests = sensor.tick() + sensor.tick()
    assert [r.tags["autopilot/arrivals"] for r in requests] == ["same.jsonl"]
    assert sensor.run(requests[0]).success
    assert [row[2] for row in ledger(warehouse, "same.jsonl")] == [2, 2]


def test_the_cursor_stays_small_with_thousands_of_files(arrivals):
    sensor, folder = arrivals
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(2_000):
        (folder / f"candidate-{number:05d}.jsonl").write_text(
            f'{{"candidate_id": "c{number}", "full_name": "N", "title": "T", "skills": "S"}}\n'
        )
    [request] = sensor.tick() + sensor.tick()
    assert len(request.tags["autopilot/arrivals"]) <= 200
    assert len(sensor.cursor) < 10_000


def test_a_failed_landing_run_is_requested_again_after_a_backoff(
    arrivals, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
):
    sensor, folder = arrivals
    candidates, _ = generate(5, 0, seed=15)
    write_records(folder / "retry.jsonl", candidates, CANDIDATE_SPEC)
    [first] = sensor.tick() + sensor.tick()
    real_ingest = landing.ingest

    def lock_timeout(*args, **kwargs):
        raise TimeoutError("could not get the warehouse's lock within 120 s")

    monkeypatch.setattr(landing, "ingest", lock_timeout)
    assert not sensor.run(first).success
    monkeypatch.setattr(landing, "ingest", real_ingest)

    assert sensor.tick(advance=5) == [], "the backoff has not passed"
    [retry] = sensor.tick(advance=60)
    assert retry.tags[landing.WINDOW_TAG] == first.tags[landing.WINDOW_TAG]
    assert retry.run_key != first.run_key
    assert sensor.run(retry).success
    assert ledger(warehouse, "retry.jsonl") == [("landed", None, 5, 5, 0)]
    assert sensor.tick(advance=600) == [], "a landed window is not requested again"


def test_no_landing_run_is_requested_while_one_is_in_progress(
    arrivals, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
):
    sensor, folder = arrivals
    candidates, _ = generate(10, 0, seed=17)
    write_records(folder / "big.jsonl", candidates[:5], CANDIDATE_SPEC)
    [first] = sensor.tick() + sensor.tick()
    real_ingest, during_run = landing.ingest, []

    def ticks_while_landing(*args, **kwargs):
        # A big file takes a minute: another file arrives and the sensor ticks meanwhile.
        write_records(folder / "late.jsonl", candidates[5:], CANDIDATE_SPEC)
        for _ in range(3):
            during_run.append((sensor.tick(advance=10), sensor.skip_reason))
        return real_ingest(*args, **kwargs)

    monkeypatch.setattr(landing, "ingest", ticks_while_landing)
    result = sensor.run(first)
    monkeypatch.setattr(landing, "ingest", real_ingest)
    assert result.success
    assert [requests for requests, _ in during_run] == [[], [], []]
    for _, reason in during_run:
        assert result.run_id in reason, f"the skip reason names the run it waits for: {reason}"

    [late] = sensor.tick()
    assert late.tags["autopilot/arrivals"] == "late.jsonl", "the files that arrived meanwhile"
    assert sensor.run(late).success
    assert sensor.tick(advance=600) + sensor.tick() == []
    assert ledger(warehouse, "big.jsonl") == [("landed", None, 5, 5, 0)]
    assert ledger(warehouse, "late.jsonl") == [("landed", None, 5, 5, 0)]
    landed = f"select count(*) from {TABLE} where source_file in ('big.jsonl', 'late.jsonl')"
    assert count(warehouse, landed) == 10


def test_a_file_is_requested_only_once_settle_seconds_old(configured_arrivals, warehouse: Warehouse):
    build, folder = configured_arrivals
    sensor = build(settle_seconds=30)
    candidates, _ = generate(3, 0, seed=18)
    write_records(folder / "slow.jsonl", candidates, CANDIDATE_SPEC)
    assert sensor.tick() == []
    assert sensor.tick(advance=10) == [], "10 s old, unchanged since the last look"
    assert sensor.tick(advance=10) == [], "20 s old"
    [request] = sensor.tick(advance=15)
    assert request.tags["autopilot/arrivals"] == "slow.jsonl"
    assert sensor.run(request).success
    assert ledger(warehouse, "slow.jsonl") == [("landed", None, 3, 3, 0)]
    assert sensor.tick(advance=60) == []


@pytest.mark.parametrize("marker_name", ["ready.csv.done", "ready.done"])
def test_a_file_is_requested_only_once_its_done_marker_exists(
    configured_arrivals, warehouse: Warehouse, marker_name
):
    build, folder = configured_arrivals
    sensor = build(completion_marker=".done")
    candidates, _ = generate(3, 0, seed=19)
    write_records(folder / "ready.csv", candidates, CANDIDATE_SPEC, file_format="csv")
    assert sensor.tick() == []
    # The clock stays put: a marker written later must not seem older than the sensor's looks.
    assert sensor.tick() + sensor.tick() == [], "complete only with its marker"
    (folder / marker_name).touch()
    requests = sensor.tick() + sensor.tick() + sensor.tick()
    assert [r.tags["autopilot/arrivals"] for r in requests] == ["ready.csv"]
    assert sensor.run(requests[0]).success
    assert ledger(warehouse, "ready.csv") == [("landed", None, 3, 3, 0)]


# --- A damaged warehouse fails fast, naming the file. ---


def test_a_truncated_duckdb_warehouse_fails_fast_naming_the_file(tmp_path: Path, monkeypatch):
    from dagster_autopilot.warehouse.connection import (
        WarehouseUnusableError,
        check_duckdb_file,
        ensure_warehouse_usable,
    )

    path = tmp_path / "half.duckdb"
    monkeypatch.setenv("AUTOPILOT_DUCKDB_PATH", str(path))
    warehouse = Warehouse.from_env()
    with warehouse.connect() as session:
        session.execute("create table t as select range as i, repeat('x', 100) as s from range(50000)")
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size // 2)

    started = time.monotonic()
    for attempt in (warehouse.ensure_usable, ensure_warehouse_usable, warehouse.connect().__enter__):
        with pytest.raises(WarehouseUnusableError, match="is not a valid DuckDB database") as error:
            attempt()
        assert str(path) in str(error.value)
    assert time.monotonic() - started < 10

    foreign = tmp_path / "notes.duckdb"
    foreign.write_text("not a database at all\n" * 500)
    with pytest.raises(WarehouseUnusableError, match=r"notes\.duckdb"):
        check_duckdb_file(foreign)


def test_a_warehouse_locked_by_another_process_is_usable(tmp_path: Path):
    from dagster_autopilot.warehouse.connection import check_duckdb_file

    path = tmp_path / "busy.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys; c = duckdb.connect({str(path)!r});"
            " c.execute('create table t (i int)'); print('ready', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        check_duckdb_file(path)  # busy, not damaged: no error
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


# --- Bad landing configuration fails `dg check defs`, naming the file and the field. ---

TALENT_YAML = Path("defs") / "talent" / "defs.yaml"


BAD_LANDING_CONFIG = {
    "landing-dir-is-a-file": (
        "landing_dir: .data/landing/candidates",
        "landing_dir: data/talent/candidates_sample.jsonl",
        ["defs.yaml", "landing_dir", "is a file, not a folder"],
    ),
    "landing-dir-missing": (
        "landing_dir: .data/landing/candidates\n  # .data/ is git-ignored: a fresh clone has no "
        "landing folder until the first load.\n  create_landing_dir: true\n",
        "landing_dir: .data/landing/candidatse\n",
        ["defs.yaml", "landing_dir", "'.data/landing/candidatse'", "does not exist"],
    ),
    "missing-sample-file": (
        "sample_files: [data/talent/candidates_sample.jsonl]",
        "sample_files: [data/talent/candidates_sampel.jsonl]",
        ["defs.yaml", "sample_files[0]", "candidates_sampel.jsonl", "is not a file"],
    ),
}


def test_bad_landing_configuration_fails_dg_check_defs(tmp_path_factory):
    from harness import copy_project

    running = {}
    for case, (old, new, _) in BAD_LANDING_CONFIG.items():
        root = copy_project(tmp_path_factory.mktemp(case))
        yaml = root / TALENT_YAML
        assert old in yaml.read_text()
        yaml.write_text(yaml.read_text().replace(old, new, 1))
        running[case] = start_dg_check_defs(root)
    for case, process in running.items():
        output, _ = process.communicate(timeout=600)
        assert process.returncode != 0, f"{case}: dg check defs passed:\n{output}"
        for text in BAD_LANDING_CONFIG[case][2]:
            assert text in output, f"{case}: {text!r} missing from:\n{output[-3000:]}"
