"""Running bulk jobs: the board of files and jobs, the runner, and the background worker.

A job moves ADDED -> RUNNING ("IN PROGRESS") -> COMPLETED, or FAILED when a ``fail_jobs``
fault picks it (a failed job writes nothing and has no result). The worker thread processes
up to ``bulk_parallel_jobs`` jobs at once, in creation order, at ``bulk_rows_per_second``; a job
completes no sooner than ``bulk_job_seconds`` after it started (how a benchmark models Zoho's
job latency T with k jobs at once). With neither a rate nor a job time, the first status poll
runs the whole job. Finished jobs POST their details to the callback URL, if any.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from syncd.emulator.bulk_files import UploadedFile
from syncd.emulator.bulk_jobs import Job
from syncd.emulator.bulk_rows import RowEngine, broken_result_zip, result_zip
from syncd.emulator.faults import FaultState
from syncd.emulator.limits import Stats, Throttled
from syncd.emulator.settings import EmulatorSettings
from syncd.emulator.store import RecordStore

logger = logging.getLogger(__name__)

_MAX_CHUNK = 2_000  # rows per store-lock hold: keeps record calls responsive during a job


class JobBoard:
    """Uploaded files and created jobs; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.files: dict[str, UploadedFile] = {}
        self.jobs: dict[str, Job] = {}
        self.wake = threading.Event()

    def add_file(self, file: UploadedFile) -> None:
        with self._lock:
            self.files[file.id] = file

    def add_job(self, job: Job) -> None:
        with self._lock:
            self.jobs[job.id] = job
        self.wake.set()

    def check_capacity(self, cap: int) -> None:
        """``Throttled('bulk_jobs')`` when ``cap`` jobs are unfinished (reference 5.8)."""
        with self._lock:
            if sum(not j.finished for j in self.jobs.values()) >= cap:
                raise Throttled("bulk_jobs")

    def next_runnable(self, now: float, settings: EmulatorSettings) -> Job | None:
        """The oldest job with work to do now: a running one with rows left or whose
        ``bulk_job_seconds`` are over, else one that waited ``bulk_queue_seconds`` in ADDED
        while fewer than ``bulk_parallel_jobs`` run."""
        with self._lock:
            running = [j for j in self.jobs.values() if j.state == "RUNNING"]
            for job in running:
                assert job.started_at is not None
                if not job.rows_done or job.started_at + settings.bulk_job_seconds <= now:
                    return job
            if len(running) >= settings.bulk_parallel_jobs:
                return None
            for job in self.jobs.values():
                if job.state == "ADDED" and job.queued_at + settings.bulk_queue_seconds <= now:
                    return job
        return None


@dataclass
class _Run:
    engine: RowEngine
    rows: Iterator[list[str]]
    results: list[list[str]] = field(default_factory=list)


class JobRunner:
    """Advances jobs; ``step`` may be called from the worker or from a status poll."""

    def __init__(
        self,
        store: RecordStore,
        settings: EmulatorSettings,
        zone: tzinfo,
        stats: Stats,
        faults: FaultState,
        on_finish: Callable[[Job], None],
    ) -> None:
        self._store, self._settings, self._zone = store, settings, zone
        self._stats, self._faults, self._on_finish = stats, faults, on_finish
        self._runs: dict[str, _Run] = {}

    def step(self, job: Job, limit: int) -> int:
        """Process up to ``limit`` rows of ``job``; returns how many were processed."""
        with job.lock:
            if job.finished:
                return 0
            chunk: list[list[str]] = []
            if job.state == "RUNNING" or self._start(job):
                run = self._runs[job.id]
                chunk = list(itertools.islice(run.rows, limit))
                self._apply(job, run, chunk)
                job.rows_done = job.rows_done or len(chunk) < limit
                if job.rows_done and self._due(job):
                    self._complete(job, run)
        if job.finished:
            self._on_finish(job)
        return len(chunk)

    def _due(self, job: Job) -> bool:
        assert job.started_at is not None
        return time.monotonic() >= job.started_at + self._settings.bulk_job_seconds

    def run_to_end(self, job: Job) -> None:
        while not job.finished:
            self.step(job, _MAX_CHUNK)

    def _start(self, job: Job) -> bool:
        if self._faults.take_job_failure():
            job.state, job.finished_at = "FAILED", time.monotonic()
            self._stats.bump("bulk", "jobs_failed")
            logger.info(
                "bulk job failed by fault", extra={"event": "emulator_job_failed", "job": job.id}
            )
            return False
        module = self._store.module(job.request.module.api_name)
        assert module is not None  # validated when the job was created
        unprocessed = self._faults.current.unprocessed_rate
        engine = RowEngine(
            job,
            module,
            self._settings,
            self._zone,
            self._store.ids,
            unprocessed,
            self._store.module,
        )
        self._runs[job.id] = _Run(engine, job.request.file.iter_rows())
        job.state, job.started_at = "RUNNING", time.monotonic()
        return True

    def _apply(self, job: Job, run: _Run, chunk: list[list[str]]) -> None:
        now = datetime.now(self._zone).isoformat(timespec="seconds")
        counts = job.counts
        with self._store.lock:
            for row in chunk:
                result, status = run.engine.apply(row, now)
                run.results.append(result)
                if status != "UNPROCESSED":
                    counts[status.lower()] += 1
        counts["total"] += len(chunk)
        self._stats.bump("bulk", "rows", len(chunk))

    def _complete(self, job: Job, run: _Run) -> None:
        job.result = result_zip(job, run.engine.header, run.results, self._settings, job.rng)
        if self._faults.take("broken_results"):  # the records are written; the result is not
            kind = self._faults.current.broken_result
            job.result = broken_result_zip(job, run.engine.header, run.results, kind)
            self._stats.bump("faults", f"broken_result_{kind}")
        del self._runs[job.id]
        job.state, job.finished_at = "COMPLETED", time.monotonic()
        self._stats.bump("bulk", "jobs_completed")
        logger.info(
            "bulk job completed",
            extra={"event": "emulator_job_completed", "job": job.id, **job.counts},
        )


class BulkWorker:
    """The background thread that runs jobs at ``bulk_rows_per_second``."""

    def __init__(self, board: JobBoard, runner: JobRunner, settings: EmulatorSettings) -> None:
        self._board, self._runner, self._settings = board, runner, settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="emulator-bulk", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._board.wake.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        rate = float(self._settings.bulk_rows_per_second or 0)
        chunk = max(1, min(_MAX_CHUNK, int(rate / 20))) if rate else _MAX_CHUNK
        while not self._stop.is_set():
            job = self._board.next_runnable(time.monotonic(), self._settings)
            if job is None:
                self._board.wake.wait(0.02)
                self._board.wake.clear()
                continue
            began = time.monotonic()
            done = self._runner.step(job, chunk)
            if rate:
                self._stop.wait(max(0.0, done / rate - (time.monotonic() - began)))
