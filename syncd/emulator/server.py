"""Serve the emulator with uvicorn in a background thread on 127.0.0.1.

    with EmulatorServer(EmulatorSettings(daily_credits=1_000)) as server:
        server.base_url            # "http://127.0.0.1:54321", once uvicorn accepts connections
        server.admin.records("Orders")
        server.emulator            # the in-process state, e.g. for benchmarks

The socket is bound before uvicorn starts, so ``port=0`` picks a free port and the base URL
(which the app needs for ``api_domain`` and ``download_url``) is known up front.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from types import TracebackType

import uvicorn

from syncd.emulator.admin import EmulatorAdmin
from syncd.emulator.app import create_app
from syncd.emulator.core import Emulator
from syncd.emulator.gateway import DROP_LOG_MESSAGE
from syncd.emulator.settings import EmulatorSettings

logger = logging.getLogger(__name__)

_START_TIMEOUT = 10.0


class _DropFilter(logging.Filter):
    """Hides uvicorn's complaint about the responses the drop faults break off on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != DROP_LOG_MESSAGE


def _uvicorn(emulator: Emulator) -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(emulator),
        http="h11",  # the drop faults rely on how its protocol ends a broken-off response
        ws="none",
        lifespan="on",
        log_config=None,  # leave logging to the host application
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    uvicorn_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DropFilter) for f in uvicorn_log.filters):
        uvicorn_log.addFilter(_DropFilter())
    return uvicorn.Server(config)


class EmulatorServer:
    """A running emulator; a context manager, or call ``start`` and ``stop``."""

    def __init__(
        self, settings: EmulatorSettings | None = None, port: int = 0, host: str = "127.0.0.1"
    ) -> None:
        self.settings = settings or EmulatorSettings()
        self._host, self._port = host, port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._emulator: Emulator | None = None
        self._base_url: str | None = None

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("the emulator server is not running; call start() first")
        return self._base_url

    @property
    def emulator(self) -> Emulator:
        if self._emulator is None:
            raise RuntimeError("the emulator server is not running; call start() first")
        return self._emulator

    @property
    def admin(self) -> EmulatorAdmin:
        return EmulatorAdmin(self.base_url)

    def start(self) -> EmulatorServer:
        """Bind, start uvicorn, and return once it accepts connections."""
        # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets that say TCP, and
        # without it every keep-alive response waits ~40 ms for a delayed ACK
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._host, self._port))
        except OSError:
            sock.close()
            raise
        base_url = f"http://{self._host}:{sock.getsockname()[1]}"
        emulator = Emulator(self.settings, base_url)
        server = _uvicorn(emulator)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="emulator-http", daemon=True
        )
        thread.start()
        self._server, self._thread, self._socket = server, thread, sock
        self._wait_started(server, thread)
        self._emulator, self._base_url = emulator, base_url
        logger.info("emulator started", extra={"event": "emulator_started", "url": base_url})
        return self

    def _wait_started(self, server: uvicorn.Server, thread: threading.Thread) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the emulator server failed to start")
            time.sleep(0.005)

    def stop(self) -> None:
        """Shut uvicorn down and wait for it (and the bulk worker) to finish."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=_START_TIMEOUT)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None
        self._base_url = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
