"""Realtime latency: `syncd run` behind a legacy application writing 1, 10 and 100 rows/s.

    .venv/bin/python -m bench.bench_realtime        # poll 5s, max_delay 10m (shipped defaults)
    .venv/bin/python -m bench.bench_realtime --poll 1s --max-delay 20s --seconds 20   # ~3 min
    .venv/bin/python -m bench.bench_realtime --rates 100 --seconds 120 --database mysql

(Run from the repository root.) In one run on this machine:

1. a fresh database gets the ``orders`` table by plain DDL, filled by the database's own client
   (``bench/legacy.py``) with ``--prefill`` rows: the pool the application's updates touch;
2. the bundled emulator serves on a real port, in this process, as it behaves by default (the
   records API validates and stores every record), with credits enough for the run;
3. the real daemon, ``syncd -c CONFIG run``, runs as a child process, the pipeline in
   ``mode = "realtime"`` with ``flush_size = 100`` and the given ``poll_interval`` and
   ``max_delay``; it first syncs the prefilled rows (its initial sync), which is waited for;
4. the legacy application writes plain SQL through the native client, each change its own
   commit, alternately an INSERT of a new row and an UPDATE of the least recently changed row
   of the pool that sets the flag false. Per rate, the changes of ``--seconds`` are measured;
   the stream then runs on at the same rate, unmeasured, until every measured change arrived
   (a stream that simply stopped would leave its last partial chunk of < 100 rows waiting for
   max_delay, which a steady stream never does), and the run-out is let arrive before the next
   rate starts. Then a burst of 100 such changes in one transaction; then one lone UPDATE.

How latency is measured: each change writes a unique sequence number into ``notes`` and records
when its commit returned. A watcher thread looks up, every ``--watch`` seconds (0.02), the CRM
record of each key with changes outstanding, in the emulator's in-process store (under the
store's lock: nothing is added to the emulator, and the look-ups cost no calls or credits). A
change has arrived at the first sighting of its record holding its sequence number or a later
one of the same row (a later change sent in its stead carries it too; those are counted as
"superseded"). A latency is therefore late by at most one watch interval plus the wait for the
store's lock and this process's GIL (a few ms), never early; the commit time is taken after
``commit()`` returns, which makes it ~1 ms short. Zoho's Modified_Time has whole seconds only,
so it is not used.

Printed: the settings; per rate the changes, p50 / p99 / max latency, the CRM calls and credits
spent from the first measured change until the last one arrived (run-out included: the stream
was steady all along) and the credits per hour that makes. Below max_delay of stream, the
1 row/s phase is all one partial flush, and its credits per hour overstate (each call's credits
round up to 10 records): run it for longer than max_delay for the steady figure. Then the burst's
p99 against one poll interval + 1 s and the lone change against max_delay + one poll interval,
each "met" or "NOT met". With the defaults (poll 5s, max_delay 10m, 60 s per rate) a run takes
about an hour: each rate's run-out and the lone change wait up to max_delay.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from bench.bench_initial_sync import write_config
from bench.legacy import bench_database, fill, flagged, native, order_row
from syncd.config.durations import parse_duration
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from tests.helpers.daemon import SyncdProcess

FLUSH_SIZE = 100
MARK = "bench change "
INSERT = (
    "INSERT INTO orders (id, order_number, total, order_date, ordered_at, status,"
    " customer_email, quantity, paid, notes) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
SERVERS = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "mysql": "mysql+pymysql://root@127.0.0.1:3306/test",
}


@dataclass
class Change:
    """One committed change and when the CRM record first held it (or a later one)."""

    key: int
    seq: int
    committed: float  # time.monotonic() when commit() returned
    arrived: float | None = None
    superseded: bool = False

    @property
    def latency(self) -> float:
        assert self.arrived is not None
        return self.arrived - self.committed


@dataclass
class Phase:
    name: str
    changes: list[Change]
    seconds: float  # from the first measured commit until the last measured change arrived
    calls: dict[str, int] = field(default_factory=dict)
    credits: int = 0


class Watcher:
    """Notes when each change's content first shows in the emulator's Orders records."""

    def __init__(self, server: EmulatorServer, interval: float) -> None:
        self._store = server.emulator.store
        module = self._store.module("Orders")
        assert module is not None
        self._module = module
        self._notes = module.slot["Notes"]
        self._interval = interval
        self._lock = threading.Lock()
        self._outstanding: dict[int, list[Change]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="latency-watcher", daemon=True)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def add(self, changes: Iterable[Change]) -> None:
        with self._lock:
            for change in changes:
                self._outstanding.setdefault(change.key, []).append(change)

    def pending(self) -> list[Change]:
        """Every change that has not arrived yet."""
        with self._lock:
            return [c for changes in self._outstanding.values() for c in changes]

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._look()

    def _look(self) -> None:
        with self._lock:
            keys = list(self._outstanding)
        seen: dict[int, int] = {}
        with self._store.lock:
            for key in keys:
                record = self._module.find("parent_id", str(key))
                if record is not None:
                    seen[key] = sequence(record[self._notes])
        now = time.monotonic()
        with self._lock:
            for key, seq in seen.items():
                waiting = self._outstanding.get(key, [])
                for change in waiting:
                    if change.seq <= seq:
                        change.arrived, change.superseded = now, change.seq < seq
                left = [c for c in waiting if c.arrived is None]
                if left:
                    self._outstanding[key] = left
                else:
                    self._outstanding.pop(key, None)


def sequence(notes: Any) -> int:
    """The sequence number a change wrote into ``notes``; -1 for the prefilled content."""
    if isinstance(notes, str) and notes.startswith(MARK):
        return int(notes[len(MARK) :])
    return -1


class Application:
    """The legacy application: plain SQL through the native client, autocommit (each
    statement its own commit) unless a burst wraps several in one transaction."""

    def __init__(self, conn: Any, prefill: int) -> None:
        self._conn = conn
        self._pool = deque(range(1, prefill + 1))  # least recently changed first
        self._next_key = prefill + 1
        self._seq = 0

    def _write(self, cur: Any, insert: bool | None = None) -> int:
        """One change, uncommitted: an insert or an update (by default even sequence numbers
        insert, odd ones update)."""
        self._seq += 1
        mark = f"{MARK}{self._seq}"
        if insert is None:
            insert = self._seq % 2 == 0
        if insert or not self._pool:
            key, self._next_key = self._next_key, self._next_key + 1
            cur.execute(INSERT, (*order_row(key)[:-1], mark))
        else:
            key = self._pool.popleft()
            cur.execute("UPDATE orders SET notes = %s, sync = false WHERE id = %s", (mark, key))
        self._pool.append(key)
        return key

    def change(self, insert: bool | None = None) -> Change:
        key = self._write(self._conn.cursor(), insert)
        return Change(key, self._seq, time.monotonic())

    def burst(self, count: int) -> list[Change]:
        cur = self._conn.cursor()
        cur.execute("BEGIN")
        written = [(self._write(cur), self._seq) for _ in range(count)]
        cur.execute("COMMIT")
        committed = time.monotonic()
        return [Change(key, seq, committed) for key, seq in written]


class Bench:
    """The running pieces: emulator, daemon, watcher and application."""

    def __init__(
        self, server: EmulatorServer, daemon: SyncdProcess, watcher: Watcher, app: Application
    ) -> None:
        self.server, self.daemon, self.watcher, self.app = server, daemon, watcher, app

    def counters(self) -> tuple[dict[str, int], int]:
        stats = self.server.admin.stats()
        return dict(stats["calls"]), int(stats["credits"]["total"])

    def check_alive(self) -> None:
        """Stop the benchmark (exit 1, with the daemon's last log lines) if syncd died."""
        proc = self.daemon.proc
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"syncd exited ({proc.returncode}):\n{self.daemon.tail()}")

    def wait_arrived(self, changes: list[Change], timeout: float) -> None:
        """Wait until ``changes`` arrived or ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        while not arrived(changes) and time.monotonic() < deadline:
            self.check_alive()
            time.sleep(0.05)

    def phase(self, name: str, timeout: float, write: Callable[[], list[Change]]) -> Phase:
        """Run ``write()`` (which returns the changes measured), count calls and credits until
        they arrived, then wait for every change outstanding (unmeasured run-out too)."""
        calls_before, credits_before = self.counters()
        changes = write()
        self.wait_arrived(changes, timeout)
        calls_after, credits_after = self.counters()
        ended = time.monotonic()
        self.wait_arrived(self.watcher.pending(), timeout)
        calls = {
            call: calls_after[call] - calls_before.get(call, 0)
            for call in calls_after
            if calls_after[call] != calls_before.get(call, 0)
        }
        seconds = ended - changes[0].committed
        return Phase(name, changes, seconds, calls, credits_after - credits_before)

    def steady(self, rate: float, seconds: float, timeout: float) -> list[Change]:
        """One change every 1/rate s for ``seconds`` (measured), then on at the same rate until
        every measured change arrived (the run-out, not measured): a stream that stopped would
        leave its last partial chunk waiting for max_delay, which a steady stream never does."""
        measured = max(1, round(rate * seconds))
        changes: list[Change] = []
        began = time.monotonic()
        deadline = began + seconds + timeout
        next_check, i = 0.0, 0
        while True:
            now = time.monotonic()
            if i >= measured and now >= next_check:
                self.check_alive()
                if arrived(changes) or now > deadline:
                    return changes
                next_check = now + 0.2
            pause = began + i / rate - now
            if pause > 0:
                time.sleep(pause)
            change = self.app.change()
            self.watcher.add([change])
            if i < measured:
                changes.append(change)
            i += 1

    def burst(self) -> list[Change]:
        changes = self.app.burst(FLUSH_SIZE)
        self.watcher.add(changes)
        return changes

    def lone(self) -> list[Change]:
        change = self.app.change(insert=False)
        self.watcher.add([change])
        return [change]


def arrived(changes: list[Change]) -> bool:
    return all(c.arrived is not None for c in changes)


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``share`` of values <= it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def short_call(name: str) -> str:
    return {
        "POST /crm/v8/{module}": "insert",
        "PUT /crm/v8/{module}": "update",
        "POST /crm/v8/{module}/upsert": "upsert",
        "POST /oauth/v2/token": "token",
    }.get(name, name)


def describe(phase: Phase) -> tuple[str, list[float]]:
    """The phase's line and its latencies (of the changes that arrived)."""
    latencies = [c.latency for c in phase.changes if c.arrived is not None]
    lost = len(phase.changes) - len(latencies)
    superseded = sum(c.superseded for c in phase.changes)
    calls = ", ".join(f"{short_call(n)} {k}" for n, k in sorted(phase.calls.items())) or "none"
    count = len(phase.changes)
    line = f"{phase.name}: {count} change{'s' if count != 1 else ''}"
    if latencies:
        line += (
            f", latency p50 {percentile(latencies, 0.5):.2f} s, "
            f"p99 {percentile(latencies, 0.99):.2f} s, max {max(latencies):.2f} s"
        )
    if superseded:
        line += f", {superseded} superseded"
    if lost:
        line += f", {lost} NEVER ARRIVED"
    line += f"\n    CRM calls: {calls}; credits {phase.credits}"
    return line, latencies


