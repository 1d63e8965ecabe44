"""Bulk Write files: rows → zipped CSVs within Zoho's limits, and the result CSV → outcomes.

The legacy key is always the first column, because Zoho's result file repeats only the first three
mapped columns (reference §5.4); results are matched by that key, never by row position.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import logging
import operator
import os
import re
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from syncd.credits import BULK_MAX_ROWS
from syncd.crm.upsert import RETRYABLE_CODES
from syncd.errors import CrmFatalError, CrmRetriableError, WorkFileError
from syncd.model import OUTCOME_KEY, BulkColumn, BulkFile, BulkRow, Outcome, OutcomeKind

logger = logging.getLogger(__name__)

CSV_NAME = "syncd.csv"


@dataclass(frozen=True)
class BulkLimits:
    """Where a Bulk Write file is cut (reference §5.1)."""

    max_rows: int = BULK_MAX_ROWS
    max_zipped_bytes: int = 25_000_000  # "25 MB", read as decimal megabytes to stay under it
    max_columns: int = 200
    # zlib may hold back compressed output it has not written yet; a file is closed while the
    # bytes on disk plus the next row plus this margin still fit.
    flush_margin: int = 1_000_000
    # Keeps the CSV member below ZIP64 sizes, which Zoho is not known to read.
    max_csv_bytes: int = 1 << 30


def build_bulk_files(
    unique_field: str,
    columns: Sequence[BulkColumn],
    rows: Iterable[BulkRow],
    directory: Path | None = None,
    limits: BulkLimits = BulkLimits(),
) -> Iterator[BulkFile]:
    """Stream ``rows`` into zipped CSVs, each within ``limits``; header = API names, key first.

    Each yielded ``BulkFile.path`` belongs to the caller, who deletes it once the job is applied.
    A file being written when the consumer stops early is deleted here. Raises ``ValueError``
    for a row whose cell count does not match ``columns``, or a key repeated within one file.
    """
    header = bulk_header(unique_field, columns, limits)
    current: _ZipCsv | None = None
    encode = _CsvLines()
    try:
        for block in _blocks(rows, _BLOCK_ROWS):
            # A block goes in with one CSV write when it surely fits; near a limit, or when
            # a row is faulty, row by row below, which cuts exactly and names the row.
            data = _block_fits(current, block, len(columns), encode, limits)
            if current is not None and data is not None:
                current.add_block(list(map(_KEY_OF, block)), data)
                continue
            for row in block:
                if len(row.cells) != len(columns):
                    raise ValueError(
                        f"row {row.key!r} has {len(row.cells)} cells for {len(columns)} columns"
                    )
                line = encode(row)
                if current is not None and not current.fits(line, limits):
                    finished, current = current.close(), None
                    yield finished
                if current is None:
                    current = _ZipCsv(directory, header)
                current.add(row.key, line)
        if current is not None:
            finished, current = current.close(), None
            yield finished
    except OSError as exc:  # ENOSPC, EACCES, EDQUOT: a full or read-only temp directory
        where = directory or tempfile.gettempdir()
        raise WorkFileError(
            f"cannot write a bulk file in {where}: {exc.strerror or exc}; nothing was sent and "
            "the rows stay pending. Free space there or point TMPDIR at a larger disk."
        ) from exc
    finally:
        if current is not None:
            current.discard()


def bulk_header(unique_field: str, columns: Sequence[BulkColumn], limits: BulkLimits) -> list[str]:
    """The CSV header row; refuses mappings Zoho would reject as a whole."""
    header = [unique_field, *(column.api_name for column in columns)]
    if len(header) > limits.max_columns:
        raise CrmFatalError(
            f"bulk write takes at most {limits.max_columns} columns; this mapping has "
            f"{len(header)} (the key column included): map fewer fields",
            code="HEADER_LIMIT_EXCEEDED",
        )
    if len(set(header)) != len(header):
        raise CrmFatalError(
            f"bulk write columns repeat a field (the key goes to {unique_field!r}): {header}",
            code="DUPLICATE_COLUMN",
        )
    return header


def _csv_line(cells: Sequence[str]) -> bytes:
    """One RFC 4180 record (quoted where needed, CRLF-terminated), UTF-8 encoded."""
    return _CsvLines()(cells)


_BLOCK_ROWS = 500
_KEY_OF = operator.itemgetter(0)  # a BulkRow's key, without the property call


def _blocks(rows: Iterable[BulkRow], size: int) -> Iterator[tuple[BulkRow, ...]]:
    """``itertools.batched`` (Python 3.12) for 3.11."""
    it = iter(rows)
    while block := tuple(itertools.islice(it, size)):
        yield block


def _block_fits(
    current: _ZipCsv | None,
    block: tuple[BulkRow, ...],
    width: int,
    encode: _CsvLines,
    limits: BulkLimits,
) -> bytes | None:
    """The block's CSV lines when all of it may go into ``current`` at once, else None."""
    if current is None or set(map(len, block)) != {width + 1}:  # the key, then the cells
        return None
    if not current.fits_rows(len(block), limits):
        return None
    data = encode.many(block)
    return data if current.fits(data, limits) else None


