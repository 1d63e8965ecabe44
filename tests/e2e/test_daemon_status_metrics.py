"""What an operator sees of a running daemon: `syncd status [--json]` and /metrics."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from syncd.emulator.server import EmulatorServer
from tests.helpers.daemon import SYNCD, SyncdProcess, free_port, wait_until
from tests.helpers.e2e import write_config
from tests.helpers.orders import add_orders, create_orders, order, pending_keys

BUDGET = 5_000


def syncd_status(config: Path, *args: str) -> str:
    result = subprocess.run(
        [SYNCD, "-c", str(config), "status", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the endpoint: (name, sorted labels) -> value."""
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def outward_address() -> str | None:
    """This host's non-loopback address, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("10.255.255.255", 1))
            address = str(sock.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_status_and_metrics_show_pending_buffer_runs_rejects_credits_and_lease(
    tmp_path: Path, mysql_url: str
) -> None:
    """Status (text and JSON) and a scrape of /metrics agree with what the daemon did."""
    rows = [*(order(i) for i in range(1, 31)), order(31, order_number=None)]  # 31: no Name
    legacy = create_orders(mysql_url, rows)
    port = free_port()
    with EmulatorServer() as emulator:
        config = write_config(
            tmp_path,
            mysql_url,
            emulator.base_url,
            pipeline='poll_interval = "1s"\nmax_delay = "1h"',
            crm=f"daily_credit_budget = {BUDGET}",
            extra=f"[metrics]\nenabled = true\nport = {port}",
        )
        with SyncdProcess(config, tmp_path / "syncd.log") as daemon:
            daemon.wait_for("drain_finished")
            add_orders(legacy, (order(i) for i in range(100, 120)))
            wait_until(
                lambda: json.loads(syncd_status(config, "--json"))["pipelines"][0]["buffered"],
                10,
                "the new rows buffered",
                0.5,
            )
            time.sleep(1)
            data = json.loads(syncd_status(config, "--json"))
            text = syncd_status(config)
            samples = scrape(port)
            assert daemon.terminate() == 0
    assert_status(data, daemon.host_id)
    assert f"lease held by {daemon.host_id}" in text
    assert "pending 21" in text and "buffered 20" in text and "rejects 1" in text
    assert_metrics(samples, data)
    assert len(pending_keys(legacy)) == 21
    legacy.dispose()


def assert_status(data: dict[str, Any], holder: str) -> None:
    pipeline = data["pipelines"][0]
    assert pipeline["pending"] == 21  # 20 buffered + 1 reject
    assert pipeline["buffered"] == 20
    assert 1 <= pipeline["oldest_wait_seconds"] < 30
    assert pipeline["jobs_in_flight"] == 0
    assert pipeline["rejects"] == 1
    assert pipeline["initial_sync_done"] is True
    assert pipeline["lease"]["holder"] == holder and pipeline["lease"]["alive"] is True
    initial = pipeline["last_runs"][-1]
    assert (initial["kind"], initial["status"]) == ("initial", "succeeded")
    assert (initial["sent"], initial["confirmed"], initial["rejected"]) == (31, 30, 1)
    assert initial["credits"] == 4  # one insert call of 31 records
    credits = data["credits"]
    assert credits["spent_24h"] >= 4 and credits["budget"] == BUDGET
    assert credits["remaining"] == BUDGET - credits["spent_24h"]
    assert credits["calls_24h"]["insert"] == {"calls": 1, "credits": 4}


def assert_metrics(samples: dict[tuple[str, Any], float], data: dict[str, Any]) -> None:
    orders = (("pipeline", "orders"),)
    assert samples[("syncd_rows_sent_total", orders)] == 31
    assert samples[("syncd_rows_confirmed_total", orders)] == 30
    assert samples[("syncd_rows_rejected_total", orders)] == 1
    assert samples[("syncd_rejects", orders)] == 1
    assert samples[("syncd_bulk_jobs_in_flight", orders)] == 0
    assert samples[("syncd_credit_reserve", ())] == 0
    assert samples[("syncd_buffer_size", orders)] == 20
    assert samples[("syncd_oldest_pending_age_seconds", orders)] >= 1
    assert samples[("syncd_credits_spent_24h", ())] == data["credits"]["spent_24h"]
    assert samples[("syncd_credit_budget", ())] == BUDGET
    assert samples[("syncd_api_calls_24h", (("kind", "insert"),))] == 1
    assert samples[("syncd_api_calls_24h", (("kind", "org"),))] == 1
    assert abs(samples[("syncd_last_success_timestamp_seconds", orders)] - time.time()) < 30


def test_metrics_listen_on_loopback_only_by_default(tmp_path: Path, sqlite_url: str) -> None:
    """[metrics] enabled without a host serves 127.0.0.1, not every interface."""
    address = outward_address()
    create_orders(sqlite_url, []).dispose()
    port = free_port()
    with EmulatorServer() as emulator:
        config = write_config(
            tmp_path,
            sqlite_url,
            emulator.base_url,
            extra=f"[metrics]\nenabled = true\nport = {port}",
        )
        with SyncdProcess(config, tmp_path / "syncd.log") as daemon:
            daemon.wait_for("metrics_started")
            assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).status_code == 200
            if address is not None:
                with socket.socket() as sock:
                    assert sock.connect_ex((address, port)) != 0, "metrics reachable from outside"
            assert daemon.terminate() == 0


def test_a_metrics_port_in_use_stops_the_start_with_a_clear_message(
    tmp_path: Path, sqlite_url: str
) -> None:
    """A taken metrics port is a one-line error and exit 1, before READY, not a traceback."""
    create_orders(sqlite_url, []).dispose()
    with socket.socket() as taken, EmulatorServer() as emulator:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(
            tmp_path,
            sqlite_url,
            emulator.base_url,
            extra=f"[metrics]\nenabled = true\nport = {port}",
        )
        with SyncdProcess(config, tmp_path / "syncd.log") as daemon:
            assert daemon.wait(30) == 1
    assert f"syncd: metrics: cannot listen on 127.0.0.1:{port}" in daemon.tail()
    assert "Traceback" not in daemon.tail()
    assert not daemon.events("daemon_ready")
