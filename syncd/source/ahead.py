"""Reading the next part of pending rows while the engine encodes this one.

PostgreSQL spends about 10 ms on each part of 5,000 pending rows (the fingerprint of each row
is computed as it is read), and syncd waited for it: 2 s of an initial sync of 1,000,000 rows
(BENCHMARKS.md, issue 14). When the engine says another part follows at once, the next part's
query runs on a thread of its own while this part is encoded. What it keeps is the driver's
buffer of the answer (libpq's, about 1 MB per 5,000 rows), not rows: the rows are made, as
any others, when the engine asks for them. Its transaction is ended as soon as the answer is
in, so a part read ahead holds no lock on the legacy table, only a pooled connection.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

Answer = tuple[Connection, Any]
"""A connection out of the pool, and the query's result, buffered in the driver."""


class ReadAhead:
    """One keyset part's query (the part after ``after_key``, ``limit`` rows), run ahead of
    need by ``run`` on a thread of its own."""

    def __init__(self, after_key: Any, limit: int, query: Any, run: Callable[[], Answer]) -> None:
        self.after_key, self.limit, self.query = after_key, limit, query
        self._answer: Answer | None = None
        self._thread = threading.Thread(
            target=self._run, args=(run,), name="syncd-read-ahead", daemon=True
        )
        self._thread.start()

    def _run(self, run: Callable[[], Answer]) -> None:
        # An error is not kept: the part is then read again the usual way, with its retries
        # and its message.
        with contextlib.suppress(Exception):
            self._answer = run()

    def is_for(self, after_key: Any, limit: int) -> bool:
        """Whether this is the part asked for (the engine may ask for another)."""
        return (
            self.limit == limit
            and type(self.after_key) is type(after_key)
            and (self.after_key == after_key)
        )

    def answer(self) -> Answer | None:
        """The answer once it is in; None if the query failed. The caller closes the
        connection."""
        self._thread.join()
        return self._answer

    def discard(self) -> None:
        """Not wanted: wait for the query, and give its connection back."""
        answer = self.answer()
        if answer is not None:
            with contextlib.suppress(Exception):
                answer[1].close()
                answer[0].close()
