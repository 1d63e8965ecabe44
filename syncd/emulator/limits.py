"""API limits (reference 6): the rolling credit ledger, concurrency gates, and the stats.

Credits: 1 per call, 1 per 10 records on record writes, 500 per bulk job, checked against
``daily_credits`` over a rolling ``credit_window_seconds``. Concurrency: in-flight CRM calls
beyond ``concurrency``, or in-flight "complex" calls (record writes of more than 10 records,
bulk job creation) beyond ``sub_concurrency``, are answered 429 TOO_MANY_REQUESTS.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_MESSAGES = {
    "credits": "the number of API credits for the 24 hour period is exceeded",
    "concurrency": "the concurrency limit of the user for the app is exceeded",
    "sub_concurrency": "the sub-concurrency limit for complex APIs is exceeded",
    "bulk_jobs": "the maximum number of bulk write jobs in progress is reached",
    "fault": "too many requests",
}


class Throttled(Exception):
    """A call refused with 429 TOO_MANY_REQUESTS; ``reason`` says which limit."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.message = _MESSAGES[reason]


class CreditLedger:
    """Credits spent in the rolling window; thread-safe."""

    def __init__(self, daily: int, window: float, clock: Callable[[], float] = time.monotonic):
        self.daily = daily
        self._window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._spent: deque[tuple[float, int]] = deque()
        self._in_window = 0
        self.total = 0

    def charge(self, credits: int) -> None:
        """Spend ``credits`` or raise ``Throttled('credits')`` if the window cannot hold them."""
        with self._lock:
            self._roll()
            if self._in_window + credits > self.daily:
                raise Throttled("credits")
            self._spent.append((self._clock(), credits))
            self._in_window += credits
            self.total += credits

    def used(self) -> int:
        with self._lock:
            self._roll()
            return self._in_window

    def _roll(self) -> None:
        horizon = self._clock() - self._window
        while self._spent and self._spent[0][0] <= horizon:
            self._in_window -= self._spent.popleft()[1]


class Gate:
    """Counts in-flight calls and refuses those over the limits; thread-safe."""

    def __init__(self, limit: int, complex_limit: int) -> None:
        self._limit, self._complex_limit = limit, complex_limit
        self._lock = threading.Lock()
        self.in_flight = self.complex_in_flight = self.peak = 0

    @contextmanager
    def call(self) -> Iterator[None]:
        with self._lock:
            if self.in_flight >= self._limit:
                raise Throttled("concurrency")
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1

    def acquire_complex(self) -> None:
        """Take a sub-concurrency slot or raise ``Throttled('sub_concurrency')``."""
        with self._lock:
            if self.complex_in_flight >= self._complex_limit:
                raise Throttled("sub_concurrency")
            self.complex_in_flight += 1

    def release_complex(self) -> None:
        with self._lock:
            self.complex_in_flight -= 1


class Stats:
    """What the emulator saw, for ``GET /_emulator/stats``; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, Counter[str]] = {
            name: Counter()
            for name in ("calls", "statuses", "throttled", "faults", "bulk", "deletes")
        }

    def bump(self, counter: str, key: str, n: int = 1) -> None:
        with self._lock:
            self._counters[counter][key] += n

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {name: dict(counter) for name, counter in self._counters.items()}
