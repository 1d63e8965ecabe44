"""syncd.config: reading, interpolating and validating the TOML file into frozen settings."""

from __future__ import annotations

import copy
import dataclasses
import json
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from syncd.config import (
    CrmSettings,
    Secret,
    Settings,
    find_config_path,
    load_settings,
    parse_duration,
    parse_schedule,
)
from syncd.errors import ConfigError, UsageError
from syncd.model import FieldMap, FieldType, Tunables

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"

# Distinctive credential values: no error text or repr may ever contain them.
CLIENT_ID = "cid-4f1a9e77"
CLIENT_SECRET = "csec-b8d2c0e1"
REFRESH_TOKEN = "rtok-93aa71c5"
DB_PASSWORD = "dbpw-5e0c2f98"
SECRETS = (CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, DB_PASSWORD)

BASE: dict[str, Any] = {
    "source": {"url": f"postgresql+psycopg://syncd:{DB_PASSWORD}@db.internal/erp"},
    "crm": {
        "data_center": "eu",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": REFRESH_TOKEN,
    },
    "pipelines": [
        {
            "name": "orders",
            "table": "orders",
            "key": "id",
            "flag": "sync",
            "module": "Orders",
            "unique_field": "parent_id",
            "mode": "realtime",
            "fields": {
                "Name": "order_number",
                "Order_Date": {"column": "ordered_at", "type": "date"},
            },
        }
    ],
}


# Expected wordings that several cases share, spelled out (not imported) so a change shows here.
DURATION = 'must be a duration like "5s", "10m", "12h", "1d" or "1h30m"'
COLUMN = "must be a plain column name (letters, digits, _ and $; no leading digit)"
API_NAME = "must be a CRM API name (letters, digits and _, starting with a letter)"
TABLE = (
    'must be a table name, optionally schema-qualified like "erp.orders" (letters, digits, _ and $)'
)
ORG_ID = "must be the org id (digits, as a string or an integer)"
FIELD_TYPES = "must be one of text, integer, decimal, boolean, date, datetime, multiselect"
FIELD_SPEC = 'must be a column name or a table like { column = "ordered_at", type = "date" }'
LEVELS = "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
P0 = "pipelines[0]"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the caller's environment (and home directory) out of every test."""
    for name in ("SYNCD_CONFIG", "STATE_DIRECTORY", "CREDENTIALS_DIRECTORY", "ZOHO_CLIENT_ID"):
        monkeypatch.delenv(name, raising=False)
    for name in ("ZOHO_REFRESH_TOKEN", "LEGACY_DB_PASSWORD", "SYNCD_TEST_VAR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    items = (f"{json.dumps(key)} = {_toml_value(item)}" for key, item in value.items())
    return "{ " + ", ".join(items) + " }"


def dumps(config: dict[str, Any]) -> str:
    """Just enough TOML writing for these tests: scalars first, then tables, [[pipelines]]."""
    arrays = {"pipelines"} if isinstance(config.get("pipelines"), list) else set()
    tables = {k for k, v in config.items() if isinstance(v, dict)}
    lines = [
        f"{json.dumps(k)} = {_toml_value(v)}" for k, v in config.items() if k not in tables | arrays
    ]
    for name in tables:
        lines.append(f"[{json.dumps(name)}]")
        lines += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in config[name].items()]
    for name in arrays:
        for table in config[name]:
            lines.append(f"[[{name}]]")
            lines += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def base() -> dict[str, Any]:
    return copy.deepcopy(BASE)


def write(directory: Path, config: dict[str, Any] | str, name: str = "config.toml") -> Path:
    path = directory / name
    path.write_text(config if isinstance(config, str) else dumps(config), encoding="utf-8")
    return path


def load(tmp_path: Path, config: dict[str, Any] | str) -> Settings:
    return load_settings(write(tmp_path, config))


def problems(tmp_path: Path, config: dict[str, Any] | str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, config)
    return caught.value.problems


# --- loading and defaults ------------------------------------------------------------------


