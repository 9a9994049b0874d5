"""The stand-in's HTTP side: Web API methods, the file host, upload URLs and response_urls, each
request checked in Slack's order (injected fault, known method, token, rate limit, what the
method refuses) before it is answered and recorded."""

from __future__ import annotations

import json
import socket
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from testbed.slack_files import file_answer
from testbed.slack_limits import METHODS, post_channel, retry_after_header
from testbed.slack_rules import message_error, posting_error, view_error
from testbed.slack_standin import Call, Fault, SlackStandIn


def parse_body(content_type: str, raw: bytes) -> dict[str, Any]:
    """A request body as a dict (JSON or form fields)."""
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


def api_of(path: str) -> str | None:
    """What a POST path is: a Web API method, "response_url", "upload", or None."""
    if path.startswith("/api/"):
        return path[len("/api/") :]
    if path.startswith("/webhook/"):
        return "response_url"
    if path.startswith("/upload/"):
        return "upload"
    return None


class WebHandler(BaseHTTPRequestHandler):
    """One request to the stand-in (`owner` is set on a subclass per stand-in)."""

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
        self._send(*file_answer(self.owner, hosted, path, auth))

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        auth = self.headers.get("Authorization")
        body = parse_body(self.headers.get("Content-Type", ""), raw)
        if parts.query:
            body.update({k: v[0] for k, v in parse_qs(parts.query).items()})
        api = api_of(path)

        def record(status: int = 200) -> None:
            self.owner._record(Call("POST", path, api, auth, body, raw, time.time(), status))

        if api:
            self.owner._wait_if_held(api)
        fault = self.owner._fault(api, body) if api else None
        if fault is not None:
            record(fault.status)
            self._fault(api, fault)
            return
        if api == "response_url":
            used = self.owner.response_urls.use(path)
            body["_ok"] = used is None
            record(404 if used else 200)
            self._send(404 if used else 200, (used or "ok").encode(), "text/plain")
            return
        if api == "upload":
            problem = self._upload(path, raw)
            body["_ok"] = problem is None
            record(200 if problem is None else 400)
            self._send(
                400 if problem else 200, (problem or f"OK - {len(raw)}").encode(), "text/plain"
            )
            return
        if api is None:
            record(404)
            self._json({"ok": False, "error": "unknown_path"}, 404)
            return
        wait = self._rate_limited(api, body, auth)
        if wait is not None:
            record(429)
            retry_after = {"Retry-After": retry_after_header(wait)}
            self._json({"ok": False, "error": "ratelimited"}, 429, retry_after)
            return
        answer = self._answer(api, body, auth)
        body["_ok"] = bool(answer.get("ok"))
        record()
        self._json(answer)

    def _fault(self, api: str | None, fault: Fault) -> None:
        if fault.drop:
            self._drop()
            return
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = f"{fault.retry_after:g}"
        elif fault.status == 429:
            headers["Retry-After"] = "1"  # Slack's every 429 says when to come back
        if fault.status >= 500:
            page = b"<html><body>Internal Server Error</body></html>"
            self._send(fault.status, page, "text/html", headers)
        elif api == "response_url":
            self._send(fault.status, (fault.error or "error").encode(), "text/plain", headers)
        else:
            self._json({"ok": False, "error": fault.error or "ratelimited"}, fault.status, headers)

    def _upload(self, path: str, raw: bytes) -> str | None:
        """Take the bytes of an upload URL: once, for a file id the stand-in issued, and
        exactly as long as files.getUploadURLExternal was told; else why not."""
        file_id = path.rsplit("/", 1)[-1]
        with self.owner.state.lock:
            entry = self.owner.state.uploads.get(file_id)
            if entry is None or file_id == "_objects" or "content" in entry:
                return "upload URL unknown or already used"
            if len(raw) != entry["length"]:
                return f"length {len(raw)} differs from the {entry['length']} announced"
            entry["content"] = raw
        return None

    def _rate_limited(self, api: str, body: dict[str, Any], auth: str | None) -> float | None:
        """Seconds to wait when the call's bucket is empty; None when it may go ahead. Only
        calls Slack would otherwise consider (a known method, a token) count."""
        limits = self.owner.limits
        if limits is None or api not in METHODS or not auth:
            return None
        return limits.admit(api, body)

    def _answer(self, api: str, body: dict[str, Any], auth: str | None) -> dict[str, Any]:
        owner = self.owner
        if api not in METHODS:
            return {"ok": False, "error": "unknown_method"}
        if api == "apps.connections.open":  # Socket Mode: called with the app-level token
            if auth != f"Bearer {owner.app_token}" or owner.socket_url is None:
                return {"ok": False, "error": "invalid_auth"}
            return {"ok": True, "url": owner.socket_url}
        if auth != f"Bearer {owner.token}":
            return {"ok": False, "error": "not_authed" if not auth else "invalid_auth"}
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
        if api.startswith("chat."):
            return self._chat(api, body)
        if api.startswith(("views.", "files.", "conversations.")):
            return self._other(api, body)
        return {"ok": True}

    def _chat(self, api: str, body: dict[str, Any]) -> dict[str, Any]:
        owner = self.owner
        channel = post_channel(body)
        problem = posting_error(owner.conversation(channel), owner.scopes)
        if problem is None and api != "chat.delete":
            problem = message_error(body)
        if problem is not None:
            return {"ok": False, "error": problem}
        ts = owner.next_ts()
        if api == "chat.postMessage":
            body["channel"] = channel  # a DM opened by posting to a user
            with owner.state.lock:
                owner.state.messages[(channel, ts)] = dict(body)
            return {"ok": True, "channel": channel, "ts": ts, "message": {"text": body.get("text")}}
        if api == "chat.postEphemeral":
            conversation = owner.conversation(channel)
            members = conversation.members if conversation else None
            if members is not None and str(body.get("user")) not in members:
                return {"ok": False, "error": "user_not_in_channel"}
            return {"ok": True, "message_ts": ts}
        key = (channel, str(body.get("ts") or ""))
        with owner.state.lock:
            found = key in owner.state.messages
            if found and api == "chat.update":
                owner.state.messages[key] = dict(body)
            elif found:
                del owner.state.messages[key]
        if not found:
            return {"ok": False, "error": "message_not_found"}
        return {"ok": True, "channel": channel, "ts": key[1], "text": body.get("text")}

    def _other(self, api: str, body: dict[str, Any]) -> dict[str, Any]:
        owner = self.owner
        if api == "views.open":
            problem = owner.triggers.use(str(body.get("trigger_id") or ""))
            problem = problem or view_error(body.get("view"), "modal")
            if problem is not None:
                return {"ok": False, "error": problem}
        if api == "views.publish":
            if not body.get("user_id"):
                return {"ok": False, "error": "invalid_arguments"}
            problem = view_error(body.get("view"), "home")
            if problem is not None:
                return {"ok": False, "error": problem}
        if api.startswith("views."):
            return {"ok": True, "view": {"id": f"V{next(owner._ids):07d}"}}
        if api == "conversations.open":
            return {"ok": True, "channel": {"id": "D" + str(body.get("users", "")).split(",")[0]}}
        if api == "files.info":
            obj = owner.state.uploads.get("_objects", {}).get(body.get("file", ""))
            return {"ok": True, "file": obj} if obj else {"ok": False, "error": "file_not_found"}
        if api == "files.getUploadURLExternal":
            return self._upload_url(body)
        if api == "files.completeUploadExternal":
            return self._complete_upload(body)
        return {"ok": True}

    def _upload_url(self, body: dict[str, Any]) -> dict[str, Any]:
        """files.getUploadURLExternal as Slack's reference has it: `filename` and a positive
        integer `length` required, `alt_txt` at most 1000 characters, files:write needed."""
        owner = self.owner
        if "files:write" not in owner.scopes:
            return {"ok": False, "error": "missing_scope", "needed": "files:write"}
        length = body.get("length")
        try:
            length = int(str(length))
        except ValueError:
            length = 0
        if length <= 0:  # "Typically only occurs when the `length` provided is 0."
            return {"ok": False, "error": "missing_argument"}
        if not body.get("filename"):
            return {"ok": False, "error": "invalid_arguments"}
        if len(str(body.get("alt_txt") or "")) > 1000:
            return {"ok": False, "error": "alt_txt_too_large"}
        file_id = f"F{next(owner._ids):07d}"
        with owner.state.lock:
            owner.state.uploads[file_id] = {
                "id": file_id,
                "filename": body.get("filename"),
                "length": length,
                "alt_txt": body.get("alt_txt"),
            }
        return {"ok": True, "upload_url": owner.url(f"upload/{file_id}"), "file_id": file_id}

    def _complete_upload(self, body: dict[str, Any]) -> dict[str, Any]:
        """files.completeUploadExternal: every file issued, uploaded and not yet completed
        (else file_not_found); thread_ts only with a channel."""
        owner = self.owner
        channel = body.get("channel_id")
        if channel:
            problem = posting_error(owner.conversation(str(channel)), owner.scopes)
            if problem is not None:
                return {"ok": False, "error": problem}
        elif body.get("thread_ts"):
            return {"ok": False, "error": "invalid_arguments"}
        files = body.get("files")
        try:
            files = json.loads(files) if isinstance(files, str) else files
        except ValueError:
            files = None
        if (
            not isinstance(files, list)
            or not files
            or not all(isinstance(f, dict) and isinstance(f.get("id"), str) for f in files)
        ):
            return {"ok": False, "error": "invalid_arguments"}
        with owner.state.lock:
            for f in files:
                entry = owner.state.uploads.get(f["id"])
                if entry is None or "content" not in entry or entry.get("done"):
                    return {"ok": False, "error": "file_not_found"}
            for f in files:
                entry = owner.state.uploads[f["id"]]
                entry.update(
                    title=f.get("title"),
                    channel=channel,
                    thread_ts=body.get("thread_ts"),
                    done=True,
                )
        return {"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in files]}
