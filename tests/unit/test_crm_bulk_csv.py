"""Bulk Write CSV/zip building and result parsing (syncd.crm.bulk_csv)."""

from __future__ import annotations

import csv
import io
import os
import random
import zipfile
from pathlib import Path

import pytest

from syncd.crm.bulk_csv import (
    BulkLimits,
    _CsvLines,
    build_bulk_files,
    complete_outcomes,
    parse_bulk_result,
    parse_errors_cell,
)
from syncd.errors import CrmFatalError, CrmRetriableError
from syncd.model import BulkColumn, BulkRow, Outcome, OutcomeKind
from tests.helpers.text import REPORTED, tricky_texts

COLUMNS = [BulkColumn("Name"), BulkColumn("Order_Date", "yyyy-MM-dd")]


def _read(path: str) -> list[list[str]]:
    with zipfile.ZipFile(path) as archive:
        assert len(archive.namelist()) == 1
        text = archive.read(archive.namelist()[0]).decode("utf-8")
    assert "\r\n" in text
    return list(csv.reader(io.StringIO(text, newline="")))


def test_csv_is_rfc4180_utf8_key_first(tmp_path: Path) -> None:
    """Header = API names with the unique field first; quotes, commas, newlines survive."""
    rows = [BulkRow("k1", ['Grüße, "A"\nline 2', "2024-01-02"]), BulkRow("k2", ["", ""])]
    [file] = build_bulk_files("parent_id", COLUMNS, rows, tmp_path)
    assert _read(file.path) == [
        ["parent_id", "Name", "Order_Date"],
        ["k1", 'Grüße, "A"\nline 2', "2024-01-02"],
        ["k2", "", ""],
    ]
    assert (file.rows, list(file.keys)) == (2, ["k1", "k2"])
    assert file.zipped_bytes == Path(file.path).stat().st_size


def test_reported_notes_value_is_quoted_not_backslash_escaped(tmp_path: Path) -> None:
    """The value once seen as 'Gift wrap\\' is one RFC 4180 cell: quoted, quotes doubled.

    A writer escaping with backslashes instead (QUOTE_NONE + escapechar) makes a standard reader
    such as Zoho's end the cell at the comma as exactly 'Gift wrap\\'.
    """
    notes = [BulkColumn("Notes")]
    [file] = build_bulk_files("parent_id", notes, [BulkRow("3", [REPORTED])], tmp_path)
    with zipfile.ZipFile(file.path) as archive:
        text = archive.read(archive.namelist()[0]).decode("utf-8")
    assert text == 'parent_id,Notes\r\n3,"Gift wrap, ""fragile""\nDeliver to Müller #3"\r\n'


def test_tricky_text_round_trips_across_split_files(tmp_path: Path) -> None:
    """Commas, quotes, CR/LF, backslashes and unicode come back cell for cell across file cuts."""
    texts = tricky_texts(seed=4180, count=300)
    rows = [BulkRow(str(i), [text, texts[-1 - i]]) for i, text in enumerate(texts)]
    columns = [BulkColumn("Notes"), BulkColumn("Name")]
    files = build_bulk_files("parent_id", columns, rows, tmp_path, BulkLimits(max_rows=7))
    read = [cells for f in files for cells in _read(f.path)[1:]]
    assert read == [[row.key, *row.cells] for row in rows]


def test_split_at_row_limit(tmp_path: Path) -> None:
    """A new file starts when the row limit is reached; every key lands in exactly one file."""
    rows = (BulkRow(str(i), [f"n{i}", ""]) for i in range(25))
    files = list(build_bulk_files("parent_id", COLUMNS, rows, tmp_path, BulkLimits(max_rows=10)))
    assert [f.rows for f in files] == [10, 10, 5]
    assert [k for f in files for k in f.keys] == [str(i) for i in range(25)]
    assert all(_read(f.path)[0] == ["parent_id", "Name", "Order_Date"] for f in files)