def test_example_config_loads_as_shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """config.example.toml is valid once its variables and credential file exist."""
    (tmp_path / "zoho_client_secret").write_text(CLIENT_SECRET + "\n", encoding="utf-8")
    (tmp_path / "zoho_client_secret").chmod(0o600)  # as systemd's LoadCredential= passes it
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.setenv("ZOHO_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("ZOHO_REFRESH_TOKEN", REFRESH_TOKEN)
    monkeypatch.setenv("LEGACY_DB_PASSWORD", DB_PASSWORD)

    settings = load_settings(EXAMPLE)

    assert settings.source.url.reveal() == (
        f"postgresql+psycopg://syncd:{DB_PASSWORD}@db.internal/erp"
    )
    assert settings.source.timezone == ZoneInfo("Europe/Berlin")
    assert settings.crm.client_secret.reveal() == CLIENT_SECRET
    assert settings.crm.api_domain == "https://www.zohoapis.com"
    orders = settings.pipeline("orders")
    assert (orders.key, orders.flag, orders.unique_field, orders.mode) == (
        "id",
        "sync",
        "parent_id",
        "realtime",
    )
    assert orders.fields == (
        FieldMap("Name", "order_number"),
        FieldMap("Amount", "total"),
        FieldMap("Order_Date", "ordered_at", FieldType.DATE),
        FieldMap("Status", "status"),
    )


def test_left_out_keys_get_the_documented_defaults(tmp_path: Path) -> None:
    """Every optional key falls back to the default that the contract and example document."""
    settings = load(tmp_path, base())

    crm = settings.crm
    # max_concurrency and org_daily_credits: None, so the org's edition decides (else 5)
    assert (crm.org_id, crm.daily_credit_budget, crm.max_concurrency) == (None, 40000, None)
    assert crm.org_daily_credits is None
    assert crm.request_timeout == timedelta(seconds=60)
    assert crm.bulk_poll_interval == timedelta(seconds=5)
    assert crm.bulk_job_timeout == timedelta(hours=2)
    assert (crm.trigger, crm.bulk_jobs_in_flight) == ((), 2)
    pipeline = settings.pipelines[0]
    assert (pipeline.flush_size, pipeline.batch_size) == (100, 25000)
    assert (pipeline.max_delay, pipeline.poll_interval) == (timedelta(minutes=10), timedelta(0, 5))
    assert (pipeline.schedule, pipeline.version_column) == (None, None)
    assert settings.source.timezone == ZoneInfo("UTC")
    assert (settings.metrics.enabled, settings.metrics.host, settings.metrics.port) == (
        False,
        "127.0.0.1",
        9464,
    )
    assert (settings.log.level, settings.log.format) == ("INFO", "auto")


def test_every_key_is_read(tmp_path: Path) -> None:
    """Values given for optional keys reach the settings objects, normalised."""
    config = base()
    config["source"]["timezone"] = "America/New_York"
    config["state"] = {"url": "postgresql+psycopg://syncd@state.internal/syncd"}
    config["crm"].update(
        org_id=808232144,
        daily_credit_budget=1000,
        max_concurrency=25,
        request_timeout="90s",
        bulk_poll_interval="1m",
        bulk_job_timeout="1d",
        trigger=["workflow", "blueprint", "workflow"],
        bulk_jobs_in_flight=5,
    )
    config["pipelines"][0].update(
        table="erp.orders",
        flush_size=1,
        max_delay="1h30m",
        poll_interval="2s",
        version_column="row_version",
        batch_size=500,
    )
    config["metrics"] = {"enabled": True, "host": "0.0.0.0", "port": 9100}
    config["log"] = {"level": "debug", "format": "json"}

    settings = load(tmp_path, config)

    assert settings.state.url == "postgresql+psycopg://syncd@state.internal/syncd"
    assert settings.crm.org_id == "808232144"
    assert settings.crm.trigger == ("workflow", "blueprint")
    assert (settings.crm.request_timeout, settings.crm.bulk_job_timeout) == (
        timedelta(seconds=90),
        timedelta(days=1),
    )
    pipeline = settings.pipelines[0]
    assert (pipeline.schema_name, pipeline.table_name) == ("erp", "orders")
    assert pipeline.max_delay == timedelta(hours=1, minutes=30)
    assert (pipeline.flush_size, pipeline.batch_size, pipeline.version_column) == (
        1,
        500,
        "row_version",
    )
    assert (settings.metrics.enabled, settings.metrics.port) == (True, 9100)
    assert (settings.log.level, settings.log.format) == ("DEBUG", "json")
    assert settings.tunables[pipeline.name] == Tunables(
        batch_size=500,
        flush_size=1,
        max_delay=timedelta(hours=1, minutes=30),
        poll_interval=timedelta(seconds=2),
        jobs_in_flight=5,
        bulk_poll_interval=timedelta(minutes=1),
        bulk_job_timeout=timedelta(days=1),
        daily_credit_budget=1000,
        credit_reserve=0,
    )


def test_the_engine_tunables_hold_no_default_of_their_own() -> None:
    """Every tunable is taken from the settings: a default written in ``Tunables`` could
    differ from the documented one the config gives."""
    missing = dataclasses.MISSING
    assert all(
        f.default is missing and f.default_factory is missing for f in dataclasses.fields(Tunables)
    )


def test_unqualified_table_has_no_schema(tmp_path: Path) -> None:
    """A plain table name splits into no schema and the name itself."""
    pipeline = load(tmp_path, base()).pipelines[0]
    assert (pipeline.schema_name, pipeline.table_name) == (None, "orders")


def test_state_url_defaults_under_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without [state], the store is SQLite in systemd's (first) $STATE_DIRECTORY."""
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/syncd:/var/lib/other")
    assert load(tmp_path, base()).state.url == "sqlite:////var/lib/syncd/state.db"


def test_state_url_defaults_under_home_without_state_directory(tmp_path: Path) -> None:
    """Outside systemd the SQLite store goes to ~/.local/state/syncd, which is not created."""
    settings = load(tmp_path, base())
    assert settings.state.url == f"sqlite:///{tmp_path}/home/.local/state/syncd/state.db"
    assert not (tmp_path / "home").exists()


def test_settings_are_frozen(tmp_path: Path) -> None:
    """Settings cannot be changed after loading."""
    settings = load(tmp_path, base())
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.pipelines[0].flush_size = 5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.crm.max_concurrency = 1  # type: ignore[misc]


def test_pipeline_lookup_names_the_unknown_pipeline(tmp_path: Path) -> None:
    """Settings.pipeline finds a pipeline by name and suggests the closest for a typo."""
    settings = load(tmp_path, base())
    assert settings.pipeline("orders") is settings.pipelines[0]
    with pytest.raises(
        UsageError, match='no pipeline named "order" \\(did you mean "orders"\\?\\)'
    ):
        settings.pipeline("order")


# --- data-center presets ---------------------------------------------------------------------

ZOHO_HOSTS = {  # zoho-crm-api.md §1, copied rather than imported so a wrong preset fails
    "us": ("accounts.zoho.com", "www.zohoapis.com", "content.zohoapis.com"),
    "eu": ("accounts.zoho.eu", "www.zohoapis.eu", "content.zohoapis.eu"),
    "in": ("accounts.zoho.in", "www.zohoapis.in", "content.zohoapis.in"),
    "au": ("accounts.zoho.com.au", "www.zohoapis.com.au", "content.zohoapis.com.au"),
    "jp": ("accounts.zoho.jp", "www.zohoapis.jp", "content.zohoapis.jp"),
    "cn": ("accounts.zoho.com.cn", "www.zohoapis.com.cn", "content.zohoapis.com.cn"),
    "ca": ("accounts.zohocloud.ca", "www.zohoapis.ca", "upload.zohocloud.ca"),
    "sa": ("accounts.zoho.sa", "www.zohoapis.sa", "files.zoho.sa"),
}


@pytest.mark.parametrize("data_center", sorted(ZOHO_HOSTS))
def test_data_center_presets(tmp_path: Path, data_center: str) -> None:
    """Each data center sets the accounts, API and upload hosts from Zoho's table."""
    config = base()
    config["crm"]["data_center"] = data_center.upper()
    crm = load(tmp_path, config).crm
    accounts, api, upload = ZOHO_HOSTS[data_center]
    assert crm.data_center == data_center
    assert crm.accounts_url == f"https://{accounts}"
    assert crm.api_domain == f"https://{api}"
    assert crm.upload_url == f"https://{upload}/crm/v8/upload"


def test_explicit_host_overrides_only_itself(tmp_path: Path) -> None:
    """An explicit api_domain wins over the preset; the other hosts stay the preset's."""
    config = base()
    config["crm"]["api_domain"] = "https://sandbox.zohoapis.eu/"
    crm = load(tmp_path, config).crm
    assert crm.api_domain == "https://sandbox.zohoapis.eu"
    assert crm.accounts_url == "https://accounts.zoho.eu"
    assert crm.upload_url == "https://content.zohoapis.eu/crm/v8/upload"


def test_all_hosts_explicit_need_no_data_center(tmp_path: Path) -> None:
    """With all three hosts set (e.g. the emulator), data_center may be left out."""
    config = base()
    del config["crm"]["data_center"]
    config["crm"].update(
        accounts_url="http://127.0.0.1:8080",
        api_domain="http://127.0.0.1:8080",
        upload_url="http://127.0.0.1:8080/crm/v8/upload",
    )
    crm = load(tmp_path, config).crm
    assert crm.data_center == "custom"
    assert (crm.accounts_url, crm.upload_url) == (
        "http://127.0.0.1:8080",
        "http://127.0.0.1:8080/crm/v8/upload",
    )


def test_data_center_is_required_without_all_hosts(tmp_path: Path) -> None:
    """Leaving out data_center with a host missing is an error listing the data centers."""
    config = base()
    del config["crm"]["data_center"]
    config["crm"]["api_domain"] = "https://www.zohoapis.eu"
    assert problems(tmp_path, config) == [
        "config.toml: crm.data_center: is required unless accounts_url, api_domain and "
        "upload_url are all set: one of us, eu, in, au, jp, cn, ca, sa"
    ]


def test_unknown_data_center_lists_the_valid_ones(tmp_path: Path) -> None:
    """An unknown data center names the valid ones."""
    config = base()
    config["crm"]["data_center"] = "uk"
    assert problems(tmp_path, config) == [
        'config.toml: crm.data_center: must be one of us, eu, in, au, jp, cn, ca, sa, got "uk"'
    ]


# --- ${VAR} interpolation --------------------------------------------------------------------


def test_environment_variables_are_interpolated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """${VAR} is replaced in strings at any depth, several times in one value."""
    monkeypatch.setenv("LEGACY_DB_PASSWORD", DB_PASSWORD)
    monkeypatch.setenv("SYNCD_TEST_VAR", "ordered_at")
    config = base()
    config["source"]["url"] = (
        "postgresql+psycopg://syncd:${LEGACY_DB_PASSWORD}@db/${SYNCD_TEST_VAR}"
    )
    config["pipelines"][0]["fields"]["Order_Date"]["column"] = "${SYNCD_TEST_VAR}"
    settings = load(tmp_path, config)
    assert settings.source.url.reveal() == f"postgresql+psycopg://syncd:{DB_PASSWORD}@db/ordered_at"
    assert settings.pipelines[0].fields[1] == FieldMap("Order_Date", "ordered_at", FieldType.DATE)


def test_interpolation_reaches_array_items(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """${VAR} works inside arrays too."""
    monkeypatch.setenv("SYNCD_TEST_VAR", "workflow")
    config = base()
    config["crm"]["trigger"] = ["${SYNCD_TEST_VAR}"]
    assert load(tmp_path, config).crm.trigger == ("workflow",)


def test_double_dollar_escapes_a_literal_reference(tmp_path: Path) -> None:
    """$${ stays a literal "${" and is not looked up."""
    config = base()
    config["source"]["url"] = "postgresql+psycopg://syncd:pa$${x}@db/erp"
    assert load(tmp_path, config).source.url.reveal() == "postgresql+psycopg://syncd:pa${x}@db/erp"


def test_missing_variable_names_key_and_variable(tmp_path: Path) -> None:
    """An unset variable is an error naming the key and the variable (and nothing else there)."""
    config = base()
    config["crm"]["client_id"] = "${ZOHO_CLIENT_ID}"
    config["pipelines"][0]["schedule"] = "every ${SYNCD_TEST_VAR}"
    assert problems(tmp_path, config) == [
        "config.toml: crm.client_id: uses ${ZOHO_CLIENT_ID}, but the environment variable "
        "ZOHO_CLIENT_ID is not set",
        "config.toml: pipelines[0].schedule: uses ${SYNCD_TEST_VAR}, but the environment "
        "variable SYNCD_TEST_VAR is not set",
    ]


@pytest.mark.parametrize("value", ["abc${", "${1BAD}", "${}", "${A B}"])
def test_malformed_reference_is_an_error(tmp_path: Path, value: str) -> None:
    """A "${" that is neither ${NAME} nor $${ is reported rather than kept."""
    config = base()
    config["pipelines"][0]["module"] = value
    assert problems(tmp_path, config) == [
        'config.toml: pipelines[0].module: has a malformed "${": write ${NAME} for a variable, '
        '$${ for "${"'
    ]


# --- secrets ---------------------------------------------------------------------------------


def test_secret_files_are_read_and_stripped(tmp_path: Path) -> None:
    """<key>_file reads the secret from a file (relative to the config), trailing newline off."""
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds/secret").write_text(CLIENT_SECRET + "\r\n", encoding="utf-8")
    (tmp_path / "creds/token").write_text(REFRESH_TOKEN + "\n", encoding="utf-8")
    (tmp_path / "db_url").write_text(f"sqlite:///{DB_PASSWORD}.db\n", encoding="utf-8")
    for name in ("creds/secret", "creds/token", "db_url"):
        (tmp_path / name).chmod(0o600)  # other users may not read a secret file
    config = base()
    del config["crm"]["client_secret"], config["crm"]["refresh_token"], config["source"]["url"]
    config["crm"]["client_secret_file"] = "creds/secret"
    config["crm"]["refresh_token_file"] = str(tmp_path / "creds/token")
    config["source"]["url_file"] = "db_url"
    settings = load(tmp_path, config)
    assert settings.crm.client_secret.reveal() == CLIENT_SECRET
    assert settings.crm.refresh_token.reveal() == REFRESH_TOKEN
    assert settings.source.url.reveal() == f"sqlite:///{DB_PASSWORD}.db"


def test_secret_file_path_may_use_a_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A *_file path is interpolated first, so ${CREDENTIALS_DIRECTORY} works."""
    (tmp_path / "client_id").write_text(CLIENT_ID, encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    config = base()
    del config["crm"]["client_id"]
    config["crm"]["client_id_file"] = "${CREDENTIALS_DIRECTORY}/client_id"
    assert load(tmp_path, config).crm.client_id.reveal() == CLIENT_ID


def test_secret_given_twice_is_an_error(tmp_path: Path) -> None:
    """Setting both client_secret and client_secret_file is an error."""
    (tmp_path / "secret").write_text("other", encoding="utf-8")
    config = base()
    config["crm"]["client_secret_file"] = "secret"
    assert problems(tmp_path, config) == [
        "config.toml: crm.client_secret: set either client_secret or client_secret_file, not both"
    ]


def test_unreadable_secret_file_names_key_and_path(tmp_path: Path) -> None:
    """A missing secret file is one problem naming the key and the path (not also "required")."""
    config = base()
    del config["crm"]["client_secret"]
    config["crm"]["client_secret_file"] = "nowhere/secret"
    assert problems(tmp_path, config) == [
        f'config.toml: crm.client_secret_file: cannot read "{tmp_path}/nowhere/secret": '
        "No such file or directory"
    ]


def test_empty_secret_file_is_an_error(tmp_path: Path) -> None:
    """A secret file holding nothing but a newline is reported."""
    (tmp_path / "token").write_text("\n", encoding="utf-8")
    config = base()
    del config["crm"]["refresh_token"]
    config["crm"]["refresh_token_file"] = "token"
    assert problems(tmp_path, config) == [
        f'config.toml: crm.refresh_token_file: "{tmp_path}/token" is empty'
    ]


def test_secret_file_path_must_be_a_string(tmp_path: Path) -> None:
    """A *_file that is not a path string is reported with its value."""
    config = base()
    del config["source"]["url"]
    config["source"]["url_file"] = 42
    assert problems(tmp_path, config) == [
        "config.toml: source.url_file: must be the path of a file holding the secret, got 42"
    ]


def test_missing_secret_mentions_the_file_alternative(tmp_path: Path) -> None:
    """A missing credential says it may also come from <key>_file."""
    config = base()
    del config["crm"]["refresh_token"]
    assert problems(tmp_path, config) == [
        "config.toml: crm.refresh_token: is required (or refresh_token_file naming a file "
        "that holds it)"
    ]


def test_secrets_appear_in_no_repr(tmp_path: Path) -> None:
    """repr/str of the settings and of Secret never show a credential."""
    settings = load(tmp_path, base())
    texts = [repr(settings), str(settings), str(settings.crm), f"{settings.crm.client_id}"]
    assert repr(settings.crm.client_secret) == "Secret('********')"
    assert not [secret for secret in SECRETS for text in texts if secret in text]


def test_state_url_password_is_masked_in_repr(tmp_path: Path) -> None:
    """A password in state.url (PostgreSQL store) does not show in the settings repr."""
    config = base()
    config["state"] = {"url": f"postgresql+psycopg://syncd:{DB_PASSWORD}@state/syncd"}
    settings = load(tmp_path, config)
    assert DB_PASSWORD in settings.state.url
    assert DB_PASSWORD not in repr(settings)
    assert settings.state.display_url == "postgresql+psycopg://syncd:***@state/syncd"


def test_secrets_appear_in_no_error(tmp_path: Path) -> None:
    """Invalid credential values are never quoted back, and no pydantic error rides along."""
    config = base()
    config["crm"]["client_id"] = 4242424242
    config["crm"]["client_secret"] = ""
    config["source"]["url"] = f"not a url {DB_PASSWORD}"
    config["state"] = {"url": f"://{REFRESH_TOKEN}"}
    config["pipelines"][0]["flush_size"] = 0  # a non-secret error still quotes its value
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, config)
    text = str(caught.value)
    assert caught.value.problems == [
        "config.toml: crm.client_id: must be a non-empty string",
        "config.toml: crm.client_secret: must be a non-empty string",
        "config.toml: pipelines[0].flush_size: must be an integer from 1 to 100, got 0",
        'config.toml: source.url: must be an SQLAlchemy database URL like "postgresql+psycopg:'
        '//user:${PASSWORD}@host/db"',
        'config.toml: state.url: must be an SQLAlchemy database URL like "postgresql+psycopg:'
        '//user:${PASSWORD}@host/db"',
    ]
    assert not [secret for secret in (*SECRETS, "4242424242") if secret in text]
    assert caught.value.__context__ is None
    assert caught.value.__cause__ is None


def test_display_url_hides_password_and_query(tmp_path: Path) -> None:
    """source.display_url masks the password and drops the query string."""
    config = base()
    config["source"]["url"] = f"postgresql+psycopg://syncd:{DB_PASSWORD}@db/erp?password=x"
    settings = load(tmp_path, config)
    assert settings.source.display_url == "postgresql+psycopg://syncd:***@db/erp"


def test_secret_compares_by_value_but_never_shows_it() -> None:
    """Secret keeps its value for reveal() and equality while repr/str stay masked."""
    secret = Secret(CLIENT_SECRET)
    assert secret.reveal() == CLIENT_SECRET
    assert secret == Secret(CLIENT_SECRET)
    assert secret != Secret("other")
    assert str(secret) == repr(secret) == "Secret('********')"


# --- durations and schedules -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5s", timedelta(seconds=5)),
        ("10m", timedelta(minutes=10)),
        ("12h", timedelta(hours=12)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        (" 90s ", timedelta(seconds=90)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    """Durations in s/m/h/d and their combinations parse to timedeltas."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("5 minutes", f'{DURATION}, got "5 minutes"'),
        ("30m1h", f'{DURATION}, got "30m1h"'),
        ("", f'{DURATION}, got ""'),
        ("0s", 'must be a duration longer than zero, got "0s"'),
        (300, f"{DURATION} (a quoted string), got 300"),
        ("9999999999d", f'{DURATION} (this one is far too long), got "9999999999d"'),
    ],
)
def test_invalid_durations(tmp_path: Path, value: object, message: str) -> None:
    """A bad duration names the key, the expected form and the value."""
    config = base()
    config["pipelines"][0]["max_delay"] = value
    assert problems(tmp_path, config) == [f"config.toml: pipelines[0].max_delay: {message}"]


