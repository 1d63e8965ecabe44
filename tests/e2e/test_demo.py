"""`syncd demo` end to end: it finishes by itself, tells the story, and leaves a true mirror.

The kept files are checked independently of the demo's own report: every legacy row is either
synced or a reject whose code matches the flaw the row really has, and nothing is left to send.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from syncd.demo.realtime import LONE_NOTE

pytestmark = pytest.mark.slow

SYNCD = [sys.executable, "-m", "syncd"]
PICKLIST = {"New", "Paid", "Shipped", "Cancelled", "Refunded"}  # syncd/emulator/orders.toml
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


def demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `syncd demo` with its own TMPDIR, so leftovers there can be seen."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    return subprocess.run(
        [*SYNCD, "demo", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@dataclass(frozen=True)
class Kept:
    result: subprocess.CompletedProcess[str]
    directory: Path

    @property
    def legacy(self) -> str:
        return f"sqlite:///{self.directory / 'legacy.db'}"

    @property
    def state(self) -> str:
        return f"sqlite:///{self.directory / 'state.db'}"


@pytest.fixture(scope="module")
def kept(tmp_path_factory: pytest.TempPathFactory) -> Kept:
    """One demo run of 5,000 rows (a bulk initial sync) whose files are kept."""
    base = tmp_path_factory.mktemp("demo")
    directory = base / "kept"
    result = demo(base, "--rows", "5000", "--max-delay", "1", "--keep", str(directory))
    return Kept(result, directory)


def rows_of(url: str, query: str) -> list[dict[str, Any]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text(query))]
    finally:
        engine.dispose()


def expected_reject(row: dict[str, Any]) -> tuple[str, str] | None:
    """The (code, field) Zoho must give this legacy row, or None when it is valid."""
    if row["order_number"] is None:
        return ("MANDATORY_NOT_FOUND", "Name")
    if not EMAIL.fullmatch(row["customer_email"]):
        return ("INVALID_DATA", "Customer_Email")
    if row["status"] not in PICKLIST:
        return ("INVALID_DATA", "Status")
    return None


def number(pattern: str, output: str) -> int:
    match = re.search(pattern, output)
    assert match, f"{pattern!r} not in the output:\n{output}"
    return int(match.group(1).replace(",", ""))


def test_demo_finishes_by_itself_and_reports(kept: Kept) -> None:
    """The demo exits 0, quietly, with the report's key lines and the commands to try next."""
    out = kept.result.stdout
    assert kept.result.returncode == 0, out + kept.result.stderr
    assert kept.result.stderr == ""
    for line in (
        "5,000 in the legacy table",
        "refused by Zoho, kept in the reject list",
        "MANDATORY_NOT_FOUND",
        "Customer_Email",
        "to send the same",
        "flushes of",
        "✓ the CRM holds one record per synced row",
        "✓ every other row",
        f"syncd -c {kept.directory / 'config.toml'} status",
    ):
        assert line in out, f"{line!r} missing from:\n{out}"


def test_kept_files_show_a_complete_mirror(kept: Kept) -> None:
    """Every valid row is synced, every flawed row is a reject with the right code, as reported."""
    legacy = rows_of(kept.legacy, "SELECT * FROM orders")
    rejects = {
        r["key"]: (r["code"], r["field"])
        for r in rows_of(kept.state, "SELECT key, code, field FROM syncd_rejects")
    }
    assert len(legacy) == 5000
    synced = [r for r in legacy if r["sync"]]
    for row in legacy:
        wanted = expected_reject(row)
        if wanted is None:
            assert row["sync"], f"valid order {row['id']} is not synced"
        else:
            assert not row["sync"], f"order {row['id']} with a flaw is marked synced"
            assert rejects.get(str(row["id"])) == wanted, row
    assert len(rejects) == len(legacy) - len(synced) > 0
    assert number(r"([\d,]+) confirmed by Zoho", kept.result.stdout) == len(synced)
    assert any(r["notes"] == LONE_NOTE and r["sync"] for r in legacy), "lone change not synced"


def test_kept_state_shows_nothing_left_and_the_credits_reported(kept: Kept) -> None:
    """Nothing buffered or in flight, every run succeeded, and the ledger matches the report."""
    assert rows_of(kept.state, "SELECT key FROM syncd_buffer") == []
    jobs = rows_of(kept.state, "SELECT state FROM syncd_bulk_jobs")
    assert jobs and {j["state"] for j in jobs} == {"applied"}
    runs = rows_of(kept.state, "SELECT kind, status FROM syncd_runs")
    assert {"initial", "realtime"} <= {r["kind"] for r in runs}
    assert {r["status"] for r in runs} == {"succeeded"}
    ledger = rows_of(kept.state, "SELECT SUM(credits) AS spent FROM syncd_credit_ledger")
    assert number(r"Credits\s+([\d,]+) spent", kept.result.stdout) == ledger[0]["spent"]


def test_kept_config_works_with_the_other_commands(kept: Kept) -> None:
    """`syncd -c DIR/config.toml status` reads the kept files: initial sync done, rejects left."""
    status = subprocess.run(
        [*SYNCD, "-c", str(kept.directory / "config.toml"), "status", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert status.returncode == 0, status.stderr
    pipeline = json.loads(status.stdout)["pipelines"][0]
    assert pipeline["initial_sync_done"] is True
    assert pipeline["buffered"] == 0
    assert pipeline["pending"] == pipeline["rejects"] > 0


def test_demo_refuses_to_mix_with_an_earlier_demo(kept: Kept, tmp_path: Path) -> None:
    """A second --keep into the same directory stops at once with exit 2 and says why."""
    again = demo(tmp_path, "--keep", str(kept.directory))
    assert again.returncode == 2
    assert "already holds files of an earlier demo" in again.stderr


def test_demo_without_keep_removes_its_directory(tmp_path: Path) -> None:
    """Without --keep nothing of the demo is left in the temporary directory."""
    result = demo(tmp_path, "--rows", "2000", "--max-delay", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    used = re.search(r"Working in\s+(\S+)\s", result.stdout)  # the path may wrap
    assert used, result.stdout
    assert Path(used.group(1)).parent == tmp_path / "tmp"
    assert "removed at the end" in result.stdout
    assert not Path(used.group(1)).exists()
    assert list((tmp_path / "tmp").iterdir()) == []
