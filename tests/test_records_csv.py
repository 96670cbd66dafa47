"""Landing CSV files: every physical line is kept or quarantined on its own line number, and a file
that cannot be read as a whole is refused with its reason and its name."""

import csv
import io
import random
from pathlib import Path

import pytest
from records_files import read_checked

from dagster_autopilot.records import (
    FILE_REJECT_REASONS,
    RecordSpec,
    UnreadableFileError,
    iter_batches,
    read_records,
    validation,
)
from dagster_autopilot.samples import talent

SPEC = RecordSpec(
    id_column="id",
    columns={"id": "text", "title": "text", "notes": "text", "years": "integer"},
    required=["title"],
)
HEADER = "id,title,notes,years"


def ten_rows(third: str) -> list[str]:
    """Ten good CSV rows with `third` as the third one."""
    rows = [f"a{n},Engineer,notes {n},{n}" for n in range(1, 11)]
    rows[2] = third
    return rows


def write_csv(path: Path, *lines: str, newline: str = "\n") -> Path:
    path.write_bytes("".join(line + newline for line in lines).encode("utf-8"))
    return path


def reasons_by_line(batch) -> dict[int, str]:
    return {row.line_number: row.reason for row in batch.quarantined}


def kept_lines(batch) -> list[int]:
    return [record["line_number"] for record in batch.records]


def test_a_stray_quote_inside_an_unquoted_field_is_plain_text(tmp_path: Path):
    path = write_csv(tmp_path / "jobs.csv", HEADER, *ten_rows('a3,Engineer for 15" displays,x,3'))

    batch = read_checked(path, SPEC)

    assert (batch.rows_read, batch.kept_count, batch.quarantined_count) == (10, 10, 0)
    assert batch.records[2]["title"] == 'Engineer for 15" displays'
    assert kept_lines(batch) == list(range(2, 12))


@pytest.mark.parametrize(
    "later_row",
    [
        "a6,Engineer,notes 6,6",
        # A later quoted field would close the open quote: the parser must not glue rows 3-6.
        'a6,"Engineer, senior",notes 6,6',
    ],
)
def test_an_unclosed_quote_quarantines_its_own_line_only(tmp_path: Path, later_row: str):
    rows = ten_rows('a3,"Engineer,x,3')
    rows[5] = later_row
    path = write_csv(tmp_path / "jobs.csv", HEADER, *rows)

    batch = read_checked(path, SPEC)

    assert reasons_by_line(batch) == {4: "malformed_row"}
    assert batch.quarantined[0].raw_text == 'a3,"Engineer,x,3'
    assert kept_lines(batch) == [2, 3, *range(5, 12)]
    assert (batch.rows_read, batch.kept_count, batch.quarantined_count) == (10, 9, 1)


def test_a_multi_line_record_with_the_wrong_field_count_is_quarantined_line_by_line(tmp_path: Path):
    path = write_csv(
        tmp_path / "jobs.csv",
        HEADER,
        "a1,Engineer,one,1",
        'a2,Engineer,"two',
        'lines",2,extra,fields,here',
        "a3,Engineer,three,3",
    )

    batch = read_checked(path, SPEC)

    # Read from line 3, the record has 7 fields; line 4 read alone has 5.
    assert reasons_by_line(batch) == {3: "malformed_row", 4: "malformed_row"}
    assert [row.detail for row in batch.quarantined] == [
        "7 fields where the header has 4",
        "5 fields where the header has 4",
    ]
    assert kept_lines(batch) == [2, 5]


def test_a_quoted_field_over_several_lines_is_one_record_even_with_crlf(tmp_path: Path):
    path = write_csv(
        tmp_path / "jobs.csv",
        HEADER,
        'a1,"Engineer","first\r\n\r\nthird ""quoted"", line",1',
        "a2,Engineer,two,2",
        newline="\r\n",
    )

    batch = read_checked(path, SPEC)

    assert kept_lines(batch) == [2, 5]
    assert batch.records[0]["notes"] == 'first\n\nthird "quoted", line'
    assert batch.kept_lines == 4