@pytest.mark.parametrize(
    ("text", "every", "cron"),
    [
        ("every 12h", timedelta(hours=12), None),
        ("Every  1h30m", timedelta(hours=1, minutes=30), None),
        ("0 2 * * *", None, "0 2 * * *"),
        ("*/15  8-18 * * mon-fri", None, "*/15 8-18 * * mon-fri"),
    ],
)
def test_schedules(text: str, every: timedelta | None, cron: str | None) -> None:
    """A schedule is "every <duration>" or a 5-field cron expression (whitespace normalised)."""
    schedule = parse_schedule(text)
    assert (schedule.every, schedule.cron) == (every, cron)
    assert schedule.expression == " ".join(text.split())


def test_interval_pipeline_reads_its_schedule(tmp_path: Path) -> None:
    """An interval pipeline gets its schedule as a Schedule object."""
    config = base()
    pipeline = config["pipelines"][0]
    pipeline.update(mode="interval", schedule="0 2 * * *")
    schedule = load(tmp_path, config).pipelines[0].schedule
    assert schedule is not None
    assert (schedule.expression, schedule.every, schedule.cron) == ("0 2 * * *", None, "0 2 * * *")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "* * * *",
            'must be "every <duration>" (e.g. "every 12h") or a 5-field cron expression (e.g. '
            '"0 2 * * *"), got "* * * *" (as cron: Wrong number of fields; got 4, expected 5)',
        ),
        (
            "61 * * * *",
            'must be "every <duration>" (e.g. "every 12h") or a 5-field cron expression (e.g. '
            '"0 2 * * *"), got "61 * * * *" (as cron: Error validating expression \'61\': the last '
            "value (61) is higher than the maximum value (59))",
        ),
        (
            "every soon",
            'must be "every <duration>" with a duration like "5s", "10m", "12h", "1d" or '
            '"1h30m", got "every soon"',
        ),
        (
            12,
            'must be "every <duration>" (e.g. "every 12h") or a 5-field cron expression (e.g. '
            '"0 2 * * *"), got 12',
        ),
    ],
)
def test_invalid_schedules(tmp_path: Path, value: object, message: str) -> None:
    """A bad schedule names the key, both accepted forms, the value and cron's reason."""
    config = base()
    config["pipelines"][0].update(mode="interval", schedule=value)
    assert problems(tmp_path, config) == [f"config.toml: pipelines[0].schedule: {message}"]


