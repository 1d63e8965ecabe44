"""`syncd import FILE.csv --module M`: a CSV file into a module by Bulk Write, no pipeline.

Against the emulator over HTTP, with the real command line: split points, the results file, a
re-run that updates instead of duplicating, a dry run that calls nothing, a kill between a job's
create and its result that resumes without a new job, and bad input as one line.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from syncd.cli import main
from syncd.crm.bulk_csv import BulkLimits
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.importing.files import part_rows, write_parts
from syncd.model import JobState
from syncd.state.tables import bulk_jobs
from tests.helpers.e2e import run_syncd

ROWS = 25
PER_JOB = 10  # three jobs for 25 rows: 10, 10, 5
NOTES = 'first line\nsecond, with "quotes"\r\nthird'  # a quoted cell holding newlines


def write_crm_config(directory: Path, base_url: str, crm: str = "", interval: str = "1s") -> Path:
    """A config with [crm], [state] and [log] only: import needs no [source] or pipeline."""
    emulator = EmulatorSettings()
    path = directory / "import.toml"
    path.write_text(
        f"""
[state]
url = "sqlite:///{directory}/state.db"

[crm]
accounts_url = "{base_url}"
api_domain = "{base_url}"
upload_url = "{base_url}/crm/v8/upload"
client_id = "{emulator.client_id}"
client_secret = "{emulator.client_secret}"
refresh_token = "{emulator.refresh_token}"
bulk_poll_interval = "{interval}"
{crm}

