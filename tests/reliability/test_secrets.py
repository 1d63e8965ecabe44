"""Secrets (issue 15, item 6): private files, no token in any output, TLS always verified.

Every file syncd writes (state store and its -wal/-shm, lock files, bulk and dry-run files) is
its user's only; a full run at debug level with faults on writes no access token, refresh
token or client secret anywhere but the state store; TLS verification has no off switch.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import sqlite3
import ssl
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.state.store import StateStore
from tests.helpers.e2e import write_config
from tests.helpers.sqlite_orders import pending, sqlite3_orders

ROWS = 5_000  # the bulk path: files written, uploaded, polled, downloaded
STATUS = "GET /crm/bulk/v8/write/{job_id}"
DOWNLOAD = "GET /{version}/crm/{org}/bulk-write/{job_id}/{file_name}"
STATE_FILES = {"state.db", "state.db-wal", "state.db-shm"}


def syncd(
    config: Path, *args: str, env: dict[str, str], debug: bool = True
) -> subprocess.CompletedProcess[str]:
    """``syncd -c CONFIG [--debug] ARGS`` in ``env`` (its own TMPDIR: every file it writes is
    the test's to look at)."""
    flags = ["--debug"] if debug else []
    return subprocess.run(
        [sys.executable, "-m", "syncd", "-c", str(config), *flags, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def secret_config(directory: Path, legacy_url: str, base_url: str, **crm: str) -> Path:
    """The orders config with its secrets in 0600 *_file files, as an operator deploys it."""
    emulator = EmulatorSettings()
    secrets = {
        "client_secret": crm.pop("client_secret", emulator.client_secret),
        "refresh_token": emulator.refresh_token,
    }
    directory.mkdir(exist_ok=True)
    fast = 'poll_interval = "1s"\nmax_delay = "1s"\nflush_size = 10'
    path = write_config(directory, legacy_url, base_url, pipeline=fast)
    text = path.read_text(encoding="utf-8")
    for key, value in secrets.items():
        secret_file = directory / "secrets" / key
        secret_file.parent.mkdir(mode=0o700, exist_ok=True)
        secret_file.write_text(value + "\n", encoding="utf-8")
        secret_file.chmod(0o600)
        default = getattr(emulator, key)
        text = text.replace(f'{key} = "{default}"', f'{key}_file = "secrets/{key}"')
    path.write_text(text, encoding="utf-8")
    return path


def test_a_full_debug_run_with_faults_leaks_no_secret(tmp_path: Path) -> None:
    """initial-sync (failing first, then through faults), the daemon, status, check, jobs,
    rejects and a wrong secret, all at debug level: no secret in any output or file."""
    db = tmp_path / "legacy.db"
    url = sqlite3_orders(db, ROWS)
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    settings = EmulatorSettings(bulk_rows_per_second=None, seed=3)
    outputs: list[str] = []
    with EmulatorServer(settings) as server:
        admin = server.admin
        config = secret_config(tmp_path, url, server.base_url)
        admin.set_faults(token_errors=1, token_error="Access Denied")
        refused = syncd(config, "initial-sync", env=env)
        admin.set_faults(
            garble="html_200",
            garble_next=1,
            garble_calls=[STATUS],
            expire_tokens_on=[DOWNLOAD],
            expire_tokens_next=1,
        )
        synced = syncd(config, "initial-sync", env=env)
        dry = syncd(config, "initial-sync", "--dry-run", env=env)
        outputs += [_text(refused), _text(synced), _text(dry)]
        outputs.append(_daemon_run(config, db, env, admin))
        for args in (("status",), ("status", "--json"), ("check",), ("jobs", "list")):
            outputs.append(_text(syncd(config, *args, env=env)))
        outputs.append(_text(syncd(config, "rejects", "list", env=env)))
        wrong = secret_config(tmp_path / "wrong", url, server.base_url, client_secret="s3cr3t-X")
        bad = syncd(wrong, "check", env=env)
        outputs.append(_text(bad))
        tokens = list(server.emulator.tokens.issued)

    assert refused.returncode == 1 and "Access Denied" in refused.stderr
    assert synced.returncode == 0, synced.stderr
    assert bad.returncode != 0 and "invalid_client" in _text(bad)
    assert pending(db) == 0
    assert len(tokens) >= 3  # the first, the one after the 401, and the daemon's
    emulator = EmulatorSettings()
    secrets = [emulator.client_secret, emulator.refresh_token, "s3cr3t-X", *tokens]
    for index, text in enumerate(outputs):
        for secret in secrets:
            assert secret not in text, f"output {index} shows a secret ({secret[:6]}...)"
    for path in _files(tmp_path, skip={"config.toml", "secrets"} | STATE_FILES):
        data = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in data, f"{path} holds a secret ({secret[:6]}...)"
    state = sqlite3.connect(tmp_path / "state.db")
    try:  # the one place a token may be: the state store's cache (never the refresh token)
        dump = "\n".join(state.iterdump())
    finally:
        state.close()
    assert emulator.refresh_token not in dump and emulator.client_secret not in dump
    assert tokens[-1] in dump


def test_every_file_syncd_writes_is_its_users_only(tmp_path: Path) -> None:
    """Under a permissive umask (022), the state store, its -wal/-shm, lock files and the
    dry-run's bulk files and directory come out 0600 / 0700."""
    db = tmp_path / "legacy.db"
    url = sqlite3_orders(db, ROWS)
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    state_dir = tmp_path / "state"
    with EmulatorServer(EmulatorSettings(bulk_rows_per_second=None)) as server:
        config = write_config(
            tmp_path, url, server.base_url, state_url=f"sqlite:///{state_dir}/state.db"
        )
        old = os.umask(0o022)
        try:
            dry = syncd(config, "initial-sync", "--dry-run", env=env)
            run = syncd(config, "initial-sync", env=env)
        finally:
            os.umask(old)
    assert dry.returncode == 0 and run.returncode == 0, dry.stderr + run.stderr
    written = [state_dir, *state_dir.rglob("*"), *temp.rglob("*")]
    names = {p.name for p in written}
    assert {"state", "state.db"} <= names
    assert any(n.startswith("syncd-dry-run-") for n in names)
    assert any(n.startswith("syncd-bulk-") for n in names)
    loose = {
        str(p.relative_to(tmp_path)): oct(stat.S_IMODE(p.stat().st_mode))
        for p in written
        if stat.S_IMODE(p.stat().st_mode) & 0o077
    }
    assert loose == {}, f"readable by others: {loose}"


def test_the_state_store_is_private_without_the_clis_umask(tmp_path: Path) -> None:
    """Opened in-process under umask 022 (syncd as a library, no CLI): a new state file and
    its new directory come out 0600 / 0700; an existing file with mode 0644 (an older syncd,
    a copy) is tightened to 0600."""
    fresh = tmp_path / "new" / "state.db"
    old = tmp_path / "state.db"
    old.touch()
    old.chmod(0o644)
    umask = os.umask(0o022)
    try:
        StateStore.open(f"sqlite:///{fresh}").close()
        StateStore.open(f"sqlite:///{old}").close()
    finally:
        os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    assert stat.S_IMODE(fresh.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(old.stat().st_mode) == 0o600


def _daemon_run(config: Path, db: Path, env: dict[str, str], admin: Any) -> str:
    """``syncd --debug run`` until a realtime change under a revoked token is flushed."""
    log = config.parent / "daemon.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "syncd", "-c", str(config), "--debug", "run"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        _wait(lambda: "daemon_ready" in log.read_text(errors="replace"), proc, log)
        admin.expire_tokens()  # the daemon's next call meets a 401 and mints again
        conn = sqlite3.connect(db)
        conn.execute("UPDATE orders SET status = 'Paid', sync = 0 WHERE id <= 3")
        conn.commit()
        conn.close()
        _wait(lambda: pending(db) == 0, proc, log)
    finally:
        proc.terminate()
        proc.wait(20)
    return log.read_text(errors="replace")


def _wait(condition: Any, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
        time.sleep(0.2)


def _text(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def _files(root: Path, skip: set[str]) -> Iterator[Path]:
    for path in root.rglob("*"):
        if path.is_file() and not set(path.relative_to(root).parts) & skip:
            yield path


# -- TLS ---------------------------------------------------------------------------------------


@contextmanager
def self_signed_server(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """An HTTPS server for 127.0.0.1 with a self-signed certificate; yields its URL, the
    certificate (to trust it on purpose) and the paths it was asked for."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            asked.append(self.path)
            body = json.dumps({"error": "invalid_client"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert_path, asked
    finally:
        server.shutdown()
        server.server_close()


def test_tls_verification_is_always_on(tmp_path: Path) -> None:
    """A Zoho host with a certificate nobody vouches for: no request reaches it, the run stops
    at once with one line naming the host and the certificate, and the way to trust a proxy
    that re-signs traffic on purpose (SSL_CERT_FILE) is the only way in."""
    url = sqlite3_orders(tmp_path / "legacy.db", 10)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSL_CERT")}
    with self_signed_server(tmp_path) as (base_url, cert, asked):
        config = write_config(tmp_path, url, base_url)
        started = time.monotonic()
        refused = syncd(config, "initial-sync", env=env, debug=False)
        took = time.monotonic() - started
        assert asked == [], "a request went through an unverified TLS connection"
        trusted = syncd(config, "initial-sync", env={**env, "SSL_CERT_FILE": str(cert)})
        assert asked == ["/oauth/v2/token"]
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    lines = [line for line in refused.stderr.splitlines() if line.startswith("syncd: ")]
    assert len(lines) == 1, refused.stderr
    assert "certificate" in lines[0] and "127.0.0.1" in lines[0]
    assert "SSL_CERT_FILE" in lines[0]
    assert took < 15, "a certificate failure is not retried like a network hiccup"
    assert "invalid_client" in trusted.stderr


def test_no_config_key_switches_tls_verification_off(tmp_path: Path) -> None:
    """The config contract has no such key: every spelling of it is an unknown key, exit 2."""
    url = sqlite3_orders(tmp_path / "legacy.db", 1)
    keys = ("verify", "tls_verify", "verify_ssl", "insecure", "ssl")
    switches = "\n".join(f"{key} = false" for key in keys)
    config = write_config(tmp_path, url, "https://127.0.0.1:9", crm=switches)
    result = syncd(config, "check", env=dict(os.environ), debug=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    for key in keys:
        assert f"crm.{key}: unknown key" in result.stderr, result.stderr
