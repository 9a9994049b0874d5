"""A loopback stand-in for Slack's Socket Mode endpoint: the WebSocket that
`apps.connections.open` hands out (RFC 6455 over plain TCP on 127.0.0.1, stdlib only).

It greets each connection with Slack's `hello`, answers pings, sends envelopes the way Slack does
(`slash_commands`, `events_api`, `interactive`, with `envelope_id` and `retry_attempt`) and
records every acknowledgement the app sends back (`{"envelope_id": ..., "payload": ...}`), so a
test drives the real `slack_sdk` Socket Mode client inside `python -m bot serve`.

As Slack does, it sends an Events API envelope left unacknowledged again (after `ack_timeout_s`,
with `retry_attempt` one higher and `retry_reason` "timeout", at most three times, on the newest
connection); slash commands and interactions are never sent again. A test can drop the
connections (`drop`) or ask the app to reconnect with a `disconnect` envelope (`disconnect`).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

from testbed.slack_requests import SlackRequest

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA


@dataclass(frozen=True)
class Ack:
    """What the app answered to one envelope."""

    envelope_id: str
    payload: dict[str, Any]
    at: float


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _frame(opcode: int, data: bytes) -> bytes:
    """A server frame: FIN set, never masked."""
    size = len(data)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, size)
    return header + data


def _read_frame(sock: socket.socket) -> tuple[int, bytes]:
    """One client frame (clients must mask), unmasked; fragments are not used by slack_sdk."""
    first, second = _recv_exactly(sock, 2)
    opcode, size = first & 0x0F, second & 0x7F
    if size == 126:
        (size,) = struct.unpack("!H", _recv_exactly(sock, 2))
    elif size == 127:
        (size,) = struct.unpack("!Q", _recv_exactly(sock, 8))
    mask = _recv_exactly(sock, 4) if second & 0x80 else b"\0\0\0\0"
    data = _recv_exactly(sock, size)
    return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


class _Connection:
    def __init__(self, owner: SocketModeStandIn, sock: socket.socket) -> None:
        self.owner = owner
        self.sock = sock
        self.send_lock = threading.Lock()
        self.open = True
        self.greeted = False  # the handshake is done and `hello` was sent
        self.deaf = False  # about to be cut: what the app sends on it is lost, as in a drop

    def send(self, opcode: int, data: bytes) -> None:
        with self.send_lock:
            self.sock.sendall(_frame(opcode, data))

    def serve(self) -> None:
        try:
            self._handshake()
            hello = {
                "type": "hello",
                "num_connections": 1,
                "debug_info": {"host": "standin", "approximate_connection_time": 3600},
                "connection_info": {"app_id": "A0APP"},
            }
            self.send(TEXT, json.dumps(hello).encode())
            self.greeted = True
            with self.owner._lock:
                self.owner._lock.notify_all()
            while True:
                opcode, data = _read_frame(self.sock)
                if opcode == PING:
                    self.send(PONG, data)
                elif opcode == CLOSE:
                    self.send(CLOSE, data[:2])
                    return
                elif opcode == TEXT and not self.deaf:
                    self.owner._acked(json.loads(data))
        except (OSError, ConnectionError, ValueError):
            return
        finally:
            self.open = False
            self.sock.close()
            with self.owner._lock:
                self.owner._lock.notify_all()

    def cut(self) -> None:
        """Drop the connection from this side, without a close frame (as a network drop)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _handshake(self) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            request += chunk
        headers = {}
        for line in request.decode("latin-1").split("\r\n")[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        key = headers.get("sec-websocket-key")
        if key is None or headers.get("upgrade", "").lower() != "websocket":
            # As a real WebSocket endpoint: a request that is not an upgrade gets a 400.
            self.sock.sendall(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            raise ConnectionError("not a WebSocket upgrade")
        accept = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()  # noqa: S324 - RFC 6455
        self.sock.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\n"
                "Upgrade: websocket\r\n"
                "Connection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )


MAX_RETRIES = 3  # Slack sends an unacknowledged event again at most this many times


@dataclass(frozen=True)
class Delivery:
    """One envelope sent (an envelope sent again is another delivery of the same id)."""

    envelope_id: str
    retry_attempt: int
    connection: int  # which connection carried it (1 is the first the app opened)
    at: float


class SocketModeStandIn:
    """Listens on 127.0.0.1; `url` is what `apps.connections.open` answers."""

    def __init__(self, ack_timeout_s: float = 3.0) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._ids = itertools.count(1)
        self._lock = threading.Condition()
        self._connections: list[_Connection] = []
        self.ack_timeout_s = ack_timeout_s
        self.acks: dict[str, Ack] = {}
        self.sent: dict[str, float] = {}
        self.deliveries: list[Delivery] = []
        self._unacked: dict[str, dict[str, Any]] = {}  # events_api envelopes awaiting an ack
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name="socket-mode-standin", daemon=True).start()
        threading.Thread(target=self._redeliver, name="socket-mode-retries", daemon=True).start()

    @property
    def url(self) -> str:
        """The WebSocket URL (plain ws on a non-443 port, which slack_sdk's client allows)."""
        return f"ws://127.0.0.1:{self._listener.getsockname()[1]}/link/?ticket=standin"

    def close(self) -> None:
        """Stop listening and drop every connection."""
        self._closed.set()
        self._listener.close()
        with self._lock:
            for connection in self._connections:
                try:
                    connection.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def __enter__(self) -> SocketModeStandIn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            connection = _Connection(self, sock)
            with self._lock:
                self._connections.append(connection)
                self._lock.notify_all()
            threading.Thread(target=connection.serve, daemon=True).start()

    def _acked(self, message: dict[str, Any]) -> None:
        envelope_id = str(message.get("envelope_id") or "")
        with self._lock:
            self.acks[envelope_id] = Ack(envelope_id, message.get("payload") or {}, time.time())
            self._unacked.pop(envelope_id, None)
            self._lock.notify_all()

    @property
    def opened(self) -> int:
        """How many connections the app has opened so far."""
        with self._lock:
            return sum(1 for c in self._connections if c.greeted)

    def wait_connected(self, after: int = 0, timeout: float = 20.0) -> int:
        """Wait until the app holds an open connection, one of those it opened after the first
        `after`; the connection's number."""
        with self._lock:
            got = self._lock.wait_for(lambda: self._live(after) is not None, timeout=timeout)
            assert got, f"the app did not open a Socket Mode connection after {after} in time"
            return self._connections.index(self._live(after)) + 1  # type: ignore[arg-type]

    def _live(self, after: int = 0) -> _Connection | None:
        """The newest open, greeted connection past the first `after` (lock held)."""
        live = [c for c in self._connections[after:] if c.open and c.greeted and not c.deaf]
        return live[-1] if live else None

    def live_count(self) -> int:
        """How many connections are open now."""
        with self._lock:
            return sum(1 for c in self._connections if c.open)

    def drop(self) -> None:
        """Drop every connection, as a network failure would."""
        with self._lock:
            connections = [c for c in self._connections if c.open]
        for connection in connections:
            connection.cut()

    def disconnect(self, reason: str = "refresh_requested") -> None:
        """Send Slack's `disconnect` envelope on the open connections: the app must connect
        anew (apps.connections.open) and leave the old connection."""
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "standin"}}
        with self._lock:
            connections = [c for c in self._connections if c.open and c.greeted]
        for connection in connections:
            connection.send(TEXT, json.dumps(message).encode())

    def deliver(
        self, request: SlackRequest, retry_attempt: int = 0, *, cut_before_ack: bool = False
    ) -> str:
        """Send what would have been an HTTP request as a Socket Mode envelope; its id. With
        `cut_before_ack` the connection is dropped right after the envelope went out, so its
        acknowledgement cannot arrive (an event is then sent again on the next connection)."""
        kind, payload = envelope_of(request)
        envelope_id = f"{next(self._ids):04d}-{os.urandom(4).hex()}"
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": retry_attempt,
            "retry_reason": "timeout" if retry_attempt else "",
        }
        connection = self._send(envelope, deaf=cut_before_ack)
        assert connection is not None, "no Socket Mode connection"
        if cut_before_ack:
            connection.cut()
        return envelope_id

    def _send(self, envelope: dict[str, Any], deaf: bool = False) -> _Connection | None:
        """Send an envelope on the newest connection (None if there is none); `deaf`: that
        connection is about to be cut, and an ack the app sends before the cut is lost (else
        a fast app could ack before it, and nothing would be sent again)."""
        with self._lock:
            connection = self._live()
            if connection is None:
                return None
            connection.deaf = connection.deaf or deaf
            number = self._connections.index(connection) + 1
            envelope_id = str(envelope["envelope_id"])
            self.sent[envelope_id] = time.time()
            self.deliveries.append(
                Delivery(envelope_id, int(envelope["retry_attempt"]), number, time.time())
            )
            if envelope["type"] == "events_api":
                self._unacked[envelope_id] = envelope
        try:
            connection.send(TEXT, json.dumps(envelope).encode())
        except OSError:
            pass  # the connection went away meanwhile: sent again later, like any unacked event
        return connection

    def _redeliver(self) -> None:
        """Send events left unacknowledged again, as Slack does."""
        while not self._closed.wait(0.05):
            now = time.time()
            with self._lock:
                due = [
                    envelope
                    for envelope_id, envelope in self._unacked.items()
                    if now - self.sent[envelope_id] > self.ack_timeout_s
                    and envelope["retry_attempt"] < MAX_RETRIES
                ]
            for envelope in due:
                again = {**envelope, "retry_attempt": envelope["retry_attempt"] + 1}
                again["retry_reason"] = "timeout"
                self._send(again)

    def deliveries_of(self, envelope_id: str) -> list[Delivery]:
        """Every time an envelope was sent."""
        with self._lock:
            return [d for d in self.deliveries if d.envelope_id == envelope_id]

    def ack(self, envelope_id: str, timeout: float = 10.0) -> Ack:
        """The app's acknowledgement of an envelope (fails if none comes in time)."""
        with self._lock:
            got = self._lock.wait_for(lambda: envelope_id in self.acks, timeout=timeout)
            assert got, f"no ack for envelope {envelope_id}"
            return self.acks[envelope_id]


def envelope_of(request: SlackRequest) -> tuple[str, dict[str, Any]]:
    """(envelope type, payload) of a request built for HTTP mode by testbed.slack_requests."""
    if request.headers["content-type"].startswith("application/json"):
        return "events_api", json.loads(request.body)
    if request.body.startswith("payload="):
        return "interactive", json.loads(unquote(request.body[len("payload=") :]))
    return "slash_commands", dict(parse_qsl(request.body))