class _CsvLines:
    """``_csv_line`` with one writer for every row of a run (not a writer and buffer per row)."""

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\r\n")

    def __call__(self, cells: Sequence[str]) -> bytes:
        return self.many([cells])

    def many(self, rows: Sequence[Sequence[str]]) -> bytes:
        """Several records, one after the other, as one byte string."""
        text = _joined_lines(rows)
        if text is None:
            self._writer.writerows(rows)
            text = self._buffer.getvalue()
            self._buffer.seek(0)
            self._buffer.truncate()
        return text.encode("utf-8")


_NEEDS_QUOTES = re.compile('[",\r\n]')


def _joined_lines(rows: Sequence[Sequence[str]]) -> str | None:
    """The records ``csv.writer`` makes of ``rows``, made column by column: a column none of
    whose cells holds a comma, quote, CR or LF (numbers, dates, codes: most columns) is taken
    as it is, one search over the whole column; in the others, the cells holding one are
    quoted, quotes doubled. 1,000,000 rows of 11 cells, one of them free text with commas:
    0.9 s, against the writer's 2.0 s. None, for the writer to write them, when the records
    differ in width, hold one cell (the writer quotes a lone empty one) or a cell that is
    not text."""
    if not rows or len(widths := set(map(len, rows))) > 1 or widths.pop() < 2:
        return None
    columns: list[Sequence[str]] = list(zip(*rows, strict=True))
    try:
        for at, column in enumerate(columns):
            if _NEEDS_QUOTES.search("\x1f".join(column)) is not None:
                columns[at] = [_quoted(c) if _NEEDS_QUOTES.search(c) else c for c in column]
    except TypeError:  # a cell that is not text: the writer says what it makes of it
        return None
    return "\r\n".join(map(",".join, zip(*columns, strict=True))) + "\r\n"


def _quoted(cell: str) -> str:
    return '"' + cell.replace('"', '""') + '"'


_WRITE_BLOCK = 1 << 16
"""Lines are handed to the deflater in blocks of this many bytes: zipfile checksums and
compresses per write call, which per line costs more than the encoding itself."""


