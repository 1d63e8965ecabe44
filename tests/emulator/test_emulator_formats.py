"""Java-style date patterns for Bulk Write columns, and the settings' typed overrides."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from syncd.emulator.formats import compile_pattern, make_parser
from syncd.emulator.settings import EmulatorSettings, with_overrides

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("pattern", "text", "stored"),
    [
        ("yyyy-MM-dd", "2024-02-29", "2024-02-29"),
        ("MM/dd/yyyy", "02/29/2024", "2024-02-29"),
        ("dd.MM.yy", "29.02.24", "2024-02-29"),
        ("d MMM yyyy", "9 Feb 2024", "2024-02-09"),
        ("yyyy/MM/dd", "2024/02/09", "2024-02-09"),
    ],
)
def test_date_patterns(pattern: str, text: str, stored: str) -> None:
    """Date columns parse in their declared pattern and are stored as yyyy-MM-dd."""
    assert make_parser(pattern, "date", BERLIN)(text) == stored


@pytest.mark.parametrize(
    ("pattern", "text", "stored"),
    [
        ("yyyy-MM-dd'T'HH:mm:ssXXX", "2024-07-01T10:00:00+02:00", "2024-07-01T10:00:00+02:00"),
        ("yyyy-MM-dd'T'HH:mm:ssXXX", "2024-07-01T08:00:00Z", "2024-07-01T10:00:00+02:00"),
        ("yyyy-MM-dd'T'HH:mm:ss.SSSZ", "2024-07-01T08:00:00.250+0000", "2024-07-01T10:00:00+02:00"),
        ("MM/dd/yyyy HH:mm:ss", "07/01/2024 10:00:00", "2024-07-01T10:00:00+02:00"),
        ("MM/dd/yyyy hh:mm a", "07/01/2024 10:30 PM", "2024-07-01T22:30:00+02:00"),
    ],
)
def test_datetime_patterns(pattern: str, text: str, stored: str) -> None:
    """Datetimes honour their offset, default to the org zone, and are stored with its offset."""
    assert make_parser(pattern, "datetime", BERLIN)(text) == stored


@pytest.mark.parametrize(
    ("pattern", "kind"),
    [
        ("yyyy-QQ-dd", "date"),
        ("yyyy-MM", "date"),
        ("yyyy-MM-dd HH:mm", "date"),
        ("yyyy-MM-dd", "datetime"),
        ("MM/dd/yyyy hh:mm", "datetime"),
        ("yyyy-MM-dd'T", "date"),
    ],
)
def test_unusable_patterns_are_refused(pattern: str, kind: str) -> None:
    """Unknown letters, missing parts, or time parts on a date field make a pattern invalid."""
    with pytest.raises(ValueError, match=r"pattern|lacks|time|quote|needs"):
        compile_pattern(pattern, kind)


@pytest.mark.parametrize("text", ["2024-13-01", "2024-02-30", "24-02-01", "2024-2-1 "])
def test_text_not_matching_is_refused(text: str) -> None:
    """Cells that do not match the pattern or are not real dates raise ValueError."""
    with pytest.raises(ValueError):
        make_parser("yyyy-MM-dd", "date", BERLIN)(text)


def test_overrides_are_typed_by_the_field() -> None:
    """--set NAME=VALUE texts become the field's type; bad names and values are refused."""
    settings = with_overrides(
        EmulatorSettings(),
        {
            "job_status_spelling": "INPROGRESS",
            "bulk_rows_per_second": "0",
            "retry_after_seconds": "none",
            "strict_picklists": "false",
            "daily_credits": "5000",
            "bulk_date_formats": "MM/dd/yyyy, yyyy-MM-dd",
        },
    )
    assert settings.job_status_spelling == "INPROGRESS"
    assert settings.instant_jobs and settings.retry_after_seconds is None
    assert settings.strict_picklists is False and settings.daily_credits == 5000
    assert settings.bulk_date_formats == ("MM/dd/yyyy", "yyyy-MM-dd")
    with pytest.raises(ValueError, match="unknown emulator setting"):
        with_overrides(EmulatorSettings(), {"nope": "1"})
    with pytest.raises(ValueError, match="job_status_spelling"):
        with_overrides(EmulatorSettings(), {"job_status_spelling": "RUNNING"})
