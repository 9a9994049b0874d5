"""A loopback stand-in for Slack's Web API, file host and response_urls, as strict as Slack: it
enforces the published rate limits (testbed.slack_limits) and refuses what Slack refuses
(testbed.slack_rules), records every call, and takes faults injected per method. The HTTP side
is testbed.slack_web."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, TypeVar

from testbed.slack_limits import RateLimits
from testbed.slack_rules import SCOPES, Conversation, ResponseUrls, Triggers, implicit
from testbed.waiting import wait_until

if TYPE_CHECKING:
    from testbed.slack_files import Answer, FileEdge

T = TypeVar("T")
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
    status: int = 200  # the HTTP status answered (429: rate limited)


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
    answers: list[Answer] = field(default_factory=list)  # scripted, one per GET, first


@dataclass
class _State:
    calls: list[Call] = field(default_factory=list)
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    files: dict[str, HostedFile] = field(default_factory=dict)
    uploads: dict[str, dict[str, Any]] = field(default_factory=dict)
    holds: dict[str, threading.Event] = field(default_factory=dict)
    conversations: dict[str, Conversation] = field(default_factory=dict)
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # posted
    lock: threading.Lock = field(default_factory=threading.Lock)
    recorded: threading.Condition = field(init=False)  # notified as each call is recorded
    generation: int = 0  # calls recorded so far (reset or not)

    def __post_init__(self) -> None:
        self.recorded = threading.Condition(self.lock)


def _filetype(name: str) -> str:
    """Slack's filetype for a file name, as far as the tests need it."""
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return {"py": "python", "txt": "text", "csv": "csv", "json": "json"}.get(ext, ext or "text")


class SlackStandIn:
    """ThreadingHTTPServer on 127.0.0.1 speaking enough of Slack for jobbot.

    With `rate_limits=False` no rate limit is enforced: only for a test that needs a burst
    Slack would not allow, and says why where it asks for it.
    """

    def __init__(self, token: str = TOKEN, port: int = 0, *, rate_limits: bool = True) -> None:
        self.token = token
        self.app_token = APP_TOKEN
        self.socket_url: str | None = None  # what apps.connections.open hands out (Socket Mode)
        self.state = _State()
        self.limits: RateLimits | None = RateLimits() if rate_limits else None
        self.scopes = SCOPES
        self.triggers = Triggers()
        self.response_urls = ResponseUrls()
        self._ids = itertools.count(1)
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._edge: FileEdge | None = None

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> SlackStandIn:
        """Listen (again, on the same port after `down()`)."""
        from testbed.slack_web import WebHandler

        standin = self

        class Handler(WebHandler):
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
        if self._edge is not None:
            self._edge.close()

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
        snippet: str | None = None,
    ) -> dict[str, Any]:
        """Host a file; returns the file object a Slack payload would carry. `snippet` makes
        it a text snippet of that filetype (Slack's "python"), as one created in Slack."""
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
            "mimetype": "text/x-python" if name.endswith(".py") else "text/plain",
            "filetype": snippet or _filetype(name),
            "pretty_type": "Python" if (snippet or _filetype(name)) == "python" else "Plain Text",
            "user": "U0ALICE",
            "size": len(data) if size is None else size,
            "mode": "snippet" if snippet else "hosted",
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

    @property
    def edge(self) -> FileEdge:
        """Slack's file edge, where url_private downloads are redirected (started when first
        needed; testbed/slack_files.py)."""
        from testbed.slack_files import FileEdge

        with self.state.lock:
            if self._edge is None:
                self._edge = FileEdge()
            return self._edge

    def script_file(self, file_id: str, *answers: Answer) -> None:
        """Answer the next downloads of a hosted file with these, in order (then as usual)."""
        with self.state.lock:
            self.state.files[file_id].answers.extend(answers)

    # --- conversations -------------------------------------------------------------------

    def add_channel(
        self,
        channel: str,
        *,
        private: bool = False,
        bot_member: bool = True,
        members: tuple[str, ...] | None = None,
        archived: bool = False,
    ) -> None:
        """Declare a conversation (undeclared public channels and the bot's DMs exist, with
        the bot in them)."""
        with self.state.lock:
            self.state.conversations[channel] = Conversation(
                channel,
                private=private,
                bot_member=bot_member,
                members=frozenset(members) if members is not None else None,
                archived=archived,
            )

    def conversation(self, channel: str) -> Conversation | None:
        """A conversation as the bot sees it; None if it cannot see it."""
        with self.state.lock:
            declared = self.state.conversations.get(channel)
        return declared if declared is not None else implicit(channel)

    # --- faults and records --------------------------------------------------------------

    def inject(self, api: str, **fault: Any) -> None:
        """Fail the next call(s) of `api` ("*": of every API): status=429, retry_after=1;
        error="not_in_channel"."""
        with self.state.lock:
            self.state.faults.setdefault(api, []).append(Fault(**fault))

    def inject_only(self, api: str, **fault: Any) -> None:
        """The faults of every API replaced by this one, at once: no call answers normally in
        between, as one between clear_faults() and inject() could."""
        with self.state.lock:
            self.state.faults.clear()
            self.state.faults[api] = [Fault(**fault)]

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

    def rate_limited(self, api: str | None = None) -> list[Call]:
        """Calls answered 429, by rate limit or by an injected fault."""
        return [c for c in self.calls(api) if c.status == 429]

    def web_calls(self) -> list[Call]:
        """Every Web API method call (not file downloads, uploads or response_urls)."""
        return [c for c in self.calls() if c.path.startswith("/api/")]

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
        with self.state.recorded:
            self.state.calls.append(call)
            self.state.generation += 1
            self.state.recorded.notify_all()

    def wait_recorded(self, check: Callable[[], T | None], timeout: float) -> T:
        """`check()` once it is not None, looked at again as each call is recorded: a wait on
        a condition, not a poll (a benchmark's polling thread would take the interpreter from
        the stand-in's own handlers, and time the stand-in rather than the bot)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.state.recorded:
                generation = self.state.generation
            found = check()
            if found is not None:
                return found
            with self.state.recorded:
                while self.state.generation == generation:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError(f"nothing found within {timeout} s")
                    self.state.recorded.wait(left)

    def next_ts(self) -> str:
        """A fresh message ts."""
        n = next(self._ids)
        return f"{1700000000 + n}.{n:06d}"


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
