"""Confirming a job's rows while their identities are written.

The compare-and-set is mostly waiting: for the legacy database to compare and flag each
chunk. Recording identities is mostly the state store's work, which releases the GIL too. A
bulk job's 25,000 rows are confirmed on a thread of their own, part after part, while the
calling thread records the identities of each part as soon as it is committed: on 1,000,000
rows the two steps took 11 s one after the other (BENCHMARKS.md, issue 14).

What promise 1 and the take-over guard rest on is kept: a part's identities are written only
after its rows are confirmed, with what that confirmation found; parts are confirmed in
order, one at a time; and an error on either side stops both, the parts already committed
having their identities written (before, an error in a late chunk left every committed
chunk's identities unwritten).
"""

from __future__ import annotations

import contextvars
import operator
import queue
import threading
from collections.abc import Sequence
from itertools import compress
from types import TracebackType

from syncd.crashpoints import crash_point
from syncd.engine.identity import remember
from syncd.engine.runtime import PipelineRuntime
from syncd.model import OUTCOME_KEY, ROW_KEY_TEXT, Confirmation, Outcome, PendingRow
from syncd.ports import Source

PART = 2500
"""Rows confirmed per part: the size of the legacy table's own confirming transactions
(``syncd.source.table.CONFIRM_CHUNK``), so each part is one transaction."""


def confirm_and_remember(
    rt: PipelineRuntime,
    rows: Sequence[PendingRow],
    outcomes: Sequence[Outcome],
    confirmed: Sequence[PendingRow],
) -> Confirmation:
    """Mark ``confirmed`` synced (the compare-and-set) and record the identities of ``rows``
    (``remember``): part by part on two threads where the source allows it, else one after
    the other."""
    if not rt.source.confirms_concurrently or len(confirmed) <= PART:
        confirmation = rt.source.mark_synced(confirmed)
        crash_point("after_rows_confirmed")
        remember(rt, rows, outcomes, confirmation)
        return confirmation
    by_key = dict(zip(map(OUTCOME_KEY, outcomes), outcomes, strict=True))
    parts = [confirmed[start : start + PART] for start in range(0, len(confirmed), PART)]
    done: list[Confirmation] = []
    with _Confirming(rt.source, parts) as confirming:
        for part in parts:
            confirmation = confirming.next()
            if len(done) == len(parts) - 1:
                crash_point("after_rows_confirmed")
            part_outcomes = list(map(by_key.__getitem__, map(ROW_KEY_TEXT, part)))
            remember(rt, part, part_outcomes, confirmation)
            done.append(confirmation)
    # The rows not confirmed: a row whose record another row overwrote keeps its record id.
    sent = set(map(ROW_KEY_TEXT, confirmed))
    rest = list(compress(rows, map(operator.not_, map(sent.__contains__, map(ROW_KEY_TEXT, rows)))))
    if rest:
        remember(rt, rest, outcomes, Confirmation(frozenset(), {}))
    return Confirmation.joined(done, done[0].flag_column)


class _Confirming:
    """The compare-and-set of ``parts``, in order, on a thread of its own. Leaving stops the
    thread after the part it is at, and waits for it."""

    def __init__(self, source: Source, parts: Sequence[Sequence[PendingRow]]) -> None:
        self._answers: queue.SimpleQueue[Confirmation | BaseException] = queue.SimpleQueue()
        self._stop = threading.Event()
        # The thread logs under the caller's context (pipeline, run id).
        work = contextvars.copy_context().run
        self._thread = threading.Thread(
            target=work, args=(self._confirm, source, parts), name="syncd-confirm", daemon=True
        )

    def _confirm(self, source: Source, parts: Sequence[Sequence[PendingRow]]) -> None:
        for part in parts:
            if self._stop.is_set():
                return
            try:
                self._answers.put(source.mark_synced(part))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, raised there
                self._answers.put(exc)
                return

    def next(self) -> Confirmation:
        """The next part's confirmation, once it is committed; its error, raised here."""
        answer = self._answers.get()
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def __enter__(self) -> _Confirming:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
