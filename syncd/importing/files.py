"""`syncd import`'s files: the input CSV read by record, cut into parts within Zoho's limits,
and Zoho's per-row results merged back into ``FILE.results.csv`` beside the input.

File work only: no CRM and no state store (``syncd.importing.run`` drives the jobs). Records
are numbered from 1 in file order (the header is not one); a record may span several lines
(a quoted newline), so messages name both the record and the line it starts on.
"""

from __future__ import annotations

import csv
import hashlib
import heapq
import io
import json
import zipfile
from collections import defaultdict, deque
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from syncd.crm.bulk_csv import CSV_NAME, BulkLimits, zoho_column
from syncd.errors import UsageError

RESULT_COLUMNS = ("STATUS", "RECORD_ID", "ERRORS")
DONE_STATUSES = frozenset({"ADDED", "UPDATED", "SKIPPED"})
"""A row Zoho answered so is settled; any other status (UNPROCESSED …) goes again on a re-run."""
NOT_SENT = ("UNPROCESSED", "", "NOT_IMPORTED: run the same import again to send it")

_HASH_CHUNK = 1 << 20
DEFAULT_LIMITS = BulkLimits()


@dataclass(frozen=True)
class ImportSpec:
    """What the operator asked: which file goes into which module, and how."""

    path: Path
    module: str
    operation: str  # insert | update | upsert
    find_by: str | None
    ignore_empty: bool = False

    @property
    def results_path(self) -> Path:
        """``orders.csv`` → ``orders.results.csv`` (any other name gets ``.results.csv``)."""
        stem = self.path.name[:-4] if self.path.name.lower().endswith(".csv") else self.path.name
        return self.path.with_name(f"{stem}.results.csv")

    @property
    def parts_dir(self) -> Path:
        """Where an unfinished import keeps its parts and their results, for a re-run."""
        return self.results_path.with_name(self.results_path.name[: -len(".csv")] + ".parts")


@dataclass(frozen=True)
class InputRecord:
    number: int  # 1-based, in file order
    line: int  # the line the record starts on (the header is line 1)
    cells: list[str]


@dataclass(frozen=True)
class Part:
    """One zipped CSV for one job: the header (``find_by`` first), then its records."""

    number: int
    path: Path
    records: tuple[int, ...]
    zipped_bytes: int


def read_header(path: Path, limits: BulkLimits = DEFAULT_LIMITS) -> list[str]:
    """The header row, checked: field API names, none blank or repeated, within the limit."""
    with _open(path) as stream:
        header = next(_rows(path, stream), None)
    if header is None:
        raise UsageError(f"{path}: the file is empty; the first line must name the fields")
    names = [cell.strip() for cell in header.cells]
    if any(not name for name in names):
        raise UsageError(f"{path}: line 1: the header has an empty column name")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise UsageError(f"{path}: line 1: the header names {', '.join(twice)} twice")
    if len(names) > limits.max_columns:
        raise UsageError(
            f"{path}: line 1: {len(names)} columns; Zoho's bulk write takes at most "
            f"{limits.max_columns}"
        )
    return names


def records(path: Path, width: int) -> Iterator[InputRecord]:
    """The data records, each checked to have ``width`` cells; blank lines are skipped."""
    with _open(path) as stream:
        rows = _rows(path, stream)
        next(rows, None)  # the header
        for number, row in enumerate(rows, start=1):
            if len(row.cells) != width:
                raise UsageError(
                    f"{path}: line {row.line} (record {number}): {len(row.cells)} cells, "
                    f"the header has {width}"
                )
            yield InputRecord(number, row.line, row.cells)


def check_records(path: Path, header: Sequence[str], find_by: str | None, fold: bool) -> int:
    """Read every record once before anything is sent; the number of records.

    With ``find_by``, each record needs a value there, and no two the same one: Zoho's
    handling of both within one job is undocumented (reference §9 #18, §5.7), so they are
    refused here, where the operator can fix the file. ``fold``: values differing only in case
    are the same (a case-insensitive unique field).
    """
    index = header.index(find_by) if find_by is not None else None
    seen: dict[str, int] = {}
    count = 0
    for record in records(path, len(header)):
        count = record.number
        if index is None:
            continue
        value = record.cells[index]
        if not value.strip():
            raise UsageError(
                f"{path}: line {record.line} (record {record.number}): {find_by} is empty; "
                "every row needs a value in the --find-by column"
            )
        folded = value.casefold() if fold else value
        if folded in seen:
            raise UsageError(
                f"{path}: line {record.line} (record {record.number}): {find_by} {value!r} "
                f"repeats record {seen[folded]}; each value may appear once per import"
            )
        seen[folded] = record.number
    if count == 0:
        raise UsageError(f"{path}: the file has a header but no records")
    return count


