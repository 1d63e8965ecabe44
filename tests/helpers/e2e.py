"""End-to-end helpers: a config file pointing at an emulator, and the mirror check.

``assert_mirrored`` is the acceptance check of the initial sync and the daemon: every legacy
row is either synced (flag true) with identical content in the CRM, or a listed reject.
``run_syncd`` runs the real command line; ``open_app`` wires the engine in-process for tests
that need control (a faster bulk poll, a concurrent writer).
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select

from syncd.app import App
from syncd.config import load_settings
from syncd.emulator.admin import EmulatorAdmin
from syncd.emulator.settings import EmulatorSettings
from syncd.state.store import StateStore
from tests.helpers.orders import FIELDS, orders_table

FIELD_LINES = "\n".join(f'{f.api_name} = "{f.column}"' for f in FIELDS)

# The records API calls, as the emulator counts them: syncd inserts keys it has no record for
# and updates the others by record id (it never upserts: see syncd.engine.identity).
INSERT_CALL = "POST /crm/v8/{module}"
UPDATE_CALL = "PUT /crm/v8/{module}"
UPSERT_CALL = "POST /crm/v8/{module}/upsert"
RECORD_WRITES = (INSERT_CALL, UPDATE_CALL, UPSERT_CALL)


def record_writes(calls: Mapping[str, int]) -> int:
    """How many records API calls (insert, update, upsert) the emulator's call counts hold."""
    return sum(calls.get(name, 0) for name in RECORD_WRITES)


def write_config(
    directory: Path,
    source_url: str,
    base_url: str,
    *,
    state_url: str | None = None,
    mode: str = "realtime",
    pipeline: str = "",
    crm: str = "",
    extra: str = "",
) -> Path:
    """A config for the orders table and an emulator; extra TOML lines go into the sections
    (``extra``: whole tables such as ``[metrics]``, after the pipeline)."""
    emulator = EmulatorSettings()
    state_url = state_url or f"sqlite:///{directory}/state.db"
    path = directory / "config.toml"
    path.write_text(
        f"""
[source]
url = "{source_url}"

[state]
url = "{state_url}"

[crm]
accounts_url = "{base_url}"
api_domain = "{base_url}"
upload_url = "{base_url}/crm/v8/upload"
client_id = "{emulator.client_id}"
client_secret = "{emulator.client_secret}"
refresh_token = "{emulator.refresh_token}"
bulk_poll_interval = "1s"
{crm}

[[pipelines]]
name = "orders"
table = "orders"
key = "id"
flag = "sync"
module = "Orders"
unique_field = "parent_id"
mode = "{mode}"
{pipeline}

[pipelines.fields]
{FIELD_LINES}

{extra}
""",
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


def run_syncd(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``syncd -c CONFIG ARGS...`` as a subprocess; stdout and stderr captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "syncd", "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def open_app(config: Path, *, bulk_poll_interval: timedelta | None = None) -> App:
    """The engine's wiring for ``config``, in-process; a poll interval below the config's 1 s
    granularity keeps bulk-job tests fast."""
    settings = load_settings(config)
    if bulk_poll_interval is not None:
        crm = dataclasses.replace(settings.crm, bulk_poll_interval=bulk_poll_interval)
        settings = dataclasses.replace(settings, crm=crm)
    return App.open(settings)


def _same(expected: Any, actual: Any, source_tz: tzinfo = UTC) -> bool:
    if expected is None or expected == "":
        return actual in (None, "")
    if isinstance(expected, bool):
        return actual is expected
    if isinstance(expected, Decimal | int | float) and not isinstance(expected, bool):
        return actual is not None and Decimal(str(actual)) == Decimal(str(expected))
    if isinstance(expected, datetime):
        aware = expected if expected.tzinfo else expected.replace(tzinfo=source_tz)
        return actual is not None and datetime.fromisoformat(actual) == aware
    if isinstance(expected, date):
        return actual == expected.isoformat()
    return bool(actual == expected)


def crm_by_key(base_url: str) -> dict[str, dict[str, Any]]:
    """The CRM's Orders records by legacy key; fails if a key is held by two records."""
    records = EmulatorAdmin(base_url).records("Orders")
    by_key = {r["parent_id"]: r for r in records}
    assert len(by_key) == len(records), "duplicate records for one legacy key"
    return by_key


def assert_mirrored(
    legacy_url: str, base_url: str, state: StateStore, *, source_tz: tzinfo = UTC
) -> dict[str, int]:
    """Every synced row is in the CRM with its exact content; every other row is a reject.

    Naive legacy timestamps are read in ``source_tz`` (the config's ``source.timezone``).
    Returns counts (synced, rejected) for the caller's own assertions.
    """
    table = orders_table()
    engine = create_engine(legacy_url)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(table).order_by(table.c.id))]
    engine.dispose()
    crm = crm_by_key(base_url)
    rejects = {r.key for r in state.list_rejects("orders", limit=10**9)}
    synced = 0
    for row in rows:
        key = str(row["id"])
        if not row["sync"]:
            assert key in rejects, f"row {key} is pending but not a reject"
            continue
        synced += 1
        record = crm.get(key)
        assert record is not None, f"row {key} is flagged synced but missing in the CRM"
        for field in FIELDS:
            assert _same(row[field.column], record.get(field.api_name), source_tz), (
                f"row {key} {field.column}={row[field.column]!r} but CRM "
                f"{field.api_name}={record.get(field.api_name)!r}"
            )
    return {"synced": synced, "rejected": len(rows) - synced, "crm_records": len(crm)}


@dataclasses.dataclass
class MovableClock:
    """syncd's clock, moved by the test: backoffs and max_delay without waiting for them."""

    at: datetime

    def now(self) -> datetime:
        return self.at
