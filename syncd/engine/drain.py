"""Draining every pending row: the initial sync and the interval mode share this loop.

Each batch (keyset, ``batch_size`` rows) goes out the way the planner says. Bulk jobs are
journaled before they are waited on, and up to ``jobs_in_flight`` of them run while the next
batch is read, written and uploaded. Rounds repeat until a round finds nothing to send, so rows
that changed during the run (or came back "changed meanwhile") go out again.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from syncd.crashpoints import crash_point
from syncd.credits import BULK_JOB_CREDITS
from syncd.engine.apply import (
    SendableRows,
    apply_outcomes,
    encode_bulk_rows,
    prune_rejects,
    send_records,
    sendable_pages,
)
from syncd.engine.backoff import BULK_PAUSE_AFTER, BULK_SCOPE, next_attempt
from syncd.engine.budget import ensure_affordable
from syncd.engine.pace import JobPace
from syncd.engine.planner import BREAK_EVEN, plan_backlog
from syncd.engine.progress import ProgressCallback, ProgressTracker
from syncd.engine.runtime import PipelineRuntime, ensure_may_send
from syncd.errors import (
    BudgetExceeded,
    CrmFatalError,
    CrmRetriableError,
    Stopped,
)
from syncd.model import (
    Api,
    BulkColumn,
    BulkFile,
    BulkJobStatus,
    BulkRow,
    JobState,
    PendingRow,
    Plan,
    RunCounts,
    fingerprints_of,
)
from syncd.ports import Clock, EngineState, OpenJob, Source

logger = logging.getLogger(__name__)

AMBIGUOUS_CODES = frozenset({"TIMEOUT", "TRANSPORT_ERROR", "BAD_RESPONSE"})
"""A call that failed so: the request left, and Zoho may have acted on it (BAD_RESPONSE: an
answer came back but cannot be read, e.g. a proxy's HTML page or a body cut short)."""


MAX_ROUNDS = 10
"""Rounds of one drain: each re-selects what is pending (rows changed while the last round's
jobs ran go in the next); a table written faster than it drains still ends the drain."""


@dataclass(frozen=True)
class InFlight:
    entry_id: int
    job_id: str
    rows: list[PendingRow]
    file_path: str
    keys: tuple[str, ...]  # every key of the job's file: a result naming others is not trusted
    created_at: datetime | None = None  # when Zoho took it (None: resumed from the journal)


@dataclass
class DrainResult:
    counts: RunCounts
    rounds: int
    left_pending: int  # sendable rows still pending when the loop stopped


def drain(
    rt: PipelineRuntime, run_id: int | None, on_progress: ProgressCallback | None = None
) -> DrainResult:
    """Send every sendable pending row; finish journaled jobs from an earlier run first."""
    tracker = ProgressTracker(on_progress)
    counts = recover_jobs(rt, tracker)
    prune_rejects(rt.source, rt.state, rt.name)
    pace = JobPace(rt.tunables.bulk_poll_interval.total_seconds())
    rounds = 0
    while rounds < MAX_ROUNDS and not rt.stop.is_set():
        rounds += 1
        sent, round_counts = _drain_round(rt, run_id, counts, tracker, pace)
        counts = counts + round_counts
        if sent == 0:
            return DrainResult(counts, rounds, _left_while_paused(rt))
        # Only rows that changed meanwhile or came back transient are left: go again at once.
    if rt.stop.is_set():  # stopping: one cheap count, not a scan of what is left
        return DrainResult(counts, rounds, rt.source.count_pending())
    left = sum(len(rows) for rows in sendable_pages(rt, rt.tunables.batch_size))
    return DrainResult(counts, rounds, left)


def _drain_round(
    rt: PipelineRuntime,
    run_id: int | None,
    before: RunCounts,
    tracker: ProgressTracker,
    pace: JobPace,
) -> tuple[int, RunCounts]:
    counts = RunCounts()
    in_flight: deque[InFlight] = deque()
    sent = 0
    size = rt.tunables.batch_size
    rows = SendableRows(rt, PART_ROWS)
    try:
        # A page of BREAK_EVEN rows or more goes by bulk write, so its first BREAK_EVEN rows
        # decide the API; a bulk page's other rows are read while its file is written.
        # A full head is a bulk page, whose next part is read at once when the page has one.
        while head := rows.take(min(size, BREAK_EVEN), more=size > BREAK_EVEN):
            crash_point("after_batch_read")
            if rt.stop.is_set():
                break
            ensure_may_send(rt)
            tracker.read(len(head))
            # A bulk page costs one job whatever its size (batch_size <= BULK_MAX_ROWS).
            plan = plan_backlog(len(head))
            ensure_affordable(rt.state, rt.clock, rt.tunables, plan.credits)
            if plan.api is Api.RECORDS:
                _log_plan(rt.name, plan)
                sent += len(head)
                counts = counts + send_records(rt, head)[0]
                tracker.sent(len(head))
                tracker.settled(before + counts)
                continue
            if bulk_paused(rt.state, rt.clock, rt.name):
                _log_plan(rt.name, plan)
                break  # left pending: they go once the backoff has passed
            page = _PageWriter(rt, rows, tracker)
            bulk_rows = page.bulk_rows(head, size)
            del head  # only the writer holds the page's rows: it lets each part go once written
            # Only fingerprints wait with the jobs: the CSV rows are on disk.
            batch = BulkBatch(rt, run_id, page.kept, bulk_rows)
            del bulk_rows
            sent += page.read
            counts = counts + page.counts  # rows syncd itself rejects (NOT_REPRESENTABLE)
            _log_plan(rt.name, plan_backlog(page.read))
            try:
                while batch:
                    job, counts = _start_when_room(rt, batch, in_flight, tracker, counts, pace)
                    in_flight.append(job)
                    tracker.job_started(job.job_id, len(job.keys))
                    tracker.settled(before + counts)
            finally:
                batch.discard()
                del batch, page  # the next page is read without this one's lean rows map
            tracker.settled(before + counts)
    except BudgetExceeded:
        _finish_in_flight(rt, in_flight, pace)  # paid for already: apply them before giving up
        raise
    return sent, counts + _finish_in_flight(
        rt, in_flight, pace, lambda c: tracker.settled(before + counts + c), tracker
    )


PART_ROWS = BREAK_EVEN
"""A bulk page is read from the source, encoded and written to its file this many rows at a
time: a batch's values and CSV cells never all exist at once, only each row's key and
fingerprint stay with its job (promise 7). 5,000: the break-even, so a page's first part
decides its API; more reads per batch cost little (one keyset query each)."""


class _PageWriter:
    """The rows of one bulk page, read ``PART_ROWS`` at a time and encoded as the file is
    written. Keeps each encoded row, made lean (``PendingRow.make_lean``), and the counts of the
    rows syncd itself rejects; lets each part's values and cells go once written."""

    def __init__(self, rt: PipelineRuntime, rows: SendableRows, tracker: ProgressTracker) -> None:
        self._rt, self._rows, self._tracker = rt, rows, tracker
        self.kept: list[PendingRow] = []  # lean, in the file's order
        self.counts = RunCounts()
        self.read = 0

    def bulk_rows(self, first: list[PendingRow], size: int) -> Iterator[BulkRow]:
        """``first`` (counted as read by the caller) and the page's next rows, up to ``size``
        in all, encoded."""
        part, first = first, []
        while part:
            self.read += len(part)
            encoded, bulk_rows = encode_bulk_rows(self._rt, part)
            self._tracker.encoded(len(bulk_rows))
            self.counts = self.counts + encoded.counts
            PendingRow.make_lean(encoded.rows)  # the part's rows are only the writer's
            self.kept.extend(encoded.rows)
            del encoded, part
            yield from bulk_rows
            del bulk_rows
            left = size - self.read
            part = self._rows.take(min(PART_ROWS, left), more=left > PART_ROWS)
            if part:
                self._tracker.read(len(part))


def _start_when_room(
    rt: PipelineRuntime,
    batch: BulkBatch,
    in_flight: deque[InFlight],
    tracker: ProgressTracker,
    counts: RunCounts,
    pace: JobPace,
) -> tuple[InFlight, RunCounts]:
    """Start the batch's next job, and the counts with any job finished meanwhile.

    At ``jobs_in_flight`` the oldest job is waited for first, and the new job is created as
    soon as Zoho reports the oldest finished, before its result is downloaded and applied: the
    other jobs keep running while syncd applies one, and the next batch is read and written
    while they run (issue 14, goal 4).
    """
    started: list[InFlight] = []
    if len(in_flight) >= rt.tunables.jobs_in_flight:
        oldest = in_flight.popleft()
        counts = counts + finish_job(
            rt, oldest, tracker, lambda: started.append(batch.start_next()), pace
        )
    if not started:  # nothing was waited for, or the oldest could never finish
        started.append(batch.start_next())
    return started[0], counts


def _finish_in_flight(
    rt: PipelineRuntime,
    in_flight: deque[InFlight],
    pace: JobPace,
    report: Callable[[RunCounts], None] | None = None,
    tracker: ProgressTracker | None = None,
) -> RunCounts:
    """Apply the jobs still running. At a stop they stay journaled (CREATED) instead: the next
    start applies them."""
    counts = RunCounts()
    while in_flight and not rt.stop.is_set():
        counts = counts + finish_job(rt, in_flight.popleft(), tracker, pace=pace)
        if report is not None:
            report(counts)
    return counts


def _log_plan(pipeline: str, plan: Plan) -> None:
    logger.info(
        "batch of %d rows: %s",
        plan.rows,
        plan.reason,
        extra={
            "event": "batch_planned",
            "pipeline": pipeline,
            "rows": plan.rows,
            "api": plan.api.value,
            "credits": plan.credits,
        },
    )


def _left_while_paused(rt: PipelineRuntime) -> int:
    """Rows left for after the bulk backoff (0 when a round found nothing to send)."""
    if not bulk_paused(rt.state, rt.clock, rt.name):
        return 0
    return max(rt.source.count_pending() - rt.state.count_rejects(rt.name), 0)


class BulkBatch:
    """The bulk files of one batch, written; each job is started when the drain has room."""

    def __init__(
        self,
        rt: PipelineRuntime,
        run_id: int | None,
        rows: Sequence[PendingRow],
        bulk_rows: Iterable[BulkRow],
    ) -> None:
        """Write one file per Zoho limit of ``bulk_rows`` (``rows``, encoded). Each job keeps
        its ``rows`` for the compare-and-set: lean ones (``PendingRow.lean``) keep memory flat
        while jobs run. ``bulk_rows`` is read once, before ``rows`` (a stream may fill
        ``rows`` as it goes); the caller drops it after this: the rows are on disk."""
        self._rt, self._run_id = rt, run_id
        self._columns = rt.encoder.bulk_columns()
        self._files = deque(rt.crm.build_bulk_files(rt.unique_field, self._columns, bulk_rows))
        self._by_key = {r.key_text: r for r in rows}

    def __bool__(self) -> bool:
        return bool(self._files)

    def start_next(self) -> InFlight:
        """Journal the next file and create its job (the journal row first, the job id
        recorded as soon as Zoho returns it)."""
        file = self._files.popleft()
        return _start_job(self._rt, self._run_id, self._by_key, self._columns, file)

    def discard(self) -> None:
        """Remove the files never journaled (the drain stopped early: an error, a stop)."""
        while self._files:
            _remove(self._files.popleft().path)


def _start_job(
    rt: PipelineRuntime,
    run_id: int | None,
    by_key: dict[str, PendingRow],
    columns: Sequence[BulkColumn],
    file: BulkFile,
) -> InFlight:
    """Journal one file, create its job, record the job id."""
    crash_point("after_bulk_file_written")
    rows = list(map(by_key.__getitem__, file.keys))
    manifest = dict(zip(file.keys, fingerprints_of(rows), strict=True))
    entry = rt.state.journal_prepare(rt.name, run_id, file.path, manifest, rt.clock.now())
    crash_point("after_journal_prepared")
    ensure_may_send(rt)
    job_id = _create_job(rt, entry, columns, file)
    crash_point("after_job_created")
    rt.state.journal_created(entry, job_id, rt.clock.now())
    crash_point("after_journal_created")
    logger.info(
        "bulk job %s created for %d rows",
        job_id,
        file.rows,
        extra={
            "event": "bulk_job_created",
            "pipeline": rt.name,
            "job_id": job_id,
            "rows": file.rows,
            "zipped_bytes": file.zipped_bytes,
        },
    )
    return InFlight(entry, job_id, rows, file.path, tuple(file.keys), rt.clock.now())


def _create_job(
    rt: PipelineRuntime, entry: int, columns: Sequence[BulkColumn], file: BulkFile
) -> str:
    """Upload, then create the job. The journal says SENDING only while the create call is
    out: the one window Zoho leaves open (it has no idempotency key and no way to look a job
    up), so a crash or a lost reply there is the only way a job can be paid twice."""
    file_id = rt.crm.upload_bulk_file(file)
    crash_point("after_upload")
    rt.state.journal_sending(entry, rt.clock.now())
    crash_point("after_journal_sending")
    try:
        return rt.crm.create_bulk_job(rt.module, rt.unique_field, columns, file_id, file.rows)
    except CrmRetriableError as exc:
        if exc.code in AMBIGUOUS_CODES:  # the API layer booked its credits already
            _uncertain(rt, entry, file.rows, f"the reply to the create call was lost ({exc})")
        raise


def _uncertain(rt: PipelineRuntime, entry: int, rows: int, why: str) -> None:
    reason = f"{why}: Zoho may have created and charged this job; its rows go again"
    rt.state.journal_finish(entry, JobState.UNCERTAIN, rt.clock.now(), reason)
    logger.error(
        "bulk job of %d rows may have been paid twice: %s",
        rows,
        reason,
        extra={"event": "bulk_job_uncertain", "pipeline": rt.name, "rows": rows},
    )


def wait_for_job(
    rt: PipelineRuntime,
    job: InFlight,
    tracker: ProgressTracker | None = None,
    pace: JobPace | None = None,
) -> BulkJobStatus:
    """Poll until the job finishes or ``bulk_job_timeout`` passes, when ``pace`` says (at
    once, then on a growing interval, when it knows nothing); ``tracker`` hears each poll
    (the processed count Zoho reports while the job runs)."""
    now = rt.clock.now()
    deadline = now + rt.tunables.bulk_job_timeout
    created_at = job.created_at or now
    pace = pace or JobPace(rt.tunables.bulk_poll_interval.total_seconds())
    running_at: float | None = None
    for wait in pace.waits(len(job.keys), (now - created_at).total_seconds()):
        if wait and rt.stop.wait(wait):  # a stop ends the wait at once, not after the poll
            raise Stopped(
                f"stopping: bulk job {job.job_id} stays journaled and is applied next start"
            )
        ensure_may_send(rt)
        asked = rt.clock.now()
        status = rt.crm.bulk_job_status(job.job_id)
        if tracker is not None:
            tracker.job_polled(status)
        crash_point("after_job_polled")
        if status.finished:
            if job.created_at is not None:  # a resumed job's age is not its run time
                pace.learn(len(job.keys), running_at)
            return status
        now = rt.clock.now()
        if now >= deadline:
            raise CrmRetriableError(
                f"bulk job {job.job_id} still {status.state} after "
                f"{rt.tunables.bulk_job_timeout}; it stays in the journal and is applied when "
                "syncd next starts",
                code="JOB_TIMEOUT",
            )
        running_at = (asked - created_at).total_seconds()  # it ran at least this long
    raise AssertionError("JobPace.waits is endless")  # pragma: no cover


def finish_job(
    rt: PipelineRuntime,
    job: InFlight,
    tracker: ProgressTracker | None = None,
    on_finished: Callable[[], None] | None = None,
    pace: JobPace | None = None,
) -> RunCounts:
    """Wait for a job, apply its result, settle the journal and remove the file.

    ``on_finished`` runs once Zoho reports the job finished, before its result is fetched
    (the drain creates the next job there).

    A job that can never finish (Zoho no longer knows it, its result is gone) is closed with
    the reason instead of failing every later start: its rows are still pending and go again
    once the bulk backoff has passed.
    """
    try:
        status = wait_for_job(rt, job, tracker, pace)
    except CrmFatalError as exc:
        return _close_unfinishable(rt, job, str(exc), tracker)
    if on_finished is not None:  # outside the try: its errors are not this job's
        on_finished()
    try:
        outcomes = [] if status.state == "FAILED" else rt.crm.bulk_job_outcomes(status, job.keys)
    except CrmFatalError as exc:
        return _close_unfinishable(rt, job, str(exc), tracker)
    crash_point("after_result_downloaded")
    if status.state == "FAILED":
        rt.state.journal_finish(
            job.entry_id, JobState.FAILED, rt.clock.now(), "Zoho reported the job FAILED"
        )
        bulk_failed(rt, job.job_id, len(job.rows), "Zoho reported the job FAILED")
        _remove(job.file_path)
        return RunCounts(sent=len(job.rows), retried=len(job.rows))
    counts = apply_outcomes(rt, job.rows, outcomes)
    crash_point("after_outcomes_applied")
    rt.state.journal_finish(job.entry_id, JobState.APPLIED, rt.clock.now())
    crash_point("after_journal_applied")
    rt.state.backoff_clear(rt.name, BULK_SCOPE)
    _remove(job.file_path)
    return counts


def _close_unfinishable(
    rt: PipelineRuntime, job: InFlight, reason: str, tracker: ProgressTracker | None = None
) -> RunCounts:
    if tracker is not None:
        tracker.job_finished(job.job_id)
    rt.state.journal_finish(job.entry_id, JobState.FAILED, rt.clock.now(), reason)
    bulk_failed(rt, job.job_id, len(job.rows), reason)
    _remove(job.file_path)
    return RunCounts(sent=len(job.rows), retried=len(job.rows))


def bulk_paused(state: EngineState, clock: Clock, pipeline: str) -> bool:
    """Whether creating a bulk job must wait for the backoff of earlier failed jobs."""
    backoff = state.backoff(pipeline, BULK_SCOPE)
    return backoff is not None and backoff.blocks(clock.now())


def bulk_failed(rt: PipelineRuntime, job_id: str, rows: int, reason: str) -> None:
    """Record a failed job: no bulk job is created for the pipeline before the backoff ends."""
    now = rt.clock.now()
    known = rt.state.backoff(rt.name, BULK_SCOPE)
    failures = (known.failures if known else 0) + 1
    next_at = next_attempt(failures, now)
    rt.state.backoff_failed(rt.name, BULK_SCOPE, failures, next_at, reason, now)
    fields = {"pipeline": rt.name, "job_id": job_id, "failures": failures}
    logger.error(
        "bulk job %s failed (%s); its %d rows stay pending; no bulk job before %s",
        job_id,
        reason,
        rows,
        next_at.isoformat(timespec="seconds"),
        extra={"event": "bulk_job_failed", **fields, "next_at": next_at.isoformat()},
    )
    if failures == BULK_PAUSE_AFTER:  # said once; `status` and the metric show it meanwhile
        logger.error(
            "%d bulk jobs in a row failed: bulk writes of pipeline %s are paused and retried "
            "on a growing backoff; backlogs below %d rows still go through the records API",
            failures,
            rt.name,
            BREAK_EVEN,
            extra={"event": "bulk_paused", **fields},
        )


def recover_jobs(rt: PipelineRuntime, tracker: ProgressTracker | None = None) -> RunCounts:
    """Finish what an earlier (crashed or stopped) run left in the journal.

    A job Zoho has is polled and applied, never created again. The compare-and-set uses the
    rows as they are now, but only those whose content still hashes to what was sent.
    """
    counts = RunCounts()
    for entry in rt.state.journal_open(rt.name):
        if entry.state is JobState.SENDING:  # killed while the create call was out
            rt.state.record_credits("bulk_create_uncertain", BULK_JOB_CREDITS, rt.clock.now())
            _uncertain(rt, entry.id, len(entry.manifest), "syncd stopped during the create call")
            _remove(entry.file_path)
            continue
        if entry.job_id is None:
            rt.state.journal_finish(
                entry.id,
                JobState.FAILED,
                rt.clock.now(),
                "never created: the previous run stopped first",
            )
            _remove(entry.file_path)
            continue
        logger.info(
            "resuming journaled bulk job %s",
            entry.job_id,
            extra={"event": "bulk_job_resumed", "pipeline": rt.name, "job_id": entry.job_id},
        )
        crash_point("before_job_resumed")
        job = _resumed(rt.source, entry)
        if tracker is not None:
            tracker.job_resumed(job.job_id, len(job.keys))
        counts = counts + finish_job(rt, job, tracker)
    return counts


def _resumed(source: Source, entry: OpenJob) -> InFlight:
    current = source.fetch_rows(list(entry.manifest))
    same = [r for r in current if entry.manifest.get(r.key_text) == r.fingerprint]
    assert entry.job_id is not None
    return InFlight(entry.id, entry.job_id, same, entry.file_path, tuple(entry.manifest))


def _remove(path: str) -> None:
    Path(path).unlink(missing_ok=True)
