"""The counters the daemon raises from each run's counts, read back from the registry."""

from __future__ import annotations

from syncd.daemon.metrics import Metrics
from syncd.model import RunCounts


def _sample(metrics: Metrics, name: str, labels: dict[str, str]) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_takeovers_are_counted_as_prevented_or_repaired_per_pipeline() -> None:
    metrics = Metrics()
    metrics.count("orders", RunCounts(sent=5, confirmed=2, rejected=3, takeovers=1, collisions=2))
    metrics.count("orders", RunCounts(collisions=1))
    metrics.count("customers", RunCounts(sent=1, confirmed=1))

    name = "syncd_record_takeovers_total"
    assert _sample(metrics, name, {"pipeline": "orders", "how": "repaired"}) == 1
    assert _sample(metrics, name, {"pipeline": "orders", "how": "prevented"}) == 3
    assert _sample(metrics, name, {"pipeline": "customers", "how": "repaired"}) == 0
    assert _sample(metrics, "syncd_rows_rejected_total", {"pipeline": "orders"}) == 3
