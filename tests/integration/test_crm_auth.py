"""CRM client tokens against the emulator: sharing, expiry, fatal and throttled grants."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from syncd.config import Secret
from syncd.crm import CrmClient
from syncd.crm.auth import token_cache_key
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.errors import CrmAuthError, CrmRetriableError
from syncd.model import CrmRecord, OutcomeKind
from syncd.ports import CachedToken
from syncd.state.store import StateStore
from tests.integration.crm_fixtures import *  # noqa: F403  (registers the CRM fixtures)
from tests.integration.crm_fixtures import FAST_RETRY, SystemClock, crm_settings


def _record(key: str) -> CrmRecord:
    return CrmRecord(key, {"Name": f"Order {key}"})


def test_one_token_shared_by_clients_and_threads(
    fresh_emulator: EmulatorServer, store: StateStore
) -> None:
    """Two clients on one state store, eight threads: exactly one token is minted."""
    settings = crm_settings(fresh_emulator.base_url)
    clients = [CrmClient(settings, store, store, SystemClock(), retry=FAST_RETRY) for _ in "ab"]
    with ThreadPoolExecutor(8) as pool:
        futures = [
            pool.submit(clients[i % 2].upsert, "Orders", "parent_id", [_record(f"k{i}")])
            for i in range(16)
        ]
        kinds = {f.result()[0].kind for f in futures}
    for crm in clients:
        crm.close()
    assert kinds == {OutcomeKind.ADDED}
    assert fresh_emulator.admin.stats()["tokens"]["minted"] == 1


def test_token_expiry_mid_run_refreshes_once(
    client: CrmClient, fresh_emulator: EmulatorServer
) -> None:
    """A token Zoho stops accepting (401 INVALID_TOKEN) is replaced once and the call goes on."""
    client.upsert("Orders", "parent_id", [_record("a")])
    assert fresh_emulator.admin.expire_tokens() == 1
    [outcome] = client.upsert("Orders", "parent_id", [_record("a")])
    stats = fresh_emulator.admin.stats()
    assert outcome.kind is OutcomeKind.UPDATED
    assert stats["tokens"]["minted"] == 2
    assert stats["statuses"]["401"] == 1


def test_cached_token_is_reused_across_restarts(
    fresh_emulator: EmulatorServer, store: StateStore
) -> None:
    """A new client (a restarted process) reuses the stored token instead of minting."""
    settings = crm_settings(fresh_emulator.base_url)
    for _ in range(3):
        with CrmClient(settings, store, store, SystemClock(), retry=FAST_RETRY) as crm:
            crm.org_id()
    assert fresh_emulator.admin.stats()["tokens"]["minted"] == 1


def test_token_near_expiry_is_replaced(fresh_emulator: EmulatorServer, store: StateStore) -> None:
    """A stored 1-hour token with under 5 minutes left is not used: a new one is minted."""
    settings = crm_settings(fresh_emulator.base_url)
    key = token_cache_key(settings.client_id.reveal(), settings.refresh_token.reveal())
    now = datetime.now(UTC)
    stale = CachedToken("1000.stale", None, now + timedelta(minutes=4))
    store.save_token(key, stale, now - timedelta(minutes=56))
    with CrmClient(settings, store, store, SystemClock(), retry=FAST_RETRY) as crm:
        crm.org_id()
    stats = fresh_emulator.admin.stats()
    assert stats["tokens"]["minted"] == 1
    assert "401" not in stats["statuses"]


@pytest.mark.parametrize(
    ("override", "code", "advice"),
    [
        ({"refresh_token": Secret("rt-0xDEADBEEF")}, "invalid_code", "crm.refresh_token"),
        ({"client_secret": Secret("cs-0xFEEDFACE")}, "invalid_client", "crm.client_secret"),
    ],
)
def test_bad_credentials_are_fatal_with_advice(
    fresh_emulator: EmulatorServer,
    store: StateStore,
    override: dict[str, Secret],
    code: str,
    advice: str,
) -> None:
    """invalid_code / invalid_client stop with a message naming the setting to fix, no retry."""
    settings = crm_settings(fresh_emulator.base_url, **override)
    with (
        CrmClient(settings, store, store, SystemClock(), retry=FAST_RETRY) as crm,
        pytest.raises(CrmAuthError) as caught,
    ):
        crm.upsert("Orders", "parent_id", [_record("a")])
    assert caught.value.code == code
    assert advice in str(caught.value)
    assert "0xDEADBEEF" not in str(caught.value)
    assert "0xFEEDFACE" not in str(caught.value)
    assert fresh_emulator.admin.stats()["calls"] == {"POST /oauth/v2/token": 1}


def test_mint_guard_stops_before_zohos_limit(
    fresh_emulator: EmulatorServer, store: StateStore
) -> None:
    """After 9 mints in 10 minutes syncd does not ask for a 10th; it says when to try again."""
    settings = crm_settings(fresh_emulator.base_url)
    key = token_cache_key(settings.client_id.reveal(), settings.refresh_token.reveal())
    now = datetime.now(UTC)
    for _ in range(9):
        store.save_token(key, CachedToken("1000.old", None, now - timedelta(seconds=1)), now)
    with (
        CrmClient(settings, store, store, SystemClock(), retry=FAST_RETRY) as crm,
        pytest.raises(CrmRetriableError) as caught,
    ):
        crm.org_id()
    assert caught.value.code == "TOKEN_THROTTLE"
    assert caught.value.retry_after == 600
    assert fresh_emulator.admin.stats()["calls"] == {}


def test_access_denied_waits(tmp_path: Path) -> None:
    """Zoho's Access Denied (mint throttle) is a retriable error with a 10-minute hint."""
    with EmulatorServer(EmulatorSettings(token_mint_limit=1, token_error_status=400)) as server:
        settings = crm_settings(server.base_url)
        for n in (1, 2):  # separate stores: the second process cannot see the first's token
            state = StateStore.open(f"sqlite:///{tmp_path}/state{n}.db")
            with CrmClient(settings, state, state, SystemClock(), retry=FAST_RETRY) as crm:
                if n == 1:
                    crm.org_id()
                else:
                    with pytest.raises(CrmRetriableError) as caught:
                        crm.org_id()
            state.close()
        assert caught.value.code == "ACCESS_DENIED"
        assert caught.value.retry_after == 600
        assert server.admin.stats()["calls"]["POST /oauth/v2/token"] == 2  # not hammered


