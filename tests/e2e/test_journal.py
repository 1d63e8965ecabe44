"""Promise 9: a journal entry that cannot finish never blocks a pipeline.

The state is what a `kill -9` leaves when the restart comes too late: the journal holds a
created bulk job that Zoho no longer knows (its result expired, 404). Before, every start and
every daemon tick failed on it, and no command cleared it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from syncd.emulator.admin import EmulatorAdmin
from syncd.emulator.server import EmulatorServer
from syncd.model import JobState, content_hash
from syncd.state.store import StateStore
from tests.helpers.e2e import record_writes, run_syncd, write_config
from tests.helpers.sqlite_orders import pending, sqlite3_orders

ROWS = 50
GONE_JOB = "554023000000999001"


def _journal_a_gone_job(state_url: str, file_path: Path) -> int:
    """A CREATED entry for a job Zoho does not know, as a crash before its poll leaves it."""
    store = StateStore.open(state_url)
    now = datetime.now(UTC)
    manifest = {str(i): content_hash({"x": i}) for i in range(1, ROWS + 1)}
    file_path.write_bytes(b"PK")  # the zip the crashed run wrote
    entry = store.journal_prepare("orders", None, str(file_path), manifest, now)
    store.journal_created(entry, GONE_JOB, now)
    store.close()
    return entry


def _calls(admin: EmulatorAdmin) -> dict[str, int]:
    return dict(admin.stats()["calls"])


def test_a_journaled_job_zoho_no_longer_knows_is_closed_and_its_rows_go_again(
    tmp_path: Path,
) -> None:
    """initial-sync closes the gone job with its reason, re-sends its rows, and exits 0."""
    url = sqlite3_orders(tmp_path / "legacy.db", ROWS)
    with EmulatorServer() as server:
        admin = EmulatorAdmin(server.base_url)
        config = write_config(tmp_path, url, server.base_url)
        state_url = f"sqlite:///{tmp_path}/state.db"
        run_syncd(config, "db", "upgrade")
        entry = _journal_a_gone_job(state_url, tmp_path / "job.zip")
        first = run_syncd(config, "initial-sync")
        calls = _calls(admin)
        again = run_syncd(config, "initial-sync")
        listed = run_syncd(config, "jobs", "list")
        created_jobs = len(admin.jobs())
        records = admin.records("Orders")
        assert _calls(admin) == calls  # the second run made no CRM call at all

    assert first.returncode == 0, first.stdout + first.stderr
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Traceback" not in first.stderr
    assert pending(tmp_path / "legacy.db") == 0 and len(records) == ROWS
    assert created_jobs == 0
    assert record_writes(calls) == 1  # 50 rows, one call; no bulk job was paid for again
    assert not any("bulk_create" in name or "upload" in name for name in calls)
    line = next(x for x in listed.stdout.splitlines() if GONE_JOB in x)
    assert line.split()[0] == str(entry)
    assert JobState.FAILED.value in line and GONE_JOB in line
    assert "404" in line or "not found" in line.lower() or "RESOURCE_NOT_FOUND" in line
    assert not (tmp_path / "job.zip").exists()


def test_jobs_forget_closes_an_open_entry_once(tmp_path: Path) -> None:
    """`syncd jobs forget ID` closes an open entry; a second forget is one clear error."""
    url = sqlite3_orders(tmp_path / "legacy.db", ROWS)
    config = write_config(tmp_path, url, "http://127.0.0.1:9")
    run_syncd(config, "db", "upgrade")
    entry = _journal_a_gone_job(f"sqlite:///{tmp_path}/state.db", tmp_path / "job.zip")
    forgot = run_syncd(config, "jobs", "forget", str(entry))
    twice = run_syncd(config, "jobs", "forget", str(entry))
    unknown = run_syncd(config, "jobs", "forget", "4242")
    listed = run_syncd(config, "jobs", "list")

    assert forgot.returncode == 0, forgot.stderr
    assert "closed" in forgot.stdout and not (tmp_path / "job.zip").exists()
    assert twice.returncode == 1 and "already closed (failed)" in twice.stderr
    assert unknown.returncode == 1 and "no journal entry 4242" in unknown.stderr
    assert "Traceback" not in twice.stderr + unknown.stderr
    assert "forgotten by the operator" in listed.stdout
