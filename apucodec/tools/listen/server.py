"""The listening page's HTTP server: loopback only, one unguessable token, nothing outside the page's routes.

It binds 127.0.0.1 (never a wildcard address), and every request must start with /<token>/ — the token is
`secrets.token_urlsafe(24)`, printed once in the page's URL — or it gets 403. The Host header must name the
loopback address too (another site's page cannot reach the server through a DNS name rebound to 127.0.0.1).
Past the token, the path (percent-decoded once) must be one of the routes site.py knows, or it is 404; a path is
never joined onto the filesystem. COOP/COEP headers make the page cross-origin isolated, so onnxruntime-web may
use WASM threads; nothing is cached (the token is in every URL).
"""

from __future__ import annotations

import hmac
import re
import secrets
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from apucodec.tools.listen.site import Site

HOST = "127.0.0.1"
HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class ListenServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, site: Site, port: int = 0, token: str | None = None) -> None:
        self.site = site
        self.token = token or secrets.token_urlsafe(24)
        super().__init__((HOST, port), Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/{self.token}/"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A browser that drops a connection (a seek in an <audio>, a closed tab) is routine, not a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="apucodec-listen", daemon=True)
        thread.start()
        return thread


class Handler(BaseHTTPRequestHandler):
    server: ListenServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Quiet: the URL holds the token, and a terminal full of requests helps no one."""

    def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8",
              head: bool = False) -> None:
        extra = {}
        if status == 200:
            extra["Accept-Ranges"] = "bytes"
            wanted = byte_range(self.headers.get("Range"), len(body))
            if wanted is not None:  # players ask for parts of a WAV to seek
                start, end = wanted
                status, extra["Content-Range"] = 206, f"bytes {start}-{end - 1}/{len(body)}"
                body = body[start:end]
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra.items():
            self.send_header(name, value)
        for name, value in HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _route(self) -> str | None:
        """The route after /<token>/, or None when the token (or the Host) is wrong."""
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        if host not in (HOST, "localhost"):
            return None
        path = urlsplit(self.path).path
        prefix = f"/{self.server.token}/"
        if not hmac.compare_digest(path[: len(prefix)].encode(), prefix.encode()):
            if hmac.compare_digest(path.encode(), prefix[:-1].encode()):
                return "\0redirect"
            return None
        return unquote(path[len(prefix):], errors="strict")

    def _answer(self, head: bool) -> None:
        try:
            route = self._route()
        except UnicodeDecodeError:
            route = "\0bad"
        if route is None:
            self._send(403, b"forbidden: this page needs the URL apucodec listen printed\n", head=head)
            return
        if route == "\0redirect":
            self.send_response(301)
            self.send_header("Location", f"/{self.server.token}/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        try:
            found = self.server.site.resource(route)
        except Exception as exc:  # a broken input must not take the server down; the page shows the line
            self._send(500, f"error: {exc}\n".encode(), head=head)
            return
        if found is None:
            self._send(404, b"not found\n", head=head)
            return
        self._send(200, found[0], found[1], head=head)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._answer(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(head=True)


RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One `bytes=a-b` range as [start, end) within `size`, or None (absent, multiple, or unsatisfiable: whole)."""
    match = RANGE.fullmatch((header or "").strip())
    if match is None or not size or (not match.group(1) and not match.group(2)):
        return None
    if not match.group(1):  # the last N bytes
        start = max(0, size - int(match.group(2)))
        return start, size
    start = int(match.group(1))
    end = min(size, int(match.group(2)) + 1) if match.group(2) else size
    return (start, end) if start < end else None
