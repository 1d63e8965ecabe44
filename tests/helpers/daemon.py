"""`syncd run` as a subprocess for end-to-end tests: start it, read its log, signal it.

The daemon logs one JSON object per line (its stderr is a file, not a terminal), so tests
wait for log *events* (``lease_acquired``, ``drain_finished`` ...) rather than for prose.
``NotifySocket`` plays systemd's side of the notify protocol.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

SYNCD = str(Path(sys.executable).with_name("syncd"))

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll ``condition`` until it returns something truthy (returned) or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class SyncdProcess:
    """One `syncd -c CONFIG run`, its stdout and stderr in ``log``; killed on exit."""

    def __init__(
        self, config: Path, log: Path, *args: str, env: dict[str, str] | None = None
    ) -> None:
        self.config, self.log = config, log
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SyncdProcess:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [SYNCD, "-c", str(self.config), "run", *self.args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def host_id(self) -> str:
        """How this process names itself in leases and runs."""
        return f"{socket.gethostname()}:{self.pid}"

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """Log records (parsed JSON lines), only those with ``event == name`` if given."""
        found = []
        for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and (name is None or record.get("event") == name):
                found.append(record)
        return found

    def wait_for(self, event: str, timeout: float = 20, count: int = 1) -> list[dict[str, Any]]:
        """Wait until the log holds ``count`` records of ``event``; fails early if it died."""

        def seen() -> list[dict[str, Any]]:
            records = self.events(event)
            if len(records) < count and self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"syncd exited ({self.proc.returncode}):\n{self.tail()}")
            return records if len(records) >= count else []

        try:
            return wait_until(seen, timeout, f"{count} x {event}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.tail()}") from None

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"syncd still running after {timeout}s:\n{self.tail()}") from None

    def terminate(self, timeout: float = 20) -> int:
        """SIGTERM and wait; returns the exit code."""
        self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        """SIGKILL (no cleanup at all) and reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> SyncdProcess:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()


class NotifySocket:
    """systemd's end of ``NOTIFY_SOCKET``: a unix datagram socket read by a thread.

    ``reading = False`` plays a manager that stopped reading: its queue fills up.
    """

    def __init__(self) -> None:
        # A short directory of its own: unix socket paths are limited to 107 bytes.
        self._dir = Path(tempfile.mkdtemp(prefix="sdn"))
        self.path = str(self._dir / "notify")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.path)
        self._sock.settimeout(0.05)
        self.reading = True
        self.received: list[tuple[float, str]] = []  # (monotonic time, one assignment)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            if not self.reading:
                time.sleep(0.05)
                continue
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            now = time.monotonic()
            with self._lock:
                self.received += [(now, line) for line in data.decode().splitlines() if line]

    def messages(self) -> list[str]:
        """Every assignment received so far, in order."""
        with self._lock:
            return [line for _, line in self.received]

    def times(self, message: str) -> list[float]:
        with self._lock:
            return [at for at, line in self.received if line == message]

    def wait_for(self, message: str, timeout: float, count: int = 1) -> None:
        wait_until(
            lambda: len(self.times(message)) >= count, timeout, f"{count} x {message!r}", 0.05
        )

    def close(self) -> None:
        self._closed.set()
        self._thread.join(5)
        self._sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)


@contextmanager
def notify_socket() -> Iterator[NotifySocket]:
    sock = NotifySocket()
    try:
        yield sock
    finally:
        sock.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
