"""`syncd lookup KEY` and `syncd rejects show KEY`: what syncd knows of a key, and the CRM now."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.model import CrmRecord, Identity, Reject
from tests.helpers.e2e import open_app, run_syncd, write_config
from tests.helpers.orders import FIELDS

SEEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
CONFIRMED = datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC)
REJECTED = datetime(2026, 1, 3, 8, 0, 0, tzinfo=UTC)
FINGERPRINT = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
GET_CALLS = "GET /crm/v8/{module}"


@dataclass
class Setup:
    config: Path
    emulator: EmulatorServer
    ids: dict[str, str]  # key -> CRM record id


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorSettings(bulk_rows_per_second=None)) as server:
        yield server


@pytest.fixture
def setup(tmp_path: Path, emulator: EmulatorServer) -> Setup:
    """Records 1 and 2 in the CRM, both in the identity map (1 confirmed); 2 and 3 rejects."""
    emulator.admin.reset()
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/legacy.db", emulator.base_url)
    records = [
        CrmRecord(key, {"Name": f"SO-{key}", "Amount": 10.5, "Paid": True, "Notes": None})
        for key in ("1", "2")
    ]
    with open_app(config) as app:
        ids = {o.key: str(o.record_id) for o in app.crm.upsert("Orders", "parent_id", records)}
        app.store.record_identities(
            "orders",
            [
                Identity("1", ids["1"], SEEN, CONFIRMED, FINGERPRINT),
                Identity("2", ids["2"], SEEN),
            ],
        )
        app.store.record_rejects(
            [
                Reject(
                    "orders",
                    key,
                    "INVALID_DATA",
                    "Customer_Email",
                    "invalid data",
                    "h" + key,
                    REJECTED,
                )
                for key in ("2", "3")
            ]
        )
    return Setup(config, emulator, ids)


def labelled(stdout: str) -> dict[str, str]:
    """The `label: value` lines of the output, by label."""
    pairs = (re.match(r"^\s*([^:]+?): (.*)$", line) for line in stdout.splitlines())
    return {m.group(1): m.group(2) for m in pairs if m}


def get_calls(setup: Setup) -> int:
    calls: int = setup.emulator.admin.stats()["calls"].get(GET_CALLS, 0)
    return calls


def test_known_key_shows_its_record_and_what_was_confirmed(setup: Setup) -> None:
    """Without --crm: record id, seen, last confirmed with its fingerprint; no CRM call."""
    result = run_syncd(setup.config, "lookup", "1")
    assert result.returncode == 0, result.stderr
    shown = labelled(result.stdout)
    assert shown["pipeline"] == "orders (module Orders)"
    assert shown["key"] == "1"
    assert shown["CRM record"] == setup.ids["1"]
    assert shown["seen at"] == "2026-01-02T03:04:05+00:00"
    assert shown["last confirmed"] == f"2026-01-02T03:04:06+00:00, fingerprint {FINGERPRINT}"
    assert shown["reject"] == "no"
    assert get_calls(setup) == 0


def test_crm_values_are_what_the_crm_holds_in_one_call(setup: Setup) -> None:
    """--crm prints every mapped field's current CRM value, read in one GET; no secret shown."""
    result = run_syncd(setup.config, "--debug", "lookup", "--crm", "1")
    assert result.returncode == 0, result.stderr
    (record,) = [r for r in setup.emulator.admin.records("Orders") if r["parent_id"] == "1"]
    shown = labelled(result.stdout)
    assert f"CRM: record {setup.ids['1']} in Orders now holds" in result.stdout
    assert shown["parent_id (id)"] == '"1"'
    assert "warning" not in result.stdout
    for field in FIELDS:
        assert shown[f"{field.api_name} ({field.column})"] == json.dumps(record[field.api_name])
    assert (shown["Name (order_number)"], shown["Paid (paid)"]) == ('"SO-1"', "true")
    assert get_calls(setup) == 1
    emulator = EmulatorSettings()
    for secret in (emulator.client_secret, emulator.refresh_token, "Zoho-oauthtoken"):
        assert secret not in result.stdout + result.stderr


def test_record_deleted_in_the_crm_is_said_plainly(setup: Setup) -> None:
    """A mapped record that no longer exists is reported as such, with exit 0."""
    setup.emulator.admin.delete_record("Orders", setup.ids["1"])
    result = run_syncd(setup.config, "lookup", "1", "--crm")
    assert result.returncode == 0, result.stderr
    assert (
        f"CRM: record {setup.ids['1']} no longer exists in Orders (deleted or merged in the CRM)"
        in result.stdout
    )
    assert "now holds" not in result.stdout
    as_json = json.loads(run_syncd(setup.config, "lookup", "1", "--crm", "--json").stdout)
    assert as_json["crm"] == {"record_id": setup.ids["1"], "exists": False, "values": None}


