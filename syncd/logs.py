"""Logging: human lines on a terminal, one JSON object per line otherwise (journald-friendly).

Every record carries the pipeline and run id when the code that logs it is running inside
``log_context``. A redaction filter masks anything that looks like a Zoho token or a
password in a URL, as a last line of defence behind "never log secrets".
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

# A mapping, never mutated: each log_context() sets a new one.
_context: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "syncd_log_context", default=None
)

_SECRET_PATTERNS = [
    (re.compile(r"\b1000\.[0-9a-f]{8,}\.[0-9a-f]{8,}\b"), "1000.****"),  # Zoho tokens
    (re.compile(r"(Zoho-oauthtoken\s+)\S+"), r"\1****"),
    (re.compile(r"(://[^:/\s]+:)[^@/\s]+@"), r"\1****@"),  # passwords in URLs
    (
        re.compile(
            r"((?:refresh_token|client_secret|access_token)[\"']?\s*[=:]\s*[\"']?)[^\s&\"',]+"
        ),
        r"\1****",
    ),
]

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def redact(text: str) -> str:
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Attach fields (pipeline, run_id, ...) to every record logged inside the block."""
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in (_context.get() or {}).items():
            if not hasattr(record, name):
                setattr(record, name, value)
        record.msg = redact(record.getMessage())
        record.args = None
        return True


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        tags = " ".join(f"{k}={fields[k]}" for k in ("pipeline", "run_id") if k in fields)
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        line = f"{stamp} {record.levelname:<7} {tags + ' ' if tags else ''}{record.getMessage()}"
        if record.exc_info:
            line += "\n" + redact(self.formatException(record.exc_info))
        return line


def setup_logging(level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure the root logger once; ``auto`` means text on a terminal, JSON otherwise."""
    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "apscheduler", "alembic", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
