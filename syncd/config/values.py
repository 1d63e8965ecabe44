"""Validators for the scalar values of the config file, as pydantic ``Annotated`` types.

Each raises ``PydanticCustomError`` carrying syncd's own wording ("must be ..."); the type name
tells ``problems.py`` whether the offending value may be quoted back (``value``) or not (``rule``,
where the message already says everything).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from datetime import date, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import PlainValidator
from pydantic_core import PydanticCustomError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from syncd.config.durations import DURATION_HINT, SCHEDULE_HINT, Schedule, parse_duration
from syncd.config.durations import parse_schedule as _parse_schedule
from syncd.config.settings import Secret


def show(value: object) -> str:
    """A value as it would be written in TOML (shortened), for the "got ..." part."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value if len(value) <= 60 else value[:57] + "...", ensure_ascii=False)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, date | time):
        return value.isoformat()
    return repr(value)


def invalid(message: str) -> PydanticCustomError:
    """A problem with the value itself; the value is quoted after the message (unless secret)."""
    return PydanticCustomError("value", message)


def broken_rule(message: str) -> PydanticCustomError:
    """A problem with how keys fit together; the message is complete on its own."""
    return PydanticCustomError("rule", message)


def _string(value: object, expected: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise invalid(f"must be {expected}")
    return value


def int_between(low: int, high: int | None = None) -> PlainValidator:
    expected = f"an integer from {low} to {high}" if high else f"an integer of at least {low}"

    def check(value: object) -> int:
        # bool is an int subclass, but `flush_size = true` is a mistake, not 1
        if not isinstance(value, int) or isinstance(value, bool):
            raise invalid(f"must be {expected}")
        if value < low or (high is not None and value > high):
            raise invalid(f"must be {expected}")
        return value

    return PlainValidator(check)


def choice(choices: Iterable[str]) -> Callable[[object], str]:
    """Case-insensitive choice, normalised to the spelling in ``choices``."""
    canonical = {choice.casefold(): choice for choice in choices}
    expected = "one of " + ", ".join(canonical.values())

    def check(value: object) -> str:
        if not isinstance(value, str) or value.casefold() not in canonical:
            raise invalid(f"must be {expected}")
        return canonical[value.casefold()]

    return check


def one_of(choices: Iterable[str]) -> PlainValidator:
    return PlainValidator(choice(choices))


def matching(pattern: str, expected: str) -> Callable[[object], str]:
    compiled = re.compile(pattern)

    def check(value: object) -> str:
        if not isinstance(value, str) or not compiled.fullmatch(value):
            raise invalid(f"must be {expected}")
        return value

    return check


# Names end up as quoted SQL identifiers and in Zoho URL paths, so only plain ones are accepted.
_IDENT = r"[A-Za-z_][A-Za-z0-9_$]*"
check_column = matching(_IDENT, "a plain column name (letters, digits, _ and $; no leading digit)")
check_api_name = matching(
    r"[A-Za-z][A-Za-z0-9_]*", "a CRM API name (letters, digits and _, starting with a letter)"
)
check_pipeline_name = matching(r"[A-Za-z0-9_-]+", "a name made of letters, digits, _ and -")
check_table = matching(
    rf"{_IDENT}(?:\.{_IDENT})?",
    'a table name, optionally schema-qualified like "erp.orders" (letters, digits, _ and $)',
)


def _duration(value: object) -> timedelta:
    if not isinstance(value, str):
        raise invalid(f"must be {DURATION_HINT} (a quoted string)")
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise invalid(str(exc)) from None


def _schedule(value: object) -> Schedule | None:
    if value is None:  # left out; the pipeline checks whether its mode needs one
        return None
    if not isinstance(value, str):
        raise invalid(f"must be {SCHEDULE_HINT}")
    try:
        return _parse_schedule(value)
    except ValueError as exc:
        expected, *reason = exc.args
    # APScheduler's reason ("Wrong number of fields; got 4, expected 5") goes after the value
    detail = f" ({reason[0]})" if reason else ""
    raise broken_rule(f"{expected}, got {show(value)}{detail}")


def _zone(value: object) -> ZoneInfo:
    expected = 'an IANA time zone name like "Europe/Berlin" or "UTC"'
    try:
        return ZoneInfo(_string(value, expected))
    except (ZoneInfoNotFoundError, ValueError):
        raise invalid(f"must be {expected}") from None


def _http_url(value: object) -> str:
    expected = 'an http(s) URL like "https://accounts.zoho.eu"'
    if not isinstance(value, str) or not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
        raise invalid(f"must be {expected}")
    return value.rstrip("/")


def _org_id(value: object) -> str:
    # TOML readers write ids as numbers as often as strings; both mean the same org
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    return matching(r"[0-9]+", "the org id (digits, as a string or an integer)")(value)


def _secret(value: object) -> Secret:
    return Secret(_string(value, "a non-empty string"))


def _database_url(value: object) -> str:
    expected = 'an SQLAlchemy database URL like "postgresql+psycopg://user:${PASSWORD}@host/db"'
    text = _string(value, expected)
    try:
        make_url(text)
    except ArgumentError:
        raise invalid(f"must be {expected}") from None
    return text


def _source_url(value: object) -> Secret:
    return Secret(_database_url(value))


def _text(value: object) -> str:
    return _string(value, "a non-empty string")


Duration = Annotated[timedelta, PlainValidator(_duration)]
ScheduleValue = Annotated[Schedule | None, PlainValidator(_schedule)]
Zone = Annotated[ZoneInfo, PlainValidator(_zone)]
HttpUrl = Annotated[str, PlainValidator(_http_url)]
OrgId = Annotated[str, PlainValidator(_org_id)]
SecretValue = Annotated[Secret, PlainValidator(_secret)]
SourceUrl = Annotated[Secret, PlainValidator(_source_url)]
DatabaseUrl = Annotated[str, PlainValidator(_database_url)]
Text = Annotated[str, PlainValidator(_text)]
Column = Annotated[str, PlainValidator(check_column)]
TableName = Annotated[str, PlainValidator(check_table)]
ApiName = Annotated[str, PlainValidator(check_api_name)]


def given(**values: Any) -> dict[str, Any]:
    """The keyword arguments that were set, so the settings dataclasses supply the defaults."""
    return {name: value for name, value in values.items() if value is not None}
