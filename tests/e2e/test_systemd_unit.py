"""deploy/syncd.service: systemd accepts it, and it keeps the settings the daemon relies on."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "syncd.service"
INSTALLED_BINARY = "/opt/syncd/bin/syncd"


def _service_section() -> dict[str, list[str]]:
    """Key -> values of [Service]; systemd allows a key more than once, so no configparser."""
    values: dict[str, list[str]] = {}
    section = ""
    for raw in UNIT.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    """`systemd-analyze verify` finds nothing to complain about (with the venv's syncd)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (an optional tool)")
    syncd = Path(sys.executable).parent / "syncd"
    assert syncd.is_file(), f"{syncd} missing: is syncd installed in this venv?"
    unit = tmp_path / UNIT.name
    text = UNIT.read_text(encoding="utf-8")
    assert INSTALLED_BINARY in text
    unit.write_text(text.replace(INSTALLED_BINARY, str(syncd)), encoding="utf-8")
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    # Unknown keys and bad values are only warnings (exit 0): any line naming the unit fails.
    complaints = [
        line for line in (result.stdout + result.stderr).splitlines() if UNIT.name in line
    ]
    assert result.returncode == 0, result.stderr
    assert complaints == []


def test_unit_keeps_notify_watchdog_restart_and_hardening() -> None:
    """The daemon's systemd contract and the hardening stay in the unit file."""
    service = _service_section()
    expected = {
        "Type": "notify",
        "Restart": "on-failure",
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
    }
    for key, value in expected.items():
        assert service.get(key) == [value], f"{key}={service.get(key)}"
    for key in ("WatchdogSec", "User", "StateDirectory", "ConfigurationDirectory"):
        assert service.get(key, [""])[0], f"{key} missing"
    assert service["User"] != ["root"]
    credentials = service.get("LoadCredential", [])
    assert any(c.startswith("zoho_client_secret:") for c in credentials), credentials
    assert [c.split()[-1] for c in service["ExecStart"]] == ["run"], service["ExecStart"]
    assert service["WatchdogSec"][0] not in ("0", "infinity")
