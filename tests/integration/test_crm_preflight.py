"""CrmClient.preflight against the emulator's org and field metadata (what `syncd check` shows)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from syncd.crm import CrmClient
from syncd.emulator.schema import Schema
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.model import FieldMap, FieldType
from syncd.state.store import StateStore
from tests.helpers.schemas import orders_schema
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


@contextmanager
def client_for(schema: Schema, directory: Path) -> Iterator[CrmClient]:
    """A CrmClient on an emulator of its own whose org has ``schema``, with a state store of
    its own (a cached token names its emulator's API domain)."""
    store = StateStore.open(f"sqlite:///{directory}/state-{uuid.uuid4().hex}.db")
    try:
        with (
            EmulatorServer(EmulatorSettings(schema=schema)) as server,
            CrmClient(
                crm_settings(server.base_url), store, store, SystemClock(), retry=FAST_RETRY
            ) as crm,
        ):
            yield crm
    finally:
        store.close()


def test_other_unique_fields_are_named_with_their_mapping(tmp_path: Path) -> None:
    """Unique fields besides the key field warn, each named as mapped (from which column) or not."""
    schema = orders_schema(
        unique=["Customer_Email"], extra=[{"api_name": "Tracking_No", "unique": True}]
    )
    fields = [*FIELDS, FieldMap("Customer_Email", "email")]
    with client_for(schema, tmp_path) as crm:
        report = crm.preflight("Orders", "parent_id", fields, {**TYPES, "email": FieldType.TEXT})
    assert report.ok, report.problems  # a warning, not a problem
    assert report.warnings == (
        "Orders has unique fields besides parent_id: Customer_Email (mapped from column "
        "'email'), Tracking_No (not mapped)\n"
        "Zoho's upsert would match a row to another record by them; syncd writes by record "
        "id and insert instead, so a row whose value is already on another record is refused "
        "(DUPLICATE_DATA) and listed as a reject naming that record's key.",
    )


def test_an_unmapped_second_unique_field_is_named_too(tmp_path: Path) -> None:
    """A unique field syncd does not write is still named, as not mapped."""
    with client_for(orders_schema(unique=["Customer_Email"]), tmp_path) as crm:
        report = crm.preflight("Orders", "parent_id", FIELDS, TYPES)
    assert len(report.warnings) == 1
    assert report.warnings[0].startswith(
        "Orders has unique fields besides parent_id: Customer_Email (not mapped)\n"
    )


def test_key_field_case_sensitivity_comes_from_the_metadata(tmp_path: Path) -> None:
    """The report says the key field ignores case unless its metadata says case-sensitive."""
    with client_for(orders_schema(key_case_sensitive=False), tmp_path) as crm:
        insensitive = crm.preflight("Orders", "parent_id", FIELDS, TYPES)
    with client_for(orders_schema(key_case_sensitive=True), tmp_path) as crm:
        sensitive = crm.preflight("Orders", "parent_id", FIELDS, TYPES)
    assert insensitive.key_case_insensitive and insensitive.warnings == ()
    assert not sensitive.key_case_insensitive and sensitive.warnings == ()
