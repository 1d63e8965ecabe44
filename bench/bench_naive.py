"""The naive way next to syncd: the same rows upserted 100 at a time through the records API.

    .venv/bin/python -m bench.bench_naive                      # 1,000,000 rows, PostgreSQL
    .venv/bin/python -m bench.bench_naive --rows 20000         # about a minute
    .venv/bin/python -m bench.bench_naive --rows 200000 --database mysql

(Run from the repository root.) In one run on this machine, for N rows:

1. syncd, exactly as ``bench/bench_initial_sync.py`` runs it (its ``one_size``): a fresh
   database with the ``orders`` table by plain DDL, filled by the database's own client, the
   floor measured, then ``syncd -c CONFIG initial-sync`` as a child process against the bundled
   emulator in its fast bulk mode (``bulk_fast``: bulk jobs do no per-row work);
2. the naive way: another fresh database filled the same way with the same rows, the emulator
   with the same settings, and a hand-written script as a child process (this module with
   ``--client``): one access token from the emulator's OAuth endpoint; the pending rows read
   through a server-side cursor, 100 at a time; each hundred POSTed to
   ``/crm/v8/Orders/upsert`` with ``duplicate_check_fields = ["parent_id"]`` by a plain httpx
   client, one request at a time, no retries; then one UPDATE setting every flag.

Printed: wall time, CPU (user + system of the child, from ``wait4``), peak RSS, CRM calls and
credits of both, side by side with the ratio naive / syncd; the rows the naive script lost
(error answers, which it does not retry) and the emulator's own CPU during it.

Not like for like, in syncd's favour: ``bulk_fast`` concerns bulk jobs only. The records API
validates and stores every record the naive script sends, and that work (the emulator runs in
this process, printed as "emulator CPU") is inside the naive wall time, while syncd's bulk jobs
cost the emulator next to nothing. Zoho charges 1 credit per 10 records: 100,000 credits for
1,000,000 rows, a whole day of a Professional org with no extra users; the emulator here allows
10^9 a day. Not measured: the naive UPDATE also flags rows changed while the script ran.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pymysql

from bench.bench_initial_sync import SyncRun, emulator_settings, one_size, report
from bench.legacy import FIELDS, bench_database, dialect_of, fill, flagged, native
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings

MIB = 1024 * 1024
SERVERS = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "mysql": "mysql+pymysql://root@127.0.0.1:3306/test",
}
# What a hand-written script selects and how it marks its rows done.
SELECT_PENDING = (
    "SELECT id, order_number, total, order_date, ordered_at, status, customer_email, quantity,"
    " paid, notes FROM orders WHERE NOT sync ORDER BY id"
)
FLAG_ALL = "UPDATE orders SET sync = true WHERE NOT sync"
PER_CALL = 100


# --- the naive script (the child process) ---------------------------------------------------


def _datetime(value: Any) -> str:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def _date(value: Any) -> str:
    return value if isinstance(value, str) else date.isoformat(value)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, Decimal | str) else value


# The field conversions such a script hard-codes for its table; the rest go as they come.
CONVERT: dict[str, Callable[[Any], Any]] = {
    "Amount": _number,
    "Order_Date": _date,
    "Ordered_At": _datetime,
    "Paid": bool,
}


def to_record(row: tuple[Any, ...]) -> dict[str, Any]:
    """A legacy row (key, then the mapped columns in ``FIELDS`` order) as a JSON record."""
    record: dict[str, Any] = {"parent_id": str(row[0])}
    for api_name, value in zip(FIELDS, row[1:], strict=True):
        convert = CONVERT.get(api_name)
        record[api_name] = convert(value) if convert and value is not None else value
    return record


def pending_batches(conn: Any, kind: str) -> Iterator[list[tuple[Any, ...]]]:
    """The pending rows, 100 at a time, through a server-side cursor (a streaming one on
    MySQL; SQLite's cursor streams anyway)."""
    if kind == "postgresql":
        with conn.transaction(), conn.cursor(name="pending") as cur:
            cur.execute(SELECT_PENDING)
            while batch := cur.fetchmany(PER_CALL):
                yield batch
        return
    cur = conn.cursor(pymysql.cursors.SSCursor) if kind == "mysql" else conn.cursor()
    cur.execute(SELECT_PENDING)
    while batch := cur.fetchmany(PER_CALL):
        yield batch
    cur.close()


def naive_sync(source_url: str, base_url: str) -> dict[str, Any]:
    """Upsert every pending row, 100 a call, then flag them all; what it did, as numbers."""
    emulator = EmulatorSettings()
    sent = failed = calls = 0
    with httpx.Client(base_url=base_url, timeout=60) as http, native(source_url) as conn:
        began = time.perf_counter()
        token = http.post(
            "/oauth/v2/token",
            data={
                "grant_type": "refresh_token",
                "client_id": emulator.client_id,
                "client_secret": emulator.client_secret,
                "refresh_token": emulator.refresh_token,
            },
        ).json()["access_token"]
        headers = {"Authorization": f"Zoho-oauthtoken {token}"}
        for batch in pending_batches(conn, dialect_of(source_url)):
            body = {
                "data": [to_record(row) for row in batch],
                "duplicate_check_fields": ["parent_id"],
            }
            response = http.post("/crm/v8/Orders/upsert", headers=headers, json=body)
            calls += 1
            if response.is_error:
                failed += len(batch)
                continue
            ok = sum(entry.get("status") == "success" for entry in response.json()["data"])
            sent, failed = sent + ok, failed + len(batch) - ok
        upserted = time.perf_counter()
        conn.cursor().execute(FLAG_ALL)
        ended = time.perf_counter()
    return {
        "sent": sent,
        "failed": failed,
        "upsert_calls": calls,
        "upsert_seconds": upserted - began,
        "update_seconds": ended - upserted,
    }


# --- the comparison (the parent process) ----------------------------------------------------


@dataclass(frozen=True)
class NaiveRun:
    rows: int
    wall: float
    cpu: float
    rss_mib: float
    exit_code: int
    flagged: int
    calls: dict[str, int]
    credits: int
    emulator_cpu: float
    script: dict[str, Any]


def run_child(command: list[str], log: Path) -> tuple[float, float, float, int]:
    """A child process: wall seconds, CPU seconds (user + system), peak RSS MiB, exit code."""
    with log.open("w") as out:
        began = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - began
    code = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, code


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def naive_run(args: argparse.Namespace, rows: int) -> NaiveRun:
    """The same rows, a fresh database, the emulator in the mode ``one_size`` uses."""
    with (
        tempfile.TemporaryDirectory(prefix="syncd-bench-") as tmp,
        bench_database(args.database, args.server_url, Path(tmp)) as url,
    ):
        workdir = Path(tmp)
        began = time.perf_counter()
        fill(url, rows)
        print(
            f"\n{rows:,} rows ({args.database}) for the naive script: filled in "
            f"{time.perf_counter() - began:.1f} s"
        )
        settings = emulator_settings(args)
        result = workdir / "naive.json"
        with EmulatorServer(settings) as server:
            command = [sys.executable, "-m", "bench.bench_naive", "--client"]
            command += [url, server.base_url, str(result)]
            emulator_began = own_cpu()
            wall, cpu, rss, code = run_child(command, workdir / "naive.log")
            emulator_cpu = own_cpu() - emulator_began
            stats = server.admin.stats()
        if code != 0:
            print((workdir / "naive.log").read_text()[-3000:])
        script = json.loads(result.read_text()) if result.exists() else {}
        return NaiveRun(
            rows=rows,
            wall=wall,
            cpu=cpu,
            rss_mib=rss,
            exit_code=code,
            flagged=flagged(url),
            calls=dict(stats["calls"]),
            credits=int(stats["credits"]["used"]),
            emulator_cpu=emulator_cpu,
            script=script,
        )


def compare(sync: SyncRun, naive: NaiveRun) -> None:
    sync_calls, naive_calls = sum(sync.calls.values()), sum(naive.calls.values())
    print(f"\n== {sync.rows:,} rows: syncd initial-sync and the naive way ==")
    print(f"{'':26}{'wall s':>9}{'CPU s':>9}{'RSS MiB':>9}{'calls':>9}{'credits':>10}")
    for name, run, calls in (
        ("syncd initial-sync", sync, sync_calls),
        ("naive upsert x100", naive, naive_calls),
    ):
        print(
            f"{name:26}{run.wall:9.1f}{run.cpu:9.1f}{run.rss_mib:9.0f}{calls:9,}{run.credits:10,}"
        )
    print(
        f"{'naive / syncd':26}{naive.wall / sync.wall:8.1f}x{naive.cpu / sync.cpu:8.1f}x"
        f"{naive.rss_mib / sync.rss_mib:8.1f}x{naive_calls / sync_calls:8.1f}x"
        f"{naive.credits / sync.credits:9.1f}x"
    )
    script = naive.script
    print(
        f"naive: exit {naive.exit_code}; {script.get('sent', 0):,} rows upserted, "
        f"{script.get('failed', 0):,} refused or lost (not retried), {naive.flagged:,} flagged; "
        f"upserts {script.get('upsert_seconds', 0):.1f} s, one UPDATE "
        f"{script.get('update_seconds', 0):.1f} s; "
        f"emulator CPU meanwhile {naive.emulator_cpu:.1f} s"
    )
    print(
        f"syncd: exit {sync.exit_code}; {sync.flagged:,} flagged, {sync.jobs} bulk jobs; "
        f"floor {sync.floor.seconds:.2f} s"
    )
    for name, by_call in (("syncd", sync.calls), ("naive", naive.calls)):
        listed = ", ".join(f"{call} {n:,}" for call, n in sorted(by_call.items()))
        print(f"  {name} calls: {listed}")


class SyncOptions(argparse.Namespace):
    """The options ``one_size`` reads: ours, and None (off) for any other it may read, such as
    its profilers, so an option added to bench_initial_sync does not break this benchmark."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database", choices=tuple(SERVERS), default="postgresql")
    parser.add_argument("--server-url", help="database server URL (default: the local one)")
    parser.add_argument("--batch-size", type=int, default=25_000, help="syncd's batch_size")
    parser.add_argument("--poll", default="1s", help="syncd's bulk_poll_interval")
    parser.add_argument("--in-flight", type=int, default=2, help="syncd's bulk_jobs_in_flight")
    parser.add_argument(
        "--latency-ms", type=int, default=0, help="emulator latency per call, for both runs"
    )
    parser.add_argument("--client", nargs=3, help=argparse.SUPPRESS)  # SOURCE BASE_URL RESULT
    args = parser.parse_args()
    if args.client:
        source_url, base_url, result = args.client
        Path(result).write_text(json.dumps(naive_sync(source_url, base_url)), encoding="utf-8")
        return
    args = SyncOptions(
        **vars(args),
        job_seconds=0.0,  # bench_initial_sync's defaults: bulk jobs finish at once
        parallel_jobs=1,
    )
    args.server_url = args.server_url or SERVERS[args.database]
    sync = one_size(args, args.rows)
    print(f"\n== {sync.rows:,} rows: syncd initial-sync ==")
    report(args, sync)
    naive = naive_run(args, args.rows)
    compare(sync, naive)


if __name__ == "__main__":
    main()
