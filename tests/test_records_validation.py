"""Landing-file validation: every row is either kept or quarantined with its reason, never lost."""

import hashlib
import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from records_files import read_checked

from dagster_autopilot.records import (
    QUARANTINE_REASONS,
    RecordSpec,
    UnreadableFileError,
    iter_batches,
    read_records,
    record_hash,
)
from dagster_autopilot.records.validation import RAW_TEXT_CAP

SPEC = RecordSpec(
    id_column="id",
    columns={"id": "text", "name": "text", "notes": "text", "years": "integer"},
    required=["name"],
    max_text_chars=50,
)
GOOD = {"id": "a1", "name": "Ada", "notes": "likes sql", "years": 3}


def write_jsonl(path: Path, *lines: dict | str | bytes) -> Path:
    encoded = [
        line
        if isinstance(line, bytes)
        else (line if isinstance(line, str) else json.dumps(line)).encode()
        for line in lines
    ]
    path.write_bytes(b"\n".join(encoded) + b"\n")
    return path


def reasons_by_line(batch) -> dict[int, str]:
    return {row.line_number: row.reason for row in batch.quarantined}


def test_every_reason_is_detected_on_its_own_line_and_the_counts_add_up(tmp_path: Path):
    path = write_jsonl(
        tmp_path / "people.jsonl",
        GOOD,
        {**GOOD, "id": "  "},
        {**GOOD, "id": "a3", "name": "   "},
        {**GOOD, "id": "a4", "years": "three"},
        {**GOOD, "id": "a5", "notes": "x" * 51},
        b'{"id": "a6", "name": "Ren\xe9e"}',
        '{"id": "a7", "name": ',
        {**GOOD, "id": "a8", "notes": None, "years": None},
    )

    batch = read_checked(path, SPEC)

    assert reasons_by_line(batch) == {
        2: "missing_id",
        3: "empty_text",
        4: "wrong_type",
        5: "oversized_text",
        6: "invalid_encoding",
        7: "malformed_row",
    }
    assert set(batch.reason_counts()) == set(QUARANTINE_REASONS)
    assert [record["id"] for record in batch.records] == ["a1", "a8"]
    assert (batch.rows_read, batch.kept_count, batch.quarantined_count) == (8, 2, 6)
    assert batch.rows_read == batch.kept_count + batch.quarantined_count
    assert batch.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_kept_record_has_the_spec_columns_parsed_its_hash_and_its_line(tmp_path: Path):
    path = write_jsonl(
        tmp_path / "people.jsonl",
        "",
        {"id": " b1 ", "name": "Bo", "years": " 12 ", "occupation": "ignored"},
    )

    (record,) = read_checked(path, SPEC).records

    assert record == {
        "id": "b1",
        "name": "Bo",
        "notes": None,
        "years": 12,
        "record_hash": record_hash({"id": "b1", "name": "Bo", "notes": None, "years": 12}, SPEC),
        "line_number": 2,
    }
    canonical = '{"id":"b1","name":"Bo","notes":null,"years":12}'
    assert record["record_hash"] == hashlib.md5(canonical.encode()).hexdigest()


@pytest.mark.parametrize("years", ["1_000", "٣", "3.0", 3.0, True, 2**31, "2147483648", [3], {"n": 3}])
def test_anything_but_a_plain_32_bit_integer_is_the_wrong_type(tmp_path: Path, years):
    path = write_jsonl(tmp_path / "people.jsonl", {**GOOD, "years": years})

    batch = read_checked(path, SPEC)

    assert reasons_by_line(batch) == {1: "wrong_type"}


def test_text_that_is_not_a_string_is_the_wrong_type(tmp_path: Path):
    path = write_jsonl(tmp_path / "people.jsonl", {**GOOD, "id": 7}, {**GOOD, "notes": ["a"]})

    assert reasons_by_line(read_checked(path, SPEC)) == {1: "wrong_type", 2: "wrong_type"}


def test_a_json_value_that_is_not_an_object_is_malformed(tmp_path: Path):
    path = write_jsonl(tmp_path / "people.jsonl", "[1, 2]", '"a string"')

    assert reasons_by_line(read_checked(path, SPEC)) == {1: "malformed_row", 2: "malformed_row"}


def test_repeated_rows_are_kept_once_and_counted_as_duplicates(tmp_path: Path):
    changed = {**GOOD, "notes": "likes python"}
    path = write_jsonl(tmp_path / "people.jsonl", GOOD, GOOD, changed, GOOD)

    batch = read_checked(path, SPEC)

    # The same id with new content is a new record; identical rows are one record.
    assert [(r["notes"], r["line_number"]) for r in batch.records] == [
        ("likes sql", 1),
        ("likes python", 3),
    ]
    assert (batch.duplicates, batch.kept_count, batch.quarantined_count) == (2, 4, 0)
    assert batch.rows_read == batch.kept_count + batch.quarantined_count


