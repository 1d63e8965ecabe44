"""`syncd check` warns, before any credit is spent, where one legacy row could meet another's
CRM record: other unique fields in the module, and keys that differ only in case while the
unique field ignores case."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from syncd.emulator.schema import Schema
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from tests.helpers.e2e import FIELD_LINES, run_syncd, write_config
from tests.helpers.native import native
from tests.helpers.schemas import orders_schema

KEY_COLUMN = {
    "sqlite": "id varchar(20) PRIMARY KEY",
    "postgresql": "id varchar(20) PRIMARY KEY",
    # MariaDB's default collation ignores case: no unique index could hold 'AB-1' and 'ab-1'
    "mysql": "id varchar(20) NOT NULL, KEY (id)",
}
UNIQUE_WARNING = (
    "    warning: Orders has unique fields besides parent_id: Customer_Email (mapped from "
    "column 'customer_email'), Tracking_No (not mapped)\n"
    "    Zoho's upsert would match a row to another record by them; syncd writes by record id "
    "and insert instead, so a row whose value is already on another record is refused "
    "(DUPLICATE_DATA) and listed as a reject naming that record's key.\n"
)
CASE_WARNING = (
    "    warning: Orders.parent_id ignores case, and column 'id' holds 1 group(s) of keys that "
    "differ only in case: 'AB-1' / 'ab-1'\n"
    "    Such keys share one CRM record in Zoho; syncd keeps the first one sent and lists the "
    "others as rejects.\n"
)


def legacy_orders(url: str, keys: Sequence[str]) -> None:
    """A legacy ``orders`` table with a text key, made and filled by its own driver."""
    dialect = "postgresql" if url.startswith("postgresql") else url.split(":")[0].split("+")[0]
    with native(url) as db:
        db.execute(
            f"CREATE TABLE orders ({KEY_COLUMN[dialect]}, order_number varchar(40),"
            " customer_email varchar(255), sync boolean NOT NULL DEFAULT false)"
        )
        db.executemany(
            "INSERT INTO orders (id, order_number, customer_email) VALUES (%s, %s, %s)",
            [(k, f"SO-{i}", f"buyer{i}@example.com") for i, k in enumerate(keys)],
        )


def check(tmp_path: Path, url: str, schema: Schema) -> str:
    """``syncd check`` against an emulator whose org has ``schema``; its output (exit 0)."""
    with EmulatorServer(EmulatorSettings(schema=schema)) as server:
        config = write_config(tmp_path, url, server.base_url)
        mapping = 'Name = "order_number"\nCustomer_Email = "customer_email"'
        config.write_text(config.read_text().replace(FIELD_LINES, mapping))
        result = run_syncd(config, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("all checks passed")
    return result.stdout


def test_check_warns_of_other_unique_fields_and_keys_differing_in_case(
    tmp_path: Path, legacy_url: str
) -> None:
    """Both warnings, with the fields, their mapping, the count and the colliding keys; the
    exit code stays 0 (warnings, not failures)."""
    legacy_orders(legacy_url, ["AB-1", "x-9", "ab-1", "cafe", "café"])
    schema = orders_schema(
        unique=["Customer_Email"], extra=[{"api_name": "Tracking_No", "unique": True}]
    )
    out = check(tmp_path, legacy_url, schema)
    assert UNIQUE_WARNING in out
    assert CASE_WARNING in out


def test_examples_stop_at_five_groups(tmp_path: Path, sqlite_url: str) -> None:
    """Seven colliding groups are counted, five are shown."""
    keys = [k for i in range(7) for k in (f"K-{i}a", f"k-{i}A")]
    legacy_orders(sqlite_url, keys)
    out = check(tmp_path, sqlite_url, orders_schema())
    shown = ", ".join(f"'K-{i}a' / 'k-{i}A'" for i in range(5))
    assert (
        f"holds 7 group(s) of keys that differ only in case: {shown} (the first 5 shown)\n" in out
    )


def test_no_case_warning_when_the_unique_field_is_case_sensitive(
    tmp_path: Path, sqlite_url: str
) -> None:
    """A case-sensitive unique field keeps 'AB-1' and 'ab-1' apart: nothing to warn about."""
    legacy_orders(sqlite_url, ["AB-1", "ab-1"])
    out = check(tmp_path, sqlite_url, orders_schema(key_case_sensitive=True))
    assert "differ only in case" not in out
    assert "warning: Orders has unique fields" not in out


def test_no_case_warning_when_no_keys_collide(tmp_path: Path, sqlite_url: str) -> None:
    """Case-insensitive unique field, distinct keys: no warning."""
    legacy_orders(sqlite_url, ["AB-1", "AB-2", "cafe", "café"])
    out = check(tmp_path, sqlite_url, orders_schema())
    assert "differ only in case" not in out
    assert "warning: Orders has unique fields" not in out
