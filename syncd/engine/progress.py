"""What a drain reports while it runs: one ``Progress`` event per step.

Steps: a batch read from the legacy table, encoded, sent (records API) or uploaded and made a
bulk job, a poll of a running job whose processed count moved, a job finished, rows settled.
Each event carries the whole picture, so a listener (the progress bar, a log line per step)
keeps no state of its own. Pure bookkeeping: the drain loop calls the tracker, never the
other way round.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta

from syncd.model import BulkJobStatus, RunCounts

ETA_AFTER_JOBS = 2
"""Jobs that must have finished before an ETA is shown: the first one also carries the time
to read, encode and upload, and the Zoho queue's start-up."""


@dataclass(frozen=True)
class JobProgress:
    job_id: str
    rows: int  # rows in the job's file
    processed: int = 0  # rows Zoho reports processed so far


@dataclass(frozen=True)
class Progress:
    step: str  # read, encoded, sent, uploaded, job_resumed, job_polled, job_finished, settled
    counts: RunCounts  # rows settled (confirmed, rejected, ...) and credits so far
    read: int = 0  # rows read from the legacy table
    encoded: int = 0  # rows encoded for Zoho (CSV for a bulk job, JSON for the records API)
    uploaded: int = 0  # rows handed to Zoho: in a bulk job's uploaded file or a records call
    jobs: tuple[JobProgress, ...] = ()  # the bulk jobs running now
    jobs_done: int = 0

    @property
    def settled(self) -> int:
        return self.counts.confirmed + self.counts.rejected


ProgressCallback = Callable[[Progress], None]


def eta(progress: Progress, total: int, elapsed: timedelta) -> timedelta | None:
    """Time left at the pace so far, once ``ETA_AFTER_JOBS`` jobs have finished; else None."""
    if progress.jobs_done < ETA_AFTER_JOBS or progress.settled <= 0:
        return None
    left = max(total - progress.settled, 0)
    return elapsed * (left / progress.settled)


@dataclass
class ProgressTracker:
    """Counts a drain's steps and tells ``listener`` after each one (nothing without one)."""

    listener: ProgressCallback | None
    current: Progress = field(default_factory=lambda: Progress("start", RunCounts()))

    def _publish(self, progress: Progress) -> None:
        self.current = progress
        if self.listener is not None:
            self.listener(progress)

    def read(self, rows: int) -> None:
        self._publish(replace(self.current, step="read", read=self.current.read + rows))

    def encoded(self, rows: int) -> None:
        self._publish(replace(self.current, step="encoded", encoded=self.current.encoded + rows))

    def sent(self, rows: int) -> None:
        """Rows that went by the records API: encoded and handed over in one go."""
        now = self.current
        self._publish(
            replace(now, step="sent", encoded=now.encoded + rows, uploaded=now.uploaded + rows)
        )

    def job_started(self, job_id: str, rows: int) -> None:
        now = self.current
        jobs = (*now.jobs, JobProgress(job_id, rows))
        self._publish(replace(now, step="uploaded", uploaded=now.uploaded + rows, jobs=jobs))

    def job_resumed(self, job_id: str, rows: int) -> None:
        """A job an earlier run created: watched, but its rows were uploaded back then."""
        jobs = (*self.current.jobs, JobProgress(job_id, rows))
        self._publish(replace(self.current, step="job_resumed", jobs=jobs))

    def job_polled(self, status: BulkJobStatus) -> None:
        """A poll; reported when the job's processed count moved, or it finished."""
        if status.finished:
            self.job_finished(status.job_id)
            return
        jobs = self.current.jobs
        moved = tuple(
            replace(j, processed=status.processed)
            if j.job_id == status.job_id and status.processed is not None
            else j
            for j in jobs
        )
        if moved != jobs:
            self._publish(replace(self.current, step="job_polled", jobs=moved))

    def job_finished(self, job_id: str) -> None:
        """Counted once, whether its last poll or a fatal error said so first."""
        now = self.current
        jobs = tuple(j for j in now.jobs if j.job_id != job_id)
        if jobs == now.jobs:
            return
        self._publish(replace(now, step="job_finished", jobs=jobs, jobs_done=now.jobs_done + 1))

    def settled(self, counts: RunCounts) -> None:
        if counts != self.current.counts:
            self._publish(replace(self.current, step="settled", counts=counts))
