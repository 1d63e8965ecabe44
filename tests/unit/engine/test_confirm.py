"""Confirming part by part on a thread of its own gives what confirming inline gives.

The in-memory legacy table takes one lock per call, so the engine may confirm on its own
thread when the table says so; the CRM answer is made by hand, with the awkward outcomes a
job may hold in a late part: a row changed meanwhile, a row deleted, a record named for two
keys (the one that created it is displaced and keeps its record id, unconfirmed), a row
Zoho skipped.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.emulator.server import EmulatorServer
from syncd.engine.apply import apply_outcomes
from syncd.engine.confirm import PART
from syncd.model import Identity, Outcome, OutcomeKind, RunCounts
from syncd.source.memory import MemoryTable
from syncd.state.memory import MemoryState
from tests.helpers.orders import FIELD_TYPES, order
from tests.unit.engine.conftest import SPEC, ManualClock, Pipeline

ROWS = 2 * PART + 500  # three parts, the last one short
CHANGED, DELETED, SKIPPED = 2 * PART + 7, 2 * PART + 8, 2 * PART + 9
CREATOR, INTRUDER = 2 * PART + 10, 2 * PART + 11  # Zoho names one record for both


def _applied(
    concurrently: bool, emulator: EmulatorServer, workdir: Path
) -> tuple[RunCounts, dict[str, Identity | None], set[int]]:
    table = MemoryTable(SPEC, FIELD_TYPES, confirms_concurrently=concurrently)
    for key in range(1, ROWS + 1):
        table.insert(order(key))
    state = MemoryState()
    p = Pipeline(table, state, ManualClock(), emulator, workdir, {})
    try:
        rows = [r.lean() for r in table.pending_batch(None, ROWS)]
        outcomes = [
            Outcome(str(k), OutcomeKind.ADDED, record_id=f"r{k if k != INTRUDER else CREATOR}")
            for k in range(1, ROWS + 1)
            if k != SKIPPED
        ]
        outcomes.append(Outcome(str(SKIPPED), OutcomeKind.SKIPPED, code="INVALID_DATA"))
        table.update(CHANGED, quantity=42)
        table.delete(DELETED)
        counts = apply_outcomes(p.rt, rows, outcomes)
        identities = {str(k): state.identity("orders", str(k)) for k in range(1, ROWS + 1)}
        flagged = {k for k in range(1, ROWS + 1) if k != DELETED and table.flag(k)}
        return counts, identities, flagged
    finally:
        p.close()


@pytest.mark.parametrize("concurrently", [False, True])
def test_parts_confirmed_on_a_thread_match_the_inline_confirmation(
    concurrently: bool, fresh_emulator: EmulatorServer, tmp_path: Path
) -> None:
    """The same rows flagged, counts and identities either way, whichever part the awkward
    outcomes fall in (here the last)."""
    counts, identities, flagged = _applied(concurrently, fresh_emulator, tmp_path)

    others = {CHANGED, DELETED, SKIPPED, CREATOR, INTRUDER}
    assert flagged == set(range(1, ROWS + 1)) - others
    assert (counts.confirmed, counts.stale, counts.takeovers) == (ROWS - 5, 2, 1)
    confirmed = {k for k, i in identities.items() if i is not None and i.confirmed_at}
    assert confirmed == {str(k) for k in flagged}
    # The displaced creator keeps its record (it goes again by that id), unconfirmed; the
    # changed row owns its record too; the skipped row and the intruder own nothing.
    creator, changed = identities[str(CREATOR)], identities[str(CHANGED)]
    assert creator is not None and creator.record_id == f"r{CREATOR}"
    assert creator.confirmed_at is None
    assert changed is not None and changed.confirmed_at is None
    assert identities[str(SKIPPED)] is None and identities[str(INTRUDER)] is None
