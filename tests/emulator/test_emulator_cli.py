"""`syncd emulator`: serves on 127.0.0.1, prints how to use it, stops cleanly on signals."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from syncd.emulator.cli import banner
from syncd.emulator.settings import EmulatorSettings

COMMAND = "from syncd.emulator.cli import emulator_command; emulator_command()"


@pytest.fixture
def run_cli() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def start(
    started: list[subprocess.Popen[str]], *args: str
) -> tuple[subprocess.Popen[str], str, list[str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", COMMAND, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    started.append(process)
    assert process.stdout is not None
    lines = [process.stdout.readline()]
    match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", lines[0])
    assert match, lines
    return process, match.group(1), lines


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serves_until_a_signal_then_exits_zero(
    run_cli: list[subprocess.Popen[str]], sig: signal.Signals
) -> None:
    """The command serves the emulator on 127.0.0.1 and exits 0 on SIGTERM or Ctrl-C."""
    process, base_url, _ = start(run_cli, "--port", "0", "--daily-credits", "123")
    settings = EmulatorSettings()
    token = httpx.post(
        f"{base_url}/oauth/v2/token",
        data={
            "grant_type": "refresh_token",
            "client_id": settings.client_id,
            "client_secret": settings.client_secret,
            "refresh_token": settings.refresh_token,
        },
    ).json()
    assert token["api_domain"] == base_url
    assert httpx.get(f"{base_url}/_emulator/stats").json()["credits"]["daily"] == 123
    process.send_signal(sig)
    output, _ = process.communicate(timeout=15)
    assert process.returncode == 0, output
    assert "emulator stopped" in output
    assert "Traceback" not in output


def test_bad_setting_is_a_usage_error(run_cli: list[subprocess.Popen[str]]) -> None:
    """An unknown --set name exits 2 with a message naming it."""
    result = subprocess.run(
        [sys.executable, "-c", COMMAND, "--port", "0", "--set", "no_such=1"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "no_such" in result.stderr


def test_banner_gives_credentials_and_a_crm_snippet() -> None:
    """The banner prints the base URL, the credentials and a ready [crm] config block."""
    text = banner("http://127.0.0.1:8976", EmulatorSettings())
    assert 'api_domain = "http://127.0.0.1:8976"' in text
    assert 'accounts_url = "http://127.0.0.1:8976"' in text
    assert 'upload_url = "http://127.0.0.1:8976/crm/v8/upload"' in text
    assert 'client_id = "syncd-emulator-client"' in text
    assert 'client_secret = "syncd-emulator-secret"' in text
    assert 'refresh_token = "syncd-emulator-refresh"' in text
    assert 'org_id = "808232144"' in text
    assert "Orders (unique: parent_id)" in text
