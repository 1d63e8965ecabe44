"""systemd's notify protocol (READY, WATCHDOG, STOPPING, STATUS) without a C dependency."""

from __future__ import annotations

import logging
import os
import socket

logger = logging.getLogger(__name__)

SEND_TIMEOUT = 1.0  # seconds


class Notifier:
    """Sends sd_notify messages when started by systemd with Type=notify; no-op otherwise."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address if address is not None else os.environ.get("NOTIFY_SOCKET")

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def notify(self, message: str) -> None:
        if not self.address:
            return
        target = self.address
        if target.startswith("@"):  # abstract namespace socket
            target = "\0" + target[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                # A datagram send blocks while the receiver's queue is full; never let a
                # manager that does not read stall the main thread (and with it SIGTERM).
                sock.settimeout(SEND_TIMEOUT)
                sock.connect(target)
                sock.sendall(message.encode())
        except OSError as exc:
            logger.warning("sd_notify failed: %s", exc, extra={"event": "sd_notify_failed"})


def watchdog_interval() -> float | None:
    """Half of systemd's WatchdogSec (seconds), when the watchdog is on for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1_000_000 / 2