def test_interval_mode_needs_a_schedule(tmp_path: Path) -> None:
    """An interval pipeline without a schedule is an error at pipelines[i].schedule."""
    config = base()
    config["pipelines"][0]["mode"] = "interval"
    assert problems(tmp_path, config) == [
        'config.toml: pipelines[0].schedule: is required in interval mode: "every <duration>" '
        "or a cron expression"
    ]


def test_realtime_mode_refuses_a_schedule(tmp_path: Path) -> None:
    """A schedule on a realtime pipeline is an error rather than silently ignored."""
    config = base()
    config["pipelines"][0]["schedule"] = "every 1h"
    assert problems(tmp_path, config) == [
        "config.toml: pipelines[0].schedule: is only used in interval mode (this pipeline has "
        'mode = "realtime")'
    ]


def test_mode_defaults_to_realtime(tmp_path: Path) -> None:
    """A pipeline without mode is a realtime pipeline with the realtime defaults."""
    config = base()
    del config["pipelines"][0]["mode"]
    pipeline = load(tmp_path, config).pipelines[0]
    assert (pipeline.mode, pipeline.schedule, pipeline.flush_size) == ("realtime", None, 100)


def test_schedule_without_mode_asks_for_interval_mode(tmp_path: Path) -> None:
    """A schedule on a pipeline that left mode out says how to make it an interval pipeline."""
    config = base()
    del config["pipelines"][0]["mode"]
    config["pipelines"][0]["schedule"] = "every 1h"
    assert problems(tmp_path, config) == [
        'config.toml: pipelines[0].schedule: is only used in interval mode: set mode = "interval" '
        "(the default is realtime)"
    ]