def test_split_keeps_zipped_size_under_limit(tmp_path: Path) -> None:
    """Incompressible rows are cut into files that each stay under the zipped-size cap."""
    limits = BulkLimits(max_zipped_bytes=300_000, flush_margin=100_000)
    rows = (BulkRow(str(i), [os.urandom(1500).hex(), ""]) for i in range(400))
    files = list(build_bulk_files("parent_id", COLUMNS, rows, tmp_path, limits))
    assert len(files) > 2
    assert all(f.zipped_bytes <= 300_000 for f in files)
    assert sum(f.rows for f in files) == 400


def test_large_batches_are_cut_exactly_and_round_trip(tmp_path: Path) -> None:
    """Thousands of rows go in blocks: the cuts fall on the exact row limit and every cell,
    quotes and line breaks included, comes back in order."""
    texts = tricky_texts(seed=25, count=2345)
    rows = [BulkRow(str(i), [text, f"2024-01-{i % 28 + 1:02d}"]) for i, text in enumerate(texts)]
    files = list(build_bulk_files("parent_id", COLUMNS, rows, tmp_path, BulkLimits(max_rows=1000)))
    assert [f.rows for f in files] == [1000, 1000, 345]
    assert [cells for f in files for cells in _read(f.path)[1:]] == [
        [row.key, *row.cells] for row in rows
    ]
    assert [k for f in files for k in f.keys] == [row.key for row in rows]


def test_large_batches_keep_zipped_size_under_limit(tmp_path: Path) -> None:
    limits = BulkLimits(max_zipped_bytes=300_000, flush_margin=50_000)
    rows = (BulkRow(str(i), [os.urandom(150).hex(), ""]) for i in range(3000))
    files = list(build_bulk_files("parent_id", COLUMNS, rows, tmp_path, limits))
    assert len(files) >= 2
    assert all(f.zipped_bytes <= 300_000 for f in files)
    assert all(f.zipped_bytes >= 150_000 for f in files[:-1])  # cut near the cap, not early
    assert sum(f.rows for f in files) == 3000


