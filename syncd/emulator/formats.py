"""Java-style date patterns (``yyyy-MM-dd'T'HH:mm:ssXXX``), as Bulk Write's ``format`` declares.

Zoho's list of allowed formats is in a PDF the reference could not read (section 9 item 14),
so any pattern built from the letters below is accepted unless ``bulk_date_formats`` narrows
it: ``y`` year (yy, yyyy), ``M`` month (M, MM, MMM, MMMM), ``d`` day, ``H`` hour 0-23,
``h`` hour 1-12 with ``a`` (AM/PM), ``m`` minute, ``s`` second, ``S`` fraction,
``X``/``XX``/``XXX`` offset or ``Z``, ``Z`` offset ``+0530``; text in single quotes is literal.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import Literal

Kind = Literal["date", "datetime"]

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_TOKENS: dict[tuple[str, int], str] = {
    ("y", 4): r"(?P<y>\d{4})",
    ("y", 2): r"(?P<yy>\d{2})",
    ("M", 1): r"(?P<M>\d{1,2})",
    ("M", 2): r"(?P<M>\d{2})",
    ("M", 3): r"(?P<Mn>[A-Za-z]{3})",
    ("M", 4): r"(?P<Mn>[A-Za-z]{3,9})",
    ("d", 1): r"(?P<d>\d{1,2})",
    ("d", 2): r"(?P<d>\d{2})",
    ("H", 1): r"(?P<H>\d{1,2})",
    ("H", 2): r"(?P<H>\d{2})",
    ("h", 1): r"(?P<h>\d{1,2})",
    ("h", 2): r"(?P<h>\d{2})",
    ("a", 1): r"(?P<a>[AaPp][Mm])",
    ("m", 1): r"(?P<m>\d{1,2})",
    ("m", 2): r"(?P<m>\d{2})",
    ("s", 1): r"(?P<s>\d{1,2})",
    ("s", 2): r"(?P<s>\d{2})",
    ("X", 1): r"(?P<z>Z|[+-]\d{2})",
    ("X", 2): r"(?P<z>Z|[+-]\d{4})",
    ("X", 3): r"(?P<z>Z|[+-]\d{2}:\d{2})",
    ("Z", 1): r"(?P<z>[+-]\d{4})",
}
_TIME_LETTERS = frozenset("HhmsSaXZ")

ISO_DATE = "yyyy-MM-dd"
ISO_DATETIME = "yyyy-MM-dd'T'HH:mm:ssXXX"


def compile_pattern(pattern: str, kind: Kind) -> re.Pattern[str]:
    """The regex for a Java pattern; ``ValueError`` when it is not a valid ``kind`` pattern."""
    parts: list[str] = []
    letters: set[str] = set()
    for token, count in _tokenize(pattern):
        if count == 0:
            parts.append(re.escape(token))
            continue
        regex = rf"(?P<f>\d{{{count}}})" if token == "S" else _TOKENS.get((token, count))
        if regex is None or token in letters:
            raise ValueError(f"unsupported pattern letters {token * count!r} in {pattern!r}")
        letters.add(token)
        parts.append(regex)
    _check_letters(pattern, kind, letters)
    return re.compile("".join(parts))


def _check_letters(pattern: str, kind: Kind, letters: set[str]) -> None:
    if not {"y", "M", "d"} <= letters:
        raise ValueError(f"{pattern!r} lacks a year, month or day")
    if kind == "date" and letters & _TIME_LETTERS:
        raise ValueError(f"{pattern!r} has time parts but the field is a date")
    if kind == "datetime" and not ("m" in letters and ("H" in letters or {"h", "a"} <= letters)):
        raise ValueError(f"{pattern!r} lacks hours or minutes")
    if ("h" in letters) != ("a" in letters):
        raise ValueError(f"{pattern!r}: 'h' needs 'a' (AM/PM) and the other way round")


def _tokenize(pattern: str) -> list[tuple[str, int]]:
    """Split into (letter, run length) and (literal text, 0) pieces."""
    tokens: list[tuple[str, int]] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "'":
            end = pattern.find("'", i + 1)
            if end < 0:
                raise ValueError(f"unterminated quote in {pattern!r}")
            tokens.append((pattern[i + 1 : end] or "'", 0))
            i = end + 1
        elif char.isascii() and char.isalpha():
            run = len(pattern) - i - len(pattern[i:].lstrip(char))
            tokens.append((char, run))
            i += run
        else:
            tokens.append((char, 0))
            i += 1
    return tokens


def make_parser(pattern: str, kind: Kind, zone: tzinfo) -> Callable[[str], str]:
    """A function turning text in ``pattern`` into the JSON form Zoho stores.

    Dates become ``yyyy-MM-dd``; datetimes become ISO 8601 with the offset of the org
    ``zone`` (a datetime without an offset is taken to be in that zone). Raises ``ValueError``
    on text that does not match or is not a real date. Cached: bulk files repeat values.
    """
    regex = compile_pattern(pattern, kind)

    @functools.lru_cache(maxsize=65_536)
    def parse(text: str) -> str:
        match = regex.fullmatch(text)
        if match is None:
            raise ValueError(text)
        groups = match.groupdict()
        day = date(_year(groups), _month(groups), int(groups["d"]))
        if kind == "date":
            return day.isoformat()
        return _moment(day, groups, zone).isoformat(timespec="seconds")

    return parse


def _year(groups: dict[str, str]) -> int:
    return int(groups["y"]) if groups.get("y") else 2000 + int(groups["yy"])


def _month(groups: dict[str, str]) -> int:
    if groups.get("M"):
        return int(groups["M"])
    name = groups["Mn"].lower()
    for number, prefix in enumerate(_MONTHS, start=1):
        if name.startswith(prefix):
            return number
    raise ValueError(name)


def _moment(day: date, groups: dict[str, str], zone: tzinfo) -> datetime:
    if groups.get("h"):
        hour = int(groups["h"]) % 12 + (12 if groups["a"].lower() == "pm" else 0)
    else:
        hour = int(groups["H"])
    fraction = groups.get("f") or "0"
    micro = int((fraction + "000000")[:6])
    moment = datetime(
        day.year, day.month, day.day, hour, int(groups["m"]), int(groups.get("s") or 0), micro
    )
    offset = groups.get("z")
    aware = moment.replace(tzinfo=_zone(offset) if offset else zone)
    return aware.astimezone(zone).replace(microsecond=0)


def _zone(offset: str) -> tzinfo:
    if offset == "Z":
        return UTC
    digits = offset[1:].replace(":", "")
    minutes = int(digits[:2]) * 60 + int(digits[2:4] or 0)
    return timezone(timedelta(minutes=-minutes if offset[0] == "-" else minutes))
