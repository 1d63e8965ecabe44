"""The drain's progress events and the ETA, fed by hand (pure bookkeeping, no I/O)."""

from __future__ import annotations

import io
import sys
from datetime import timedelta

import pytest

from syncd.commands.progress import describe, progress_bar
from syncd.engine.progress import Progress, ProgressTracker, eta
from syncd.model import BulkJobStatus, RunCounts


def test_each_step_is_one_event_and_a_polls_count_only_when_it_moved() -> None:
    heard: list[Progress] = []
    tracker = ProgressTracker(heard.append)
    tracker.read(5000)
    tracker.encoded(5000)
    tracker.job_started("J1", 5000)
    tracker.job_polled(BulkJobStatus("J1", "ADDED"))  # Zoho says no count yet: nothing new
    tracker.job_polled(BulkJobStatus("J1", "INPROGRESS", processed=1200))
    tracker.job_polled(BulkJobStatus("J1", "INPROGRESS", processed=1200))  # unchanged
    tracker.job_polled(BulkJobStatus("J1", "INPROGRESS", processed=3000))
    tracker.job_polled(BulkJobStatus("J1", "COMPLETED", processed=5000))
    tracker.job_finished("J1")  # said again by the caller: counted once
    tracker.settled(RunCounts(sent=5000, confirmed=4990, rejected=10))
    tracker.sent(40)  # a records-API batch: encoded and handed over at once

    assert [p.step for p in heard] == [
        "read", "encoded", "uploaded", "job_polled", "job_polled", "job_finished", "settled",
        "sent",
    ]  # fmt: skip
    assert [p.jobs[0].processed for p in heard if p.step == "job_polled"] == [1200, 3000]
    last = heard[-1]
    assert (last.read, last.encoded, last.uploaded) == (5000, 5040, 5040)
    assert (last.jobs, last.jobs_done, last.settled) == ((), 1, 5000)


def test_the_eta_waits_for_two_finished_jobs_then_follows_the_pace() -> None:
    one = Progress("job_finished", RunCounts(confirmed=5000), jobs_done=1)
    assert eta(one, 20_000, timedelta(seconds=60)) is None
    two = Progress("job_finished", RunCounts(confirmed=9000, rejected=1000), jobs_done=2)
    assert eta(two, 20_000, timedelta(seconds=60)) == timedelta(seconds=60)
    assert "ETA 1m00s" in describe(two, 20_000, eta(two, 20_000, timedelta(seconds=60)))
    assert "ETA" not in describe(one, 20_000, None)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_bar_shows_running_jobs_and_never_goes_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    screen = _Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    with progress_bar("orders", 10_000) as update:
        tracker = ProgressTracker(update)
        tracker.job_started("J1", 5000)
        tracker.job_polled(BulkJobStatus("J1", "INPROGRESS", processed=1200))
        tracker.job_polled(BulkJobStatus("J1", "COMPLETED", processed=5000))  # not settled yet
        tracker.job_started("J2", 5000)
        tracker.job_polled(BulkJobStatus("J2", "INPROGRESS", processed=700))
    last = [frame for frame in screen.getvalue().split("\r") if "orders" in frame][-1]
    assert "job 700/5,000" in last  # the running job, with Zoho's count
    assert "1,200/10,000" in last  # J1's processed rows stay counted until they settle
