"""The optional Prometheus endpoint: counters from the daemon, gauges read from the state store."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from syncd.credits import BUDGET_WINDOW
from syncd.engine.backoff import BULK_SCOPE
from syncd.model import RunCounts
from syncd.state.store import StateStore


@dataclass(frozen=True)
class _Bound:
    store: StateStore
    pipelines: Sequence[str]
    last_success: Callable[[str], datetime | None]
    budget: int
    reserve: int


class StateCollector(Collector):
    """Reads the state store at scrape time, so every process sees the same numbers.

    The daemon binds it to the running configuration, again after each reload.
    """

    def __init__(self, now: Callable[[], datetime]) -> None:
        self.now = now
        self._bound: _Bound | None = None

    def bind(
        self,
        store: StateStore,
        pipelines: Sequence[str],
        last_success: Callable[[str], datetime | None],
        budget: int,
        reserve: int = 0,
    ) -> None:
        self._bound = _Bound(store, tuple(pipelines), last_success, budget, reserve)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        bound = self._bound
        if bound is None:
            return
        yield from self._credits(bound)
        yield from self._pipelines(bound)

    def _credits(self, bound: _Bound) -> Iterator[GaugeMetricFamily]:
        since = self.now() - BUDGET_WINDOW
        yield GaugeMetricFamily(
            "syncd_credits_spent_24h",
            "Zoho credits spent in the rolling 24 h",
            value=bound.store.credits_spent_since(since),
        )
        yield GaugeMetricFamily(
            "syncd_credit_budget", "crm.daily_credit_budget", value=bound.budget
        )
        calls = GaugeMetricFamily(
            "syncd_api_calls_24h", "Zoho API calls in the rolling 24 h", labels=["kind"]
        )
        for kind, (count, _) in sorted(bound.store.calls_since(since).items()):
            calls.add_metric([kind], count)
        yield calls
        org = GaugeMetricFamily(
            "syncd_org_credits_remaining",
            "The org's remaining credits as Zoho last said (X-API-CREDITS-REMAINING), "
            "absent when it has not said within 24 h",
        )
        remaining = bound.store.org_remaining()
        if remaining is not None and remaining[1] >= since:
            org.add_metric([], remaining[0])
        yield org
        yield GaugeMetricFamily(
            "syncd_credit_reserve", "crm.credit_reserve in credits", value=bound.reserve
        )

    def _pipelines(self, bound: _Bound) -> Iterator[GaugeMetricFamily]:
        now = self.now()
        buffered = GaugeMetricFamily(
            "syncd_buffer_size", "Rows in the realtime buffer", labels=["pipeline"]
        )
        oldest = GaugeMetricFamily(
            "syncd_oldest_pending_age_seconds",
            "Age of the oldest buffered change",
            labels=["pipeline"],
        )
        success = GaugeMetricFamily(
            "syncd_last_success_timestamp_seconds",
            "Unix time of the last successful tick",
            labels=["pipeline"],
        )
        paused = GaugeMetricFamily(
            "syncd_bulk_paused",
            "1 while failed bulk jobs keep the pipeline from creating new ones",
            labels=["pipeline"],
        )
        failures = GaugeMetricFamily(
            "syncd_bulk_failures_in_a_row", "Consecutive failed bulk jobs", labels=["pipeline"]
        )
        uncertain = GaugeMetricFamily(
            "syncd_bulk_jobs_maybe_paid_twice",
            "Bulk jobs in the last 24 h whose create reply was lost (maybe charged twice)",
            labels=["pipeline"],
        )
        in_flight = GaugeMetricFamily(
            "syncd_bulk_jobs_in_flight",
            "Bulk jobs created and not yet applied",
            labels=["pipeline"],
        )
        rejects = GaugeMetricFamily(
            "syncd_rejects", "Rows Zoho refused that wait for a fix", labels=["pipeline"]
        )
        for name in bound.pipelines:
            in_flight.add_metric([name], bound.store.jobs_in_flight(name))
            rejects.add_metric([name], bound.store.count_rejects(name))
            uncertain.add_metric([name], bound.store.count_uncertain(name, now - BUDGET_WINDOW))
            backoff = bound.store.backoff(name, BULK_SCOPE)
            paused.add_metric([name], int(backoff is not None and backoff.blocks(now)))
            failures.add_metric([name], 0 if backoff is None else backoff.failures)
            size, first = bound.store.buffer_stats(name)
            buffered.add_metric([name], size)
            oldest.add_metric([name], 0 if first is None else (now - first).total_seconds())
            last = bound.last_success(name)
            if last is not None:
                success.add_metric([name], last.timestamp())
        yield from (buffered, oldest, success, paused, failures, uncertain, in_flight, rejects)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.sent = Counter(
            "syncd_rows_sent", "Rows sent to Zoho", ["pipeline"], registry=self.registry
        )
        self.confirmed = Counter(
            "syncd_rows_confirmed",
            "Rows confirmed and marked synced",
            ["pipeline"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "syncd_rows_rejected", "Rows Zoho refused", ["pipeline"], registry=self.registry
        )

        self.takeovers = Counter(
            "syncd_record_takeovers",
            "Rows that would take another row's CRM record: refused by Zoho (prevented) or "
            "written there and repaired by re-sending the other row (repaired)",
            ["pipeline", "how"],
            registry=self.registry,
        )

    def count(self, pipeline: str, counts: RunCounts) -> None:
        self.sent.labels(pipeline).inc(counts.sent)
        self.confirmed.labels(pipeline).inc(counts.confirmed)
        self.rejected.labels(pipeline).inc(counts.rejected)
        self.takeovers.labels(pipeline, "prevented").inc(counts.collisions)
        self.takeovers.labels(pipeline, "repaired").inc(counts.takeovers)

    def serve(self, host: str, port: int, collector: StateCollector) -> None:
        """Serve ``/metrics`` from a daemon thread; ``OSError`` when the port is taken."""
        start_http_server(port, addr=host, registry=self.registry)
        self.registry.register(collector)
