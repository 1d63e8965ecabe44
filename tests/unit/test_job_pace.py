"""When the drain asks Zoho about a bulk job (syncd.engine.pace)."""

from __future__ import annotations

from itertools import islice

import pytest

from syncd.engine.pace import MAX_POLL_WAIT, MIN_STEP, JobPace


def _first(pace: JobPace, n: int, rows: int = 25_000, elapsed: float = 0.0) -> list[float]:
    return [round(w, 3) for w in islice(pace.waits(rows, elapsed), n)]


def test_knowing_nothing_it_asks_at_once_then_on_the_growing_interval() -> None:
    assert _first(JobPace(5.0), 4) == [0.0, 5.0, 6.0, 7.2]


def test_the_waits_never_exceed_the_cap() -> None:
    waits = list(islice(JobPace(5.0).waits(25_000, 0.0), 60))
    assert max(waits) == MAX_POLL_WAIT


def test_a_job_seen_running_sets_when_the_next_one_is_first_asked_about() -> None:
    """A 25,000-row job still running 1.8 s after its creation: the next job of that size is
    first asked about 1.8 s after its creation, then closely (not a whole interval later)."""
    pace = JobPace(1.0)
    pace.learn(25_000, 1.8)
    assert _first(pace, 3, elapsed=0.5) == [1.3, MIN_STEP, round(MIN_STEP * 1.2, 3)]


def test_the_first_call_is_at_once_when_the_job_is_already_due() -> None:
    pace = JobPace(1.0)
    pace.learn(25_000, 1.8)
    assert _first(pace, 1, elapsed=4.0) == [0.0]


def test_the_estimate_scales_with_the_jobs_rows() -> None:
    """The last job of a drain is often small: it is asked about sooner."""
    pace = JobPace(5.0)
    pace.learn(25_000, 50.0)
    assert _first(pace, 2, rows=5_000) == [10.0, 1.0]


def test_the_steps_after_the_due_time_stay_within_the_interval() -> None:
    """A job known to take ten minutes is asked about again within the configured interval
    once it is due, not a tenth of its run time later."""
    pace = JobPace(5.0)
    pace.learn(25_000, 600.0)
    assert _first(pace, 2) == [600.0, 5.0]


def test_the_fastest_of_the_last_jobs_rules() -> None:
    pace = JobPace(5.0)
    for running_at in (30.0, 20.0, 40.0):
        pace.learn(25_000, running_at)
    assert _first(pace, 1) == [20.0]
    for running_at in (40.0, 40.0, 40.0):  # only the last three are kept
        pace.learn(25_000, running_at)
    assert _first(pace, 1) == [40.0]


@pytest.mark.parametrize("running_at", [None, 3.0])
def test_a_job_done_at_its_first_call_or_empty_teaches_nothing(running_at: float | None) -> None:
    pace = JobPace(5.0)
    pace.learn(0 if running_at else 25_000, running_at)
    assert _first(pace, 2) == [0.0, 5.0]
