"""`load_crm_settings`: the config as `syncd import` reads it, [crm] alone being enough."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.config import load_crm_settings, load_settings
from syncd.errors import ConfigError

CRM = """
[crm]
data_center = "eu"
client_id = "id"
client_secret = "secret"
refresh_token = "refresh"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_crm_alone_is_enough_for_import_but_not_for_the_sync(tmp_path: Path) -> None:
    """Without [source] and [[pipelines]] the import loads; the sync still asks for them."""
    path = write(tmp_path, CRM + '\n[state]\nurl = "sqlite:////tmp/s.db"\n')
    settings = load_crm_settings(path)
    assert settings.crm.api_domain == "https://www.zohoapis.eu"
    assert settings.state.url == "sqlite:////tmp/s.db"
    with pytest.raises(ConfigError, match="source"):
        load_settings(path)


def test_sections_present_are_still_checked(tmp_path: Path) -> None:
    """A wrong key in [crm] or in a [[pipelines]] table the import does not use is reported."""
    path = write(tmp_path, CRM + 'daily_credit_budgit = 5\n\n[[pipelines]]\nname = "x"\n')
    with pytest.raises(ConfigError) as raised:
        load_crm_settings(path)
    text = str(raised.value)
    assert "crm.daily_credit_budgit" in text
    assert "pipelines[0]" in text