def test_interval_mode_refuses_realtime_keys(tmp_path: Path) -> None:
    """flush_size, max_delay and poll_interval on an interval pipeline are errors."""
    config = base()
    config["pipelines"][0].update(
        mode="interval", schedule="every 1h", flush_size=10, max_delay="1m", poll_interval="1s"
    )
    message = 'is only used in realtime mode (this pipeline has mode = "interval")'
    assert problems(tmp_path, config) == [
        f"config.toml: pipelines[0].{key}: {message}"
        for key in ("flush_size", "max_delay", "poll_interval")
    ]


# --- find_config_path ------------------------------------------------------------------------


def test_cli_path_wins_over_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """-c/--config is used even when $SYNCD_CONFIG is set."""
    cli, env = write(tmp_path, "", "cli.toml"), write(tmp_path, "", "env.toml")
    monkeypatch.setenv("SYNCD_CONFIG", str(env))
    assert find_config_path(str(cli), default=tmp_path / "default.toml") == cli


def test_environment_wins_over_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$SYNCD_CONFIG is used when no -c/--config is given."""
    env, default = write(tmp_path, "", "env.toml"), write(tmp_path, "", "default.toml")
    monkeypatch.setenv("SYNCD_CONFIG", str(env))
    assert find_config_path(None, default=default) == env


def test_default_path_is_the_last_resort(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without -c or $SYNCD_CONFIG (or with it empty) the default path is used."""
    default = write(tmp_path, "", "default.toml")
    assert find_config_path(None, default=default) == default
    monkeypatch.setenv("SYNCD_CONFIG", "")
    assert find_config_path("", default=default) == default


