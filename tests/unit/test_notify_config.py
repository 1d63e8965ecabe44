"""[[notify]] targets and [notify_defaults] in the config file."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from syncd.config import load_settings
from syncd.config.settings import CONDITIONS, NotifyThresholds
from syncd.errors import ConfigError

HOOK = "https://hooks.slack.com/services/T0/B0/sekrit-91c2"
BASE = """
[source]
url = "sqlite:///legacy.db"
[crm]
data_center = "eu"
client_id = "a"
client_secret = "b"
refresh_token = "c"
[[pipelines]]
name = "orders"
table = "orders"
key = "id"
flag = "sync"
module = "Orders"
unique_field = "parent_id"
mode = "realtime"
[pipelines.fields]
Name = "order_number"
"""


def load(tmp_path: Path, extra: str) -> object:
    path = tmp_path / "config.toml"
    path.write_text(BASE + extra, encoding="utf-8")
    return load_settings(path)


def problems(tmp_path: Path, extra: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, extra)
    return str(caught.value)


def test_targets_take_defaults_then_their_own_thresholds(tmp_path: Path) -> None:
    """Per-target keys override [notify_defaults], which override the built-in defaults."""
    (tmp_path / "hook").write_text(HOOK + "\n", encoding="utf-8")
    (tmp_path / "hook").chmod(0o600)  # other users may not read a secret file
    settings = load(
        tmp_path,
        """
[notify_defaults]
rejects_above = 500
not_sending_after = "1h"

[[notify]]
kind = "slack"
url_file = "hook"
rejects_above = 50

[[notify]]
name = "pager"
kind = "webhook"
url = "https://alerts.example/hook?token=abc"
headers = { Authorization = "Bearer xyz" }
conditions = ["maybe_paid_twice", "bulk_failures"]
""",
    )
    slack, pager = settings.notify  # type: ignore[attr-defined]
    assert (slack.name, slack.kind, slack.url.reveal()) == ("slack-1", "slack", HOOK)
    assert slack.thresholds == NotifyThresholds(
        not_sending_after=timedelta(hours=1), rejects_above=50
    )
    assert slack.conditions == frozenset(CONDITIONS)
    assert pager.thresholds.rejects_above == 500
    assert pager.conditions == {"maybe_paid_twice", "bulk_failures"}
    assert {k: v.reveal() for k, v in pager.headers} == {"Authorization": "Bearer xyz"}
    assert pager.display_url == "https://alerts.example/****"
    assert "abc" not in repr(pager) and "sekrit" not in repr(slack)


def test_without_notify_there_are_no_targets(tmp_path: Path) -> None:
    """[[notify]] is optional."""
    assert load(tmp_path, "").notify == ()  # type: ignore[attr-defined]


def test_bad_targets_are_reported_without_quoting_the_url(tmp_path: Path) -> None:
    """Every problem is named by its key; a malformed URL is not echoed back."""
    text = problems(
        tmp_path,
        """
[[notify]]
kind = "email"
url = "hooks.slack.com/services/sekrit-91c2"
rejects_abov = 3
conditions = ["rejects", "everything"]

[[notify]]
name = "a"
kind = "slack"
url = "https://h/x"
budget_percent = 0

[[notify]]
name = "a"
kind = "slack"
""",
    )
    assert "sekrit" not in text
    assert "notify[0].kind: must be one of webhook, slack" in text
    assert "notify[0].url: must be an http(s) URL" in text
    assert 'notify[0].rejects_abov: unknown key (did you mean "rejects_above"?)' in text
    assert "notify[0].conditions[1]: must be one of not_sending" in text
    assert "notify[1].budget_percent: must be an integer from 1 to 100" in text
    assert "notify[2].url: is required (or url_file naming a file that holds it)" in text


def test_target_names_must_be_unique(tmp_path: Path) -> None:
    """Two targets of one name would share what they were told."""
    text = problems(
        tmp_path,
        """
[[notify]]
name = "ops"
kind = "slack"
url = "https://h/1"
[[notify]]
name = "ops"
kind = "webhook"
url = "https://h/2"
""",
    )
    assert "notify: target names must be unique: ops is used twice" in text