def fingerprint(spec: ImportSpec) -> str:
    """The import's identity: the file's bytes and what is done with them."""
    digest = hashlib.sha256()
    with _binary(spec.path) as stream:
        for chunk in iter(lambda: stream.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    asked = [spec.module.casefold(), spec.operation, spec.find_by or "", str(spec.ignore_empty)]
    digest.update(json.dumps(asked).encode())
    return digest.hexdigest()


def upload_order(header: Sequence[str], find_by: str | None) -> list[int]:
    """Column indexes as uploaded: the find_by column first, because Zoho's result repeats
    only the first three columns (reference §5.4) and results are matched by it."""
    order = list(range(len(header)))
    if find_by is not None:
        first = header.index(find_by)
        order.remove(first)
        order.insert(0, first)
    return order


def write_parts(
    path: Path,
    header: Sequence[str],
    find_by: str | None,
    directory: Path,
    *,
    skip: Iterable[int] = (),
    first_number: int = 1,
    limits: BulkLimits = DEFAULT_LIMITS,
) -> Generator[Part, None, None]:
    """Cut the records not in ``skip`` into zipped parts within ``limits``, each with the
    header; a record is never split (quoted newlines stay inside their cell)."""
    order = upload_order(header, find_by)
    done = set(skip)
    upload_header = [header[i] for i in order]
    current: _PartWriter | None = None
    number = first_number
    try:
        for record in records(path, len(header)):
            if record.number in done:
                continue
            line = _csv_line([record.cells[i] for i in order])
            if current is not None and not current.fits(line, limits):
                # Forgotten before the yield: a consumer that stops there owns the file.
                finished, current, number = current.close(), None, number + 1
                yield finished
            if current is None:
                current = _PartWriter(directory / f"part-{number:05d}.zip", upload_header)
            current.add(record.number, line)
        if current is not None:
            finished, current = current.close(), None
            yield finished
    finally:
        if current is not None:
            current.discard()


def part_rows(part_path: Path) -> list[list[str]]:
    """The rows of a part's zipped CSV, header first, as they were uploaded."""
    with zipfile.ZipFile(part_path) as archive:
        text = archive.read(CSV_NAME).decode("utf-8")
    return [row for row in csv.reader(io.StringIO(text, newline="")) if row]


def match_results(
    numbers: Sequence[int], uploaded: Sequence[Sequence[str]], result: Sequence[Sequence[str]]
) -> list[tuple[int, str, str, str]]:
    """(record number, STATUS, RECORD_ID, ERRORS) for each uploaded row.

    Zoho repeats the first (up to three) uploaded columns in each result row; a row is matched
    by them, never by position alone (identical echoes are taken in file order). A row the
    result does not name is UNPROCESSED, so a re-run sends it again.
    """
    header = [cell.strip().upper() for cell in result[0]]
    echo = len(header) - len(RESULT_COLUMNS)
    at = {name: zoho_column(header, name) for name in RESULT_COLUMNS if name in header}
    waiting: dict[tuple[str, ...], deque[int]] = defaultdict(deque)
    for number, row in zip(numbers, uploaded, strict=True):
        waiting[tuple(row[:echo])].append(number)
    found: dict[int, tuple[str, str, str]] = {}
    for row in result[1:]:
        queue = waiting.get(tuple(row[:echo]))
        if queue:
            cells = [row[at[name]] if name in at and at[name] < len(row) else "" for name in at]
            status, record_id, errors = (*cells, "", "", "")[:3]
            found[queue.popleft()] = (status.strip().upper(), record_id.strip(), errors.strip())
    missing = ("UNPROCESSED", "", "NOT_IN_RESULT: Zoho's result did not name this row")
    return [(n, *found.get(n, missing)) for n in numbers]


def write_part_results(
    directory: Path, part: int, rows: Sequence[tuple[int, str, str, str]]
) -> Path:
    """A part's results (record number order), written whole or not at all."""
    target = directory / f"part-{part:05d}.results.csv"
    temporary = target.with_suffix(".tmp")
    with temporary.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream, lineterminator="\r\n")
        writer.writerows(sorted(rows))
    temporary.replace(target)
    return target


def settled_records(directory: Path) -> set[int]:
    """Records an earlier run settled (ADDED, UPDATED or SKIPPED): not sent again."""
    settled: set[int] = set()
    for number, status, _id, _errors in _part_results(directory):
        if status in DONE_STATUSES:
            settled.add(number)
    return settled


