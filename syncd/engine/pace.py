"""When to ask Zoho whether a bulk job has finished.

Polling every ``bulk_poll_interval`` from the moment syncd starts waiting sees a job finish up
to one interval late, and with ``jobs_in_flight`` jobs at once every late look leaves Zoho one
job short (issue 14, goal 4: at T = 2 s per job and a 1 s interval the jobs ran about a second
longer each). A drain's jobs are alike, so the time the last few took, per row, says when the
next will be done: the first status call goes then, and the next ones follow closely. A job
that takes a minute is then polled two or three times instead of seven.

Only what was seen is learned: the time after its creation at which a job was last seen
still running is a lower bound of its duration, so the estimate never runs ahead of the jobs
it came from (a job already done at its first poll teaches nothing).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

MAX_POLL_WAIT = 60.0
POLL_GROWTH = 1.2
"""Each wait for a running job is this much longer than the last: a finished job is seen at
most a fifth of its run time late (1.5 made it up to a third, and k jobs at once then run
noticeably fewer than k), for a few more status calls per job."""

MIN_STEP = 0.25
"""The shortest wait between two status calls once a job is due: at most 4 calls a second."""

REMEMBERED = 3
"""Jobs whose pace is kept: the slowest recent job does not delay the next, the fastest rules."""


class JobPace:
    """How long this drain's bulk jobs took per row, and so when to poll the next one."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._per_row: deque[float] = deque(maxlen=REMEMBERED)

    def waits(self, rows: int, elapsed: float) -> Iterator[float]:
        """The seconds to wait before each status call of a job of ``rows`` rows created
        ``elapsed`` seconds ago: the first (0: at once), then one after each call that found
        it running. Endless; the caller stops at the job's end or its timeout."""
        if not self._per_row:  # nothing known: at once, then the configured interval
            yield 0.0
            wait = self._interval
        else:
            due = min(self._per_row) * rows
            yield max(due - elapsed, 0.0)
            wait = min(max(due / 10, MIN_STEP), self._interval)
        while True:
            yield wait
            wait = min(wait * POLL_GROWTH, MAX_POLL_WAIT)

    def learn(self, rows: int, running_at: float | None) -> None:
        """A job of ``rows`` rows finished; ``running_at``: the seconds after its creation of
        the last status call that found it running (None: the first call found it done)."""
        if running_at is not None and rows > 0:
            self._per_row.append(running_at / rows)
