"""Broken answers from the CRM (issue 15, item 2), each injected by the emulator.

What a proxy, a load balancer or Zoho itself sends back when it misbehaves: a body cut short,
an HTML error page with status 200, a wrong content type, an empty body, a result zip without
its CSV or with other columns, a result naming keys that were not sent, a job status that goes
backwards, a result on another host, a 401 in the middle of a bulk job, a token endpoint saying
"no" with status 200, tokens that live shorter than syncd's refresh margin.

For each: syncd retries what can be retried (within the call's retry budget: stamina's testing
mode here, 3 attempts without the sleeps), reports what cannot in one clear line, never marks a
row synced that Zoho did not confirm, and goes on. Every test counts the CRM calls (the
emulator's) and the credits (the emulator's and syncd's own ledger in the state store).

Which fault is retried and which is final, and why:

- an answer that cannot be read (cut short, HTML, empty) on a call that may be repeated
  (upload, status poll, download, records writes, token): retried in place. A proxy's hiccup
  passes; a repeated status poll or download does no harm, and a repeated records write only
  updates the records the first one made.
- the same on the create-job call: not repeated. Zoho may have created and charged the job, so
  the journal entry is closed UNCERTAIN (counted in ``status`` as maybe paid twice) and the rows
  go in a new job, exactly as after a lost reply.
- a result that stays broken after the retries (no CSV, other columns, keys not sent): final
  for that job. The same file comes back at every download, so waiting cannot help: the job is
  closed FAILED with the reason, nothing of it is applied, its rows stay pending and go again
  after the bulk backoff.
- a download URL on another host: final for that job, and the token never goes there.
- a status going backwards: just another poll; a 401 mid-job: one new token, then on.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import stamina
from sqlalchemy import select

from syncd.app import App
from syncd.crm.api import token_may_go_to
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings, Faults
from syncd.engine.drain import DrainResult
from syncd.engine.runs import run_drain
from syncd.errors import CrmRetriableError
from syncd.model import JobState
from syncd.state.tables import bulk_jobs
from tests.helpers.daemon import SyncdProcess, wait_until
from tests.helpers.e2e import (
    MovableClock,
    assert_mirrored,
    crm_by_key,
    open_app,
    run_syncd,
    write_config,
)
from tests.helpers.sqlite_orders import pending, sqlite3_orders

ROWS = 5_000  # the break-even: the planner sends them in one bulk job
TOKEN = "POST /oauth/v2/token"
ORG = "GET /crm/v8/org"
UPLOAD = "POST /crm/v8/upload"
CREATE = "POST /crm/bulk/v8/write"
STATUS = "GET /crm/bulk/v8/write/{job_id}"
DOWNLOAD = "GET /{version}/crm/{org}/bulk-write/{job_id}/{file_name}"
INSERT = "POST /crm/v8/{module}"
CALLS = {TOKEN: 1, ORG: 1, UPLOAD: 1, CREATE: 1, STATUS: 1, DOWNLOAD: 1}
"""The calls of a fault-free initial sync of ROWS rows, as the emulator counts them."""
LEDGER = {"org": 1, "upload": 1, "bulk_job": 500, "bulk_status": 1, "download": 1}
"""Its credits per kind in syncd's ledger (the token endpoint is not a CRM call)."""
KIND = {ORG: "org", UPLOAD: "upload", STATUS: "bulk_status", DOWNLOAD: "download"}
AFTER_BACKOFF = timedelta(minutes=3)  # past the first bulk backoff (2 minutes at most)
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _instant_retries() -> Iterator[None]:
    """Real retries, 3 attempts per call, without the backoff's sleeps."""
    with stamina.set_testing(True, attempts=3):
        yield


