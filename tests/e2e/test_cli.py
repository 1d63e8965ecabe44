"""The `syncd` command as an operator meets it: exit codes, one-line errors, no secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url

from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.state import migrate
from tests.helpers.e2e import write_config
from tests.helpers.orders import create_orders, order

SYNCD = [sys.executable, "-m", "syncd"]
REPO = Path(__file__).resolve().parents[2]


def syncd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [*SYNCD, *args], capture_output=True, text=True, env=full_env, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorSettings(bulk_rows_per_second=None)) as server:
        yield server


@pytest.fixture
def legacy(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/legacy.db"
    create_orders(url, (order(i) for i in range(1, 21))).dispose()
    return url


def test_broken_config_prints_one_line_naming_the_key_and_exits_2(tmp_path: Path) -> None:
    """A bad value is reported as file: key: expectation, without a traceback."""
    config = write_config(
        tmp_path, "sqlite:///x.db", "http://127.0.0.1:9", pipeline="flush_size = 500"
    )
    result = syncd("check", "-c", str(config))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "syncd: config.toml: pipelines[0].flush_size: must be an integer from 1 to 100, got 500"
    ]
    assert "Traceback" not in result.stderr + result.stdout


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    """No config where the operator pointed is a usage error, not a crash."""
    result = syncd("status", "-c", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert "nope.toml: config file not found" in result.stderr


def test_config_from_environment_variable(tmp_path: Path, legacy: str) -> None:
    """$SYNCD_CONFIG is used when -c is not given."""
    config = write_config(tmp_path, legacy, "http://127.0.0.1:9")
    result = syncd("status", "--json", env={"SYNCD_CONFIG": str(config)})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["pipelines"][0]["pending"] == 20


def test_example_config_is_valid_as_shipped(tmp_path: Path) -> None:
    """config.example.toml loads with only its documented variables set."""
    secret = tmp_path / "zoho_client_secret"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)  # as systemd's LoadCredential= passes it
    env = {
        "LEGACY_DB_PASSWORD": "pw",
        "ZOHO_CLIENT_ID": "id",
        "ZOHO_REFRESH_TOKEN": "rt",
        "CREDENTIALS_DIRECTORY": str(tmp_path),
    }
    from syncd.config import load_settings

    old = dict(os.environ)
    os.environ.update(env)
    try:
        settings = load_settings(REPO / "config.example.toml")
    finally:
        os.environ.clear()
        os.environ.update(old)
    assert settings.pipelines[0].unique_field == "parent_id"
    assert settings.crm.client_secret.reveal() == "s3cret"


def test_db_upgrade_creates_state_tables_in_empty_postgres(
    tmp_path: Path, pg_url: str, legacy: str
) -> None:
    """`syncd db upgrade` against an empty PostgreSQL database creates the state tables."""
    config = write_config(tmp_path, legacy, "http://127.0.0.1:9", state_url=pg_url)
    first = syncd("db", "upgrade", "-c", str(config))
    assert first.returncode == 0, first.stderr
    assert f"upgraded: empty -> {migrate.head_revision()}" in first.stdout
    engine = create_engine(pg_url)
    assert {"syncd_runs", "syncd_bulk_jobs", "syncd_rejects", "syncd_unconfirmed"} <= set(
        inspect(engine).get_table_names()
    )
    engine.dispose()
    again = syncd("db", "upgrade", "-c", str(config))
    assert "up to date" in again.stdout


def test_check_passes_against_the_emulator(
    tmp_path: Path, legacy: str, emulator: EmulatorServer
) -> None:
    """`syncd check` reaches config, state, legacy table and CRM, and exits 0."""
    config = write_config(tmp_path, legacy, emulator.base_url)
    result = syncd("check", "-c", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "20 row(s) pending" in result.stdout
    assert "org 808232144, module Orders: ok" in result.stdout
    assert "CREATE INDEX" in result.stdout  # the missing-index advice, ready to run
    assert result.stdout.rstrip().endswith("all checks passed")


def test_check_reports_a_missing_column_and_exits_1(
    tmp_path: Path, legacy: str, emulator: EmulatorServer
) -> None:
    """A mapped column that is not in the table is named, and check fails."""
    config = write_config(tmp_path, legacy, emulator.base_url)
    text = config.read_text().replace('Notes = "notes"', 'Notes = "note_text"')
    config.write_text(text)
    result = syncd("check", "-c", str(config))
    assert result.returncode == 1
    assert "fields.Notes: column 'note_text' not found" in result.stdout


def test_wrong_client_secret_is_fatal_and_never_printed(
    tmp_path: Path, legacy: str, emulator: EmulatorServer
) -> None:
    """A rejected credential fails check with advice, and the secret appears nowhere."""
    config = write_config(tmp_path, legacy, emulator.base_url)
    secret = "wrong-secret-4711"
    config.write_text(config.read_text().replace('"syncd-emulator-secret"', f'"{secret}"'))
    result = syncd("--debug", "check", "-c", str(config))
    assert result.returncode == 1
    assert "invalid_client" in result.stdout
    assert secret not in result.stdout + result.stderr


def test_world_readable_config_with_inline_secret_warns(
    tmp_path: Path, legacy: str, emulator: EmulatorServer
) -> None:
    """check warns (with the chmod to run) when others can read inline secrets."""
    config = write_config(tmp_path, legacy, emulator.base_url)
    config.chmod(0o644)
    result = syncd("check", "-c", str(config))
    assert "readable by other users: chmod 600" in result.stdout
    config.chmod(0o600)
    assert "readable by other users" not in syncd("check", "-c", str(config)).stdout


def test_unknown_pipeline_is_a_usage_error(tmp_path: Path, legacy: str) -> None:
    """--pipeline with a typo exits 2 and suggests the right name."""
    config = write_config(tmp_path, legacy, "http://127.0.0.1:9")
    result = syncd("initial-sync", "-c", str(config), "--pipeline", "ordres")
    assert result.returncode == 2
    assert 'no pipeline named "ordres" (did you mean "orders"?)' in result.stderr


def test_unreachable_legacy_database_fails_with_one_clear_error(tmp_path: Path) -> None:
    """A legacy DB that does not answer ends the run with exit 1 and a message, no traceback."""
    url = "postgresql+psycopg://syncd:hunter2@127.0.0.1:9/erp"
    config = write_config(tmp_path, url, "http://127.0.0.1:9")
    result = syncd("initial-sync", "-c", str(config))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith("syncd: legacy database: ") and "127.0.0.1" in first
    assert "hunter2" not in result.stderr + result.stdout


def test_version_and_help() -> None:
    """--version prints the version; --help lists the operator's commands."""
    assert syncd("--version").stdout.startswith("syncd, version ")
    help_text = syncd("--help").stdout
    commands = ("check", "initial-sync", "run", "status", "rejects", "lookup", "emulator", "ddl")
    for command in commands:
        assert command in help_text