def test_quarantined_text_is_capped_and_readable(tmp_path: Path):
    huge = {**GOOD, "notes": "é" * (RAW_TEXT_CAP * 2)}
    path = write_jsonl(tmp_path / "people.jsonl", huge, b'{"id": "x", "name": "\xff\xfe"}')

    oversized, bad_bytes = read_checked(path, SPEC).quarantined

    assert oversized.reason == "oversized_text"
    assert len(oversized.raw_text) == RAW_TEXT_CAP
    assert bad_bytes.raw_text == '{"id": "x", "name": "\ufffd\ufffd"}'
    assert bad_bytes.detail == "not UTF-8 at byte 21"


def test_csv_rows_are_read_like_jsonl_rows(tmp_path: Path):
    csv_path = tmp_path / "people.csv"
    csv_path.write_bytes(
        b"\xef\xbb\xbfid,name,notes,years,extra\r\n"
        b"a1,Ada,likes sql,3,ignored\r\n"
        b'a2,"Bo, Jr.","two\nlines ""quoted""",,x\r\n'
        b"a3,Cy,too few\r\n"
        b"a4,Ren\xe9e,bad bytes,1,x\r\n"
        b"\r\n"
        b",Di,no id,2,x\r\n"
        b"a6,Ed,ok,4,x\r\n"
    )
    jsonl_path = write_jsonl(tmp_path / "people.jsonl", {**GOOD, "extra": "other"})

    batch = read_checked(csv_path, SPEC)

    # a2 spans lines 3 and 4, so every later row starts one line further down.
    assert reasons_by_line(batch) == {5: "malformed_row", 6: "invalid_encoding", 8: "missing_id"}
    assert [(r["id"], r["line_number"]) for r in batch.records] == [("a1", 2), ("a2", 3), ("a6", 9)]
    assert batch.records[1]["name"] == "Bo, Jr."
    assert batch.records[1]["notes"] == 'two\nlines "quoted"'
    assert batch.records[1]["years"] is None
    # The same record hashes the same whichever format it came in.
    assert batch.records[0]["record_hash"] == read_checked(jsonl_path, SPEC).records[0]["record_hash"]
    assert batch.rows_read == 6 == batch.kept_count + batch.quarantined_count


def test_an_unterminated_csv_quote_at_the_end_is_malformed(tmp_path: Path):
    path = tmp_path / "people.csv"
    path.write_text('id,name,notes,years\na1,Ada,"never closed,3\n')

    assert reasons_by_line(read_checked(path, SPEC)) == {2: "malformed_row"}


def test_a_file_that_cannot_be_read_at_all_raises_a_clear_error(tmp_path: Path):
    no_column = tmp_path / "people.csv"
    no_column.write_text("id,notes,years\na1,likes sql,3\n")
    unknown = tmp_path / "people.xlsx"
    unknown.write_text("whatever")

    for read in (read_records, iter_batches):
        with pytest.raises(UnreadableFileError, match=r"lacks the required column\(s\) \['name'\]"):
            read(no_column, SPEC)
        with pytest.raises(UnreadableFileError, match=r"unsupported extension '\.xlsx'"):
            read(unknown, SPEC)
        with pytest.raises(FileNotFoundError):
            read(tmp_path / "missing.jsonl", SPEC)


def test_an_empty_file_has_no_rows(tmp_path: Path):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "empty.jsonl").write_text("\n\n")

    for name in ("empty.csv", "empty.jsonl"):
        batch = read_checked(tmp_path / name, SPEC)
        assert (batch.rows_read, batch.records, batch.quarantined) == (0, [], [])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"id_column": "key", "columns": {"id": "text"}}, "id_column 'key'"),
        ({"id_column": "id", "columns": {"id": "integer"}}, "id_column 'id'"),
        ({"id_column": "id", "columns": {"id": "text", "n": "integer"}, "required": ["n"]}, "'n'"),
        ({"id_column": "id", "columns": {"id": "date"}}, "columns.id"),
        ({"id_column": "id", "columns": {"id": "text"}, "max_text_chars": 0}, "max_text_chars"),
        ({"id_column": "id", "columns": {"id": "text"}, "unknown": 1}, "unknown"),
    ],
)
def test_an_inconsistent_spec_is_refused(spec: dict, message: str):
    with pytest.raises(ValidationError, match=message):
        RecordSpec(**spec)


def test_text_a_database_cannot_store_is_invalid_encoding(tmp_path: Path):
    path = write_jsonl(
        tmp_path / "people.jsonl",
        '{"id": "a1", "name": "half a pair \\ud800"}',
        '{"id": "a2", "name": "Ada", "notes": "nul \\u0000"}',
        GOOD,
    )

    batch = read_checked(path, SPEC)

    assert reasons_by_line(batch) == {1: "invalid_encoding", 2: "invalid_encoding"}
    assert [row.detail for row in batch.quarantined] == [
        "'name' holds an unpaired surrogate, not Unicode text",
        "'notes' holds a NUL character, which PostgreSQL text cannot store",
    ]