@dataclass
class Scene:
    """A legacy table of ROWS pending rows (sqlite3's own client), an emulator, syncd."""

    db: Path
    server: EmulatorServer
    app: App
    clock: MovableClock

    def drain(self) -> DrainResult:
        rt = self.app.runtime(self.app.settings.pipeline("orders"))
        rt = dataclasses.replace(
            rt,
            clock=self.clock,
            tunables=dataclasses.replace(rt.tunables, bulk_poll_interval=timedelta(0)),
        )
        return run_drain(rt, "initial")

    def calls(self) -> dict[str, int]:
        calls: dict[str, int] = self.server.admin.stats()["calls"]
        return calls

    def ledger(self) -> dict[str, int]:
        """syncd's own ledger: credits per kind."""
        return {kind: credits for kind, (_, credits) in self.app.store.calls_since(EPOCH).items()}

    def crm_credits(self) -> int:
        return int(self.server.admin.stats()["credits"]["used"])

    def journal(self) -> list[Any]:
        with self.app.store.engine.connect() as conn:
            return list(conn.execute(select(bulk_jobs).order_by(bulk_jobs.c.id)))

    def assert_all_synced_once(self) -> None:
        counts = assert_mirrored(f"sqlite:///{self.db}", self.server.base_url, self.app.store)
        assert counts == {"synced": ROWS, "rejected": 0, "crm_records": ROWS}

    def assert_ledger_matches_the_crm(self) -> None:
        assert sum(self.ledger().values()) == self.crm_credits()


@contextmanager
def scene(tmp_path: Path, faults: Faults, rows: int = ROWS) -> Iterator[Scene]:
    db = tmp_path / "legacy.db"
    url = sqlite3_orders(db, rows)
    settings = EmulatorSettings(bulk_rows_per_second=None, faults=faults, seed=15)
    with EmulatorServer(settings) as server:
        config = write_config(tmp_path, url, server.base_url)
        with open_app(config) as app:
            yield Scene(db, server, app, MovableClock(datetime.now(UTC)))


def plus(base: dict[str, int], **more: int) -> dict[str, int]:
    return {k: base.get(k, 0) + more.get(k, 0) for k in base.keys() | more.keys()}


@pytest.mark.parametrize(
    ("kind", "call"),
    [
        ("truncated_json", STATUS),
        ("html_200", STATUS),
        ("html_200", UPLOAD),
        ("empty_body", DOWNLOAD),
        ("empty_body", ORG),
    ],
)
def test_an_unreadable_answer_is_asked_again(tmp_path: Path, kind: str, call: str) -> None:
    """One answer cut short / an HTML page / empty: that call is made once more, in place."""
    faults = Faults(garble=kind, garble_next=1, garble_calls=(call,))  # type: ignore[arg-type]
    with scene(tmp_path, faults) as s:
        result = s.drain()
        s.assert_all_synced_once()
        assert result.left_pending == 0 and result.counts.confirmed == ROWS
        assert s.calls() == plus(CALLS, **{call: 1})
        assert s.ledger() == plus(LEDGER, **{KIND[call]: 1})  # the garbled one cost a credit
        s.assert_ledger_matches_the_crm()
        assert len(s.server.admin.jobs()) == 1


def test_a_garbled_token_answer_is_asked_again(tmp_path: Path) -> None:
    """The token endpoint's answer lost behind a proxy page: one more mint, then on."""
    faults = Faults(garble="html_200", garble_next=1, garble_calls=(TOKEN,))
    with scene(tmp_path, faults) as s:
        s.drain()
        s.assert_all_synced_once()
        assert s.calls() == plus(CALLS, **{TOKEN: 1})
        assert s.server.admin.stats()["tokens"]["minted"] == 2
        assert s.ledger() == LEDGER


def test_a_wrong_content_type_is_no_fault(tmp_path: Path) -> None:
    """Every answer labelled text/html: the bodies are whole, so nothing is asked twice."""
    with scene(tmp_path, Faults(garble="wrong_content_type", garble_rate=1.0)) as s:
        s.drain()
        s.assert_all_synced_once()
        assert s.calls() == CALLS and s.ledger() == LEDGER
        assert s.server.admin.stats()["faults"]["garble_wrong_content_type"] == len(CALLS)


def test_a_records_write_with_a_garbled_answer_is_sent_again_to_the_same_records(
    tmp_path: Path,
) -> None:
    """Records path: the insert was done, its answer unreadable; sent again, Zoho answers
    DUPLICATE_DATA naming the records the first one made, and syncd adopts them."""
    faults = Faults(garble="truncated_json", garble_next=1, garble_calls=(INSERT,))
    with scene(tmp_path, faults, rows=150) as s:
        result = s.drain()
        records = crm_by_key(s.server.base_url)  # fails on a duplicate record
        assert len(records) == 150 and pending(s.db) == 0
        assert result.counts.confirmed == 150
        calls = s.calls()
        assert calls[INSERT] == 3  # 100 + 50, the first answer garbled and asked again
        assert s.ledger()["insert"] == 10 + 10 + 5  # a credit per 10 records


