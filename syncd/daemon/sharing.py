"""Several daemons on one state store share its pipelines.

Each pipeline has its own lease (``syncd.state.lease``), so any daemon can run any pipeline.
Left alone, the first daemon to start would take every lease and the others would only stand
by. Instead every daemon beats a row in ``syncd_hosts`` with its lease tick, and takes at most
its fair share of the leases: ceil(pipelines / daemons alive). One that holds more than its
share (it started first) gives one back per heartbeat, between two ticks of that pipeline, and
a daemon below its share takes it. When a daemon dies, its locks go at once and its heartbeat
row goes stale within ``HOST_ALIVE``: the share of the others grows and they take over.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime

from syncd.app import host_id
from syncd.daemon.running import Running
from syncd.errors import SyncdError
from syncd.state.hosts import HostStore
from syncd.state.lease import HEARTBEAT

logger = logging.getLogger(__name__)

HOST_ALIVE = HEARTBEAT * 5
"""A daemon whose heartbeat is older than this is gone (as `status` judges a lease)."""

FORGET_HOSTS_AFTER = HEARTBEAT * 1800
"""Rows of daemons silent for an hour are deleted."""


def fair_share(run: Running, now: datetime) -> int:
    """How many of this configuration's pipelines this daemon may hold now (all of them when
    the state store cannot say who else is alive: a lone daemon must keep working)."""
    total = len(run.workers)
    hosts = HostStore(run.app.store)
    me = host_id()
    try:
        hosts.beat(me, now)
        alive = set(hosts.alive(now - HOST_ALIVE)) | {me}
    except SyncdError as exc:
        logger.warning("daemons not counted: %s", exc, extra={"event": "hosts_unknown"})
        return total
    return max(1, math.ceil(total / len(alive)))


def held_count(run: Running) -> int:
    return sum(1 for worker in run.workers.values() if worker.lease.held)


def give_back_extra(run: Running, share: int) -> None:
    """Release one lease beyond ``share``, of a pipeline that is between two ticks."""
    if held_count(run) <= share:
        return
    for worker in sorted(run.workers.values(), key=lambda w: w.settings.name, reverse=True):
        if not worker.lease.held or not worker.busy.acquire(blocking=False):
            continue
        try:
            name = worker.settings.name
            try:
                run.app.store.clear_lease(name, worker.holder)
            except SyncdError as exc:
                logger.warning("lease record not cleared: %s", exc, extra={"event": "lease_clear"})
            worker.lease.release()
            logger.info(
                "lease given back: another daemon on this state store takes this pipeline",
                extra={"event": "lease_given_back", "pipeline": name, "share": share},
            )
        finally:
            worker.busy.release()
        return


def forget_me(run: Running, now: datetime) -> None:
    """This daemon stops: drop its row (and rows of daemons long gone)."""
    try:
        HostStore(run.app.store).forget(host_id(), now - FORGET_HOSTS_AFTER)
    except SyncdError as exc:
        logger.warning("host record not cleared: %s", exc, extra={"event": "hosts_clear"})