def test_api_domain_from_the_token_is_used(
    fresh_emulator: EmulatorServer, store: StateStore
) -> None:
    """API calls go to the api_domain Zoho returns with the token, not the configured one."""
    settings = crm_settings(fresh_emulator.base_url, api_domain="http://127.0.0.1:9")
    with CrmClient(settings, store, store, SystemClock(), retry=FAST_RETRY) as crm:
        assert crm.org_id() == "808232144"


def test_secrets_never_reach_logs(
    client: CrmClient,
    fresh_emulator: EmulatorServer,
    store: StateStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No log line or field of the client carries the access token or a credential."""
    caplog.set_level(logging.DEBUG, logger="syncd.crm")
    client.upsert("Orders", "parent_id", [_record("a")])
    fresh_emulator.admin.expire_tokens()
    client.upsert("Orders", "parent_id", [_record("b")])
    key = token_cache_key("syncd-emulator-client", "syncd-emulator-refresh")
    token = store.load_token(key)
    assert token is not None
    secrets = [token.access_token, "syncd-emulator-secret", "syncd-emulator-refresh"]
    crm_records = [r for r in caplog.records if r.name.startswith("syncd.crm")]
    assert crm_records
    for record in crm_records:
        dumped = record.getMessage() + repr(vars(record))
        assert not any(secret in dumped for secret in secrets)


def test_a_token_shorter_lived_than_the_refresh_margin_is_used_not_minted_per_call(
    store: StateStore,
) -> None:
    """An org issuing 20-second tokens: each is used for three quarters of its life. Before, it
    was replaced at every call (it never had 5 minutes left) until the mint guard stopped
    every call with TOKEN_THROTTLE."""
    with EmulatorServer(EmulatorSettings(token_ttl_seconds=20)) as server:
        settings = crm_settings(server.base_url)
        with CrmClient(settings, store, store, SystemClock(), retry=FAST_RETRY) as crm:
            for i in range(12):
                crm.insert("Orders", "parent_id", [_record(f"k{i}")])
        stats = server.admin.stats()
    assert stats["tokens"]["minted"] == 1
    assert stats["calls"]["POST /crm/v8/{module}"] == 12
