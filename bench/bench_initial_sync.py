"""Initial sync against the floor: `syncd initial-sync` on N legacy rows, CPU, wall, peak RSS.

    .venv/bin/python -m bench.bench_initial_sync                        # 1,000,000 rows, PostgreSQL
    .venv/bin/python -m bench.bench_initial_sync --rows 100000 --rows 1000000   # RSS flatness
    .venv/bin/python -m bench.bench_initial_sync --job-seconds 2 --parallel-jobs 2  # goal 4
    .venv/bin/python -m bench.bench_initial_sync --database mysql --rows 200000
    .venv/bin/python -m bench.bench_initial_sync --rows 200000 --profile /tmp/sync.prof
    .venv/bin/python -m bench.bench_initial_sync --steps /tmp/steps.txt   # seconds per step

(Run from the repository root.) Per size, in one run on this machine:

1. a fresh database gets the ``orders`` table by plain DDL, filled by the database's own client
   (``bench/legacy.py``), with the pending index ``syncd ddl`` suggests;
2. the floor is measured ``--floor-runs`` times (3 by default; the median is used, all are
   printed): the mapped columns of the pending rows exported as CSV into a zip, and one UPDATE
   setting every flag (then every row is made pending again). One measurement of the UPDATE
   varies by a quarter from run to run on this machine, and the ratios with it;
3. the real command, ``syncd -c CONFIG initial-sync``, runs as a child process against the
   bundled emulator on a real port. The emulator runs in this process in its fast mode
   (``bulk_fast``: every row answered ADDED, nothing checked or stored) so the figures are
   syncd's. Its worker runs each job as soon as it is created, as Zoho does, at no rate limit:
   the CRM "finishes jobs at once" and syncd's status call finds the job done (an emulator that
   ran the job only when first asked added its own 0.13 s a job to syncd's wall time);
   ``--job-seconds T --parallel-jobs k`` make each bulk job take T seconds with k at once.
   The child's CPU (user + system) and peak RSS come from ``wait4``: the whole command,
   start-up included.

Printed: wall, CPU and peak RSS, each against the goals of issue 14 (CPU <= 4x floor, wall <=
5x floor, RSS <= 150 MB and flat across sizes, wall <= 1.2 x (jobs x T / k) + floor), jobs,
calls and credits, and a check that every row ended flagged.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.legacy import FIELDS, Floor, bench_database, fill, flagged, measure_floor
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings, Faults

MIB = 1024 * 1024


@dataclass(frozen=True)
class SyncRun:
    rows: int
    floor: Floor
    wall: float
    cpu: float
    rss_mib: float
    exit_code: int
    flagged: int
    jobs: int
    credits: int
    calls: dict[str, int]


def write_config(workdir: Path, source_url: str, base_url: str, crm: str, pipeline: str) -> Path:
    """The benchmarks' config: the bench table, a SQLite state store, the emulator; ``crm`` and
    ``pipeline`` are extra TOML lines for those sections."""
    emulator = EmulatorSettings()
    fields = "\n".join(f'{api} = "{column}"' for api, column in FIELDS.items())
    path = workdir / "config.toml"
    path.write_text(
        f"""
[source]
url = "{source_url}"

[state]
url = "sqlite:///{workdir}/state.db"

[crm]
accounts_url = "{base_url}"
api_domain = "{base_url}"
upload_url = "{base_url}/crm/v8/upload"
client_id = "{emulator.client_id}"
client_secret = "{emulator.client_secret}"
refresh_token = "{emulator.refresh_token}"
daily_credit_budget = 1000000000
{crm}

[[pipelines]]
name = "orders"
table = "orders"
key = "id"
flag = "sync"
module = "Orders"
unique_field = "parent_id"
{pipeline}