def test_initial_sync_refuses_while_a_daemon_holds_the_pipeline(
    tmp_path: Path, legacy: str, emulator: EmulatorServer
) -> None:
    """initial-sync takes the pipeline's lease, so it never sends beside a running daemon."""
    config = write_config(tmp_path, legacy, emulator.base_url)
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen([*SYNCD, "-c", str(config), "run"], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while "lease_acquired" not in (tmp_path / "daemon.log").read_text():
            assert time.monotonic() < deadline, "the daemon never took the lease"
            time.sleep(0.2)
        result = syncd("initial-sync", "-c", str(config))
        assert result.returncode == 1
        assert "pipeline orders is being synced by" in result.stderr
    finally:
        daemon.terminate()
        daemon.wait(30)
        log.close()
    assert daemon.returncode == 0


def test_check_names_columns_whose_type_cannot_be_sent(tmp_path: Path, pg_url: str) -> None:
    """Mapped bytea, array and interval columns fail check by name and type; unknown types warn."""
    with psycopg.connect(
        make_url(pg_url).set(drivername="postgresql").render_as_string(False)
    ) as conn:
        conn.execute(
            "CREATE TABLE orders (id bigint PRIMARY KEY, order_number varchar(40),"
            " total numeric(12,2), order_date date, ordered_at timestamp, status interval,"
            " customer_email text[], quantity integer, paid boolean, notes bytea,"
            " location point, sync boolean NOT NULL DEFAULT false)"
        )
        conn.execute("INSERT INTO orders (id, order_number) VALUES (1, 'SO-1')")
    config = write_config(tmp_path, pg_url, "http://127.0.0.1:9")
    config.write_text(
        config.read_text().replace('Notes = "notes"', 'Notes = "notes"\nWhere = "location"')
    )
    result = syncd("check", "--skip-crm", "-c", str(config))
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "fields.Status: column 'status' is INTERVAL: intervals have no CRM field type" in out
    assert "fields.Customer_Email: column 'customer_email' is TEXT[]: arrays have" in out
    assert "fields.Notes: column 'notes' is BYTEA: binary data has no CRM field type" in out
    assert "fields.Where: column 'location' is point: syncd sends the text" in out
    assert "fields.Name" not in out and "Traceback" not in result.stderr