def merge_results(spec: ImportSpec, header: Sequence[str]) -> dict[str, int]:
    """Write ``FILE.results.csv``: each input row, then STATUS, RECORD_ID, ERRORS; rows
    without an answer yet are UNPROCESSED. Returns the count of rows per status."""
    counts: dict[str, int] = defaultdict(int)
    answers = _part_results(spec.parts_dir)
    answer = next(answers, None)
    temporary = spec.results_path.with_name(spec.results_path.name + ".tmp")
    with temporary.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream, lineterminator="\r\n")
        writer.writerow([*header, *RESULT_COLUMNS])
        for record in records(spec.path, len(header)):
            while answer is not None and answer[0] < record.number:
                answer = next(answers, None)
            result = answer[1:] if answer is not None and answer[0] == record.number else NOT_SENT
            counts[result[0] or "UNPROCESSED"] += 1
            writer.writerow([*record.cells, *result])
    temporary.replace(spec.results_path)
    return dict(counts)


def _part_results(directory: Path) -> Iterator[tuple[int, str, str, str]]:
    """Every part's result rows, merged in record order (later parts win a repeated record)."""
    if not directory.is_dir():
        return iter(())
    files = sorted(directory.glob("part-*.results.csv"))
    streams = [
        ((int(r[0]), index, r[1], r[2], r[3]) for r in _read_rows(f))
        for index, f in enumerate(files)
    ]
    merged = heapq.merge(*streams)
    return ((n, status, rid, errors) for n, _part, status, rid, errors in _last_per_record(merged))


def _last_per_record(
    rows: Iterator[tuple[int, int, str, str, str]],
) -> Iterator[tuple[int, int, str, str, str]]:
    previous = None
    for row in rows:
        if previous is not None and previous[0] != row[0]:
            yield previous
        previous = row
    if previous is not None:
        yield previous


def _read_rows(path: Path) -> Iterator[list[str]]:
    with path.open(encoding="utf-8", newline="") as stream:
        yield from (row for row in csv.reader(stream) if row)


class _PartWriter:
    """One zip being written: a single deflated CSV member streamed from the records."""

    def __init__(self, path: Path, header: Sequence[str]) -> None:
        self.path = path
        self._raw = path.open("wb")
        self._zip = zipfile.ZipFile(self._raw, "w", compression=zipfile.ZIP_DEFLATED)
        self._member = self._zip.open(CSV_NAME, "w")
        self._records: list[int] = []
        self._csv_bytes = 0
        self._write(_csv_line(header))

    def fits(self, line: bytes, limits: BulkLimits) -> bool:
        zipped_estimate = self._raw.tell() + len(line) + limits.flush_margin
        return (
            len(self._records) < limits.max_rows
            and zipped_estimate <= limits.max_zipped_bytes
            and self._csv_bytes + len(line) <= limits.max_csv_bytes
        )

    def add(self, number: int, line: bytes) -> None:
        self._records.append(number)
        self._write(line)

    def close(self) -> Part:
        self._member.close()
        self._zip.close()
        self._raw.close()
        number = int(self.path.stem.split("-")[1])
        return Part(number, self.path, tuple(self._records), self.path.stat().st_size)

    def discard(self) -> None:
        self._member.close()
        self._zip.close()
        self._raw.close()
        self.path.unlink(missing_ok=True)

    def _write(self, line: bytes) -> None:
        self._member.write(line)
        self._csv_bytes += len(line)


def _csv_line(cells: Sequence[str]) -> bytes:
    """One RFC 4180 record (quoted where needed, CRLF-terminated), UTF-8 encoded."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(cells)
    return buffer.getvalue().encode("utf-8")


@dataclass(frozen=True)
class _Row:
    line: int
    cells: list[str]


def _rows(path: Path, stream: IO[str]) -> Iterator[_Row]:
    """CSV rows with the line each starts on; undecodable text or broken quoting is one
    clear line naming where."""
    reader = csv.reader(stream, strict=True)
    line = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:
            raise UsageError(
                f"{path}: after line {reader.line_num}: not UTF-8 text ({exc.reason}); save the "
                "file as UTF-8"
            ) from None
        except csv.Error as exc:
            raise UsageError(f"{path}: line {reader.line_num}: broken CSV: {exc}") from None
        if cells:
            yield _Row(line, cells)
        line = reader.line_num + 1


def _open(path: Path) -> IO[str]:
    """The input as text: UTF-8 (a BOM is dropped), records split by the csv module only."""
    try:
        return path.open(encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, not a CSV file") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None


def _binary(path: Path) -> IO[bytes]:
    try:
        return path.open("rb")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