class _ZipCsv:
    """One zip being written: a single deflated CSV member streamed straight from the rows."""

    def __init__(self, directory: Path | None, header: Sequence[str]) -> None:
        fd, name = tempfile.mkstemp(prefix="syncd-bulk-", suffix=".zip", dir=directory)
        self.path = Path(name)
        self._raw = os.fdopen(fd, "wb")
        self._zip = zipfile.ZipFile(self._raw, "w", compression=zipfile.ZIP_DEFLATED)
        self._member = self._zip.open(CSV_NAME, "w")
        self._keys: list[str] = []
        self._seen: set[str] = set()
        self._csv_bytes = 0
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._write(_csv_line(header))

    def fits(self, line: bytes, limits: BulkLimits) -> bool:
        # Lines not yet deflated count at full size: the estimate never falls short.
        written = self._raw.tell() + self._pending_bytes
        zipped_estimate = written + len(line) + limits.flush_margin
        return (
            len(self._keys) < limits.max_rows
            and zipped_estimate <= limits.max_zipped_bytes
            and self._csv_bytes + len(line) <= limits.max_csv_bytes
        )

    def fits_rows(self, rows: int, limits: BulkLimits) -> bool:
        return len(self._keys) + rows <= limits.max_rows

    def add(self, key: str, line: bytes) -> None:
        if key in self._seen:
            raise ValueError(f"key {key!r} appears twice in one bulk file")
        self._seen.add(key)
        self._keys.append(key)
        self._write(line)

    def add_block(self, keys: list[str], data: bytes) -> None:
        """Rows whose lines are ``data``, added at once (a repeated key is refused as in add)."""
        fresh = set(keys)
        if len(fresh) != len(keys) or not self._seen.isdisjoint(fresh):
            repeated = next(k for i, k in enumerate(keys) if k in self._seen or k in keys[:i])
            raise ValueError(f"key {repeated!r} appears twice in one bulk file")
        self._seen |= fresh
        self._keys.extend(keys)
        self._write(data)

    def close(self) -> BulkFile:
        self._flush()
        self._member.close()
        self._zip.close()
        self._raw.close()
        size = self.path.stat().st_size
        logger.info(
            "bulk file %s: %d rows, %d bytes zipped",
            self.path.name,
            len(self._keys),
            size,
            extra={"event": "crm_bulk_file_built", "rows": len(self._keys), "bytes": size},
        )
        return BulkFile(str(self.path), tuple(self._keys), len(self._keys), size)

    def discard(self) -> None:
        with contextlib.suppress(OSError):  # a full disk fails the close too; remove it anyway
            self._member.close()
            self._zip.close()
            self._raw.close()
        self.path.unlink(missing_ok=True)

    def _write(self, line: bytes) -> None:
        self._pending.append(line)
        self._pending_bytes += len(line)
        self._csv_bytes += len(line)
        if self._pending_bytes >= _WRITE_BLOCK:
            self._flush()

    def _flush(self) -> None:
        self._member.write(b"".join(self._pending))
        self._pending.clear()
        self._pending_bytes = 0


def parse_bulk_result(data: bytes) -> list[Outcome]:
    """Outcomes from a downloaded result zip, one per key (the first column).

    The usual result (every row written, with its record id) is read as it is unzipped, only
    the key, STATUS and RECORD_ID of each row kept: a job's 25,000 rows as lists of every cell
    held about 12 MiB more at the drain's peak. Any other result is read again, row by row."""
    header, rows = result_rows(data)
    status_at = zoho_column(header, "STATUS")
    id_at = zoho_column(header, "RECORD_ID") if "RECORD_ID" in header else None
    written = _all_written(rows, status_at, id_at)
    if written is not None:
        keys, outcomes = written
    else:  # some row was not written: each row on its own
        header, rows = result_rows(data)
        listed = list(rows)
        keys = list(map(operator.itemgetter(0), listed))
        outcomes = [result_outcome(row[0], dict(zip(header, row, strict=False))) for row in listed]
    if len(set(keys)) == len(keys):  # the usual result: no key named twice
        return outcomes
    # A key named twice keeps its last row.
    return list(dict(zip(keys, outcomes, strict=True)).values())


_UNREADABLE = (zipfile.BadZipFile, zlib.error, EOFError, ValueError, csv.Error)
"""What reading a damaged result raises: a bad archive, checksum or deflate stream, one cut
short, offsets out of the file (ValueError), bytes that are not UTF-8 (UnicodeDecodeError is a
ValueError), a CSV the reader cannot split."""