def test_a_bare_carriage_return_inside_an_unquoted_field_quarantines_that_line(tmp_path: Path):
    path = write_csv(tmp_path / "jobs.csv", HEADER, "a1,Engi\rneer,one,1", "a2,Engineer,two,2")

    batch = read_checked(path, SPEC)

    assert reasons_by_line(batch) == {2: "malformed_row"}
    assert kept_lines(batch) == [3]


# Each way a file can be refused as a whole: (reason, file name, content, what the message names).
REFUSALS = [
    ("unsupported_extension", "jobs.parquet", b"x", "'.parquet'"),
    ("unreadable_header", "jobs.csv", b'"id,title\na1,Engineer\n', "cannot be parsed"),
    ("duplicate_column", "jobs.csv", b"id,title,years,notes,years\na1,Engineer,3,x,\n", "'years'"),
    ("missing_required_column", "jobs.csv", b"title,notes\nx,y\n", "'id'"),
    ("missing_required_column", "jobs.csv", b"id,notes\nx,y\n", "'title'"),
    ("not_utf8", "jobs.csv", "id,t\xeftle,notes\na1,x,y\n".encode("latin-1"), "byte 4"),
    ("not_utf8", "jobs.csv", "id,title\na1,x\n".encode("utf-16"), "UTF-16"),
    ("not_utf8", "jobs.jsonl", '{"id": "a1", "title": "x"}\n'.encode("utf-16"), "UTF-16"),
    ("not_utf8", "jobs.jsonl", '{"id": "a1", "title": "x"}\n'.encode("utf-16-le"), "NUL"),
    ("bad_line_endings", "jobs.csv", b"id,title,notes,years\ra1,Engineer,one,1\r", "carriage"),
    ("bad_line_endings", "jobs.jsonl", b'{"id": "a1"}\r{"id": "a2"}\r', "carriage"),
]


@pytest.mark.parametrize(("reason", "name", "content", "named"), REFUSALS)
def test_a_file_that_cannot_be_read_as_a_whole_is_refused_naming_it(
    tmp_path: Path, reason: str, name: str, content: bytes, named: str
):
    path = tmp_path / name
    path.write_bytes(content)

    for read in (read_records, iter_batches):
        with pytest.raises(UnreadableFileError) as error:
            read(path, SPEC)
        assert (error.value.reason, error.value.path) == (reason, path)
        assert str(error.value).startswith(f"{path}: ")
        assert named in str(error.value)


def test_every_refusal_reason_has_a_case():
    assert {reason for reason, *_ in REFUSALS} == set(FILE_REJECT_REASONS)


def test_an_unnamed_column_is_ignored_even_twice(tmp_path: Path):
    path = write_csv(tmp_path / "jobs.csv", "id,title,notes,years,,", "a1,Engineer,x,3,,")

    assert [record["id"] for record in read_checked(path, SPEC).records] == ["a1"]


def test_a_missing_optional_column_is_null_in_csv_as_in_jsonl(tmp_path: Path):
    csv_path = write_csv(tmp_path / "jobs.csv", "id,title", "a1,Engineer")
    jsonl_path = tmp_path / "jobs.jsonl"
    jsonl_path.write_text('{"id": "a1", "title": "Engineer"}\n')

    from_csv, from_jsonl = read_checked(csv_path, SPEC), read_checked(jsonl_path, SPEC)

    assert from_csv.records[0]["notes"] is None
    assert from_csv.records[0]["years"] is None
    assert from_csv.records[0]["record_hash"] == from_jsonl.records[0]["record_hash"]


