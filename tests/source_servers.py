"""Two local HTTP servers for source-security tests: a "good" host and an "evil" one (127.0.0.1, different ports),
each recording every request it receives (path and headers), serving configurable routes."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

ROWS = b'{"id": "1", "text": "hello from the good host"}\n{"id": "2", "text": "second row"}\n'
EVIL_BODY = b"EVIL-BODY-MARKER this text must never be stored anywhere\n"


@dataclass
class Route:
    status: int = 200
    body: bytes = ROWS
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]  # lower-cased names


class RecordingServer:
    """A ThreadingHTTPServer in a daemon thread; `routes[path]` answers, anything else is a 404."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                with server._lock:
                    server.requests.append(Recorded(self.path, {k.lower(): v for k, v in self.headers.items()}))
                route = server.routes.get(self.path, Route(404, b"missing"))
                self.send_response(route.status)
                for name, value in route.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                self.wfile.write(route.body)

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True  # stop() does not wait for a client's idle keep-alive connection
        self.port = self._httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self) -> RecordingServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def header_values(self, name: str) -> list[str | None]:
        """The value of header `name` in each recorded request (None where it was absent)."""
        return [r.headers.get(name.lower()) for r in self.requests]


@contextmanager
def good_and_evil() -> Iterator[tuple[RecordingServer, RecordingServer]]:
    good, evil = RecordingServer().start(), RecordingServer().start()
    try:
        yield good, evil
    finally:
        good.stop()
        evil.stop()