def report(phases: list[Phase], poll: float, max_delay: float) -> None:
    for phase in phases:
        line, latencies = describe(phase)
        if phase.name.endswith("rows/s") and phase.seconds > 0:
            per_hour = phase.credits / phase.seconds * 3600
            line += f", {per_hour:,.0f} credits/hour (over {phase.seconds:.0f} s of stream)"
        print(line)
        arrived_all = bool(latencies) and len(latencies) == len(phase.changes)
        if phase.name == "burst of 100":
            bound, worst, what = poll + 1, percentile(latencies, 0.99) if latencies else 0, "p99"
        elif phase.name == "lone change":
            bound, worst, what = max_delay + poll, max(latencies) if latencies else 0, "latency"
        else:
            continue
        met = arrived_all and worst <= bound
        print(f"    {what} {worst:.2f} s, bound {bound:g} s: {'met' if met else 'NOT met'}")


def run(args: argparse.Namespace) -> None:
    poll = parse_duration(args.poll).total_seconds()
    max_delay = parse_duration(args.max_delay).total_seconds()
    print(
        f"settings: mode realtime, flush_size {FLUSH_SIZE}, poll_interval {args.poll}, "
        f"max_delay {args.max_delay}; {args.database}, {args.prefill} rows prefilled; "
        f"rates {', '.join(f'{r:g}' for r in args.rates)} rows/s for {args.seconds:g} s each; "
        f"watch every {args.watch:g} s"
    )
    timeout = max_delay + 2 * poll + 60
    server_url = args.server_url or SERVERS[args.database]
    with (
        tempfile.TemporaryDirectory(prefix="syncd-bench-") as tmp,
        bench_database(args.database, server_url, Path(tmp)) as url,
        EmulatorServer(EmulatorSettings(daily_credits=10**9)) as server,
    ):
        workdir = Path(tmp)
        fill(url, args.prefill)
        pipeline = (
            f'mode = "realtime"\nflush_size = {FLUSH_SIZE}\n'
            f'poll_interval = "{args.poll}"\nmax_delay = "{args.max_delay}"'
        )
        config = write_config(workdir, url, server.base_url, 'bulk_poll_interval = "1s"', pipeline)
        with (
            SyncdProcess(config, workdir / "syncd.log") as daemon,
            Watcher(server, args.watch) as watcher,
            native(url) as conn,
        ):
            daemon.wait_for("drain_finished", timeout=120)
            print(f"initial sync done: {flagged(url)} of {args.prefill} rows flagged")
            bench = Bench(server, daemon, watcher, Application(conn, args.prefill))
            phases = [
                bench.phase(
                    f"{rate:g} rows/s", timeout, partial(bench.steady, rate, args.seconds, timeout)
                )
                for rate in args.rates
            ]
            phases.append(bench.phase("burst of 100", timeout, bench.burst))
            phases.append(bench.phase("lone change", timeout, bench.lone))
            code = daemon.terminate()
        print(f"syncd run stopped by SIGTERM: exit {code}\n")
        report(phases, poll, max_delay)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--poll", default="5s", help='poll_interval (default "5s")')
    parser.add_argument("--max-delay", default="10m", help='max_delay (default "10m")')
    parser.add_argument("--seconds", type=float, default=60, help="per rate (default 60)")
    parser.add_argument(
        "--rates", type=float, nargs="+", default=[1, 10, 100], help="rows/s (default 1 10 100)"
    )
    parser.add_argument("--prefill", type=int, default=2000, help="rows before the daemon starts")
    parser.add_argument("--database", choices=tuple(SERVERS), default="postgresql")
    parser.add_argument("--server-url", help="database server URL (default: the local one)")
    parser.add_argument("--watch", type=float, default=0.02, help="seconds between look-ups")
    args = parser.parse_args()
    for name in ("poll", "max_delay"):
        try:
            parse_duration(getattr(args, name))
        except ValueError as exc:
            parser.error(f"--{name.replace('_', '-')} {exc}")
    run(args)


if __name__ == "__main__":
    main()
