"""OAuth refresh-token grant and the Authorization header on CRM routes (reference 2, 8.1-8.2)."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx
import pytest

from syncd.emulator.auth import ACCESS_DENIED
from syncd.emulator.server import EmulatorServer

if TYPE_CHECKING:
    from conftest import Zoho


def test_refresh_grant_returns_the_documented_token(zoho: Zoho, emulator: EmulatorServer) -> None:
    """A refresh-token grant answers 200 with access_token, scope, api_domain, Bearer, 3600."""
    response = zoho.token_response()
    body = response.json()
    assert response.status_code == 200
    assert set(body) == {"access_token", "scope", "api_domain", "token_type", "expires_in"}
    assert body["access_token"].startswith("1000.")
    assert body["api_domain"] == emulator.base_url
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 3600)
    assert "ZohoCRM.bulk.ALL" in body["scope"].split()


def test_params_may_come_as_query_string_or_basic_auth(zoho: Zoho) -> None:
    """Client id/secret in Basic auth and the rest in the query string are accepted too."""
    s = zoho.settings
    basic = base64.b64encode(f"{s.client_id}:{s.client_secret}".encode()).decode()
    response = zoho.http.post(
        "/oauth/v2/token",
        params={"grant_type": "refresh_token", "refresh_token": s.refresh_token},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert "access_token" in response.json()


def test_wrong_client_is_invalid_client_with_status_200(zoho: Zoho) -> None:
    """A wrong client secret answers {"error": "invalid_client"} with HTTP 200 by default."""
    response = zoho.token_response(client_secret="nope")
    assert (response.status_code, response.json()) == (200, {"error": "invalid_client"})


def test_other_grant_types_are_unsupported(zoho: Zoho) -> None:
    """Only grant_type=refresh_token is emulated; others answer unsupported_grant_type."""
    response = zoho.token_response(grant_type="authorization_code")
    assert response.json() == {"error": "unsupported_grant_type"}


def test_unknown_refresh_token_is_invalid_code_with_status_200(zoho: Zoho) -> None:
    """A revoked or unknown refresh token answers {"error": "invalid_code"} with HTTP 200."""
    response = zoho.token_response(refresh_token="1000.revoked")
    assert (response.status_code, response.json()) == (200, {"error": "invalid_code"})


@pytest.mark.parametrize("status", [200, 400])
def test_eleventh_mint_in_ten_minutes_is_access_denied(
    status: int,
    start_emulator: Callable[..., EmulatorServer],
    make_zoho: Callable[[EmulatorServer], Zoho],
) -> None:
    """Ten mints per refresh token per window succeed; the 11th gets Access Denied."""
    zoho = make_zoho(start_emulator(token_error_status=status))
    assert all("access_token" in zoho.token_response().json() for _ in range(10))
    response = zoho.token_response()
    assert (response.status_code, response.json()) == (status, ACCESS_DENIED)
    assert response.json()["error"] == "Access Denied"


def test_mint_window_rolls(
    start_emulator: Callable[..., EmulatorServer], make_zoho: Callable[[EmulatorServer], Zoho]
) -> None:
    """Mints older than the window no longer count, so minting works again."""
    zoho = make_zoho(start_emulator(token_mint_window_seconds=0.3))
    for _ in range(10):
        zoho.token_response()
    assert zoho.token_response().json()["error"] == "Access Denied"
    time.sleep(0.35)
    assert "access_token" in zoho.token_response().json()


def test_sixteenth_token_invalidates_the_oldest(
    start_emulator: Callable[..., EmulatorServer], make_zoho: Callable[[EmulatorServer], Zoho]
) -> None:
    """At most 15 live tokens per refresh token: minting a 16th makes the first one invalid."""
    zoho = make_zoho(start_emulator(token_mint_limit=100))
    tokens = [zoho.mint() for _ in range(16)]

    def org(token: str) -> httpx.Response:
        return zoho.http.get("/crm/v8/org", headers={"Authorization": f"Zoho-oauthtoken {token}"})

    assert org(tokens[0]).json()["code"] == "INVALID_TOKEN"
    assert org(tokens[1]).status_code == 200
    assert org(tokens[15]).status_code == 200


@pytest.mark.parametrize("code", ["INVALID_TOKEN", "AUTHENTICATION_FAILURE"])
def test_expired_token_is_refused(
    code: str,
    start_emulator: Callable[..., EmulatorServer],
    make_zoho: Callable[[EmulatorServer], Zoho],
) -> None:
    """A token past its expires_in answers 401 with the configured code."""
    zoho = make_zoho(start_emulator(token_ttl_seconds=0.3, expired_token_code=code))
    assert zoho.get("/crm/v8/org").status_code == 200
    time.sleep(0.35)
    response = zoho.get("/crm/v8/org")
    assert (response.status_code, response.json()["code"]) == (401, code)


@pytest.mark.parametrize(
    ("header", "code", "message"),
    [
        (None, "AUTHENTICATION_FAILURE", "Authentication failed"),
        ("Bearer 1000.abc", "AUTHENTICATION_FAILURE", "Authentication failed"),
        ("Zoho-oauthtoken 1000.bogus", "INVALID_TOKEN", "invalid oauth token"),
    ],
)
def test_bad_authorization_header_gets_documented_401(
    zoho: Zoho, header: str | None, code: str, message: str
) -> None:
    """CRM routes need Authorization: Zoho-oauthtoken <live token>; else the documented 401 body."""
    headers = {"Authorization": header} if header else {}
    response = zoho.http.post("/crm/v8/Orders/upsert", headers=headers, json={"data": []})
    assert response.status_code == 401
    assert response.json() == {"code": code, "details": {}, "message": message, "status": "error"}


def test_missing_scope_is_oauth_scope_mismatch(
    start_emulator: Callable[..., EmulatorServer], make_zoho: Callable[[EmulatorServer], Zoho]
) -> None:
    """A token without ZohoFiles.files.ALL may read the org but not upload: OAUTH_SCOPE_MISMATCH."""
    zoho = make_zoho(start_emulator(scope="ZohoCRM.modules.ALL ZohoCRM.org.READ"))
    assert zoho.get("/crm/v8/org").status_code == 200
    response = zoho.upload(b"PK")
    assert response.status_code == 401
    assert response.json()["code"] == "OAUTH_SCOPE_MISMATCH"


def test_forced_expiry_invalidates_live_tokens(zoho: Zoho, emulator: EmulatorServer) -> None:
    """The admin expire-tokens call makes every live token answer INVALID_TOKEN."""
    assert zoho.get("/crm/v8/org").status_code == 200
    assert emulator.admin.expire_tokens() == 1
    assert zoho.get("/crm/v8/org").json()["code"] == "INVALID_TOKEN"
