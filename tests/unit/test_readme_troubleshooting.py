"""The README's troubleshooting table covers every notification condition and every alert of
deploy/prometheus, each with the `syncd` command to run first."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from syncd.config.settings import CONDITIONS

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## Troubleshooting: when syncd says it is in trouble"


def table_rows() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]


def test_every_condition_and_alert_has_a_row_that_names_a_command() -> None:
    rows = table_rows()[1:]  # without the header
    named = {name: row for row in rows for name in re.findall(r"`(\w+)`", row.split("|")[1])}
    rules = yaml.safe_load((ROOT / "deploy/prometheus/syncd-alerts.yml").read_text())
    alerts = [r["alert"] for group in rules["groups"] for r in group["rules"]]
    # A take-over repaired is informational: the Zoho errors table explains its reject.
    wanted = set(CONDITIONS) | set(alerts) - {"SyncdRecordTakeoversRepaired"}
    assert wanted <= set(named), f"no troubleshooting row for {sorted(wanted - set(named))}"
    for name in wanted:
        run_first = named[name].split("|")[2]
        assert "`syncd " in run_first or "`systemctl " in run_first, named[name]
