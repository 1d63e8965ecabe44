"""The minimum config the README documents loads as written and passes `syncd check`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.config import load_settings
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from tests.helpers.orders import create_orders, order

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## 3. Write the config"


def readme_minimum() -> str:
    """The one fenced TOML block of the README's "3. Write the config" section, verbatim."""
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    blocks = re.findall(r"^```toml\n(.*?)^```$", text[start:end], re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1, f"expected one ```toml block in {SECTION!r}, found {len(blocks)}"
    return str(blocks[0])


def replace_once(text: str, pattern: str, replacement: str) -> str:
    """``text`` with the one line matching ``pattern`` replaced (fails if not exactly one)."""
    new, count = re.subn(pattern, lambda _: replacement, text, flags=re.MULTILINE)
    assert count == 1, f"{pattern!r} matched {count} lines of the README's minimum config"
    return new


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorSettings(bulk_rows_per_second=None)) as server:
        yield server


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """The variables the README's block references, set to the emulator's credentials."""
    emulator = EmulatorSettings()
    env = {
        "LEGACY_DB_PASSWORD": "pw",
        "ZOHO_CLIENT_ID": emulator.client_id,
        "ZOHO_CLIENT_SECRET": emulator.client_secret,
        "ZOHO_REFRESH_TOKEN": emulator.refresh_token,
        "STATE_DIRECTORY": str(tmp_path / "state"),  # the default SQLite state store goes here
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def test_readme_minimum_loads_as_written(tmp_path: Path, credentials: dict[str, str]) -> None:
    """The README's minimum config, unchanged, is accepted by the real loader (realtime mode)."""
    config = tmp_path / "config.toml"
    config.write_text(readme_minimum(), encoding="utf-8")
    settings = load_settings(config)
    pipeline = settings.pipelines[0]
    assert (pipeline.mode, pipeline.schedule, pipeline.flush_size) == ("realtime", None, 100)
    assert (settings.crm.data_center, settings.crm.api_domain) == ("us", "https://www.zohoapis.com")
    assert settings.crm.client_secret.reveal() == credentials["ZOHO_CLIENT_SECRET"]
    assert settings.state.url == f"sqlite:///{tmp_path}/state/state.db"


def test_readme_minimum_passes_check_against_the_emulator(
    tmp_path: Path, credentials: dict[str, str], emulator: EmulatorServer
) -> None:
    """`syncd check` passes on the README's minimum with only the database and hosts swapped."""
    legacy = f"sqlite:///{tmp_path}/legacy.db"
    create_orders(legacy, (order(i) for i in range(1, 4))).dispose()
    text = replace_once(readme_minimum(), r"^url = .*$", f'url = "{legacy}"')
    text = replace_once(
        text,
        r"^data_center = .*$",
        f'accounts_url = "{emulator.base_url}"\napi_domain = "{emulator.base_url}"\n'
        f'upload_url = "{emulator.base_url}/crm/v8/upload"',
    )
    config = tmp_path / "config.toml"
    config.write_text(text, encoding="utf-8")
    config.chmod(0o600)
    result = subprocess.run(
        [sys.executable, "-m", "syncd", "-c", str(config), "check"],
        capture_output=True,
        text=True,
        env={**os.environ, **credentials},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 row(s) pending" in result.stdout
    assert "module Orders: ok" in result.stdout
    assert (
        "edition  professional, 10 user(s): concurrency limit 15, daily credits 55,000\n"
        "    syncd uses max_concurrency 15 (edition), org_daily_credits 55,000 (edition)\n"
    ) in result.stdout
    assert result.stdout.rstrip().endswith("all checks passed")
    assert (tmp_path / "state" / "state.db").is_file()