def test_the_default_default_is_etc() -> None:
    """The default location is /etc/syncd/config.toml (only named, never read here)."""
    from syncd.config import DEFAULT_CONFIG_PATH

    assert Path("/etc/syncd/config.toml") == DEFAULT_CONFIG_PATH


@pytest.mark.parametrize(
    ("how", "origin"),
    [
        ("cli", "given with -c/--config"),
        ("env", "from $SYNCD_CONFIG"),
        ("default", "the default location; pass -c/--config or set $SYNCD_CONFIG"),
    ],
)
def test_missing_config_file_says_how_it_was_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, origin: str
) -> None:
    """A missing file is a ConfigError naming the path and where that path came from."""
    missing = tmp_path / "missing.toml"
    if how == "env":
        monkeypatch.setenv("SYNCD_CONFIG", str(missing))
    with pytest.raises(ConfigError) as caught:
        find_config_path(str(missing) if how == "cli" else None, default=missing)
    assert caught.value.problems == [f"{missing}: config file not found ({origin})"]


def test_load_settings_of_a_missing_file(tmp_path: Path) -> None:
    """load_settings on a path that does not exist names the path and the reason."""
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "gone.toml")
    assert caught.value.problems == [
        f"{tmp_path}/gone.toml: cannot read the config file: No such file or directory"
    ]


# --- validation messages ---------------------------------------------------------------------


def test_toml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    """A TOML syntax error is one problem with its line and column."""
    assert problems(tmp_path, '[source]\nurl = "x"\ntimezone = \n') == [
        "config.toml: line 3, column 12: invalid TOML: Invalid value"
    ]


def test_config_that_is_not_utf8(tmp_path: Path) -> None:
    """A file that is not UTF-8 text is reported, not a traceback."""
    path = tmp_path / "config.toml"
    path.write_bytes(b'[source]\nurl = "\xff"\n')
    with pytest.raises(ConfigError, match="the config file is not UTF-8 text"):
        load_settings(path)


def _set(config: dict[str, Any], dotted: str, value: object) -> None:
    *parents, last = dotted.split(".")
    node: Any = config
    for part in parents:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value


_DELETE = object()