def test_an_unreadable_create_reply_is_counted_as_maybe_paid_twice(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The create call is never repeated: its job may exist. The entry is closed UNCERTAIN with
    one clear line, the run fails, and the next run sends the rows in a new job."""
    faults = Faults(garble="truncated_json", garble_next=1, garble_calls=(CREATE,))
    with scene(tmp_path, faults) as s:
        with pytest.raises(CrmRetriableError) as failed:
            s.drain()
        assert failed.value.code == "BAD_RESPONSE"
        assert "\n" not in str(failed.value) and "not JSON" in str(failed.value)
        assert pending(s.db) == ROWS, "a row was confirmed from an unreadable answer"
        assert [e.state for e in s.journal()] == [JobState.UNCERTAIN.value]
        assert s.calls()[CREATE] == 1
        uncertain = [r for r in caplog.records if getattr(r, "event", "") == "bulk_job_uncertain"]
        assert len(uncertain) == 1

        s.drain()
        s.assert_all_synced_once()
        assert [e.state for e in s.journal()] == [JobState.UNCERTAIN.value, "applied"]
        assert len(s.server.admin.jobs()) == 2  # the minimum plus the one window left open
        assert s.ledger()["bulk_job"] == 1_000
        s.assert_ledger_matches_the_crm()


@pytest.mark.parametrize(
    ("broken", "reason"),
    [
        ("no_csv", "holds no CSV"),
        ("other_columns", "no STATUS column"),
        ("foreign_keys", "names 1 key(s) that were not in the job's file (first: 'NOT-SENT-1')"),
        ("damaged_stream", "the bulk result CSV is unreadable"),
    ],
)
def test_a_broken_result_is_never_applied(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, broken: str, reason: str
) -> None:
    """The job wrote its records but its result is broken at every download: downloaded 3
    times, then the job is closed FAILED with the reason; no row is confirmed from it (not
    even the ones a foreign-keys result names correctly); after the bulk backoff the rows go
    in a new job and are confirmed from its result."""
    faults = Faults(broken_results=1, broken_result=broken)  # type: ignore[arg-type]
    with scene(tmp_path, faults) as s:
        first = s.drain()
        assert first.counts.confirmed == 0 and pending(s.db) == ROWS
        assert first.left_pending == ROWS  # held back by the bulk backoff, not lost
        assert len(s.server.admin.records("Orders")) == ROWS  # Zoho did write them
        (entry,) = s.journal()
        assert entry.state == JobState.FAILED.value and reason in entry.error
        assert s.calls() == plus(CALLS, **{DOWNLOAD: 2})  # the retry budget: 3 attempts
        failed = [r for r in caplog.records if getattr(r, "event", "") == "bulk_job_failed"]
        assert len(failed) == 1 and reason in failed[0].getMessage()
        assert "stay pending" in failed[0].getMessage()

        s.clock.at += AFTER_BACKOFF
        second = s.drain()
        assert second.counts.confirmed == ROWS
        s.assert_all_synced_once()
        assert len(s.server.admin.jobs()) == 2
        assert s.ledger() == plus(LEDGER, bulk_job=500, upload=1, bulk_status=1, download=3)
        s.assert_ledger_matches_the_crm()


def test_a_job_status_going_backwards_is_polled_through(tmp_path: Path) -> None:
    """Two polls of a lagging replica say ADDED after the job completed: two more polls."""
    with scene(tmp_path, Faults(status_regressions=2)) as s:
        s.drain()
        s.assert_all_synced_once()
        assert s.calls() == plus(CALLS, **{STATUS: 2})
        assert s.ledger() == plus(LEDGER, bulk_status=2)
        assert len(s.server.admin.jobs()) == 1


@pytest.mark.parametrize("call", [STATUS, DOWNLOAD])
def test_a_401_in_the_middle_of_a_bulk_job_costs_one_token(tmp_path: Path, call: str) -> None:
    """The token is revoked while the job runs: one new token, the call again, nothing lost.
    The refused call cost nothing, in Zoho's count and in syncd's."""
    with scene(tmp_path, Faults(expire_tokens_on=(call,), expire_tokens_next=1)) as s:
        s.drain()
        s.assert_all_synced_once()
        assert s.calls() == plus(CALLS, **{call: 1, TOKEN: 1})
        assert s.server.admin.stats()["tokens"]["minted"] == 2
        assert s.ledger() == LEDGER
        s.assert_ledger_matches_the_crm()


@contextmanager
def other_host() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A host that is not Zoho's (127.0.0.2), recording the headers of every request it gets."""
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(dict(self.headers.items()))
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.2", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.2:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_result_on_another_host_never_gets_the_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """download_url on a host that is not Zoho's: no request goes there (with or without the
    token), the job is closed with the reason, its rows stay pending and go again later."""
    with other_host() as (elsewhere, seen), scene(tmp_path, Faults()) as s:
        s.server.admin.set_faults(download_host=elsewhere)
        first = s.drain()
        assert seen == [], "a request went to a host that is not Zoho's"
        assert first.counts.confirmed == 0 and pending(s.db) == ROWS
        (entry,) = s.journal()
        assert entry.state == JobState.FAILED.value
        assert "127.0.0.2" in entry.error and "does not send its access token" in entry.error
        assert DOWNLOAD not in s.calls()
        assert "download" not in s.ledger()  # never sent, never counted

        s.server.admin.set_faults(download_host=None)
        s.clock.at += AFTER_BACKOFF
        s.drain()
        s.assert_all_synced_once()
        assert len(s.server.admin.jobs()) == 2


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://download-accl.zoho.com/v2/crm/1/bulk-write/2/2.zip", True),
        ("https://www.zohoapis.com/crm/bulk/v8/write/2", True),
        ("https://content.zohoapis.com/crm/v8/upload", True),
        ("http://download-accl.zoho.com/v2/crm/1/bulk-write/2/2.zip", False),  # not https
        ("https://download-accl.zoho.com:8443/x.zip", False),  # another port
        ("https://download.zoho.eu/x.zip", False),  # another data center
        ("https://zoho.com.evil.example/x.zip", False),
        ("https://evil.example/zoho.com/x.zip", False),
        ("https://wwwzohoapis.com/x.zip", False),
    ],
)
def test_which_hosts_may_get_the_token(url: str, allowed: bool) -> None:
    """The US data center's hosts, and their siblings under zoho.com / zohoapis.com only."""
    us = ("https://www.zohoapis.com", "https://accounts.zoho.com", "https://content.zohoapis.com")
    assert token_may_go_to(url, us) is allowed


