"""Slack file -> (name, bytes), with checks: .py only, size from the payload before any
download, a streamed size cap, HTML sign-in pages refused, and the bot token sent only to
Slack's file host or the configured Web API host."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError

from bot.core.inputs import clean_file_name
from bot.core.metrics import Metrics
from bot.core.models import Upload
from bot.core.units import human_bytes
from bot.errors import InvalidFile, UpstreamUnavailable
from bot.slack.failures import classify, record

log = logging.getLogger(__name__)

FILE_HOST = ("https", "files.slack.com", 443)
# Why jobbot may not see a file someone shared, and what to do about it.
NOT_SEEN = (
    "A file shared before jobbot was in this conversation is invisible to it: invite it with "
    "`/invite @jobbot` if it is not here, then share the file again."
)
MAX_REDIRECTS = 3
CHUNK = 65536


@dataclass(frozen=True)
class SlackFile:
    """What a Slack payload says about a shared file."""

    id: str
    name: str
    size: int | None = None
    url: str | None = None
    stub: bool = False  # Slack Connect: only an id; files.info has the rest
    filetype: str | None = None  # Slack's idea of the content: "python" for a Python snippet

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> SlackFile:
        """From a file object of an event or a file_input."""
        size = data.get("size")
        return cls(
            id=str(data.get("id", "")),
            name=str(data.get("name") or data.get("title") or ""),
            size=size if isinstance(size, int) else None,
            url=data.get("url_private_download") or data.get("url_private"),
            stub=data.get("mode") == "file_access" or not data.get("url_private"),
            filetype=str(data["filetype"]) if data.get("filetype") else None,
        )

    @classmethod
    def from_upload(cls, upload: Upload) -> SlackFile:
        """From a remembered upload."""
        meta = upload.meta
        filetype = meta.get("filetype")
        return cls(
            upload.file_id,
            upload.file_name,
            upload.size,
            meta.get("url"),
            bool(meta.get("stub")),
            str(filetype) if filetype else None,
        )

    def meta(self) -> dict[str, Any]:
        """What is remembered of an upload, to fetch it later."""
        return {"url": self.url, "stub": self.stub, "filetype": self.filetype}

    @property
    def is_python(self) -> bool:
        """Whether the name ends in .py, or Slack says it is Python (a text snippet of
        Python, named "Untitled" or whatever its title is)."""
        return self.filetype == "python" or clean_file_name(self.name).lower().endswith(".py")

    @property
    def run_name(self) -> str:
        """The name its job gets: the file's, with `.py` added to a Python snippet's."""
        name = clean_file_name(self.name)
        if name.lower().endswith(".py") or self.filetype != "python":
            return name
        return (name.removesuffix(".txt") or "snippet") + ".py"


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are followed by hand, so each hop's host is checked before the token goes."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_URL_SAFE = ":/?#[]@!$&'()*+,;=%~"  # reserved characters and escapes stay as they are


def _not_handed_over(name: str, detail: str = "") -> str:
    """What the person is told when Slack's file host did not answer."""
    said = f" ({detail})" if detail else ""
    return (
        f"Slack did not hand over {name}{said}: a problem on Slack's side, not yours. "
        "Nothing was saved; try again in a minute."
    )


