"""Slack's file hosting as the stand-in plays it: the file host, which serves a shared file
behind the bot token (url_private_download) or redirects to its file edge (url_private), and
the edge itself, another host serving signed links that must arrive without the token. Answers
can be scripted per file (redirects anywhere, HTTP errors) to test a client against them."""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote, urlsplit

from testbed.loopback_http import LoopbackServer, QuietHandler
from testbed.slack_standin import SIGN_IN_PAGE

if TYPE_CHECKING:
    from testbed.slack_standin import HostedFile, SlackStandIn

REDIRECTS = {301, 302, 303, 307, 308}


@dataclass(frozen=True)
class Answer:
    """A scripted answer of the file host to one GET: an error status, or a redirect."""

    status: int
    location: str | None = None  # where a redirect sends the client


@dataclass(frozen=True)
class EdgeCall:
    """One request the file edge received."""

    path: str
    auth: str | None
    at: float


class FileEdge:
    """Where Slack's file host redirects url_private downloads: another host (here another
    port, so another origin) serving links signed for one file. Like a presigned link of an
    object store it refuses a request that also carries an Authorization header (400), and a
    link whose signature does not match (403)."""

    def __init__(self) -> None:
        self._secret = os.urandom(16)
        self._files: dict[str, tuple[bytes, str]] = {}
        self._lock = threading.Lock()
        self.calls: list[EdgeCall] = []
        edge = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                edge._serve(self)

        self._server = LoopbackServer(Handler)
        threading.Thread(target=self._server.serve_forever, name="file-edge", daemon=True).start()

    def link(self, file_id: str, name: str, content: bytes, content_type: str) -> str:
        """A signed link to one file's bytes."""
        path = f"/files-edge/{file_id}/{quote(name)}"
        signature = hmac.new(self._secret, path.encode(), hashlib.sha256).hexdigest()
        with self._lock:
            self._files[path] = (content, content_type)
        return f"http://127.0.0.1:{self._server.port}{path}?sig={signature}"

    def _serve(self, request: QuietHandler) -> None:
        parts = urlsplit(request.path)
        auth = request.headers.get("Authorization")
        with self._lock:
            self.calls.append(EdgeCall(parts.path, auth, time.time()))
            found = self._files.get(parts.path)
        given = parse_qs(parts.query).get("sig", [""])[0]
        expected = hmac.new(self._secret, parts.path.encode(), hashlib.sha256).hexdigest()
        if auth is not None:
            request.reply(400, b"Only one auth mechanism allowed", {"Content-Type": "text/plain"})
        elif found is None or not hmac.compare_digest(given, expected):
            request.reply(403, b"Access denied", {"Content-Type": "text/plain"})
        else:
            request.reply(200, found[0], {"Content-Type": found[1]})

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()


def file_answer(
    standin: SlackStandIn, hosted: HostedFile, path: str, auth: str | None
) -> tuple[int, bytes, str, dict[str, str]]:
    """What Slack's file host answers to a GET of a hosted file: (status, body, content type,
    headers). A scripted answer comes first; without the bot token, Slack's sign-in page (with
    status 200); url_private redirects to the edge; url_private_download is the file."""
    with standin.state.lock:
        scripted = hosted.answers.pop(0) if hosted.answers else None
    if scripted is not None:
        if scripted.status in REDIRECTS:
            return scripted.status, b"", "text/plain", {"Location": scripted.location or ""}
        return scripted.status, f"HTTP {scripted.status}".encode(), "text/plain", {}
    if auth != f"Bearer {standin.token}" or hosted.html_even_with_token:
        return 200, SIGN_IN_PAGE, "text/html; charset=utf-8", {}
    if "/download/" not in path:
        link = standin.edge.link(hosted.id, hosted.name, hosted.content, hosted.content_type)
        return 302, b"", "text/plain", {"Location": link}
    return 200, hosted.content, hosted.content_type, {}
