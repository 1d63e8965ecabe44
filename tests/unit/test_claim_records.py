"""The take-over guard on one answer (``claim_records``): the usual answer, where every row
names a record of its own, passes unchanged; each way a row can name a record that is not its
own is still caught."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from syncd.engine.identity import OVERWRITTEN_CODE, TAKEOVER_CODE, claim_records
from syncd.model import Identity, Outcome, OutcomeKind
from syncd.state.memory import MemoryState

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
ADDED, UPDATED, SKIPPED = OutcomeKind.ADDED, OutcomeKind.UPDATED, OutcomeKind.SKIPPED


def _state(*owned: tuple[str, str]) -> MemoryState:
    state = MemoryState()
    state.record_identities("orders", [Identity(key, record, T0) for key, record in owned])
    return state


def test_an_answer_of_own_records_passes_unchanged() -> None:
    outcomes = [
        Outcome("1", ADDED, record_id="r1"),
        Outcome("2", UPDATED, record_id="r2"),  # the map knows it: its own
        Outcome("3", SKIPPED, code="MANDATORY_NOT_FOUND", field="Name"),
        Outcome("4", UPDATED, record_id="r4", matched_by="parent_id"),  # by the unique field
    ]
    claims = claim_records(_state(("2", "r2")), "orders", "parent_id", outcomes)

    assert claims.outcomes == outcomes
    assert (claims.takeovers, claims.collisions, claims.displaced) == (0, 0, set())


class _AskedState(MemoryState):
    """The in-memory state, noting which records the guard asks the map about."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[list[str]] = []

    def record_owners(self, pipeline: str, record_ids: Sequence[str]) -> dict[str, str]:
        self.asked.append(list(record_ids))
        return super().record_owners(pipeline, record_ids)


def test_only_updated_records_and_holders_are_looked_up_in_the_map() -> None:
    """A record Zoho just added has no earlier owner: an answer of added records asks the map
    nothing; updated records and the holders of refused values are asked about."""
    added = [Outcome(str(k), ADDED, record_id=f"r{k}") for k in range(5)]
    state = _AskedState()
    assert claim_records(state, "orders", "parent_id", added).outcomes == added
    assert state.asked == []

    mixed = [
        *added,
        Outcome("8", UPDATED, record_id="r8"),
        Outcome("9", SKIPPED, code="DUPLICATE_DATA", field="Customer_Email", holder_id="r7"),
    ]
    claim_records(state, "orders", "parent_id", mixed)
    assert state.asked == [["r7", "r8"]]


def test_a_match_on_another_unique_field_is_a_takeover() -> None:
    outcomes = [
        Outcome("1", ADDED, record_id="r1"),
        Outcome("2", UPDATED, record_id="r9", matched_by="Customer_Email"),
    ]
    claims = claim_records(_state(), "orders", "parent_id", outcomes)

    assert claims.outcomes[0] == outcomes[0]
    assert claims.outcomes[1].kind is SKIPPED and claims.outcomes[1].code == TAKEOVER_CODE
    assert claims.takeovers == 1


def test_a_record_another_key_owns_is_a_takeover_and_displaces_that_key() -> None:
    outcomes = [Outcome("1", ADDED, record_id="r1"), Outcome("2", UPDATED, record_id="r7")]
    claims = claim_records(_state(("7", "r7")), "orders", "parent_id", outcomes)

    assert claims.outcomes[1].code == TAKEOVER_CODE
    assert (claims.takeovers, claims.displaced) == (1, {"7"})


def test_one_record_named_for_two_keys_stays_the_one_that_created_it() -> None:
    """b created r1, then a overwrote it in the same job: a is the take-over, and b goes again
    (not confirmed) so that its content is restored."""
    outcomes = [Outcome("a", UPDATED, record_id="r1"), Outcome("b", ADDED, record_id="r1")]
    claims = claim_records(_state(), "orders", "parent_id", outcomes)

    assert claims.outcomes[0].code == TAKEOVER_CODE and claims.takeovers == 1
    assert claims.outcomes[1].kind is OutcomeKind.RETRY
    assert claims.outcomes[1].code == OVERWRITTEN_CODE and claims.displaced == {"b"}


def test_a_value_another_record_holds_is_a_collision() -> None:
    outcomes = [
        Outcome("1", ADDED, record_id="r1"),
        Outcome("2", SKIPPED, code="DUPLICATE_DATA", field="Customer_Email", holder_id="r7"),
    ]
    claims = claim_records(_state(("7", "r7")), "orders", "parent_id", outcomes)

    assert claims.outcomes[0] == outcomes[0]
    assert claims.outcomes[1].kind is SKIPPED and claims.collisions == 1
    assert "'7'" in str(claims.outcomes[1].message)
