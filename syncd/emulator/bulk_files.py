"""Bulk Write uploads (reference 5.1): one zip holding one CSV, within Zoho's file limits.

Checked at upload: the body is a zip (else INVALID_FILE_FORMAT, HTTP per
``invalid_file_format_status``), it holds exactly one ``.csv`` (INVALID_FILE_FORMAT), the zip
is at most ``max_upload_bytes`` (413 FILE_TOO_LARGE), the CSV has at most ``max_bulk_columns``
columns (HEADER_LIMIT_EXCEEDED) and ``max_bulk_rows`` rows after the header (LIMIT_EXCEEDED).
Zoho names the file limits but not the codes for rows and columns; those two are the
emulator's choice. The zip is kept compressed and decompressed again when its job runs.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

from syncd.emulator.envelope import ApiError
from syncd.emulator.settings import EmulatorSettings

DELIMITERS = ",;:|"  # auto-detected from the header row (reference 5.6)


@dataclass(frozen=True)
class UploadedFile:
    """A file accepted by ``POST /crm/v8/upload``."""

    id: str
    csv_name: str
    data: bytes
    header: tuple[str, ...]
    delimiter: str
    rows: int
    created_time: str

    def iter_rows(self) -> Iterator[list[str]]:
        """The data rows (header skipped, blank lines dropped), decompressed lazily."""
        with zipfile.ZipFile(io.BytesIO(self.data)) as archive:
            text = archive.read(self.csv_name).decode("utf-8-sig")
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=self.delimiter)
        next(reader, None)
        return (row for row in reader if row)


def read_upload(data: bytes, settings: EmulatorSettings, file_id: str, now: str) -> UploadedFile:
    """Validate an uploaded zip; ``ApiError`` with Zoho's code when it breaks a rule."""
    if len(data) > settings.max_upload_bytes:
        raise ApiError(413, "FILE_TOO_LARGE", "File size too large to process")
    if settings.bulk_fast:  # benchmarks: no per-row work inside the client's upload call
        return _header_only(data, settings, file_id, now)
    csv_name, text = _single_csv(data, settings, now)
    delimiter = _delimiter(text)
    try:
        header, rows = _count(text, delimiter)
    except csv.Error as exc:  # e.g. a field over the csv module's size limit
        raise _bad_format(settings, now, f"the CSV file cannot be read: {exc}") from exc
    if not header:
        raise _bad_format(settings, now, "the CSV file has no header row")
    if len(header) > settings.max_bulk_columns:
        raise ApiError(
            400,
            "HEADER_LIMIT_EXCEEDED",
            f"the file has more than {settings.max_bulk_columns} columns",
            {"limit": settings.max_bulk_columns},
        )
    if rows > settings.max_bulk_rows:
        raise ApiError(
            400,
            "LIMIT_EXCEEDED",
            f"the file has more than {settings.max_bulk_rows} records",
            {"limit": settings.max_bulk_rows},
        )
    return UploadedFile(file_id, csv_name, data, tuple(header), delimiter, rows, now)


def _header_only(data: bytes, settings: EmulatorSettings, file_id: str, now: str) -> UploadedFile:
    """``bulk_fast``'s upload: the header read, the rows neither counted nor checked (the
    job reads them when it runs, on the emulator's worker; ``rows`` is then 0). Counting
    25,000 rows took about half of each upload call, time the benchmark counted as syncd's."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            csv_member = _csv_member(archive, settings, now)
            with archive.open(csv_member) as member:
                first = member.readline().decode("utf-8-sig")
    except (zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise _bad_format(settings, now) from exc
    delimiter = _delimiter(first)
    header = next(csv.reader([first], delimiter=delimiter), [])
    if not header:
        raise _bad_format(settings, now, "the CSV file has no header row")
    return UploadedFile(file_id, csv_member.filename, data, tuple(header), delimiter, 0, now)


def _count(text: str, delimiter: str) -> tuple[list[str], int]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = next(reader, [])
    return header, sum(1 for row in reader if row)


def upload_success(file: UploadedFile) -> dict[str, object]:
    return {
        "status": "success",
        "code": "FILE_UPLOAD_SUCCESS",
        "message": "file uploaded.",
        "details": {"file_id": file.id, "created_time": file.created_time},
    }


def _single_csv(data: bytes, settings: EmulatorSettings, now: str) -> tuple[str, str]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            member = _csv_member(archive, settings, now)
            return member.filename, archive.read(member).decode("utf-8-sig")
    except (zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise _bad_format(settings, now) from exc


def _csv_member(archive: zipfile.ZipFile, settings: EmulatorSettings, now: str) -> zipfile.ZipInfo:
    """The zip's one CSV file; INVALID_FILE_FORMAT for anything else."""
    members = [m for m in archive.infolist() if not m.is_dir()]
    if len(members) != 1 or not members[0].filename.lower().endswith(".csv"):
        raise _bad_format(settings, now, "the zip file must hold exactly one CSV file")
    return members[0]


def _bad_format(settings: EmulatorSettings, now: str, why: str | None = None) -> ApiError:
    message = "invalid file format. only zip format is supported"
    return ApiError(
        settings.invalid_file_format_status,
        "INVALID_FILE_FORMAT",
        f"{message}; {why}" if why else message,
        {"created_time": now},
    )


def _delimiter(text: str) -> str:
    first = text.split("\n", 1)[0]
    counts = {d: first.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","
