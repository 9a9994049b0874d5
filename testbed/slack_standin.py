"""A loopback stand-in for Slack's Web API, file host and response_urls: records every call
and answers like Slack does, with faults injectable per method."""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from testbed.waiting import wait_until

TOKEN = "xoxb-standin-bot-token"
APP_TOKEN = "xapp-1-standin-app-token"
SIGN_IN_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Slack</title></head><body>Sign in to Slack</body></html>"
)


@dataclass(frozen=True)
class Call:
    """One request the stand-in received."""

    http_method: str
    path: str
    api: str | None  # e.g. "chat.postMessage"; "response_url", "upload" or "file" otherwise
    auth: str | None  # the Authorization header, as sent
    body: dict[str, Any]
    raw: bytes
    at: float


@dataclass
class Fault:
    """How to fail the next matching calls of one API."""

    status: int = 200
    error: str | None = None
    retry_after: float | None = None
    drop: bool = False  # close the connection without an answer
    times: int | None = 1  # None: until cleared
    when: Callable[[dict[str, Any]], bool] | None = None


@dataclass
class HostedFile:
    """A file served behind the bot token."""

    id: str
    name: str
    content: bytes
    content_type: str = "text/x-python"
    html_even_with_token: bool = False


@dataclass
class _State:
    calls: list[Call] = field(default_factory=list)
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    files: dict[str, HostedFile] = field(default_factory=dict)
    uploads: dict[str, dict[str, Any]] = field(default_factory=dict)
    holds: dict[str, threading.Event] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class SlackStandIn:
    """ThreadingHTTPServer on 127.0.0.1 speaking enough of Slack for jobbot."""

    def __init__(self, token: str = TOKEN, port: int = 0) -> None:
        self.token = token
        self.app_token = APP_TOKEN
        self.socket_url: str | None = None  # what apps.connections.open hands out (Socket Mode)
        self.state = _State()
        self._ids = itertools.count(1)
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> SlackStandIn:
        """Listen (again, on the same port after `down()`)."""
        standin = self

        class Handler(_Handler):
            owner = standin

        server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        server.daemon_threads = True
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="slack-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening (connections are refused until `start()`)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    down = stop
    up = start

    def __enter__(self) -> SlackStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port it listens on."""
        return self._port

    @property
    def base_url(self) -> str:
        """The Web API base URL (SLACK_API_URL)."""
        return f"http://127.0.0.1:{self._port}/api/"

    def url(self, path: str) -> str:
        """An absolute URL on the stand-in."""
        return f"http://127.0.0.1:{self._port}/{path.lstrip('/')}"

    def response_url(self, name: str = "cmd") -> str:
        """A response_url that the stand-in answers (and records as api "response_url")."""
        return self.url(f"webhook/{name}/{next(self._ids)}")

    # --- files ---------------------------------------------------------------------------

    def add_file(
        self,
        name: str,
        content: bytes | str,
        *,
        size: int | None = None,
        html: bool = False,
        stub: bool = False,
        url: str | None = None,
    ) -> dict[str, Any]:
        """Host a file; returns the file object a Slack payload would carry."""
        data = content.encode() if isinstance(content, str) else content
        file_id = f"F{next(self._ids):07d}"
        with self.state.lock:
            self.state.files[file_id] = HostedFile(file_id, name, data, html_even_with_token=html)
        download = url or self.url(f"files-pri/T0TEAM-{file_id}/download/{name}")
        full = {
            "id": file_id,
            "created": int(time.time()),
            "timestamp": int(time.time()),
            "name": name,
            "title": name,
            "mimetype": "text/x-python",
            "filetype": "python",
            "pretty_type": "Python",
            "user": "U0ALICE",
            "size": len(data) if size is None else size,
            "mode": "hosted",
            "is_external": False,
            "is_public": False,
            "url_private": download.replace("/download/", "/"),
            "url_private_download": download,
            "permalink": f"https://acme.slack.com/files/U0ALICE/{file_id}/{name}",
        }
        with self.state.lock:
            self.state.uploads.setdefault("_objects", {})[file_id] = full
        if stub:
            return {"id": file_id, "mode": "file_access", "file_access": "check_file_info"}
        return full

    # --- faults and records --------------------------------------------------------------

    def inject(self, api: str, **fault: Any) -> None:
        """Fail the next call(s) of `api` ("*": of every API): status=429, retry_after=1;
        error="not_in_channel"."""
        with self.state.lock:
            self.state.faults.setdefault(api, []).append(Fault(**fault))

    def hold(self, api: str) -> threading.Event:
        """Keep every call of `api` ("file": downloads) waiting until the returned event is
        set, then answer it as usual (a download is recorded on arrival, so a test sees it
        waiting)."""
        release = threading.Event()
        with self.state.lock:
            self.state.holds[api] = release
        return release

    def _wait_if_held(self, api: str) -> None:
        with self.state.lock:
            release = self.state.holds.get(api)
        if release is not None:
            release.wait(timeout=30)

    def clear_faults(self) -> None:
        """Answer normally again."""
        with self.state.lock:
            self.state.faults.clear()

    def reset(self) -> None:
        """Forget calls and faults (hosted files stay)."""
        with self.state.lock:
            self.state.calls.clear()
            self.state.faults.clear()

    def calls(self, api: str | None = None, **match: Any) -> list[Call]:
        """Recorded calls, optionally of one API and with body fields equal to `match`."""
        with self.state.lock:
            calls = list(self.state.calls)
        return [
            c
            for c in calls
            if (api is None or c.api == api) and all(c.body.get(k) == v for k, v in match.items())
        ]

    def wait_for(self, api: str, count: int = 1, timeout: float = 10.0, **match: Any) -> list[Call]:
        """Poll until at least `count` matching calls arrived; returns them."""
        return wait_until(
            lambda: (found := self.calls(api, **match)) and len(found) >= count and found,
            timeout=timeout,
            message=f"{count} x {api} {match or ''}",
        )

    def posts(self, **match: Any) -> list[dict[str, Any]]:
        """Bodies of chat.postMessage calls that succeeded."""
        return [c.body for c in self.calls("chat.postMessage", **match) if c.body.get("_ok")]

    def uploaded(self) -> list[dict[str, Any]]:
        """Completed file uploads: id, title, channel, thread_ts and content."""
        with self.state.lock:
            return [
                dict(v) for k, v in self.state.uploads.items() if k != "_objects" and v.get("done")
            ]

    def _fault(self, api: str, body: dict[str, Any]) -> Fault | None:
        with self.state.lock:
            for key in (api, "*"):  # "*": every POSTed API and response_url (an outage)
                for fault in self.state.faults.get(key, []):
                    if fault.when is not None and not fault.when(body):
                        continue
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self.state.faults[key].remove(fault)
                    return fault
        return None

    def _record(self, call: Call) -> None:
        with self.state.lock:
            self.state.calls.append(call)

    def next_ts(self) -> str:
        """A fresh message ts."""
        n = next(self._ids)
        return f"{1700000000 + n}.{n:06d}"


def _parse(content_type: str, raw: bytes) -> dict[str, Any]:
    if not raw:
        return {}
    if content_type.startswith("application/json"):
        try:
            value = json.loads(raw)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}
    if content_type.startswith("application/x-www-form-urlencoded"):
        return {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
    return {}


class _Handler(BaseHTTPRequestHandler):
    owner: SlackStandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(
        self, data: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        self._send(status, json.dumps(data).encode(), "application/json; charset=utf-8", headers)

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        auth = self.headers.get("Authorization")
        self.owner._record(Call("GET", path, "file", auth, {}, b"", time.time()))
        self.owner._wait_if_held("file")
        if not path.startswith("/files-pri/"):
            self._send(404, b"not found", "text/plain")
            return
        file_id = path.split("/")[2].split("-", 1)[-1]
        hosted = self.owner.state.files.get(file_id)
        if hosted is None:
            self._send(404, b"not found", "text/plain")
            return
        if auth != f"Bearer {self.owner.token}" or hosted.html_even_with_token:
            # What Slack does without a usable token: a sign-in page with status 200.
            self._send(200, SIGN_IN_PAGE, "text/html; charset=utf-8")
            return
        self._send(200, hosted.content, hosted.content_type)

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        content_type = self.headers.get("Content-Type", "")
        auth = self.headers.get("Authorization")
        body = _parse(content_type, raw)
        if parts.query:
            body.update({k: v[0] for k, v in parse_qs(parts.query).items()})
        if path.startswith("/api/"):
            api = path[len("/api/") :]
        elif path.startswith("/webhook/"):
            api = "response_url"
        elif path.startswith("/upload/"):
            api = "upload"
        else:
            api = None
        if api:
            self.owner._wait_if_held(api)
        fault = self.owner._fault(api, body) if api else None
        if fault is not None and fault.drop:
            self.owner._record(Call("POST", path, api, auth, body, raw, time.time()))
            self._drop()
            return
        if fault is not None:
            self.owner._record(Call("POST", path, api, auth, body, raw, time.time()))
            headers = (
                {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            )
            if fault.status >= 500:
                self._send(
                    fault.status,
                    b"<html><body>Internal Server Error</body></html>",
                    "text/html",
                    headers,
                )
            elif api == "response_url":
                self._send(fault.status, (fault.error or "error").encode(), "text/plain", headers)
            else:
                self._json(
                    {"ok": False, "error": fault.error or "ratelimited"}, fault.status, headers
                )
            return
        answer = self._answer(api, path, body, raw, auth)
        body["_ok"] = bool(answer.get("ok"))
        self.owner._record(Call("POST", path, api, auth, body, raw, time.time()))
        if api in {"response_url", "upload"}:
            self._send(200, b"ok", "text/plain")
        else:
            self._json(answer)

    def _answer(
        self, api: str | None, path: str, body: dict[str, Any], raw: bytes, auth: str | None
    ) -> dict[str, Any]:
        owner = self.owner
        if api is None:
            return {"ok": False, "error": "unknown_path"}
        if api == "response_url":
            return {"ok": True}
        if api == "upload":
            file_id = path.rsplit("/", 1)[-1]
            with owner.state.lock:
                owner.state.uploads.setdefault(file_id, {})["content"] = raw
            return {"ok": True}
        if api == "apps.connections.open":  # Socket Mode: called with the app-level token
            if auth != f"Bearer {owner.app_token}" or owner.socket_url is None:
                return {"ok": False, "error": "invalid_auth"}
            return {"ok": True, "url": owner.socket_url}
        if auth != f"Bearer {owner.token}":
            return {"ok": False, "error": "not_authed" if not auth else "invalid_auth"}
        ts = owner.next_ts()
        if api == "auth.test":
            return {
                "ok": True,
                "url": "https://acme.slack.com/",
                "team": "Acme",
                "user": "jobbot",
                "team_id": "T0TEAM",
                "user_id": "U0BOT",
                "bot_id": "B0BOT",
            }
        if api in {"chat.postMessage", "chat.update"}:
            channel = str(body.get("channel") or "")
            if channel[:1] in {"U", "W"}:
                body["channel"] = channel = "D" + channel  # a DM opened by posting to a user
            return {
                "ok": True,
                "channel": channel,
                "ts": body.get("ts") or ts,
                "message": {"text": body.get("text"), "ts": ts},
            }
        if api == "chat.postEphemeral":
            return {"ok": True, "message_ts": ts}
        if api in {"views.open", "views.publish", "views.update"}:
            return {"ok": True, "view": {"id": f"V{next(owner._ids):07d}"}}
        if api == "conversations.open":
            return {"ok": True, "channel": {"id": "D" + str(body.get("users", "")).split(",")[0]}}
        if api == "files.info":
            obj = owner.state.uploads.get("_objects", {}).get(body.get("file", ""))
            return {"ok": True, "file": obj} if obj else {"ok": False, "error": "file_not_found"}
        if api == "files.getUploadURLExternal":
            file_id = f"F{next(owner._ids):07d}"
            with owner.state.lock:
                owner.state.uploads[file_id] = {"id": file_id, "filename": body.get("filename")}
            return {"ok": True, "upload_url": owner.url(f"upload/{file_id}"), "file_id": file_id}
        if api == "files.completeUploadExternal":
            files = json.loads(body.get("files") or "[]")
            with owner.state.lock:
                for f in files:
                    entry = owner.state.uploads.setdefault(f["id"], {"id": f["id"]})
                    entry.update(
                        title=f.get("title"),
                        channel=body.get("channel_id"),
                        thread_ts=body.get("thread_ts"),
                        done=True,
                    )
            return {"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in files]}
        return {"ok": True}


def iter_blocks_text(blocks: Any) -> Iterator[str]:
    """Every text string inside Block Kit blocks."""
    if isinstance(blocks, str):
        try:
            blocks = json.loads(blocks)
        except ValueError:
            return
    if isinstance(blocks, dict):
        for key, value in blocks.items():
            if key == "text" and isinstance(value, str):
                yield value
            else:
                yield from iter_blocks_text(value)
    elif isinstance(blocks, list):
        for item in blocks:
            yield from iter_blocks_text(item)


def message_text(body: dict[str, Any]) -> str:
    """The top-level text and all block texts of a posted message, joined."""
    return "\n".join([str(body.get("text") or ""), *iter_blocks_text(body.get("blocks") or [])])