# (key set in the base config, value, the one expected problem after "config.toml: ")
INVALID_VALUES = [
    ("pipelines.0.flush_size", 500, f"{P0}.flush_size: must be an integer from 1 to 100, got 500"),
    (
        "pipelines.0.flush_size",
        True,
        f"{P0}.flush_size: must be an integer from 1 to 100, got true",
    ),
    ("pipelines.0.batch_size", 0, f"{P0}.batch_size: must be an integer from 1 to 25000, got 0"),
    (
        "pipelines.0.batch_size",
        2.5,
        f"{P0}.batch_size: must be an integer from 1 to 25000, got 2.5",
    ),
    ("crm.max_concurrency", 26, "crm.max_concurrency: must be an integer from 1 to 25, got 26"),
    (
        "crm.bulk_jobs_in_flight",
        6,
        "crm.bulk_jobs_in_flight: must be an integer from 1 to 5, got 6",
    ),
    (
        "crm.daily_credit_budget",
        0,
        "crm.daily_credit_budget: must be an integer of at least 1, got 0",
    ),
    ("crm.request_timeout", "1 min", f'crm.request_timeout: {DURATION}, got "1 min"'),
    (
        "crm.trigger",
        ["workflow", "magic"],
        'crm.trigger[1]: must be one of workflow, approval, blueprint, got "magic"',
    ),
    ("crm.trigger", "workflow", 'crm.trigger: must be an array, got "workflow"'),
    ("crm.org_id", True, f"crm.org_id: {ORG_ID}, got true"),
    ("crm.org_id", "org-1", f'crm.org_id: {ORG_ID}, got "org-1"'),
    (
        "crm.accounts_url",
        "ftp://accounts",
        'crm.accounts_url: must be an http(s) URL like "https://accounts.zoho.eu", got "ftp://accounts"',
    ),
    ("pipelines.0.mode", "batch", f'{P0}.mode: must be one of realtime, interval, got "batch"'),
    (
        "pipelines.0.name",
        "orders!",
        f'{P0}.name: must be a name made of letters, digits, _ and -, got "orders!"',
    ),
    ("pipelines.0.table", "erp.orders.x", f'{P0}.table: {TABLE}, got "erp.orders.x"'),
    ("pipelines.0.table", 'orders"; drop', f'{P0}.table: {TABLE}, got "orders\\"; drop"'),
    ("pipelines.0.key", "order id", f'{P0}.key: {COLUMN}, got "order id"'),
    ("pipelines.0.flag", "1sync", f'{P0}.flag: {COLUMN}, got "1sync"'),
    ("pipelines.0.flag", "id", f"{P0}.flag: must be a different column from key"),
    (
        "pipelines.0.version_column",
        "row-version",
        f'{P0}.version_column: {COLUMN}, got "row-version"',
    ),
    ("pipelines.0.module", "Sales Orders", f'{P0}.module: {API_NAME}, got "Sales Orders"'),
    ("pipelines.0.unique_field", "", f'{P0}.unique_field: {API_NAME}, got ""'),
    ("pipelines.0.fields", {}, f"{P0}.fields: must not be empty"),
    ("pipelines.0.fields", "order_number", f'{P0}.fields: must be a table, got "order_number"'),
    ("pipelines.0.fields.Amount", 5, f"{P0}.fields.Amount: {FIELD_SPEC}, got 5"),
    (
        "pipelines.0.fields.Amount",
        "total sum",
        f'{P0}.fields.Amount.column: {COLUMN}, got "total sum"',
    ),
    (
        "pipelines.0.fields.Amount",
        {"column": "total", "type": "money"},
        f'{P0}.fields.Amount.type: {FIELD_TYPES}, got "money"',
    ),
    ("pipelines.0.fields.Amount", {"type": "decimal"}, f"{P0}.fields.Amount.column: is required"),
    (
        "pipelines.0.fields.Grand Total",
        "total",
        f'{P0}.fields."Grand Total": {API_NAME}, got "Grand Total"',
    ),
    (
        "pipelines.0.fields.Parent_Id",
        "id",
        f"{P0}.fields.Parent_Id: is the unique_field: syncd writes the legacy key there itself, "
        "so it must not be mapped to a column",
    ),
    (
        "pipelines.0.fields.Synced",
        "sync",
        f'{P0}.fields.Synced: maps the flag column "sync", which syncd sets itself after a '
        "confirmed write; map another column",
    ),
    (
        "pipelines.0.fields",
        {f"F{i}": "c" for i in range(200)},
        f"{P0}.fields: must have at most 199 entries",
    ),
    (
        "source.timezone",
        "Mars/Olympus",
        'source.timezone: must be an IANA time zone name like "Europe/Berlin" or "UTC", '
        'got "Mars/Olympus"',
    ),
    ("source", "sqlite:///x.db", 'source: must be a table, got "sqlite:///x.db"'),
    ("source", _DELETE, "source: is required"),
    ("pipelines.0.key", _DELETE, f"{P0}.key: is required"),
    ("metrics.enabled", "yes", 'metrics.enabled: must be true or false, got "yes"'),
    ("metrics.port", 70000, "metrics.port: must be an integer from 1 to 65535, got 70000"),
    ("metrics.host", 5, "metrics.host: must be a non-empty string, got 5"),
    ("log.level", "verbose", f'log.level: {LEVELS}, got "verbose"'),
    ("log.format", "xml", 'log.format: must be one of auto, text, json, got "xml"'),
]


@pytest.mark.parametrize(("key", "value", "expected"), INVALID_VALUES)
def test_invalid_value_messages(tmp_path: Path, key: str, value: object, expected: str) -> None:
    """Each invalid value gives one problem: file, dotted key, what is expected, the value."""
    config = base()
    _set(config, key, value)
    assert problems(tmp_path, config) == [f"config.toml: {expected}"]


def test_at_least_one_pipeline(tmp_path: Path) -> None:
    """A config without [[pipelines]] is an error saying one is needed."""
    config = base()
    del config["pipelines"]
    assert problems(tmp_path, config) == [
        "config.toml: pipelines: at least one [[pipelines]] table is required"
    ]