def test_unknown_key_exits_1_with_one_line(setup: Setup) -> None:
    """A key neither mapped nor rejected: one line on stderr, exit 1, no CRM call."""
    result = run_syncd(setup.config, "lookup", "404", "--crm")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "syncd: key '404' is unknown in pipeline orders: no CRM record known for this key yet, "
        "and it is not a reject (not sent yet, or not a key of the legacy table?)"
    ]
    assert get_calls(setup) == 0


def test_reject_without_a_record_is_known(setup: Setup) -> None:
    """A reject Zoho never gave a record: no record known, the reject shown, exit 0, no call."""
    result = run_syncd(setup.config, "lookup", "3", "--crm")
    assert result.returncode == 0, result.stderr
    shown = labelled(result.stdout)
    assert shown["CRM record"] == "no CRM record known for this key yet"
    assert "last confirmed" not in shown
    assert (shown["reject"], shown["reject field"], shown["reject message"]) == (
        "INVALID_DATA",
        "Customer_Email",
        "invalid data",
    )
    assert shown["rejected at"] == "2026-01-03T08:00:00+00:00 (1 attempt)"
    assert "CRM: nothing to read, syncd knows no CRM record for this key" in result.stdout
    assert get_calls(setup) == 0


def test_json_output_shape(setup: Setup) -> None:
    """--json: pipeline, module, key, identity, reject, and crm only when asked for."""
    plain = run_syncd(setup.config, "lookup", "--json", "2")
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout) == {
        "pipeline": "orders",
        "module": "Orders",
        "key": "2",
        "identity": {
            "record_id": setup.ids["2"],
            "seen_at": "2026-01-02T03:04:05+00:00",
            "confirmed_at": None,
            "content_hash": None,
        },
        "reject": {
            "code": "INVALID_DATA",
            "field": "Customer_Email",
            "message": "invalid data",
            "attempts": 1,
            "rejected_at": "2026-01-03T08:00:00+00:00",
            "content_hash": "h2",
        },
    }
    crm = json.loads(run_syncd(setup.config, "lookup", "--json", "--crm", "2").stdout)["crm"]
    assert crm["record_id"] == setup.ids["2"] and crm["exists"] is True
    assert crm["values"] == {
        "parent_id": "2",
        "Name": "SO-2",
        "Amount": 10.5,
        "Order_Date": None,
        "Ordered_At": None,
        "Status": None,
        "Customer_Email": None,
        "Quantity": None,
        "Paid": True,
        "Notes": None,
    }
    none = json.loads(run_syncd(setup.config, "lookup", "--json", "--crm", "3").stdout)
    assert (none["identity"], none["crm"]) == (
        None,
        {"record_id": None, "exists": None, "values": None},
    )


def test_rejects_show_names_the_record_when_known(setup: Setup) -> None:
    """`rejects show` adds the CRM record and last confirmation when the map has them."""
    mapped = labelled(run_syncd(setup.config, "rejects", "show", "2").stdout)
    assert (mapped["code"], mapped["CRM record"], mapped["last confirmed"]) == (
        "INVALID_DATA",
        setup.ids["2"],
        "never",
    )
    unmapped = labelled(run_syncd(setup.config, "rejects", "show", "3").stdout)
    assert unmapped["code"] == "INVALID_DATA"
    assert "CRM record" not in unmapped and "last confirmed" not in unmapped
    later = Identity("3", "5725767000009999999", SEEN, CONFIRMED, FINGERPRINT)
    with open_app(setup.config) as app:
        app.store.record_identities("orders", [later])
    confirmed = labelled(run_syncd(setup.config, "rejects", "show", "3").stdout)
    assert confirmed["CRM record"] == "5725767000009999999"
    assert confirmed["last confirmed"] == f"2026-01-02T03:04:06+00:00, fingerprint {FINGERPRINT}"
    assert confirmed["content hash"] == "h3"


def test_a_record_holding_another_key_is_flagged(setup: Setup) -> None:
    """--crm warns when the mapped record's unique field holds another key (a take-over)."""
    with open_app(setup.config) as app:
        app.store.record_identities("orders", [Identity("9", setup.ids["2"], SEEN)])
    result = run_syncd(setup.config, "lookup", "--crm", "9")
    assert result.returncode == 0, result.stderr
    assert labelled(result.stdout)["parent_id (id)"] == '"2"'
    assert result.stdout.rstrip().endswith(
        "warning: the record's parent_id is '2', not '9': it holds another row's data now"
    )