[log]
level = "WARNING"
""",
        encoding="utf-8",
    )
    return path


def orders_csv(path: Path, rows: int = ROWS, *, name_of: dict[int, str] | None = None) -> Path:
    """Orders keyed by parent_id; every Notes cell spans lines and holds quotes."""
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream, lineterminator="\r\n")
        writer.writerow(["Name", "parent_id", "Notes", "Customer_Email"])
        for i in range(1, rows + 1):
            name = (name_of or {}).get(i, f"Order {i}")
            writer.writerow([name, f"K-{i}", f"{NOTES} {i}", f"c{i}@example.com"])
    return path


def import_file(config: Path, file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_syncd(
        config, "import", str(file), "--module", "Orders", "--rows-per-job", str(PER_JOB), *args
    )


def read_results(file: Path) -> list[dict[str, str]]:
    with file.open(encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorSettings(bulk_rows_per_second=None)) as running:
        yield running


@pytest.fixture
def emulator(server: EmulatorServer) -> EmulatorServer:
    server.admin.reset()
    return server


def test_parts_keep_quoted_newlines_repeat_the_header_and_respect_the_row_limit(
    tmp_path: Path,
) -> None:
    """Records are never cut inside a quoted newline; each part has the header, key first."""
    source = orders_csv(tmp_path / "orders.csv")
    header = ["Name", "parent_id", "Notes", "Customer_Email"]
    parts = list(
        write_parts(source, header, "parent_id", tmp_path, limits=BulkLimits(max_rows=PER_JOB))
    )
    assert [len(p.records) for p in parts] == [10, 10, 5]
    assert [p.records[0] for p in parts] == [1, 11, 21]
    for part in parts:
        rows = part_rows(part.path)
        assert rows[0] == ["parent_id", "Name", "Notes", "Customer_Email"]
        for number, row in zip(part.records, rows[1:], strict=True):
            assert row == [f"K-{number}", f"Order {number}", f"{NOTES} {number}", row[3]]


def test_import_splits_into_jobs_and_writes_every_rows_result_beside_the_input(
    tmp_path: Path, emulator: EmulatorServer
) -> None:
    """25 rows at 10 a job make 3 jobs; the CRM holds each cell exactly, the results file
    each input row with STATUS, RECORD_ID and ERRORS (a row Zoho skipped says why)."""
    config = write_crm_config(tmp_path, emulator.base_url)
    source = orders_csv(tmp_path / "orders.csv", name_of={7: ""})  # Name is mandatory
    result = import_file(config, source, "--find-by", "parent_id")
    assert result.returncode == 0, result.stderr
    assert len(emulator.admin.jobs()) == 3
    progress = [line for line in result.stdout.splitlines() if line.startswith("job ")]
    assert [line.split(":")[0] for line in progress] == ["job 1", "job 2", "job 3"]
    assert progress[0].startswith("job 1: 10 rows, 9 added, 1 skipped (bulk job ")
    crm = {r["parent_id"]: r for r in emulator.admin.records("Orders")}
    assert len(crm) == ROWS - 1
    assert crm["K-3"]["Notes"] == f"{NOTES} 3"
    results = read_results(tmp_path / "orders.results.csv")
    assert [r["parent_id"] for r in results] == [f"K-{i}" for i in range(1, ROWS + 1)]
    for row in results:
        assert list(row)[:4] == ["Name", "parent_id", "Notes", "Customer_Email"]
        if row["parent_id"] == "K-7":
            assert (row["STATUS"], row["RECORD_ID"]) == ("SKIPPED", "")
            assert row["ERRORS"] == "MANDATORY_NOT_FOUND-Name"
        else:
            assert row["STATUS"] == "ADDED"
            assert row["RECORD_ID"] == crm[row["parent_id"]]["id"]
            assert row["Notes"] == crm[row["parent_id"]]["Notes"]
    assert not (tmp_path / "orders.results.parts").exists()


def test_a_field_named_status_among_the_echoed_columns_is_not_zohos_status(
    tmp_path: Path, emulator: EmulatorServer
) -> None:
    """The result repeats the first three uploaded columns before its own STATUS, RECORD_ID
    and ERRORS; a file whose first field is Status has that name among them. Each row's
    answer is Zoho's (not the row's own Status, "New"): ADDED with its record id, the import
    finishes (exit 0), and a second run updates the same records: one job per part each
    time (3 + 3), paid once each."""
    config = write_crm_config(tmp_path, emulator.base_url)
    source = tmp_path / "orders.csv"
    with source.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream, lineterminator="\r\n")
        writer.writerow(["Status", "parent_id", "Name"])
        writer.writerows(["New", f"K-{i}", f"Order {i}"] for i in range(1, ROWS + 1))
    first = import_file(config, source, "--find-by", "parent_id")
    assert first.returncode == 0, first.stdout + first.stderr
    crm = {r["parent_id"]: r["id"] for r in emulator.admin.records("Orders")}
    results = read_results(tmp_path / "orders.results.csv")
    assert [(r["STATUS"], r["RECORD_ID"]) for r in results] == [
        ("ADDED", crm[f"K-{i}"]) for i in range(1, ROWS + 1)
    ]
    assert not (tmp_path / "orders.results.parts").exists()
    second = import_file(config, source, "--find-by", "parent_id")
    assert second.returncode == 0, second.stdout + second.stderr
    assert {r["STATUS"] for r in read_results(tmp_path / "orders.results.csv")} == {"UPDATED"}
    assert len(emulator.admin.jobs()) == 6
    assert emulator.admin.stats()["calls"].get("POST /crm/bulk/v8/write", 0) == 6
    assert len(emulator.admin.records("Orders")) == ROWS


def test_a_rerun_updates_the_same_records_and_creates_none(
    tmp_path: Path, emulator: EmulatorServer
) -> None:
    """Upsert by the unique field: running the same import twice leaves one record per key."""
    config = write_crm_config(tmp_path, emulator.base_url)
    source = orders_csv(tmp_path / "orders.csv")
    assert import_file(config, source, "--find-by", "parent_id").returncode == 0
    first = {r["parent_id"]: r["id"] for r in emulator.admin.records("Orders")}
    assert import_file(config, source, "--find-by", "parent_id").returncode == 0
    again = {r["parent_id"]: r["id"] for r in emulator.admin.records("Orders")}
    assert again == first and len(again) == ROWS
    results = read_results(tmp_path / "orders.results.csv")
    assert {r["STATUS"] for r in results} == {"UPDATED"}


def test_insert_without_find_by_matches_shuffled_results_to_their_rows(tmp_path: Path) -> None:
    """Without a key column the result rows are matched by the columns Zoho repeats, not by
    position: a result in another order still gives each row its own record id."""
    with EmulatorServer(
        EmulatorSettings(bulk_rows_per_second=None, bulk_result_order="shuffled", seed=3)
    ) as emulator:
        config = write_crm_config(tmp_path, emulator.base_url)
        source = orders_csv(tmp_path / "orders.csv")
        result = import_file(config, source, "--operation", "insert")
        assert result.returncode == 0, result.stderr
        by_id = {r["id"]: r for r in emulator.admin.records("Orders")}
    results = read_results(tmp_path / "orders.results.csv")
    assert [r["STATUS"] for r in results] == ["ADDED"] * ROWS
    assert [by_id[r["RECORD_ID"]]["parent_id"] for r in results] == [
        r["parent_id"] for r in results
    ]


def test_rows_of_a_failed_job_go_again_on_a_rerun_and_no_other_row_does(
    tmp_path: Path, emulator: EmulatorServer
) -> None:
    """Zoho fails the first job: the run exits 1 with those rows UNPROCESSED in the results;
    the same command again sends only them, in one more job, and exits 0."""
    emulator.admin.set_faults(fail_jobs=1)
    config = write_crm_config(tmp_path, emulator.base_url)
    source = orders_csv(tmp_path / "orders.csv")
    first = import_file(config, source, "--find-by", "parent_id")
    assert first.returncode == 1
    assert "run the same command again" in first.stderr
    statuses = [r["STATUS"] for r in read_results(tmp_path / "orders.results.csv")]
    assert statuses == ["UNPROCESSED"] * 10 + ["ADDED"] * 15
    dry = import_file(config, source, "--find-by", "parent_id", "--dry-run")
    assert "10 of 25 row(s) in 1 job(s), 500 credits" in dry.stdout
    second = import_file(config, source, "--find-by", "parent_id")
    assert second.returncode == 0, second.stderr
    jobs = emulator.admin.jobs()
    assert len(jobs) == 4
    assert jobs[-1]["resource"][0]["file"]["total_count"] == 10
    statuses = [r["STATUS"] for r in read_results(tmp_path / "orders.results.csv")]
    assert statuses == ["ADDED"] * ROWS
    assert len(emulator.admin.records("Orders")) == ROWS
    assert not (tmp_path / "orders.results.parts").exists()


def test_an_import_the_budget_cannot_pay_is_refused_before_any_call(
    tmp_path: Path, emulator: EmulatorServer
) -> None:
    """Three jobs (1,500 credits) against a budget of 1,000: refused up front, not half-way."""
    config = write_crm_config(tmp_path, emulator.base_url, "daily_credit_budget = 1000")
    source = orders_csv(tmp_path / "orders.csv")
    result = import_file(config, source, "--find-by", "parent_id")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "syncd: orders.csv: the import needs 1,500 credits for its jobs, but 0 of "
        "crm.daily_credit_budget 1,000 are spent in the last 24 h: run it later, with fewer "
        "rows, or raise the budget"
    ]
    assert emulator.admin.stats()["calls"] == {}


def test_a_lost_create_reply_is_counted_and_a_rerun_duplicates_nothing(
    tmp_path: Path, emulator: EmulatorServer
) -> None:
    """Zoho creates the first job but its reply is lost: syncd cannot see that job, so the
    run stops saying it may be paid twice; the re-run sends every row once more, by upsert,
    and the CRM still holds one record per key."""
    emulator.admin.set_faults(lose_job_create_replies=1)
    config = write_crm_config(tmp_path, emulator.base_url)
    source = orders_csv(tmp_path / "orders.csv")
    first = import_file(config, source, "--find-by", "parent_id")
    assert first.returncode == 1
    assert len(emulator.admin.jobs()) == 1
    second = import_file(config, source, "--find-by", "parent_id")
    assert second.returncode == 0, second.stderr
    assert len(emulator.admin.jobs()) == 4  # the unseen job, then one per part
    assert len(emulator.admin.records("Orders")) == ROWS
    statuses = {r["STATUS"] for r in read_results(tmp_path / "orders.results.csv")}
    assert statuses <= {"ADDED", "UPDATED"}
    assert "Zoho may have the job" in first.stderr


def test_dry_run_prints_jobs_and_credits_and_calls_nothing(
    tmp_path: Path, emulator: EmulatorServer
) -> None:
    """The dry run names each job and the credits; the CRM sees not one call."""
    config = write_crm_config(tmp_path, emulator.base_url)
    source = orders_csv(tmp_path / "orders.csv")
    result = import_file(config, source, "--find-by", "parent_id", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "25 of 25 row(s) in 3 job(s), 1,500 credits" in result.stdout
    assert "job 3: records 21-25, 5 rows" in result.stdout
    stats = emulator.admin.stats()
    assert stats["calls"] == {} and stats["credits"]["used"] == 0
    assert not (tmp_path / "orders.results.csv").exists()


def _created_jobs(state_db: Path) -> int:
    engine = create_engine(f"sqlite:///{state_db}")
    try:
        with engine.connect() as conn:
            query = select(bulk_jobs.c.id).where(bulk_jobs.c.state == JobState.CREATED.value)
            return len(conn.execute(query).all())
    except Exception:  # noqa: BLE001 -- the store may not exist or be migrated yet
        return 0
    finally:
        engine.dispose()


def test_a_kill_after_job_create_resumes_the_journaled_job_instead_of_paying_again(
    tmp_path: Path,
) -> None:
    """kill -9 while jobs are journaled CREATED: the re-run polls and applies them; Zoho
    sees exactly one job per part and charges 500 credits per part, not more."""
    slow = EmulatorSettings(bulk_rows_per_second=None, bulk_job_seconds=1.5)
    with EmulatorServer(slow) as emulator:
        config = write_crm_config(tmp_path, emulator.base_url)
        source = orders_csv(tmp_path / "orders.csv")
        args = ["--find-by", "parent_id", "--rows-per-job", str(PER_JOB)]
        command = [sys.executable, "-m", "syncd", "-c", str(config), "import", str(source)]
        proc = subprocess.Popen(
            [*command, "--module", "Orders", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while _created_jobs(tmp_path / "state.db") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.kill()
        proc.wait()
        assert _created_jobs(tmp_path / "state.db") == 2  # jobs_in_flight: 2 in the window
        assert len(emulator.admin.jobs()) == 2
        assert not (tmp_path / "orders.results.csv").exists()  # no job applied before the kill
        result = run_syncd(config, "import", str(source), "--module", "Orders", *args)
        assert result.returncode == 0, result.stderr
        jobs = emulator.admin.jobs()
        assert len(jobs) == 3  # the two journaled jobs were resumed, one more for part 3
        bulk_credits = emulator.admin.stats()["calls"].get("POST /crm/bulk/v8/write", 0)
        assert bulk_credits == 3
        assert emulator.admin.stats()["credits"]["used"] < 4 * 500  # 3 jobs and small calls
        assert len(emulator.admin.records("Orders")) == ROWS
        results = read_results(tmp_path / "orders.results.csv")
        assert [r["STATUS"] for r in results] == ["ADDED"] * ROWS
        assert _created_jobs(tmp_path / "state.db") == 0


FILE_PROBLEMS = [
    (None, ["--find-by", "parent_id"], "orders.csv: no such file"),
    ("", ["--find-by", "parent_id"], "orders.csv: the file is empty"),
    ("Name,parent_id\r\n", ["--find-by", "parent_id"], "the file has a header but no records"),
    ("Name,parent_id\r\na,K1\r\nb\r\n", ["--find-by", "parent_id"], "line 3 (record 2): 1 cells"),
    ("Name,parent_id\r\na,K1\r\nb,k1\r\n", ["--find-by", "parent_id"], "repeats record 1"),
    ("Name,parent_id\r\na,\r\n", ["--find-by", "parent_id"], "parent_id is empty"),
    ("Name,parent_id\r\na,K1\r\n", ["--find-by", "Nope"], "no column 'Nope'"),
    ("Name,parent_id\r\na,K1\r\n", [], "--find-by FIELD is required"),
]
CRM_PROBLEMS = [
    ("Name,Customer_Email\r\na,x@y.z\r\n", ["--find-by", "Customer_Email"], "not a unique"),
    ("Name,Nope,parent_id\r\na,1,K1\r\n", ["--find-by", "parent_id"], "Nope not a field"),
    ("Name,parent_id\r\na,K1\r\n", ["--find-by", "parent_id", "--module", "Nope"], "'Nope'"),
]


def _refused(tmp_path: Path, emulator: EmulatorServer, content: str | None, args: list[str]) -> str:
    """Run the import of ``content`` (None: no file); the one line it printed to stderr."""
    config = write_crm_config(tmp_path, emulator.base_url)
    source = tmp_path / "orders.csv"
    if content is not None:
        source.write_text(content, encoding="utf-8")
    result = run_syncd(config, "import", str(source), "--module", "Orders", *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("syncd: "), result.stderr
    assert emulator.admin.jobs() == []
    assert emulator.admin.records("Orders") == []
    return lines[0]


def test_jobs_past_their_timeout_stay_journaled_and_a_rerun_applies_them(
    tmp_path: Path,
) -> None:
    """Jobs still running at crm.bulk_job_timeout: exit 1, nothing lost; once Zoho has
    finished them, the same command applies them without creating any job again."""
    with EmulatorServer(EmulatorSettings(bulk_rows_per_second=None, bulk_job_seconds=1.2)) as emu:
        config = write_crm_config(tmp_path, emu.base_url, 'bulk_job_timeout = "1s"')
        source = orders_csv(tmp_path / "orders.csv")
        first = import_file(config, source, "--find-by", "parent_id")
        assert first.returncode == 1
        assert "run the same import again later" in first.stderr
        created = len(emu.admin.jobs())
        assert _created_jobs(tmp_path / "state.db") == created == 2
        time.sleep(2.5)  # both jobs finish in the emulator meanwhile (one after the other)
        write_crm_config(tmp_path, emu.base_url, 'bulk_job_timeout = "30s"')  # for part 3
        second = import_file(config, source, "--find-by", "parent_id")
        assert second.returncode == 0, second.stderr
        assert len(emu.admin.jobs()) == 3  # only the third part was created now
        results = read_results(tmp_path / "orders.results.csv")
    assert [r["STATUS"] for r in results] == ["ADDED"] * ROWS


def test_after_the_first_part_each_job_is_seen_soon_after_it_finished(tmp_path: Path) -> None:
    """Three parts whose jobs take 1 s each, one at a time, with a 6 s poll interval. Polling
    on the interval sees each job 5 s late (at least 18 s in all); paced as the drain's jobs
    are (``JobPace``: the parts of one file are alike), only the first is (about 6 + 1.3 + 1.3
    s, plus the command's start), for a few status calls more."""
    settings = EmulatorSettings(bulk_rows_per_second=None, bulk_job_seconds=1.0)
    with EmulatorServer(settings) as emulator:
        config = write_crm_config(
            tmp_path, emulator.base_url, "bulk_jobs_in_flight = 1", interval="6s"
        )
        source = orders_csv(tmp_path / "orders.csv", 3 * PER_JOB)
        began = time.monotonic()
        result = import_file(config, source, "--find-by", "parent_id")
        took = time.monotonic() - began
        stats = emulator.admin.stats()
    assert result.returncode == 0, result.stderr
    assert stats["bulk"]["jobs_created"] == 3
    assert took < 3 * 6 - 3, f"{took:.1f} s: the jobs were seen an interval late"
    polls = stats["calls"].get("GET /crm/bulk/v8/write/{job_id}", 0)
    assert 3 * 2 <= polls <= 3 * 6, polls


@pytest.mark.parametrize(("content", "args", "expected"), FILE_PROBLEMS)
def test_a_bad_file_is_one_line_exit_2_before_any_crm_call(
    tmp_path: Path,
    emulator: EmulatorServer,
    capsys: pytest.CaptureFixture[str],
    content: str | None,
    args: list[str],
    expected: str,
) -> None:
    """Missing or empty file, no records, a ragged row, a repeated or empty --find-by value,
    a missing --find-by column or option: one line naming file and line, exit 2, no call.

    In-process (the command's own entry point, its error handling included): these fail
    before the config is read, and a subprocess per case would cost seconds each."""
    config = write_crm_config(tmp_path, emulator.base_url)
    source = tmp_path / "orders.csv"
    if content is not None:
        source.write_text(content, encoding="utf-8")
    argv = ["-c", str(config), "import", str(source), "--module", "Orders", *args]
    umask = os.umask(0o022)  # main() sets the process umask: give this test's back after
    os.umask(umask)
    try:
        with pytest.raises(SystemExit) as exit_:
            main(argv)
    finally:
        os.umask(umask)
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("syncd: ") and expected in lines[0], lines
    assert emulator.admin.stats()["calls"] == {}


@pytest.mark.parametrize(("content", "args", "expected"), CRM_PROBLEMS)
def test_a_file_the_module_cannot_take_is_one_line_exit_2_and_no_job(
    tmp_path: Path,
    emulator: EmulatorServer,
    content: str | None,
    args: list[str],
    expected: str,
) -> None:
    """A --find-by that is not unique, a column that is not a field, an unknown module: found
    from the field metadata, one line, exit 2, no upload and no job."""
    assert expected in _refused(tmp_path, emulator, content, args)
    calls = emulator.admin.stats()["calls"]
    assert not [name for name in calls if "upload" in name or "bulk" in name], calls