@pytest.mark.parametrize("content", ["", "\n\n", HEADER, HEADER + "\n", "\n" + HEADER + "\r\n\r\n"])
def test_an_empty_or_header_only_csv_has_no_rows(tmp_path: Path, content: str):
    path = tmp_path / "jobs.csv"
    path.write_text(content, newline="")

    batch = read_checked(path, SPEC)

    assert (batch.rows_read, batch.records, batch.quarantined) == (0, [], [])


@pytest.mark.parametrize("file_format", ["csv", "jsonl"])
def test_generated_files_with_every_bad_row_kind_account_for_every_line(
    tmp_path: Path, file_format: str
):
    candidates, _ = talent.generate(30, 0, seed=3)
    path = talent.write_records(
        tmp_path / f"candidates.{file_format}",
        candidates + candidates[:4],
        talent.CANDIDATE_SPEC,
        file_format=file_format,
        bad_rows=12,
        seed=3,
    )

    batch = read_checked(path, talent.CANDIDATE_SPEC)

    assert (batch.rows_read, batch.kept_count, batch.duplicates) == (46, 34, 4)


def test_quoted_values_round_trip_through_the_csv_writer(tmp_path: Path):
    values = ["plain", 'with "quotes"', "with, comma", "two\nlines", ' "lead', 'trail" ']
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "title", "notes", "years"])
    writer.writerows([f"a{n}", "Engineer", value, n] for n, value in enumerate(values))
    path = tmp_path / "jobs.csv"
    path.write_text(buffer.getvalue())

    batch = read_checked(path, SPEC)

    assert [record["notes"] for record in batch.records] == values
    assert batch.quarantined == []


def test_bad_bytes_in_a_multi_line_record_quarantine_the_whole_record(tmp_path: Path):
    path = tmp_path / "jobs.csv"
    path.write_bytes(b'id,title,notes,years\na1,Engineer,"first\nRen\xe9e",1\na2,Engineer,two,2\n')

    batch = read_checked(path, SPEC)

    assert reasons_by_line(batch) == {2: "invalid_encoding"}
    assert batch.quarantined[0].detail == "not UTF-8 at byte 22"
    assert batch.quarantined[0].raw_text == 'a1,Engineer,"first\nRen\ufffde",1'
    assert (batch.quarantined_lines, kept_lines(batch)) == (2, [4])


def test_a_quote_left_open_for_too_long_stops_holding_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(validation, "MAX_RECORD_CHARS", 100)
    rows = [f"a{n},Engineer,notes {n},{n}" for n in range(3, 30)]
    path = write_csv(tmp_path / "jobs.csv", HEADER, 'a1,"Engineer,x,1', "a2,Engineer,two,2", *rows)

    batch = read_checked(path, SPEC)

    assert reasons_by_line(batch) == {2: "malformed_row"}
    assert "over 100 characters" in batch.quarantined[0].detail
    assert kept_lines(batch) == list(range(3, 31))


def test_a_field_longer_than_the_csv_module_default_limit_is_oversized_not_malformed(tmp_path: Path):
    long_notes = "word " * 40_000
    path = write_csv(tmp_path / "jobs.csv", HEADER, f'a1,Engineer,"{long_notes}\nmore",1', "a2,x,y,2")

    batch = read_checked(path, SPEC)

    assert reasons_by_line(batch) == {2: "oversized_text"}
    assert kept_lines(batch) == [4]


@pytest.mark.parametrize("seed", range(40))
def test_every_line_of_a_garbled_csv_is_accounted_for(tmp_path: Path, seed: int):
    rng = random.Random(seed)
    pieces = ["a", "Engineer", '"', '""', ",", " ", "\n", "\r\n", "\r", "é", "\xff", "1"]
    lines = [
        "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        if rng.random() < 0.5
        else f"a{n},Engineer,notes {n},{n}"
        for n in range(30)
    ]
    path = tmp_path / "jobs.csv"
    path.write_bytes(
        (HEADER + "\n" + "\n".join(lines))
        .encode("utf-8", "surrogateescape")
        .replace("\xff".encode(), b"\xff")
    )

    read_checked(path, SPEC)