def test_the_emulator_is_trusted_by_its_exact_address_only() -> None:
    known = ("http://127.0.0.1:8976",)
    assert token_may_go_to("http://127.0.0.1:8976/v2/crm/x.zip", known)
    assert not token_may_go_to("http://127.0.0.2:8976/v2/crm/x.zip", known)
    assert not token_may_go_to("http://127.0.0.1:8977/v2/crm/x.zip", known)


def _one_line(stderr: str) -> list[str]:
    assert "Traceback" not in stderr
    return [line for line in stderr.splitlines() if line.startswith("syncd: ")]


def test_access_denied_with_status_200_waits_and_the_next_run_goes_on(tmp_path: Path) -> None:
    """Zoho Accounts says Access Denied with HTTP 200: syncd does not hammer it (one token
    request, no CRM call), says so in one line, and the next run syncs everything."""
    url = sqlite3_orders(tmp_path / "legacy.db", 10)
    faults = Faults(token_errors=1, token_error="Access Denied")
    with EmulatorServer(EmulatorSettings(bulk_rows_per_second=None, faults=faults)) as server:
        config = write_config(tmp_path, url, server.base_url)
        first = run_syncd(config, "initial-sync")
        calls_after_first = server.admin.stats()["calls"]
        second = run_syncd(config, "initial-sync")
        records = crm_by_key(server.base_url)
    assert first.returncode == 1
    (line,) = _one_line(first.stderr)
    assert "Access Denied" in line and "waits" in line
    assert calls_after_first == {TOKEN: 1}
    assert second.returncode == 0, second.stderr
    assert len(records) == 10 and pending(tmp_path / "legacy.db") == 0


def test_a_revoked_refresh_token_is_fatal_without_retry(tmp_path: Path) -> None:
    """invalid_code with HTTP 200: one line with what to do, exit 1, asked exactly once."""
    url = sqlite3_orders(tmp_path / "legacy.db", 10)
    faults = Faults(token_errors=5, token_error="invalid_code")
    with EmulatorServer(EmulatorSettings(faults=faults)) as server:
        config = write_config(tmp_path, url, server.base_url)
        result = run_syncd(config, "initial-sync")
        calls = server.admin.stats()["calls"]
    assert result.returncode == 1
    (line,) = _one_line(result.stderr)
    assert "invalid_code" in line and "refresh token" in line
    assert calls == {TOKEN: 1}
    assert pending(tmp_path / "legacy.db") == 10