def result_rows(data: bytes) -> tuple[list[str], Iterator[list[str]]]:
    """The result CSV's header (upper-cased) and its non-empty rows, read as they are unzipped:
    a result with no CSV or no STATUS column, or damage found on the way, wherever it is, is
    BAD_RESULT. The sync's outcomes and `syncd import`'s result rows are read through it."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = [n for n in archive.namelist() if n.lower().endswith(".csv")]
        if not names:
            raise CrmRetriableError("the bulk result zip holds no CSV", code="BAD_RESULT")
        text = io.TextIOWrapper(archive.open(names[0]), encoding="utf-8-sig", newline="")
        reader = csv.reader(text)
        header = [cell.strip().upper() for cell in next(reader, [])]
    except _UNREADABLE as exc:
        raise CrmRetriableError(f"the bulk result is unreadable: {exc}", code="BAD_RESULT") from exc
    if "STATUS" not in header:
        raise CrmRetriableError("the bulk result CSV has no STATUS column", code="BAD_RESULT")
    return header, _checked(filter(None, reader))


def _checked(rows: Iterator[list[str]]) -> Iterator[list[str]]:
    try:
        yield from rows
    except _UNREADABLE as exc:
        raise CrmRetriableError(
            f"the bulk result CSV is unreadable: {exc}", code="BAD_RESULT"
        ) from exc


def zoho_column(header: list[str], name: str) -> int:
    """Where Zoho's own column ``name`` is in a result's upper-cased header: the last of that
    name. The result echoes the first three mapped columns under their uploaded names before
    its STATUS, RECORD_ID and ERRORS, and a mapped field may well be called Status (read
    case-insensitively, it is the same)."""
    return len(header) - 1 - header[::-1].index(name)


_WRITTEN_STATUS = {"ADDED": OutcomeKind.ADDED, "UPDATED": OutcomeKind.UPDATED}
_FIRST, _SECOND, _THIRD = map(operator.itemgetter, range(3))


def _all_written(
    rows: Iterator[list[str]], status_at: int, id_at: int | None
) -> tuple[Sequence[str], list[Outcome]] | None:
    """The keys and outcomes of ``rows`` when every one is ADDED or UPDATED (as Zoho spells
    them) with its record id: the usual result, read column by column without a Python call
    per row (2.6 µs a row before). None when any row is otherwise (or too short to say)."""
    if id_at is None:
        return None
    try:
        picked = list(map(operator.itemgetter(0, status_at, id_at), rows))
    except IndexError:  # a row too short for Zoho's columns
        return None
    if not picked:
        return [], []
    # Column by column with a getter each: zip(*picked) passes every row as an argument.
    keys = list(map(_FIRST, picked))
    kinds = list(map(_WRITTEN_STATUS.get, map(_SECOND, picked)))
    ids = list(map(str.strip, map(_THIRD, picked)))
    del picked
    if None in kinds or "" in ids:
        return None
    written = cast(list[OutcomeKind], kinds)  # None is not among them (above)
    return keys, Outcome.written_many(keys, written, ids)


def result_outcome(key: str, cells: dict[str, str]) -> Outcome:
    """One result row (STATUS, RECORD_ID, ERRORS; any spelling case) as an outcome."""
    status = cells.get("STATUS", "").strip().upper()
    record_id = cells.get("RECORD_ID", "").strip() or None
    if status in ("ADDED", "UPDATED"):
        return Outcome(key, OutcomeKind(status.lower()), record_id=record_id)
    errors = cells.get("ERRORS", "").strip()
    if status == "SKIPPED":
        code, field = parse_errors_cell(errors)
        code = code or "SKIPPED"
        kind = OutcomeKind.RETRY if code in RETRYABLE_CODES else OutcomeKind.SKIPPED
        return Outcome(key, kind, code=code, field=field, message=errors or None)
    # UNPROCESSED, or a status we do not know: Zoho did not write the row, so send it again.
    return Outcome(key, OutcomeKind.RETRY, code=status or "NO_STATUS", message=errors or None)


def parse_errors_cell(cell: str) -> tuple[str | None, str | None]:
    """First code and column of ``CODE-col1,col2:CODE2-col3`` (reference §5.4)."""
    first = cell.split(":", 1)[0].strip()
    if not first:
        return None, None
    code, _, columns = first.partition("-")
    field = columns.split(",", 1)[0].strip()
    return code.strip(), field or None


def complete_outcomes(keys: Sequence[str], outcomes: Sequence[Outcome]) -> list[Outcome]:
    """Exactly one outcome per key of the uploaded file; a key Zoho did not report is RETRY.

    Outcomes of other keys are dropped here; ``syncd.crm.bulk`` refuses such a result before.
    """
    by_key = dict(zip(map(OUTCOME_KEY, outcomes), outcomes, strict=True))
    found = list(map(by_key.get, keys))  # made in C: the usual result names every key
    if None not in found:
        return cast(list[Outcome], found)
    return [
        by_key.get(key)
        or Outcome(key, OutcomeKind.RETRY, code="NOT_IN_RESULT", message="missing from the result")
        for key in keys
    ]
