"""The optional Prometheus endpoint: counters from the daemon, gauges read from the state store."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from syncd.crm.credits import BUDGET_WINDOW
from syncd.model import RunCounts
from syncd.state.store import StateStore


class StateCollector(Collector):
    """Reads the state store at scrape time, so every process sees the same numbers."""

    def __init__(
        self,
        store: StateStore,
        pipelines: Sequence[str],
        now: Callable[[], datetime],
        last_success: Callable[[str], datetime | None],
    ) -> None:
        self.store, self.pipelines, self.now, self.last_success = (
            store,
            pipelines,
            now,
            last_success,
        )

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self.now()
        credits = GaugeMetricFamily("syncd_credits_spent_24h", "Credits spent in the rolling 24 h")
        credits.add_metric([], self.store.credits_spent_since(now - BUDGET_WINDOW))
        calls = GaugeMetricFamily(
            "syncd_api_calls_24h", "Zoho API calls in the last 24 h", labels=["kind"]
        )
        for kind, (count, _) in sorted(self.store.calls_since(now - BUDGET_WINDOW).items()):
            calls.add_metric([kind], count)
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
        for name in self.pipelines:
            size, first = self.store.buffer_stats(name)
            buffered.add_metric([name], size)
            oldest.add_metric([name], 0 if first is None else (now - first).total_seconds())
            last = self.last_success(name)
            if last is not None:
                success.add_metric([name], last.timestamp())
        yield from (credits, calls, buffered, oldest, success)


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

    def count(self, pipeline: str, counts: RunCounts) -> None:
        self.sent.labels(pipeline).inc(counts.sent)
        self.confirmed.labels(pipeline).inc(counts.confirmed)
        self.rejected.labels(pipeline).inc(counts.rejected)

    def serve(self, host: str, port: int, collector: StateCollector) -> None:
        self.registry.register(collector)
        start_http_server(port, addr=host, registry=self.registry)