class FileFetcher:
    """Downloads shared files for jobs."""

    def __init__(
        self,
        client: WebClient,
        token: str,
        api_url: str,
        max_bytes: int,
        *,
        timeout: float = 10.0,
        metrics: Metrics | None = None,
    ) -> None:
        self.client = client
        self.token = token
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.metrics = metrics
        self.allowed = {FILE_HOST, _origin(api_url)}
        self._opener = urllib.request.build_opener(_NoRedirect)

    def check(self, file: SlackFile) -> None:
        """Refuse from the payload alone: not a .py file, or too big."""
        name = clean_file_name(file.name) or "The file"
        if not file.is_python:
            raise InvalidFile(
                f"{name} is not a Python file: jobbot runs .py files. "
                "Save your script as a .py file and share it again."
            )
        if file.size is not None and file.size > self.max_bytes:
            raise InvalidFile(
                f"{name} is {human_bytes(file.size)}; the limit is {human_bytes(self.max_bytes)}."
            )

    def resolve(self, file: SlackFile) -> SlackFile:
        """The full file object of a Slack Connect stub, from files.info."""
        if not file.stub:
            return file
        try:
            info = self.client.files_info(file=file.id)["file"]
        except SlackClientError as exc:
            failure = classify(exc)
            record(self.metrics, failure, "files.info")
            if failure.transient:
                raise UpstreamUnavailable(
                    f"files.info failed ({failure.kind})",
                    "Slack did not answer about the file just now: a problem on Slack's side, "
                    "not yours. Nothing was saved; try again in a minute.",
                ) from exc
            raise InvalidFile(
                f"Slack would not share that file with jobbot ({failure.kind}). {NOT_SEEN}"
            ) from exc
        resolved = SlackFile.from_payload(info)
        return SlackFile(
            resolved.id, resolved.name, resolved.size, resolved.url, False, resolved.filetype
        )

    def fetch(self, file: SlackFile) -> tuple[str, bytes]:
        """(name, bytes) of a shared .py file. InvalidFile (a UserError) when the file itself
        will not do, with what to fix; UpstreamUnavailable when Slack did not answer (down,
        unreachable, 5xx, 429): nothing the person did, they may simply try again later."""
        file = self.resolve(file)
        self.check(file)
        return self._download(file, self.max_bytes, file.run_name)

    def fetch_data(self, file: SlackFile, max_bytes: int) -> tuple[str, bytes]:
        """(name, bytes) of a data file shared beside the .py, of at most `max_bytes`."""
        file = self.resolve(file)
        name = clean_file_name(file.name) or "The file"
        if file.size is not None and file.size > max_bytes:
            raise self._too_big(name, file.size, limit=max_bytes)
        return self._download(file, max_bytes, clean_file_name(file.name))

    def _download(self, file: SlackFile, max_bytes: int, name: str) -> tuple[str, bytes]:
        if not file.url:
            raise InvalidFile(f"Slack gave no download link for {name}. Share it again.")
        url = file.url
        for _ in range(MAX_REDIRECTS + 1):
            trusted = _origin(url) in self.allowed
            if not trusted and url == file.url:
                raise InvalidFile(
                    f"{name} is not stored on Slack's file host, so jobbot will not fetch it."
                )
            try:
                # a file name with spaces or non-ASCII letters may come unencoded in the link
                url = quote(url, safe=_URL_SAFE)
                request = urllib.request.Request(url, headers={"User-Agent": "jobbot"})  # noqa: S310
            except ValueError as exc:
                raise InvalidFile(f"Slack gave an unusable download link for {name}.") from exc
            if trusted:
                request.add_unredirected_header("Authorization", f"Bearer {self.token}")
            try:
                with self._opener.open(request, timeout=self.timeout) as response:
                    return name, self._read(name, response, max_bytes)
            except urllib.error.HTTPError as exc:
                location = (
                    exc.headers.get("Location") if exc.code in {301, 302, 303, 307, 308} else None
                )
                if location is None:
                    raise self._http_error(name, exc.code) from exc
                url = urljoin(url, location)
                if urlsplit(url).scheme not in {"http", "https"}:
                    break
            except (urllib.error.URLError, OSError) as exc:
                record(self.metrics, classify(exc), "file download")
                raise UpstreamUnavailable(
                    f"download of {name} failed: {exc}", _not_handed_over(name)
                ) from exc
        raise InvalidFile(f"Slack kept redirecting the download of {name}. Share it again.")

    def _http_error(self, name: str, code: int) -> InvalidFile | UpstreamUnavailable:
        if self.metrics is not None:
            kind = "download_server_error" if code >= 500 else "download_refused"
            self.metrics.inc(
                "jobbot_slack_errors_total", "Slack Web API errors by kind.", kind=kind
            )
        if code >= 500 or code == 429:
            return UpstreamUnavailable(
                f"download of {name}: HTTP {code}", _not_handed_over(name, f"HTTP {code}")
            )
        return InvalidFile(f"{name} could not be downloaded from Slack (HTTP {code}). {NOT_SEEN}")

    def _read(self, name: str, response: Any, max_bytes: int) -> bytes:
        content_type = str(response.headers.get("Content-Type", "")).lower()
        length = response.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > max_bytes:
            raise self._too_big(name, int(length), limit=max_bytes)
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = response.read(CHUNK)
            if not chunk:
                break
            total += len(chunk)
            if total > max_bytes:
                raise self._too_big(name, total, at_least=True, limit=max_bytes)
            chunks.append(chunk)
        data = b"".join(chunks)
        head = data[:200].lstrip().lower()
        page = "text/html" in content_type or head.startswith((b"<!doctype html", b"<html"))
        if page and not name.lower().endswith((".html", ".htm")):
            raise InvalidFile(
                f"Slack sent a sign-in page instead of {name}: jobbot may not read files here. "
                "An admin must give the app the files:read scope and reinstall it."
            )
        return data

    def _too_big(
        self, name: str, size: int, at_least: bool = False, limit: int | None = None
    ) -> InvalidFile:
        more = "more than " if at_least else ""
        limit = self.max_bytes if limit is None else limit
        return InvalidFile(
            f"{name} is {more}{human_bytes(size)}; the limit is {human_bytes(limit)}."
        )
