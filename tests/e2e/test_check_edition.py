"""`syncd check` shows the org's edition, its limits, and the limits syncd will use."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from tests.helpers.e2e import run_syncd, write_config
from tests.helpers.orders import create_orders, order


@pytest.fixture
def legacy(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/legacy.db"
    create_orders(url, (order(i) for i in range(1, 4))).dispose()
    return url


@pytest.mark.parametrize(
    ("edition", "crm", "lines"),
    [
        (
            "ultimate",
            "",
            "edition  ultimate, 40 user(s): concurrency limit 25, daily credits 130,000\n"
            "    syncd uses max_concurrency 25 (edition), org_daily_credits 130,000 (edition)\n",
        ),
        (
            "ultimate",
            "max_concurrency = 8\norg_daily_credits = 250000",
            "edition  ultimate, 40 user(s): concurrency limit 25, daily credits 130,000\n"
            "    syncd uses max_concurrency 8 (config), org_daily_credits 250,000 (config)\n",
        ),
        (
            "galactic",
            "",
            "edition  unknown (Zoho did not say, or syncd does not know it)\n"
            "    syncd uses max_concurrency 5 (default), org_daily_credits unknown (default)\n",
        ),
    ],
)
def test_check_shows_edition_and_limits(
    tmp_path: Path, legacy: str, edition: str, crm: str, lines: str
) -> None:
    """Edition and its limits are shown; the config's values win; an unknown one is no failure."""
    settings = EmulatorSettings(
        bulk_rows_per_second=None, edition=edition, users_license_purchased=40
    )
    with EmulatorServer(settings) as emulator:
        config = write_config(tmp_path, legacy, emulator.base_url, crm=crm)
        result = run_syncd(config, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines in result.stdout
    assert result.stdout.rstrip().endswith("all checks passed")