@pytest.mark.parametrize("at", [0, 499, 500, 901])
def test_a_bad_row_deep_in_a_batch_is_named(tmp_path: Path, at: int) -> None:
    rows = [BulkRow(str(i), ["n", ""]) for i in range(1200)]
    short = [*rows[:at], BulkRow(str(at), ["n"]), *rows[at + 1 :]]
    with pytest.raises(ValueError, match=f"row '{at}' has 1 cells"):
        list(build_bulk_files("parent_id", COLUMNS, short, tmp_path))
    repeated = [*rows[:at], BulkRow("7" if at != 7 else "8", ["n", ""]), *rows[at + 1 :]]
    with pytest.raises(ValueError, match=r"'[78]' appears twice"):
        list(build_bulk_files("parent_id", COLUMNS, repeated, tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_abandoned_file_is_deleted(tmp_path: Path) -> None:
    """A file still being written when the consumer stops is removed; handed-out files stay."""
    rows = (BulkRow(str(i), ["n", ""]) for i in range(15))
    files = build_bulk_files("parent_id", COLUMNS, rows, tmp_path, BulkLimits(max_rows=10))
    first = next(files)
    files.close()
    assert sorted(tmp_path.iterdir()) == [Path(first.path)]


def test_limits_and_bad_rows_are_refused(tmp_path: Path) -> None:
    """Over 200 columns, a repeated column, a short row and a repeated key are errors."""
    too_wide = [BulkColumn(f"F{i}") for i in range(200)]
    with pytest.raises(CrmFatalError, match="at most 200 columns"):
        list(build_bulk_files("parent_id", too_wide, [], tmp_path))
    with pytest.raises(CrmFatalError):
        list(build_bulk_files("parent_id", [BulkColumn("parent_id")], [], tmp_path))
    with pytest.raises(ValueError, match="cells"):
        list(build_bulk_files("parent_id", COLUMNS, [BulkRow("a", ["x"])], tmp_path))
    with pytest.raises(ValueError, match="twice"):
        list(build_bulk_files("parent_id", COLUMNS, [BulkRow("a", ["", ""])] * 2, tmp_path))
    assert list(tmp_path.iterdir()) == []


def _result_zip(text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("Orders-syncd.csv", text.encode("utf-8"))
    return buffer.getvalue()


def test_result_rows_become_outcomes_by_key() -> None:
    """Each status kind maps to its outcome, keyed by the first column, whatever the row order."""
    data = _result_zip(
        "parent_id,Name,Order_Date,STATUS,RECORD_ID,ERRORS\r\n"
        'k3,c,,Skipped,,"MANDATORY_NOT_FOUND-Name,Order_Date:DUPLICATE_DATA-parent_id"\r\n'
        "k1,a,,ADDED,111,\r\n"
        "k2,b,,updated,222,\r\n"
        "k4,d,,UNPROCESSED,,\r\n"
        "k5,e,,SKIPPED,,CANNOT_PROCESS-Name\r\n"
    )
    by_key = {o.key: o for o in parse_bulk_result(data)}
    assert by_key["k1"] == Outcome("k1", OutcomeKind.ADDED, record_id="111")
    assert by_key["k2"] == Outcome("k2", OutcomeKind.UPDATED, record_id="222")
    assert by_key["k3"] == Outcome(
        "k3",
        OutcomeKind.SKIPPED,
        code="MANDATORY_NOT_FOUND",
        field="Name",
        message="MANDATORY_NOT_FOUND-Name,Order_Date:DUPLICATE_DATA-parent_id",
    )
    assert by_key["k4"].kind is OutcomeKind.RETRY
    assert by_key["k5"].kind is OutcomeKind.RETRY


@pytest.mark.parametrize("skipped", ["", 'k3,ADDED,333,SKIPPED,,"MANDATORY_NOT_FOUND-Name"\r\n'])
def test_zoho_columns_are_told_from_echoed_fields_of_the_same_name(skipped: str) -> None:
    """The result echoes the first three mapped columns: fields named Status and Record_Id
    come before Zoho's STATUS and RECORD_ID, whose cells decide the outcome (whether every
    row was written, or one was skipped and the rows are read one by one)."""
    data = _result_zip(
        "parent_id,Status,Record_Id,STATUS,RECORD_ID,ERRORS\r\n"
        "k1,UPDATED,999,ADDED,111,\r\n"
        "k2,ADDED,888,UPDATED,222,\r\n" + skipped
    )
    assert parse_bulk_result(data)[:2] == [
        Outcome("k1", OutcomeKind.ADDED, record_id="111"),
        Outcome("k2", OutcomeKind.UPDATED, record_id="222"),
    ]


@pytest.mark.parametrize("other", ["k3,UPDATED,333,\r\n", "k3,SKIPPED,,CANNOT_PROCESS-Name\r\n"])
def test_a_key_named_twice_in_a_result_keeps_its_last_row(other: str) -> None:
    """A key the result names twice is one outcome, its last row's, at its first place:
    whether every row was written (read column by column) or not (row by row)."""
    data = _result_zip(
        "parent_id,STATUS,RECORD_ID,ERRORS\r\nk1,ADDED,111,\r\nk2,ADDED,222,\r\n"
        + other
        + "k1,UPDATED,999,\r\n"
    )
    outcomes = parse_bulk_result(data)
    assert [o.key for o in outcomes] == ["k1", "k2", "k3"]
    assert outcomes[0] == Outcome("k1", OutcomeKind.UPDATED, record_id="999")


def test_result_with_bom_and_lower_headers() -> None:
    """A UTF-8 BOM and lower-case headers are read the same."""
    data = _result_zip("\ufeffparent_id,status,record_id,errors\nk1,added,1,\n")
    assert parse_bulk_result(data) == [Outcome("k1", OutcomeKind.ADDED, record_id="1")]


def test_unreadable_result_is_temporary() -> None:
    """A corrupt download or a CSV without STATUS raises instead of inventing outcomes."""
    with pytest.raises(CrmRetriableError):
        parse_bulk_result(b"not a zip")
    with pytest.raises(CrmRetriableError):
        parse_bulk_result(_result_zip("a,b\n1,2\n"))


@pytest.mark.parametrize("damage", ["bad bytes in the middle", "cut short", "not UTF-8"])
def test_a_result_found_damaged_while_read_is_temporary(damage: str) -> None:
    """The CSV is read as it is unzipped: damage found past the header (a corrupt or cut
    deflate stream, a bad checksum, bytes that are not UTF-8) is BAD_RESULT, not a traceback
    and not the outcomes of the rows before it."""
    ids = random.Random(7).sample(range(10**12, 10**13), 20_000)  # little to compress
    rows = "".join(f"k{i},ADDED,{record_id},\r\n" for i, record_id in enumerate(ids))
    text = ("parent_id,STATUS,RECORD_ID,ERRORS\r\n" + rows).encode()
    if damage == "not UTF-8":
        text = text.replace(b"k19999,", b"k\xff,")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("Orders-syncd.csv", text)
    data = bytearray(buffer.getvalue())
    body = data.index(b"Orders-syncd.csv") + len("Orders-syncd.csv")  # the local header's end
    late = body + (data.rindex(b"PK\x01\x02") - body) * 3 // 4  # far past the header
    if damage == "bad bytes in the middle":
        data[late : late + 40] = bytes(40)
    elif damage == "cut short":
        data = data[:late] + data[data.rindex(b"PK\x01\x02") :]
    with pytest.raises(CrmRetriableError) as raised:
        parse_bulk_result(bytes(data))
    assert raised.value.code == "BAD_RESULT"


def test_a_row_too_short_for_zohos_columns_is_read_on_its_own() -> None:
    """A row that ends before RECORD_ID sends the result through the row-by-row reader: its
    rows keep their outcomes, the short one its status without a record id."""
    data = _result_zip("parent_id,STATUS,RECORD_ID,ERRORS\r\nk1,ADDED,111,\r\nk2,ADDED\r\n")
    assert parse_bulk_result(data) == [
        Outcome("k1", OutcomeKind.ADDED, record_id="111"),
        Outcome("k2", OutcomeKind.ADDED, record_id=None),
    ]


def test_errors_cell() -> None:
    """The first code and its first column are reported."""
    assert parse_errors_cell("MANDATORY_NOT_FOUND-Company,Last_Name:DUPLICATE_DATA-Email") == (
        "MANDATORY_NOT_FOUND",
        "Company",
    )
    assert parse_errors_cell("INVALID_DATA") == ("INVALID_DATA", None)
    assert parse_errors_cell("") == (None, None)


def test_complete_outcomes_one_per_key() -> None:
    """Keys Zoho did not report are RETRY; result rows for foreign keys are dropped."""
    outcomes = [Outcome("a", OutcomeKind.ADDED), Outcome("zz", OutcomeKind.ADDED)]
    done = complete_outcomes(["a", "b"], outcomes)
    assert [(o.key, o.kind) for o in done] == [("a", OutcomeKind.ADDED), ("b", OutcomeKind.RETRY)]


@pytest.mark.parametrize("seed", range(20))
def test_csv_records_are_the_standard_writers_whatever_the_cells(seed: int) -> None:
    """Records are made column by column, quoting only the cells that need it: the bytes are
    the writer's (quotes, commas, lone CR or LF, empty cells, non-ASCII, in any mix; records
    of one cell or of several widths, which the writer writes itself)."""
    rng = random.Random(seed)
    alphabet = ["a", "7", ",", '"', "\r", "\n", "\r\n", " ", "é", "-", ""]
    plain = ["a", "7", " ", "é", "-", ""]

    def cell(chars: list[str]) -> str:
        return "".join(rng.choice(chars) for _ in range(rng.randint(0, 4)))

    for _ in range(50):
        chars = plain if rng.random() < 0.5 else alphabet
        width = rng.randint(1, 5)
        rows = [[cell(chars) for _ in range(width)] for _ in range(rng.randint(1, 6))]
        if rng.random() < 0.1:
            rows.append([cell(chars) for _ in range(width + 1)])
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\r\n").writerows(rows)
        assert _CsvLines().many(rows) == buffer.getvalue().encode("utf-8"), rows


def test_csv_cells_that_are_not_text_are_written_as_the_writer_writes_them() -> None:
    cells: list[object] = ["k", 7, None, 1.5]  # on purpose not all text
    assert _CsvLines().many([cells]) == b"k,7,,1.5\r\n"  # type: ignore[list-item]
