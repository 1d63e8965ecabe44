"""Shared fixtures: real PostgreSQL / MariaDB databases, a clean environment.

Database servers come from SYNCD_TEST_POSTGRES_URL / SYNCD_TEST_MYSQL_URL; without them a
testcontainers container is started when a Docker engine answers, and otherwise the tests that
need the server are skipped -- except under CI=true, where an unreachable server is a failure.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from tests.helpers.databases import fresh_database

IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(autouse=True)
def _clean_syncd_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SYNCD_* variable from the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("SYNCD_") and not name.startswith("SYNCD_TEST_"):
            monkeypatch.delenv(name)


def _unavailable(what: str, why: str) -> None:
    message = f"{what} not available: {why}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: a missing database is a failure, not a skip)")
    pytest.skip(message)


def _docker_answers() -> bool:
    """Whether a Docker engine answers on its socket.

    Probed with a plain socket first: docker.from_env() leaks its socket when nobody answers.
    """
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if host.startswith("unix://"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(2)
                sock.connect(host.removeprefix("unix://"))
        else:
            address = host.split("://", 1)[-1].rsplit(":", 1)
            with socket.create_connection((address[0], int(address[1])), timeout=2):
                pass
    except (OSError, ValueError, IndexError):
        return False
    return True


def _server_url(env: str, what: str, container: str) -> Iterator[str]:
    url = os.environ.get(env)
    if url:
        probe = create_engine(url, poolclass=NullPool)
        try:
            with probe.connect():
                pass
        except SQLAlchemyError as exc:
            _unavailable(what, f"{env}={make_url(url).render_as_string()} unreachable: {exc}")
        yield url
        return
    if not _docker_answers():
        _unavailable(what, f"{env} is not set and no Docker engine answers for testcontainers")
    if container == "postgres":
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver="psycopg") as pg:
            yield pg.get_connection_url()
    else:
        from testcontainers.mysql import MySqlContainer

        with MySqlContainer("mariadb:11") as my:
            yield my.get_connection_url().replace("mysql://", "mysql+pymysql://", 1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    yield from _server_url("SYNCD_TEST_POSTGRES_URL", "PostgreSQL", "postgres")


@pytest.fixture(scope="session")
def mysql_server() -> Iterator[str]:
    yield from _server_url("SYNCD_TEST_MYSQL_URL", "MySQL/MariaDB", "mysql")


@pytest.fixture
def pg_url(postgres_server: str) -> Iterator[str]:
    """URL of a fresh PostgreSQL database."""
    yield from fresh_database(postgres_server)


@pytest.fixture
def mysql_url(mysql_server: str) -> Iterator[str]:
    """URL of a fresh MySQL/MariaDB database."""
    yield from fresh_database(mysql_server)


@pytest.fixture
def sqlite_url(tmp_path: os.PathLike[str]) -> str:
    """URL of a fresh SQLite file."""
    return f"sqlite:///{os.fspath(tmp_path)}/legacy.db"


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def legacy_url(request: pytest.FixtureRequest) -> str:
    """A fresh legacy database of each supported kind."""
    fixture = {"sqlite": "sqlite_url", "postgres": "pg_url", "mysql": "mysql_url"}[request.param]
    return str(request.getfixturevalue(fixture))
