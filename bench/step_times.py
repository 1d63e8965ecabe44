"""Run ``syncd ARGS...`` with the CPU and wall time of each step of a bulk drain added up.

    .venv/bin/python -m bench.step_times OUT.txt -c config.toml initial-sync

A sampling profile (``--py-spy``) gives shares of samples; this gives seconds: for each step
below, the CPU time (user + system) of the thread that ran it and the wall time spent inside
it over the whole run, and how often it ran. Wall minus CPU is time spent waiting (for
PostgreSQL, the emulator, a poll, the GIL). Steps nest (``apply_outcomes`` holds
``claim_records`` and ``confirm_and_remember``, which holds ``mark_synced`` and ``remember``;
``finish_job`` holds the next job's start), so the lines do not add up to the total; on
PostgreSQL ``mark_synced`` runs on a thread of its own, beside ``remember``, so their wall
times overlap. The wrappers cost about 1 µs per call, and the steps are called per part or
per job, not per row, so the figures are those of the unwrapped run.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import syncd.crm.bulk as crm_bulk
import syncd.crm.bulk_csv as bulk_csv
import syncd.engine.apply as apply
import syncd.engine.confirm as confirm
import syncd.engine.drain as drain
from syncd.cli import main
from syncd.crm.client import CrmClient
from syncd.source.table import LegacyTable
from syncd.state.store import StateStore

STEPS: list[tuple[Any, str, str]] = [
    (drain, "finish_job", "wait for a job, apply its result (and start the next one)"),
    (drain, "wait_for_job", "status calls and the waits between them"),
    (CrmClient, "bulk_job_outcomes", "download and parse a result"),
    (crm_bulk, "_read_result", "parse a result and check its keys"),
    (drain, "apply_outcomes", "apply a job's outcomes"),
    (LegacyTable, "mark_synced", "the compare-and-set (PostgreSQL's time shows as wall)"),
    (apply, "claim_records", "the take-over guard"),
    (StateStore, "record_owners", "the guard's lookup of record owners"),
    (apply, "confirm_and_remember", "the two below, on two threads where they overlap"),
    (confirm, "remember", "recording identities"),
    (StateStore, "record_identities", "the identity map's statements"),
    (LegacyTable, "pending_batch", "reading a part of pending rows"),
    (drain, "encode_bulk_rows", "encoding a part's cells"),
    (bulk_csv, "_block_fits", "CSV lines of a block, checked against the file limits"),
    (bulk_csv._ZipCsv, "_flush", "zlib: compressing the CSV into the zip"),
    (drain, "_start_job", "journal a file, upload it, create its job"),
    (CrmClient, "upload_bulk_file", "the upload call"),
    (CrmClient, "create_bulk_job", "the create call"),
    (StateStore, "journal_prepare", "journal: the file and its manifest"),
]


class Totals:
    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}
        self.wall: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def wrap(self, owner: Any, name: str) -> None:
        inner: Callable[..., Any] = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            # The calling thread's CPU: mark_synced may run on a thread of its own.
            cpu, wall = time.thread_time(), time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.cpu[name] = self.cpu.get(name, 0.0) + time.thread_time() - cpu
                self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - wall
                self.calls[name] = self.calls.get(name, 0) + 1

        setattr(owner, name, timed)

    def report(self) -> str:
        lines = [f"process CPU {time.process_time():.2f} s (start-up included)"]
        lines.append(f"{'step':20s} {'CPU s':>7s} {'wall s':>7s} {'calls':>6s}  what")
        for _, name, what in STEPS:
            if name in self.calls:
                lines.append(
                    f"{name:20s} {self.cpu[name]:7.2f} {self.wall[name]:7.2f} "
                    f"{self.calls[name]:6d}  {what}"
                )
        return "\n".join(lines) + "\n"


if __name__ == "__main__":
    out, *args = sys.argv[1:]
    totals = Totals()
    for owner, name, _ in STEPS:
        totals.wrap(owner, name)
    try:
        main(args)
    finally:
        Path(out).write_text(totals.report(), encoding="utf-8")
