"""Fault injection: the current ``Faults`` and one seeded random source deciding each roll."""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
from collections.abc import Mapping
from typing import Any

from syncd.emulator.settings import Faults

logger = logging.getLogger(__name__)

FAULT_NAMES = tuple(f.name for f in dataclasses.fields(Faults))


class FaultState:
    """The faults in force; changed at run time through the admin API. Thread-safe."""

    def __init__(self, faults: Faults, seed: int | None) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.current = faults

    def update(self, changes: Mapping[str, Any]) -> Faults:
        """Replace some faults; ``ValueError`` names an unknown fault or a bad value."""
        unknown = sorted(set(changes) - set(FAULT_NAMES))
        if unknown:
            raise ValueError(f"unknown faults {unknown}; known: {list(FAULT_NAMES)}")
        try:
            faults = dataclasses.replace(self.current, **changes)
        except TypeError as exc:  # a value of the wrong type
            raise ValueError(str(exc)) from exc
        with self._lock:
            self.current = faults
        logger.info("faults set", extra={"event": "emulator_faults_set", **changes})
        return faults

    def roll(self, name: str) -> bool:
        """Whether the rate fault ``name`` strikes this time."""
        rate: float = getattr(self.current, name)
        if rate <= 0.0:
            return False
        with self._lock:
            return self._rng.random() < rate

    def take_job_failure(self) -> bool:
        """Whether the bulk job starting now must fail (``fail_jobs`` first, then the rate)."""
        with self._lock:
            if self.current.fail_jobs > 0:
                self.current = dataclasses.replace(
                    self.current, fail_jobs=self.current.fail_jobs - 1
                )
                return True
        return self.roll("fail_job_rate")

    def take_lost_create_reply(self) -> bool:
        """Whether the reply to the job just created must be lost (``lose_job_create_replies``)."""
        with self._lock:
            if self.current.lose_job_create_replies > 0:
                self.current = dataclasses.replace(
                    self.current, lose_job_create_replies=self.current.lose_job_create_replies - 1
                )
                return True
        return False

    def take(self, counter: str) -> bool:
        """Whether the counted fault ``counter`` (``broken_results``, ...) strikes now; one used."""
        with self._lock:
            left: int = getattr(self.current, counter)
            if left <= 0:
                return False
            changes: dict[str, Any] = {counter: left - 1}
            self.current = dataclasses.replace(self.current, **changes)
            return True

    def take_garble(self, call: str) -> bool:
        """Whether the answer to ``call`` must be garbled (``garble_next`` first, then the rate)."""
        targets = self.current.garble_calls
        if targets and call not in targets:
            return False
        return self.take("garble_next") or self.roll("garble_rate")

    def take_token_expiry(self, call: str) -> bool:
        """Whether ``call`` must find every access token revoked (``expire_tokens_next``)."""
        return call in self.current.expire_tokens_on and self.take("expire_tokens_next")

    def child_rng(self) -> random.Random:
        """An independent, reproducible random source for one bulk job's worker."""
        with self._lock:
            return random.Random(self._rng.getrandbits(64))
