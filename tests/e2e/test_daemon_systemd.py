"""`syncd run` under systemd's Type=notify protocol: READY, WATCHDOG, STOPPING, SIGHUP."""

from __future__ import annotations

import itertools
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from tests.helpers.daemon import NotifySocket, SyncdProcess, notify_socket, wait_until
from tests.helpers.e2e import write_config
from tests.helpers.orders import add_orders, create_orders, order, pending_keys

WATCHDOG_USEC = 1_000_000  # pings every 0.5 s


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer() as server:
        yield server


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    with notify_socket() as sock:
        yield sock


def systemd_env(notify: NotifySocket) -> dict[str, str]:
    return {"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": str(WATCHDOG_USEC)}


def test_ready_then_watchdog_pings_then_stopping_and_exit_0_on_sigterm(
    tmp_path: Path, sqlite_url: str, emulator: EmulatorServer, notify: NotifySocket
) -> None:
    """READY=1 once up, WATCHDOG=1 every WatchdogSec/2, STOPPING=1 and exit 0 on SIGTERM."""
    create_orders(sqlite_url, [order(1)]).dispose()
    config = write_config(tmp_path, sqlite_url, emulator.base_url)
    with SyncdProcess(config, tmp_path / "syncd.log", env=systemd_env(notify)) as daemon:
        notify.wait_for("READY=1", 20)
        assert emulator.admin.stats()["calls"]["GET /crm/v8/org"] == 1  # preflight came first
        ready = notify.times("READY=1")[0]
        notify.wait_for("WATCHDOG=1", 5, count=len(notify.times("WATCHDOG=1")) + 4)
        pings = [t for t in notify.times("WATCHDOG=1") if t > ready]
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        assert gaps and max(gaps) < WATCHDOG_USEC / 1e6, f"watchdog gaps {gaps}"
        assert "STOPPING=1" not in notify.messages()
        started = time.monotonic()
        assert daemon.terminate() == 0
        assert time.monotonic() - started < 5
    assert "STOPPING=1" in notify.messages()
    assert daemon.events("daemon_stopped")


def test_a_manager_that_stops_reading_does_not_stall_the_daemon(
    tmp_path: Path, sqlite_url: str, emulator: EmulatorServer, notify: NotifySocket
) -> None:
    """With the notify queue full, syncd still syncs and still exits 0 soon after SIGTERM."""
    legacy = create_orders(sqlite_url, [])
    config = write_config(
        tmp_path, sqlite_url, emulator.base_url, pipeline='poll_interval = "1s"\nmax_delay = "1s"'
    )
    env = {"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "100000"}  # a ping every 50 ms
    with SyncdProcess(config, tmp_path / "syncd.log", env=env) as daemon:
        notify.wait_for("READY=1", 20)
        notify.reading = False
        time.sleep(1.5)  # far more pings than the queue holds (net.unix.max_dgram_qlen)
        add_orders(legacy, [order(1)])
        wait_until(lambda: not pending_keys(legacy), 10, "row synced")
        started = time.monotonic()
        assert daemon.terminate() == 0
        assert time.monotonic() - started < 5
    assert daemon.events("sd_notify_failed")
    legacy.dispose()


def test_no_ready_when_the_preflight_fails(
    tmp_path: Path, sqlite_url: str, notify: NotifySocket
) -> None:
    """A CRM that refuses the credentials stops the start: no READY=1, a non-zero exit."""
    create_orders(sqlite_url, [order(1)]).dispose()
    with EmulatorServer(EmulatorSettings(client_secret="another-secret")) as emulator:
        config = write_config(tmp_path, sqlite_url, emulator.base_url)
        with SyncdProcess(config, tmp_path / "syncd.log", env=systemd_env(notify)) as daemon:
            assert daemon.wait(30) == 1
    assert "READY=1" not in notify.messages()
    assert "invalid_client" in daemon.tail() or "client" in daemon.tail()


def test_watchdog_pings_stop_while_the_state_store_is_unreachable(
    tmp_path: Path, sqlite_url: str, pg_url: str, emulator: EmulatorServer, notify: NotifySocket
) -> None:
    """No WATCHDOG=1 while the PostgreSQL state store refuses connections; pings resume after."""
    create_orders(sqlite_url, [order(1)]).dispose()
    config = write_config(tmp_path, sqlite_url, emulator.base_url, state_url=pg_url)
    database = make_url(pg_url).database
    admin = create_engine(
        make_url(pg_url).set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )

    def allow(on: bool) -> None:
        with admin.connect() as conn:
            conn.execute(text(f"ALTER DATABASE {database} WITH ALLOW_CONNECTIONS {on}"))
            if not on:
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :db AND pid <> pg_backend_pid()"
                    ),
                    {"db": database},
                )

    with SyncdProcess(config, tmp_path / "syncd.log", env=systemd_env(notify)) as daemon:
        notify.wait_for("WATCHDOG=1", 20, count=3)
        try:
            allow(False)
            cut = time.monotonic()
            daemon.wait_for("watchdog_unhealthy")
            time.sleep(2.0)
            late = [t for t in notify.times("WATCHDOG=1") if t > cut + 1.0]
            assert late == [], "pinged the watchdog while the state store was down"
        finally:
            allow(True)
        healed = time.monotonic()
        wait_until(lambda: [t for t in notify.times("WATCHDOG=1") if t > healed], 5, "pings again")
        assert daemon.terminate() == 0
    admin.dispose()


def test_sighup_reloads_the_config_or_says_why_not(
    tmp_path: Path, sqlite_url: str, emulator: EmulatorServer, notify: NotifySocket
) -> None:
    """SIGHUP applies a new max_delay; a broken file or a new state.url is refused, and why."""
    legacy = create_orders(sqlite_url, [])
    timing = 'poll_interval = "1s"\nmax_delay = "{}"'
    config = write_config(tmp_path, sqlite_url, emulator.base_url, pipeline=timing.format("1h"))
    with SyncdProcess(config, tmp_path / "syncd.log", env=systemd_env(notify)) as daemon:
        daemon.wait_for("drain_finished")
        add_orders(legacy, (order(i) for i in range(1, 6)))
        time.sleep(2)
        assert len(pending_keys(legacy)) == 5  # buffered: an hour to go
        write_config(tmp_path, sqlite_url, emulator.base_url, pipeline=timing.format("1s"))
        daemon.signal(signal.SIGHUP)
        daemon.wait_for("reloaded")
        states = [m for m in notify.messages() if m != "WATCHDOG=1"]
        assert states[-2:] == ["RELOADING=1", "READY=1"]
        wait_until(lambda: not pending_keys(legacy), 5, "buffered rows sent under the new config")

        write_config(tmp_path, sqlite_url, emulator.base_url, pipeline="flush_size = 500")
        daemon.signal(signal.SIGHUP)
        refused = daemon.wait_for("reload_failed")[0]
        assert "flush_size" in refused["msg"]
        other_state = f"sqlite:///{tmp_path}/other-state.db"
        write_config(tmp_path, sqlite_url, emulator.base_url, state_url=other_state)
        daemon.signal(signal.SIGHUP)
        refused = daemon.wait_for("reload_failed", count=2)[1]
        assert "state.url changed" in refused["msg"]
        add_orders(legacy, [order(6)])
        wait_until(lambda: not pending_keys(legacy), 5, "still syncing on the old config")
        assert daemon.terminate() == 0
    legacy.dispose()
