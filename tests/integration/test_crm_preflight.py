"""CrmClient.preflight against the emulator's org and field metadata (what `syncd check` shows)."""

from __future__ import annotations

from syncd.crm import CrmClient
from syncd.emulator.server import EmulatorServer
from syncd.model import FieldMap, FieldType
from syncd.state.store import StateStore
from tests.integration.crm_fixtures import *  # noqa: F403  (registers the CRM fixtures)
from tests.integration.crm_fixtures import FAST_RETRY, SystemClock, crm_settings

FIELDS = [
    FieldMap("Name", "order_number"),
    FieldMap("Amount", "total"),
    FieldMap("Order_Date", "ordered_on"),
    FieldMap("Quantity", "qty"),
]
TYPES = {
    "order_number": FieldType.TEXT,
    "total": FieldType.DECIMAL,
    "ordered_on": FieldType.DATE,
    "qty": FieldType.INTEGER,
}


def test_fitting_pipeline_passes_and_learns_the_org(
    client: CrmClient, fresh_emulator: EmulatorServer
) -> None:
    """A correct mapping has no problems; the org id is fetched once and reused."""
    report = client.preflight("Orders", "parent_id", FIELDS, TYPES)
    assert report.ok, report.problems
    assert report.org_id == client.org_id() == "808232144"
    calls = fresh_emulator.admin.stats()["calls"]
    assert calls["GET /crm/v8/org"] == 1
    assert calls["GET /crm/v8/settings/fields"] == 1


def test_every_mapping_problem_is_reported(client: CrmClient) -> None:
    """Non-unique key field, unknown field and a text column into an integer are all listed."""
    fields = [*FIELDS, FieldMap("Colour", "colour"), FieldMap("Quantity", "note")]
    types = {**TYPES, "colour": FieldType.TEXT, "note": FieldType.TEXT}
    report = client.preflight("Orders", "Name", fields, types)
    text = "\n".join(report.problems)
    assert not report.ok
    assert "Orders.Name is not unique" in text
    assert "Orders.Colour does not exist" in text
    assert "column 'note' holds text values" in text


def test_unknown_module_is_a_problem_not_a_crash(client: CrmClient) -> None:
    """A module the CRM does not have is reported with Zoho's code."""
    report = client.preflight("Ordres", "parent_id", FIELDS, TYPES)
    assert len(report.problems) == 1
    assert "Ordres" in report.problems[0] and "INVALID_MODULE" in report.problems[0]


def test_configured_org_must_match_the_token(
    fresh_emulator: EmulatorServer, store: StateStore
) -> None:
    """A crm.org_id that is not the token's org is reported."""
    settings = crm_settings(fresh_emulator.base_url, org_id="123")
    with CrmClient(settings, store, store, SystemClock(), retry=FAST_RETRY) as crm:
        report = crm.preflight("Orders", "parent_id", FIELDS, TYPES)
    assert report.problems == (
        "crm.org_id is 123 but the token belongs to org 808232144: fix crm.org_id",
    )
