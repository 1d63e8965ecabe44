"""Fixtures for the emulator tests: running servers and a small client that speaks Zoho.

``emulator`` is one session-wide server (jobs complete on the first poll), reset before each
test; ``start_emulator(**settings)`` starts a dedicated one for tests that need other
settings; ``zoho`` / ``make_zoho(server)`` wrap httpx with token, upload and job helpers.
"""

from __future__ import annotations

import csv
import io
import time
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from syncd.emulator.admin import tls_context
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings

ORDER = {
    "parent_id": "A-1",
    "Name": "SO-0001",
    "Amount": 12.5,
    "Order_Date": "2024-01-05",
    "Ordered_At": "2024-01-05T10:00:00+02:00",
    "Status": "Paid",
    "Customer_Email": "ann@example.com",
    "Quantity": 3,
    "Paid": True,
    "Notes": "ring twice",
}


class Zoho:
    """What a Zoho client does, over HTTP, against one emulator."""

    zip_csv = staticmethod(lambda *args, **kwargs: zip_csv(*args, **kwargs))

    def __init__(self, server: EmulatorServer) -> None:
        self.server = server
        self.settings = server.settings
        self.http = httpx.Client(base_url=server.base_url, timeout=20, verify=tls_context())
        self._token: str | None = None

    def token_response(self, **params: str) -> httpx.Response:
        body = {
            "grant_type": "refresh_token",
            "client_id": self.settings.client_id,
            "client_secret": self.settings.client_secret,
            "refresh_token": self.settings.refresh_token,
        }
        return self.http.post("/oauth/v2/token", data=body | params)

    def mint(self) -> str:
        token: str = self.token_response().json()["access_token"]
        return token

    @property
    def auth(self) -> dict[str, str]:
        """The Authorization header, minting a token on first use."""
        if self._token is None:
            self._token = self.mint()
        return {"Authorization": f"Zoho-oauthtoken {self._token}"}

    def login(self) -> dict[str, str]:
        return self.auth

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, headers=self.auth | kwargs.pop("headers", {}), **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.post(path, headers=self.auth | kwargs.pop("headers", {}), **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.put(path, headers=self.auth | kwargs.pop("headers", {}), **kwargs)

    def upsert(self, records: list[dict[str, Any]], **body: Any) -> httpx.Response:
        return self.post("/crm/v8/Orders/upsert", json={"data": records, **body})

    def upload(self, data: bytes, **headers: str) -> httpx.Response:
        sent = {"feature": "bulk-write", "X-CRM-ORG": self.settings.org_id} | headers
        return self.post("/crm/v8/upload", headers=sent, files={"file": ("orders.zip", data)})

    def file_id(self, rows: list[list[Any]], header: list[str]) -> str:
        response = self.upload(zip_csv(rows, header))
        assert response.status_code == 200, response.text
        file_id: str = response.json()["details"]["file_id"]
        return file_id

    def create_job(
        self, file_id: str, mappings: list[dict[str, Any]] | None, **options: Any
    ) -> httpx.Response:
        resource: dict[str, Any] = {
            "type": "data",
            "module": {"api_name": options.pop("module", "Orders")},
            "file_id": file_id,
            "find_by": options.pop("find_by", "parent_id"),
        }
        if mappings is not None:
            resource["field_mappings"] = mappings
        body = {"operation": options.pop("operation", "upsert"), "resource": [resource], **options}
        return self.post("/crm/bulk/v8/write", json=body)

    def run_job(
        self,
        rows: list[list[Any]],
        header: list[str],
        mappings: list[dict[str, Any]] | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """Upload, create, and poll until done; returns the final job details."""
        if mappings is None:
            mappings = [{"api_name": name, "index": i} for i, name in enumerate(header)]
        created = self.create_job(self.file_id(rows, header), mappings, **options)
        assert created.status_code == 201, created.text
        return self.wait_job(created.json()["details"]["id"])

    def wait_job(self, job_id: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            details: dict[str, Any] = self.get(f"/crm/bulk/v8/write/{job_id}").json()
            if details["status"] in ("COMPLETED", "FAILED") or time.monotonic() > deadline:
                return details
            time.sleep(0.02)

    def result(self, details: dict[str, Any]) -> tuple[str, list[str], list[dict[str, str]]]:
        """(CSV name in the zip, header, rows) of a completed job's result."""
        response = self.get(details["result"]["download_url"])
        assert response.status_code == 200, response.text
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            (name,) = archive.namelist()
            text = archive.read(name).decode()
        reader = csv.DictReader(io.StringIO(text, newline=""))
        rows = list(reader)
        return name, list(reader.fieldnames or []), rows


def zip_csv(rows: list[list[Any]], header: list[str], name: str = "orders.csv") -> bytes:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows(rows)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, text.getvalue())
    return buffer.getvalue()


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorSettings(bulk_rows_per_second=None)) as server:
        yield server


@pytest.fixture
def emulator(emulator_server: EmulatorServer) -> EmulatorServer:
    emulator_server.admin.reset()
    return emulator_server


@pytest.fixture
def start_emulator() -> Iterator[Callable[..., EmulatorServer]]:
    servers: list[EmulatorServer] = []

    def start(**settings: Any) -> EmulatorServer:
        server = EmulatorServer(EmulatorSettings(**settings)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def make_zoho() -> Iterator[Callable[[EmulatorServer], Zoho]]:
    clients: list[Zoho] = []

    def make(server: EmulatorServer) -> Zoho:
        client = Zoho(server)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.http.close()


@pytest.fixture
def zoho(emulator: EmulatorServer, make_zoho: Callable[[EmulatorServer], Zoho]) -> Zoho:
    return make_zoho(emulator)


@pytest.fixture
def order() -> Callable[..., dict[str, Any]]:
    """A valid Orders record, with overrides."""
    return lambda **fields: ORDER | fields
