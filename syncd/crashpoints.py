"""Named crash points: a test-only switch that makes the process die at one named step.

TEST ONLY. Not a config key and not for operators: the reliability tests set it to prove that a
crash at each step loses nothing and pays no bulk job twice (design.md §3, promise 3)::

    SYNCD_CRASH_AT=<point>[:<n>]      e.g. SYNCD_CRASH_AT=after_job_created:2

The variable is read once, when this module is first imported (at process start). The ``n``-th
time (default 1) the process reaches ``crash_point("<point>")`` it exits at once through
``os._exit(CRASH_EXIT_CODE)``: no ``finally`` blocks, no flushed buffers, no released locks, no
commit, as after ``kill -9``. Unset (always, in production) a crash point is one comparison.

A name that is not in ``POINTS`` is refused at start (exit 2), so a typo in a test can never
turn into a run that simply does not crash. Where each point sits (one line each):

    syncd.engine.drain      after_batch_read, after_bulk_file_written, after_journal_prepared,
                            after_upload, after_journal_sending, after_job_created,
                            after_journal_created, after_job_polled, after_result_downloaded,
                            after_outcomes_applied, after_journal_applied,
                            before_job_resumed
    syncd.engine.apply      after_claims_checked, after_rows_confirmed, after_identities_written,
                            after_rejects_recorded, after_records_sent
    syncd.engine.identity   after_records_update_answer, after_records_insert_answer
    syncd.engine.realtime   after_realtime_poll, after_flush_applied
    syncd.source.table      after_confirm_chunk
    syncd.state.lease       after_lease_acquired (file lock and PostgreSQL advisory lock)
    syncd.daemon.ticks              after_lease_verified (the daemon's lease heartbeat)
"""

from __future__ import annotations

import os
import sys
import threading

ENV = "SYNCD_CRASH_AT"
CRASH_EXIT_CODE = 86
"""The exit status of a crash point: distinct from syncd's own codes (0, 1, 2) and signals."""

POINTS = frozenset(
    {
        # the drain and its bulk jobs
        "after_batch_read",  # a batch of pending rows is read, nothing sent yet
        "after_bulk_file_written",  # the zipped CSV is on disk, not journaled yet
        "after_journal_prepared",  # journaled PREPARED, not uploaded
        "after_upload",  # Zoho has the file (1 credit), no job yet, journal not SENDING
        "after_journal_sending",  # journal says SENDING, the create call not made yet
        "after_job_created",  # Zoho created (and charged) the job, the journal does not know
        "after_journal_created",  # the job id is journaled, nobody waits for it yet
        "after_job_polled",  # one status poll answered (during polling)
        "after_result_downloaded",  # the result is parsed, nothing applied
        "after_outcomes_applied",  # rows confirmed and rejects recorded, journal not APPLIED
        "after_journal_applied",  # journal APPLIED, the bulk file not removed yet
        "before_job_resumed",  # a restart found a journaled job and is about to finish it
        # applying outcomes (bulk results and records API answers alike)
        "after_claims_checked",  # the take-over guard ran, no row confirmed yet
        "after_confirm_chunk",  # one confirmation chunk committed, the next not started
        "after_rows_confirmed",  # every chunk committed, the last one's identities not written
        # (no chunk's, where they are confirmed inline: syncd.engine.confirm)
        "after_identities_written",  # identities written, rejects not recorded
        "after_rejects_recorded",  # rejects recorded, not counted or logged
        # the records API and the realtime flush
        "after_records_update_answer",  # Zoho answered the updates by record id
        "after_records_insert_answer",  # Zoho answered the inserts, their ids are not stored
        "after_records_sent",  # a records write (a realtime flush) answered, not applied
        "after_realtime_poll",  # pending keys buffered in the state store, nothing flushed
        "after_flush_applied",  # a flush applied, its keys still in the buffer
        # leases
        "after_lease_acquired",  # the lease is ours, its record not written
        "after_lease_verified",  # a heartbeat found the lease still held
    }
)


def _parse(raw: str | None) -> tuple[str, int] | None:
    if not raw:
        return None
    name, _, count = raw.partition(":")
    if name not in POINTS or not (count or "1").isdigit() or int(count or "1") < 1:
        sys.stderr.write(
            f"syncd: {ENV}={raw!r} is not <point>[:<n>] with a known point and n >= 1 "
            f"(points: {', '.join(sorted(POINTS))})\n"
        )
        sys.exit(2)
    return name, int(count or "1")


_target = _parse(os.environ.get(ENV))
_reached = 0
_lock = threading.Lock()


def crash_point(name: str) -> None:
    """Exit hard here if ``SYNCD_CRASH_AT`` names this point and this is its n-th time."""
    if _target is None or _target[0] != name:
        return
    global _reached  # one process-wide count, as the switch itself is process-wide
    with _lock:
        _reached += 1
        if _reached < _target[1]:
            return
    os.write(2, f"syncd: crash point {name} reached ({ENV}), exiting hard\n".encode())
    os._exit(CRASH_EXIT_CODE)
