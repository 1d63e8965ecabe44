"""deploy/prometheus and deploy/grafana: rules promtool accepts and whose unit tests pass, and
queries that name only metrics syncd really exports (read from its registry, not a list here)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from syncd.daemon.metrics import Metrics, StateCollector
from syncd.state.store import StateStore

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "syncd-alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "syncd-alerts.test.yml"
DASHBOARD = DEPLOY / "grafana" / "syncd.json"

# The sample names a family of each type exposes (prometheus_client strips a counter's _total).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
}
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "inf", "nan",
}  # fmt: skip


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every sample name the daemon's /metrics can carry, with a collector bound to a store."""
    path = tmp_path_factory.mktemp("state") / "state.db"
    store = StateStore.open(f"sqlite:///{path}")
    try:
        metrics = Metrics()
        collector = StateCollector(lambda: datetime.now(UTC))
        collector.bind(store, ["orders"], lambda _: None, budget=1000, reserve=10)
        metrics.registry.register(collector)
        return {
            family.name + suffix
            for family in metrics.registry.collect()
            for suffix in SUFFIXES[family.type]
        }
    finally:
        store.close()


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL (or Grafana) expression selects.

    Strips what is not a metric: strings, label matchers, ranges, grouping label lists,
    Grafana variables, function names (a word before '('), keywords and numbers.
    """
    expr = re.sub(r"label_values\(\s*([a-zA-Z_:][\w:]*)\s*,[^)]*\)", r"\1", expr)
    expr = re.sub(r'"(?:\\.|[^"\\])*"', "", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\$\w+", "", expr)
    words = re.finditer(r"(?<![\w.])[a-zA-Z_:][\w:]*", expr)
    return {
        w.group()
        for w in words
        if w.group().lower() not in PROMQL_WORDS and not expr[w.end() :].lstrip().startswith("(")
    }


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_queries(node: Any) -> Iterator[str]:
    """Every query in the dashboard: panel targets and template variables, at any depth."""
    if isinstance(node, dict):
        # A template variable of type "query" holds its PromQL in "query" (a string here).
        queries = ("expr", "definition", "query") if node.get("type") == "query" else ("expr",)
        for key, value in node.items():
            if key in queries and isinstance(value, str):
                yield value
            else:
                yield from dashboard_queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from dashboard_queries(item)


def test_metric_names_finds_metrics_and_nothing_else() -> None:
    """The parser the checks below rely on, on the shapes the files use."""
    expr = (
        'time() - max by (pipeline) (syncd_a{pipeline=~"$pipeline", how="x"}) > 1800 '
        "and on (job) 60 * sum(rate(syncd_b_total[$__rate_interval])) / up offset 5m"
    )
    assert metric_names(expr) == {"syncd_a", "syncd_b_total", "up"}
    assert metric_names("label_values(syncd_c, pipeline)") == {"syncd_c"}
    assert metric_names("absent(syncd_d) or vector(1e3)") == {"syncd_d"}


def test_every_rule_names_only_exported_metrics_and_says_what_to_run(exported: set[str]) -> None:
    found = rules()
    assert len(found) >= 9
    for rule in found:
        names = metric_names(rule["expr"])
        assert names, f"{rule['alert']}: no metric in {rule['expr']!r}"
        assert names <= exported, f"{rule['alert']}: not exported by syncd: {names - exported}"
        runbook = rule["annotations"]["runbook"]
        assert "`syncd " in runbook, f"{rule['alert']}: the runbook names no syncd command"
        assert rule["annotations"]["summary"]


def test_dashboard_names_only_exported_metrics_and_shows_the_essentials(
    exported: set[str],
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = list(dashboard_queries(dashboard))
    used = set().union(*(metric_names(q) for q in queries))
    assert used <= exported, f"the dashboard names metrics syncd does not export: {used - exported}"
    essentials = {  # rows, credits against budget, oldest pending, buffer, jobs, last success
        "syncd_rows_sent_total", "syncd_rows_confirmed_total", "syncd_rows_rejected_total",
        "syncd_credits_spent_24h", "syncd_credit_budget", "syncd_oldest_pending_age_seconds",
        "syncd_buffer_size", "syncd_bulk_jobs_in_flight", "syncd_last_success_timestamp_seconds",
    }  # fmt: skip
    assert essentials <= used, f"the dashboard lacks {essentials - used}"


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        message = "promtool not installed (Debian: apt-get install prometheus)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; CI=true: .ci/run installs it, so its absence is a failure")
        pytest.skip(message)
    return found


@pytest.mark.parametrize(
    ("command", "target"), [("check", RULES), ("test", RULE_TESTS)], ids=["check", "test"]
)
def test_promtool_accepts_the_rules_and_their_unit_tests(command: str, target: Path) -> None:
    done = subprocess.run(
        [_promtool(), command, "rules", target.name],
        cwd=target.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
