"""What the demo did, read back from the state store, and the check that the CRM mirrors the table.

The check compares the emulator's records with the legacy rows independently of syncd's own
encoder: a value syncd wrote wrongly shows up here instead of being encoded wrongly twice.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, select, true

from syncd.app import App
from syncd.config import PipelineSettings
from syncd.credits import UPSERT_MAX_RECORDS, upsert_call_cost
from syncd.demo.orders import orders_table
from syncd.emulator.admin import EmulatorAdmin
from syncd.engine.apply import sendable_pages
from syncd.model import Reject

_SHOWN_PROBLEMS = 10

Calls = dict[str, tuple[int, int]]  # ledger kind -> (calls, credits)


@dataclass(frozen=True)
class RejectGroup:
    """Rejects with one code on one field, and one of them as an example."""

    code: str
    field: str | None
    count: int
    message: str | None
    example_key: str
    example_column: str | None
    example_value: Any


@dataclass(frozen=True)
class Facts:
    rows: int
    synced: int
    rejects: list[RejectGroup]
    initial_calls: Calls
    realtime_calls: Calls
    rows_sent: int  # every row sent, in every run of the demo

    @property
    def credits(self) -> int:
        return total_credits(self.initial_calls) + total_credits(self.realtime_calls)

    @property
    def calls(self) -> Calls:
        """Both phases together, the most expensive kind first."""
        merged = dict(self.initial_calls)
        for kind, (calls, credits) in self.realtime_calls.items():
            before = merged.get(kind, (0, 0))
            merged[kind] = (before[0] + calls, before[1] + credits)
        return dict(sorted(merged.items(), key=lambda item: (-item[1][1], item[0])))

    @property
    def naive_calls(self) -> int:
        """Upsert calls of 100 records that sending the same rows the plain way needs."""
        return math.ceil(self.rows_sent / UPSERT_MAX_RECORDS)

    @property
    def naive_credits(self) -> int:
        return self.naive_calls * upsert_call_cost(UPSERT_MAX_RECORDS)


@dataclass
class Verification:
    crm_records: int = 0
    synced: int = 0
    rejects: int = 0
    problems: list[str] = field(default_factory=list)
    more_problems: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, text: str) -> None:
        if len(self.problems) < _SHOWN_PROBLEMS:
            self.problems.append(text)
        else:
            self.more_problems += 1


def total_credits(calls: Calls) -> int:
    return sum(credits for _, credits in calls.values())


def collect(
    app: App, pipeline: PipelineSettings, started: datetime, realtime_started: datetime
) -> Facts:
    store = app.store
    everything = store.calls_since(started)
    realtime = store.calls_since(realtime_started)
    initial = {
        kind: (calls - realtime.get(kind, (0, 0))[0], credits - realtime.get(kind, (0, 0))[1])
        for kind, (calls, credits) in everything.items()
    }
    runs = store.last_runs(pipeline.name, 10_000)
    rows, synced = _row_counts(app)
    return Facts(
        rows=rows,
        synced=synced,
        rejects=reject_groups(app, pipeline),
        initial_calls={k: v for k, v in initial.items() if v[0]},
        realtime_calls=realtime,
        rows_sent=sum(r.counts.sent for r in runs if r.started_at >= started),
    )


def _row_counts(app: App) -> tuple[int, int]:
    """Rows in the legacy table, and how many of them are flagged synced."""
    table = orders_table()
    with app.source_engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(table)).scalar_one()
        synced = conn.execute(
            select(func.count()).select_from(table).where(table.c.sync == true())
        ).scalar_one()
    return int(rows), int(synced)


def _legacy_rows(app: App) -> Iterator[dict[str, Any]]:
    table = orders_table()
    with app.source_engine.connect() as conn:
        for row in conn.execute(select(table).order_by(table.c.id)):
            yield dict(row._mapping)


def _all_rejects(app: App, pipeline: PipelineSettings) -> list[Reject]:
    return app.store.list_rejects(pipeline.name, limit=1_000_000)


def reject_groups(app: App, pipeline: PipelineSettings) -> list[RejectGroup]:
    """Rejects by (code, field), largest group first, each with its lowest key as example."""
    groups: dict[tuple[str, str | None], list[Reject]] = {}
    for item in _all_rejects(app, pipeline):
        groups.setdefault((item.code, item.field), []).append(item)
    columns = {f.api_name: f.column for f in pipeline.fields}
    table = app.table(pipeline)
    result = []
    for (code, api_name), items in groups.items():
        example = min(items, key=lambda r: (len(r.key), r.key))
        column = columns.get(api_name or "")
        found = table.fetch_rows([example.key])
        value = found[0].values.get(column) if found and column else None
        result.append(
            RejectGroup(code, api_name, len(items), example.message, example.key, column, value)
        )
    return sorted(result, key=lambda g: (-g.count, g.code, g.field or ""))


# -- the mirror check ---------------------------------------------------------------------------


def verify(app: App, pipeline: PipelineSettings, admin: EmulatorAdmin) -> Verification:
    """The CRM holds exactly one record per synced row, equal to it; every other row is a
    reject the daemon would not send again; nothing is left in the buffer."""
    check = Verification()
    records = admin.records(pipeline.module)
    crm = {str(r.get(pipeline.unique_field)): r for r in records}
    check.crm_records = len(records)
    if len(crm) != len(records):
        check.problem(f"{len(records) - len(crm)} legacy key(s) have more than one CRM record")
    rejected = {r.key for r in _all_rejects(app, pipeline)}
    check.rejects = len(rejected)
    zone = app.settings.source.timezone
    synced: set[str] = set()
    for row in _legacy_rows(app):
        key = str(row[pipeline.key])
        if row[pipeline.flag]:
            synced.add(key)
            _compare(check, pipeline, key, row, crm.get(key), zone)
        elif key not in rejected:
            check.problem(f"order {key} is pending but is not a reject")
    check.synced = len(synced)
    for key in sorted(crm.keys() - synced)[:_SHOWN_PROBLEMS]:
        check.problem(f"CRM record {key} has no synced legacy row")
    _check_nothing_to_send(app, pipeline, check)
    return check


def _compare(
    check: Verification,
    pipeline: PipelineSettings,
    key: str,
    row: Mapping[str, Any],
    record: Mapping[str, Any] | None,
    zone: tzinfo,
) -> None:
    if record is None:
        check.problem(f"order {key} is flagged synced but not in the CRM")
        return
    for item in pipeline.fields:
        expected, actual = row[item.column], record.get(item.api_name)
        if not same_value(expected, actual, zone):
            check.problem(
                f"order {key}: {item.column} is {expected!r} but the CRM's {item.api_name} "
                f"is {actual!r}"
            )


def _check_nothing_to_send(app: App, pipeline: PipelineSettings, check: Verification) -> None:
    buffered = app.store.buffer_stats(pipeline.name)[0]
    if buffered:
        check.problem(f"{buffered} change(s) are still in the realtime buffer")
    rt = app.runtime(pipeline)
    left = sum(len(page) for page in sendable_pages(rt, 5_000))
    if left:
        check.problem(f"{left} row(s) are pending and would still be sent")


def same_value(expected: Any, actual: Any, zone: tzinfo) -> bool:
    """Whether the CRM's JSON value ``actual`` holds the legacy value ``expected``."""
    if expected is None or expected == "":
        return actual in (None, "")
    if isinstance(expected, bool):
        return actual is expected
    if isinstance(expected, int | Decimal | float):
        return _number(actual) == Decimal(str(expected))
    if isinstance(expected, datetime):
        aware = expected if expected.tzinfo else expected.replace(tzinfo=zone)
        return isinstance(actual, str) and bool(_datetime(actual) == aware)
    if isinstance(expected, date):
        return bool(actual == expected.isoformat())
    return bool(actual == expected)


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _datetime(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None