def test_pipelines_written_as_a_single_table(tmp_path: Path) -> None:
    """[pipelines] instead of [[pipelines]] says how to write it."""
    config = base()
    config["pipelines"] = config["pipelines"][0]
    assert problems(tmp_path, config) == [
        "config.toml: pipelines: must be one or more [[pipelines]] tables, got a table"
    ]


def test_pipeline_names_must_be_unique(tmp_path: Path) -> None:
    """Two pipelines with one name are both reported, even next to other errors."""
    config = base()
    twin = copy.deepcopy(config["pipelines"][0])
    twin["flush_size"] = 0
    config["pipelines"].append(twin)
    message = 'must be unique, but 2 pipelines are named "orders"'
    assert problems(tmp_path, config) == [
        f"config.toml: pipelines[0].name: {message}",
        "config.toml: pipelines[1].flush_size: must be an integer from 1 to 100, got 0",
        f"config.toml: pipelines[1].name: {message}",
    ]


def test_key_column_may_also_be_a_field(tmp_path: Path) -> None:
    """Mapping the key column to another CRM field as well is allowed."""
    config = base()
    config["pipelines"][0]["fields"]["Order_Number"] = "id"
    assert FieldMap("Order_Number", "id") in load(tmp_path, config).pipelines[0].fields


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("pipelines.0.flush_sise", f'{P0}.flush_sise: unknown key (did you mean "flush_size"?)'),
        ("crm.client_secrt", 'crm.client_secrt: unknown key (did you mean "client_secret"?)'),
        ("crm.token_file", 'crm.token_file: unknown key (did you mean "refresh_token_file"?)'),
        ("sorce", 'sorce: unknown key (did you mean "source"?)'),
        ("metrics.prot", 'metrics.prot: unknown key (did you mean "port"?)'),
        ("log.colour", "log.colour: unknown key (known keys: level, format)"),
    ],
)
def test_unknown_keys_suggest_the_closest(tmp_path: Path, key: str, expected: str) -> None:
    """An unknown key is an error with a did-you-mean, or the list of known keys."""
    config = base()
    _set(config, key, 1)
    assert problems(tmp_path, config) == [f"config.toml: {expected}"]


def test_unknown_key_in_a_field_table(tmp_path: Path) -> None:
    """A typo inside { column = ..., type = ... } is caught with a suggestion."""
    config = base()
    config["pipelines"][0]["fields"]["Amount"] = {"colum": "total"}
    assert problems(tmp_path, config) == [
        'config.toml: pipelines[0].fields.Amount.colum: unknown key (did you mean "column"?)',
        "config.toml: pipelines[0].fields.Amount.column: is required",
    ]


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    """Problems in different sections are collected into one ConfigError, in key order."""
    config = base()
    config["crm"]["max_concurrency"] = 0
    config["pipelines"][0]["mode"] = "sometimes"
    config["pipelines"][0]["fields"]["Bad"] = 1
    config["log"] = {"level": "loud"}
    config["source"]["timezone"] = "Nowhere"
    assert problems(tmp_path, config) == [
        "config.toml: crm.max_concurrency: must be an integer from 1 to 25, got 0",
        f'config.toml: log.level: {LEVELS}, got "loud"',
        "config.toml: pipelines[0].fields.Bad: must be a column name or a table like { column = "
        '"ordered_at", type = "date" }, got 1',
        'config.toml: pipelines[0].mode: must be one of realtime, interval, got "sometimes"',
        'config.toml: source.timezone: must be an IANA time zone name like "Europe/Berlin" or '
        '"UTC", got "Nowhere"',
    ]


def test_problems_name_the_config_file(tmp_path: Path) -> None:
    """Each problem starts with the name of the file it is in."""
    config = base()
    config["pipelines"][0]["flush_size"] = 500
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, config, "prod.toml"))
    assert str(caught.value) == (
        "prod.toml: pipelines[0].flush_size: must be an integer from 1 to 100, got 500"
    )


def test_crm_settings_defaults_match_the_contract() -> None:
    """Code that builds CrmSettings directly gets the same defaults as a config file."""
    crm = CrmSettings("us", "a", "b", "c", None, Secret("1"), Secret("2"), Secret("3"))
    assert (crm.daily_credit_budget, crm.max_concurrency, crm.trigger) == (40000, None, ())


# --- the org's credit reserve -------------------------------------------------------------


def test_credit_reserve_as_a_share_of_the_org_daily_credits(tmp_path: Path) -> None:
    """`credit_reserve = "10%"` keeps a tenth of `org_daily_credits`; a number is taken as is."""
    config = base()
    config["crm"] |= {"org_daily_credits": 250_000, "credit_reserve": "10%"}
    crm = load(tmp_path, config).crm
    assert (crm.credit_reserve, crm.org_daily_credits) == (25_000, 250_000)
    config["crm"] |= {"credit_reserve": 1_500}
    assert load(tmp_path, config).crm.credit_reserve == 1_500
    assert load(tmp_path, base()).crm.credit_reserve == 0


@pytest.mark.parametrize(
    ("crm", "expected"),
    [
        ({"credit_reserve": "10%"}, "crm.credit_reserve: a percentage is of the org's daily"),
        ({"credit_reserve": "95%"}, "crm.credit_reserve: must be a number of credits"),
        ({"credit_reserve": -1}, "crm.credit_reserve: must be a number of credits"),
        ({"credit_reserve": "lots"}, "crm.credit_reserve: must be a number of credits"),
    ],
)
def test_bad_credit_reserve_is_named(tmp_path: Path, crm: dict[str, Any], expected: str) -> None:
    """A reserve that cannot be worked out names the key and says what is expected."""
    config = base()
    config["crm"] |= crm
    assert any(expected in p for p in problems(tmp_path, config)), problems(tmp_path, config)
