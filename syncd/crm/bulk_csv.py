"""Bulk Write files: rows → zipped CSVs within Zoho's limits, and the result CSV → outcomes.

The legacy key is always the first column, because Zoho's result file repeats only the first three
mapped columns (reference §5.4); results are matched by that key, never by row position.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from syncd.crm.credits import BULK_MAX_ROWS
from syncd.crm.upsert import RETRYABLE_CODES
from syncd.errors import CrmFatalError, CrmRetriableError
from syncd.model import BulkColumn, BulkFile, BulkRow, Outcome, OutcomeKind

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
    try:
        for row in rows:
            if len(row.cells) != len(columns):
                raise ValueError(
                    f"row {row.key!r} has {len(row.cells)} cells for {len(columns)} columns"
                )
            line = _csv_line([row.key, *row.cells])
            if current is not None and not current.fits(line, limits):
                finished, current = current.close(), None
                yield finished
            if current is None:
                current = _ZipCsv(directory, header)
            current.add(row.key, line)
        if current is not None:
            finished, current = current.close(), None
            yield finished
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
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(cells)
    return buffer.getvalue().encode("utf-8")


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
        self._write(_csv_line(header))

    def fits(self, line: bytes, limits: BulkLimits) -> bool:
        zipped_estimate = self._raw.tell() + len(line) + limits.flush_margin
        return (
            len(self._keys) < limits.max_rows
            and zipped_estimate <= limits.max_zipped_bytes
            and self._csv_bytes + len(line) <= limits.max_csv_bytes
        )

    def add(self, key: str, line: bytes) -> None:
        if key in self._seen:
            raise ValueError(f"key {key!r} appears twice in one bulk file")
        self._seen.add(key)
        self._keys.append(key)
        self._write(line)

    def close(self) -> BulkFile:
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
        self._member.close()
        self._zip.close()
        self._raw.close()
        self.path.unlink(missing_ok=True)

    def _write(self, line: bytes) -> None:
        self._member.write(line)
        self._csv_bytes += len(line)


def parse_bulk_result(data: bytes) -> list[Outcome]:
    """Outcomes from a downloaded result zip, one per key (the first column)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = [n for n in archive.namelist() if n.lower().endswith(".csv")]
            if not names:
                raise CrmRetriableError("the bulk result zip holds no CSV", code="BAD_RESULT")
            text = archive.read(names[0]).decode("utf-8-sig")
    except (zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise CrmRetriableError(f"the bulk result is unreadable: {exc}", code="BAD_RESULT") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [cell.strip().upper() for cell in next(reader, [])]
    if "STATUS" not in header:
        raise CrmRetriableError("the bulk result CSV has no STATUS column", code="BAD_RESULT")
    outcomes: dict[str, Outcome] = {}
    for row in reader:
        if row:
            cells = dict(zip(header, row, strict=False))
            outcomes[row[0]] = result_outcome(row[0], cells)
    return list(outcomes.values())


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
    """Exactly one outcome per key of the uploaded file; a key Zoho did not report is RETRY."""
    by_key = {outcome.key: outcome for outcome in outcomes}
    unknown = by_key.keys() - set(keys)
    if unknown:
        logger.warning(
            "bulk result names %d keys that were not in the file",
            len(unknown),
            extra={"event": "crm_bulk_result_unknown_keys", "count": len(unknown)},
        )
    return [
        by_key.get(key)
        or Outcome(key, OutcomeKind.RETRY, code="NOT_IN_RESULT", message="missing from the result")
        for key in keys
    ]
