"""Initial sync throughput and memory: N legacy rows through the engine into the emulator.

    .venv/bin/python -m bench.bench_initial_sync                   # 200,000 rows, SQLite
    .venv/bin/python -m bench.bench_initial_sync --rows 1000000
    .venv/bin/python -m bench.bench_initial_sync --source-url postgresql+psycopg://postgres@127.0.0.1/test

(Run from the repository root: it reuses the test helpers' orders table and config.)

The emulator runs in this process (``EmulatorServer``); the sync runs in a child process (App +
``run_drain``, as ``syncd initial-sync`` does), so its peak RSS is syncd's alone: the emulator
keeps every record in memory and would hide whether syncd's own memory stays flat (promise 7).
With ``--source-url`` (a server URL) a fresh database is created there and dropped afterwards.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.engine.runs import run_drain
from tests.helpers.databases import fresh_database
from tests.helpers.e2e import open_app, write_config
from tests.helpers.orders import create_orders, order


def peak_rss_mib() -> float:
    """This process's peak resident set size so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sync_in_child(config: str, poll_ms: int) -> dict[str, Any]:
    """The initial sync, in a fresh process: its result, timing, peak RSS and ledger."""
    with open_app(Path(config), bulk_poll_interval=timedelta(milliseconds=poll_ms)) as app:
        rt = app.runtime(app.settings.pipeline("orders"))
        before = peak_rss_mib()
        started_at = app.clock.now()
        began = time.perf_counter()
        result = run_drain(rt, "initial")
        seconds = time.perf_counter() - began
        return {
            "seconds": seconds,
            "counts": result.counts,
            "left_pending": result.left_pending,
            "rss_before_mib": before,
            "rss_peak_mib": peak_rss_mib(),
            "ledger": app.store.calls_since(started_at),
        }


@contextmanager
def legacy_database(server_url: str | None, workdir: Path) -> Iterator[str]:
    """A SQLite file in ``workdir``, or a new database on the given server (dropped after)."""
    if server_url is None:
        yield f"sqlite:///{workdir}/legacy.db"
        return
    yield from fresh_database(server_url, prefix="syncd_bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--source-url", help="a PostgreSQL or MySQL server URL (default SQLite)")
    parser.add_argument("--batch-size", type=int, default=25_000)
    parser.add_argument("--poll-ms", type=int, default=200, help="bulk job poll interval")
    parser.add_argument(
        "--rate", type=float, default=10_000_000, help="emulator bulk_rows_per_second"
    )
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="syncd-bench-") as tmp,
        legacy_database(args.source_url, Path(tmp)) as url,
    ):
        began = time.perf_counter()
        create_orders(url, (order(i) for i in range(1, args.rows + 1))).dispose()
        seconds = time.perf_counter() - began
        print(f"legacy table: {args.rows:,} rows in {seconds:.1f} s ({make_url(url).drivername})")
        settings = EmulatorSettings(bulk_rows_per_second=args.rate, daily_credits=10**9)
        with EmulatorServer(settings) as server:
            config = write_config(
                Path(tmp),
                url,
                server.base_url,
                crm="daily_credit_budget = 1000000000",
                pipeline=f"batch_size = {args.batch_size}",
            )
            spawn = multiprocessing.get_context("spawn")
            with spawn.Pool(1) as pool:
                run = pool.apply(sync_in_child, (str(config), args.poll_ms))
            stats = server.admin.stats()
        report(args.rows, run, stats)


def report(rows: int, run: dict[str, Any], stats: dict[str, Any]) -> None:
    counts = run["counts"]
    print(
        f"initial sync: {counts.confirmed:,} of {rows:,} rows confirmed in {run['seconds']:.1f} s"
        f" = {rows / run['seconds']:,.0f} rows/s ({run['left_pending']} left pending)"
    )
    print(
        f"syncd peak RSS: {run['rss_peak_mib']:.0f} MiB "
        f"(after start-up {run['rss_before_mib']:.0f} MiB); "
        f"emulator process {peak_rss_mib():.0f} MiB"
    )
    print(f"credits spent: {counts.credits:,}")
    print("API calls by kind (syncd's ledger):")
    for kind, (calls, credits) in sorted(run["ledger"].items()):
        print(f"  {kind:<12} {calls:>6,} calls {credits:>8,} credits")
    print("emulator saw:")
    for name, calls in sorted(stats["calls"].items()):
        print(f"  {name:<58} {calls:>6,}")
    bulk = stats["bulk"]
    print(
        f"bulk jobs: {bulk.get('jobs_created', 0)} created, {bulk.get('jobs_completed', 0)} "
        f"completed, {bulk.get('rows', 0):,} rows; CRM records: {stats['records']}"
    )


if __name__ == "__main__":
    main()