[pipelines.fields]
{fields}
""",
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


def prepare_state(config: Path) -> None:
    """Create the state store before the measured run, as an operator's ``syncd check`` does
    (README, step 4): the initial sync is measured, not the state store's one-time migrations
    (Alembic, with Mako and Pygments: about 0.2 s of CPU and 5 to 10 MiB that stay)."""
    subprocess.run(
        [sys.executable, "-m", "syncd", "-c", str(config), "db", "upgrade"],
        check=True,
        capture_output=True,
    )


def run_command(
    config: Path,
    log: Path,
    profile: str | None,
    sampler: str | None = None,
    steps: str | None = None,
) -> tuple[float, float, float, int]:
    """``syncd initial-sync`` as a child: wall seconds, CPU seconds, peak RSS MiB, exit code."""
    program = ["-m", "syncd"]
    if profile:
        program = ["-m", "bench.cpu_profile", profile]
    elif steps:
        program = ["-m", "bench.step_times", steps]
    command = [sys.executable, *program, "-c", str(config), "initial-sync"]
    if sampler:  # py-spy samples the real process: no profiler overhead skews the shares
        command = ["py-spy", "record", "-r", "200", "-f", "raw", "-o", sampler, "--", *command]
    with log.open("w") as out:
        began = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - began
    child.returncode = os.waitstatus_to_exitcode(status)
    print(f"syncd CPU: user {usage.ru_utime:.1f} s, system {usage.ru_stime:.1f} s")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, child.returncode


def emulator_settings(args: argparse.Namespace) -> EmulatorSettings:
    """The emulator of these benchmarks: bulk jobs without per-row work (``bulk_fast``) run in
    the background from their creation (a rate no job reaches), a job time T and k jobs at once
    when asked, ``--latency-ms`` added to every call (a real Zoho answers in tens to hundreds
    of milliseconds; the local emulator in a few)."""
    return EmulatorSettings(
        bulk_fast=True,
        bulk_rows_per_second=10**9,
        bulk_job_seconds=args.job_seconds,
        bulk_parallel_jobs=args.parallel_jobs,
        max_parallel_bulk_jobs=max(10, args.parallel_jobs),
        daily_credits=10**9,
        faults=Faults(latency_ms=args.latency_ms or 0),
    )


def one_size(args: argparse.Namespace, rows: int) -> SyncRun:
    server_url = args.server_url or {
        "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
        "mysql": "mysql+pymysql://root@127.0.0.1:3306/test",
    }.get(args.database)
    with (
        tempfile.TemporaryDirectory(prefix="syncd-bench-") as tmp,
        bench_database(args.database, server_url, Path(tmp)) as url,
    ):
        workdir = Path(tmp)
        began = time.perf_counter()
        fill(url, rows)
        print(f"\n{rows:,} rows ({args.database}): filled in {time.perf_counter() - began:.1f} s")
        floors = sorted(
            (measure_floor(url, workdir) for _ in range(args.floor_runs or 1)),
            key=lambda f: f.seconds,
        )
        floor = floors[len(floors) // 2]
        if len(floors) > 1:
            shown = ", ".join(f"{f.seconds:.2f}" for f in floors)
            print(f"floor measured {len(floors)} times: {shown} s; the median is used")
        settings = emulator_settings(args)
        with EmulatorServer(settings) as server:
            crm = f'bulk_poll_interval = "{args.poll}"\nbulk_jobs_in_flight = {args.in_flight}'
            pipeline = f"batch_size = {args.batch_size}"
            config = write_config(workdir, url, server.base_url, crm, pipeline)
            log = workdir / "syncd.log"
            prepare_state(config)
            wall, cpu, rss, code = run_command(config, log, args.profile, args.py_spy, args.steps)
            stats = server.admin.stats()
        if code != 0:
            print((workdir / "syncd.log").read_text()[-3000:])
        if args.keep_log:  # the JSON log's timestamps show when each job was created and read
            shutil.copyfile(log, args.keep_log)
        bulk = stats["bulk"]
        return SyncRun(
            rows=rows,
            floor=floor,
            wall=wall,
            cpu=cpu,
            rss_mib=rss,
            exit_code=code,
            flagged=flagged(url),
            jobs=int(bulk.get("jobs_created", 0)),
            credits=int(stats["credits"]["used"]),
            calls=dict(stats["calls"]),
        )


def report(args: argparse.Namespace, run: SyncRun) -> None:
    floor = run.floor
    print(
        f"floor: {floor.seconds:.2f} s (export CSV+zip {floor.export_seconds:.2f} s, "
        f"{floor.zipped_bytes / MIB:.1f} MiB; one UPDATE {floor.update_seconds:.2f} s)"
    )
    print(
        f"syncd initial-sync: exit {run.exit_code}, {run.flagged:,} of {run.rows:,} rows flagged, "
        f"{run.jobs} bulk jobs, {run.rows / run.wall:,.0f} rows/s"
    )
    print(f"  CPU  {run.cpu:7.1f} s = {run.cpu / floor.seconds:5.2f} x floor   (goal <= 4)")
    if args.job_seconds:
        jobs = math.ceil(run.rows / args.batch_size)
        bound = 1.2 * jobs * args.job_seconds / args.parallel_jobs + floor.seconds
        print(
            f"  wall {run.wall:7.1f} s; goal <= 1.2 x ({jobs} x {args.job_seconds:g} s / "
            f"{args.parallel_jobs}) + floor = {bound:.1f} s: "
            f"{'met' if run.wall <= bound else 'NOT met'}"
        )
    else:
        print(f"  wall {run.wall:7.1f} s = {run.wall / floor.seconds:5.2f} x floor   (goal <= 5)")
    print(f"  peak RSS {run.rss_mib:.0f} MiB (goal <= 150); credits {run.credits:,}")
    calls = ", ".join(f"{name} {n}" for name, n in sorted(run.calls.items()))
    print(f"  emulator calls: {calls}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append", help="repeatable; default 1000000")
    parser.add_argument(
        "--database", choices=("postgresql", "mysql", "sqlite"), default="postgresql"
    )
    parser.add_argument("--server-url", help="database server URL (default: the local one)")
    parser.add_argument("--batch-size", type=int, default=25_000)
    parser.add_argument(
        "--floor-runs", type=int, default=3, help="floor measurements; the median is used"
    )
    parser.add_argument("--poll", default="1s", help="bulk_poll_interval")
    parser.add_argument("--in-flight", type=int, default=2, help="bulk_jobs_in_flight")
    parser.add_argument("--job-seconds", type=float, default=0.0, help="emulator job time T")
    parser.add_argument("--parallel-jobs", type=int, default=1, help="emulator jobs at once k")
    parser.add_argument("--latency-ms", type=int, default=0, help="emulator latency per call")
    parser.add_argument("--profile", help="write a cProfile of the command to this file")
    parser.add_argument(
        "--steps", help="write the CPU and wall seconds of each drain step to this file"
    )
    parser.add_argument(
        "--py-spy", help="sample the command with py-spy (if installed) into this file"
    )
    parser.add_argument("--keep-log", help="copy syncd's log of the (last) run to this file")
    args = parser.parse_args()
    runs = [one_size(args, rows) for rows in args.rows or [1_000_000]]
    for run in runs:
        print(f"\n== {run.rows:,} rows ==")
        report(args, run)
    if len(runs) > 1:
        low, high = min(r.rss_mib for r in runs), max(r.rss_mib for r in runs)
        print(
            f"\npeak RSS across sizes: {low:.0f}..{high:.0f} MiB, spread {high / low - 1:.0%}"
            " (goal <= 10 %)"
        )


if __name__ == "__main__":
    main()
