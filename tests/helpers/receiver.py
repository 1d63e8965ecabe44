"""A local webhook receiver: a threaded http.server on 127.0.0.1 collecting every POST."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Receiver:
    base_url: str
    posts: list[Received] = field(default_factory=list)
    failing: dict[str, int] = field(default_factory=dict)  # path -> status answered, while set
    hits: dict[str, int] = field(default_factory=dict)  # path -> requests, failed ones too

    def posts_bodies(self) -> list[Any]:
        return [post.body for post in self.posts]

    def bodies(self, path: str) -> list[Any]:
        return [post.body for post in self.posts if post.path == path]


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    receiver = Receiver("")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"null")
            status = receiver.failing.get(self.path, 200)
            with lock:
                receiver.hits[self.path] = receiver.hits.get(self.path, 0) + 1
            if status == 200:
                with lock:
                    receiver.posts.append(Received(self.path, dict(self.headers.items()), body))
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