def test_tokens_shorter_lived_than_the_refresh_margin_do_not_stop_the_sync(
    tmp_path: Path,
) -> None:
    """An org issuing 20-second tokens: before, syncd minted one per call until its own mint
    guard stopped initial-sync with exit 1. Now each token serves three quarters of its life
    (crm/auth.py refresh_margin; unit-level: tests/integration/test_crm_auth.py)."""
    url = sqlite3_orders(tmp_path / "legacy.db", ROWS)
    settings = EmulatorSettings(bulk_rows_per_second=None, token_ttl_seconds=20)
    with EmulatorServer(settings) as server:
        config = write_config(tmp_path, url, server.base_url)
        result = run_syncd(config, "initial-sync")
        stats = server.admin.stats()
    assert result.returncode == 0, result.stderr
    assert stats["tokens"]["minted"] == 1  # before: one per call (6 calls)
    assert pending(tmp_path / "legacy.db") == 0


def test_broken_answers_are_logged_in_one_line_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No multi-line message (no traceback, no body dump) for any broken answer."""
    caplog.set_level(logging.DEBUG)
    faults = Faults(garble="html_200", garble_rate=0.3, status_regressions=1)
    with scene(tmp_path, faults) as s:
        for _ in range(4):
            try:
                s.drain()
            except CrmRetriableError:
                continue
            break
    assert all("\n" not in r.getMessage() for r in caplog.records if r.name.startswith("syncd"))
    assert not any("<html>" in r.getMessage() for r in caplog.records)


def _served(server: EmulatorServer, fault: str) -> bool:
    return bool(server.admin.stats()["faults"].get(fault))


def test_the_daemon_rides_out_broken_answers(tmp_path: Path) -> None:
    """`syncd run` while answers come back as proxy error pages, then cut short, and its
    token is revoked: it keeps running, loses and duplicates nothing, and every change ends
    up in the CRM."""
    db = tmp_path / "legacy.db"
    url = sqlite3_orders(db, 300)
    settings = EmulatorSettings(bulk_rows_per_second=None, seed=11)
    with EmulatorServer(settings) as server:
        config = write_config(
            tmp_path,
            url,
            server.base_url,
            pipeline='poll_interval = "1s"\nmax_delay = "1s"\nflush_size = 10',
        )
        with SyncdProcess(config, tmp_path / "syncd.log") as daemon:
            daemon.wait_for("daemon_ready")
            wait_until(lambda: pending(db) == 0, 60, "initial rows synced", 0.5)
            for round_, garble in enumerate(("html_200", "truncated_json")):
                server.admin.set_faults(garble=garble, garble_next=1)
                if round_ == 1:
                    server.admin.expire_tokens()
                _change(db, range(1 + round_ * 20, 21 + round_ * 20), f"note {round_}")
                # The next round replaces the fault: wait until this one has been served, or
                # a slow runner would overwrite it before the daemon made a call.
                fault = f"garble_{garble}"
                wait_until(lambda: _served(server, fault), 60, f"{fault} served", 0.2)  # noqa: B023 - called here, in this iteration
            wait_until(lambda: pending(db) == 0, 90, "changes synced", 0.5)
            faults = server.admin.stats()["faults"]
            assert daemon.proc is not None and daemon.proc.poll() is None, "syncd stopped"
            assert daemon.terminate() == 0
        records = crm_by_key(server.base_url)  # fails on a duplicate record
    assert faults == {"garble_html_200": 1, "garble_truncated_json": 1}
    assert len(records) == 300
    assert [records[str(n)]["Notes"] for n in (1, 20, 21, 40)] == [
        "note 0",
        "note 0",
        "note 1",
        "note 1",
    ]


def _change(db: Path, keys: range, note: str) -> None:
    """What the legacy application does: change rows and set their flag false."""
    conn = sqlite3.connect(db)
    try:
        conn.executemany(
            "UPDATE orders SET notes = ?, sync = 0 WHERE id = ?", [(note, k) for k in keys]
        )
        conn.commit()
    finally:
        conn.close()
