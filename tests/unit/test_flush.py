"""The realtime flush rule: full chunks at once, a partial chunk once its oldest is due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from syncd.engine.flush import decide_flush

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
MAX_DELAY = timedelta(minutes=10)


@pytest.mark.parametrize(
    ("buffered", "rows"),
    [(100, 100), (199, 100), (250, 200), (4_999, 4_900)],
)
def test_full_chunks_go_at_once_and_the_remainder_waits(buffered: int, rows: int) -> None:
    """250 young rows: 200 now (two calls of 100), the other 50 keep waiting."""
    decision = decide_flush(buffered, NOW, NOW, 100, MAX_DELAY)
    assert decision.rows == rows


def test_a_partial_chunk_waits_until_the_oldest_reaches_max_delay() -> None:
    """50 rows first seen 9:59 ago wait; at exactly 10:00 all 50 go."""
    almost = decide_flush(50, NOW - MAX_DELAY + timedelta(seconds=1), NOW, 100, MAX_DELAY)
    due = decide_flush(50, NOW - MAX_DELAY, NOW, 100, MAX_DELAY)
    assert (almost.rows, due.rows) == (0, 50)
    assert "max_delay" in due.reason


def test_once_the_oldest_is_due_the_remainder_goes_with_the_full_chunks() -> None:
    """250 rows, the oldest due: all 250 go now, not 200 now and 50 one poll later."""
    assert decide_flush(250, NOW - MAX_DELAY, NOW, 100, MAX_DELAY).rows == 250


def test_an_empty_buffer_never_flushes() -> None:
    """Nothing buffered: nothing to send, whatever the clock says."""
    assert decide_flush(0, None, NOW, 100, MAX_DELAY).rows == 0


def test_flush_size_is_the_configured_one() -> None:
    """flush_size 25: 60 buffered young rows send two chunks of 25 now."""
    assert decide_flush(60, NOW, NOW, 25, MAX_DELAY).rows == 50


def test_a_change_due_before_the_next_poll_goes_now() -> None:
    """max_delay is a bound: a change that would overrun it by the next poll is sent now."""
    poll = timedelta(seconds=5)
    oldest = NOW - MAX_DELAY + timedelta(seconds=3)  # due in 3 s, the next poll is in 5 s
    assert decide_flush(1, oldest, NOW, 100, MAX_DELAY, poll).rows == 1
    assert decide_flush(1, oldest, NOW, 100, MAX_DELAY, timedelta(seconds=2)).rows == 0
