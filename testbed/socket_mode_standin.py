"""A loopback stand-in for Slack's Socket Mode endpoint: the WebSocket that
`apps.connections.open` hands out (RFC 6455 over plain TCP on 127.0.0.1, stdlib only).

It greets each connection with Slack's `hello`, answers pings, sends envelopes the way Slack does
(`slash_commands`, `events_api`, `interactive`, with `envelope_id` and `retry_attempt`) and
records every acknowledgement the app sends back (`{"envelope_id": ..., "payload": ...}`), so a
test drives the real `slack_sdk` Socket Mode client inside `python -m bot serve`.
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
from testbed.waiting import wait_until

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
            while True:
                opcode, data = _read_frame(self.sock)
                if opcode == PING:
                    self.send(PONG, data)
                elif opcode == CLOSE:
                    self.send(CLOSE, data[:2])
                    return
                elif opcode == TEXT:
                    self.owner._acked(json.loads(data))
        except (OSError, ConnectionError, ValueError):
            return
        finally:
            self.open = False
            self.sock.close()

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
        key = headers["sec-websocket-key"]
        accept = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()  # noqa: S324 - RFC 6455
        self.sock.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\n"
                "Upgrade: websocket\r\n"
                "Connection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )


class SocketModeStandIn:
    """Listens on 127.0.0.1; `url` is what `apps.connections.open` answers."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._ids = itertools.count(1)
        self._lock = threading.Condition()
        self._connections: list[_Connection] = []
        self.acks: dict[str, Ack] = {}
        self.sent: dict[str, float] = {}
        threading.Thread(target=self._accept, name="socket-mode-standin", daemon=True).start()

    @property
    def url(self) -> str:
        """The WebSocket URL (plain ws on a non-443 port, which slack_sdk's client allows)."""
        return f"ws://127.0.0.1:{self._listener.getsockname()[1]}/link/?ticket=standin"

    def close(self) -> None:
        """Stop listening and drop every connection."""
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
            self._lock.notify_all()

    def wait_connected(self, timeout: float = 20.0) -> None:
        """Wait until the app holds an open connection."""
        wait_until(
            lambda: any(c.open for c in self._connections),
            timeout=timeout,
            message="the app to open its Socket Mode connection",
        )

    def deliver(self, request: SlackRequest, retry_attempt: int = 0) -> str:
        """Send what would have been an HTTP request as a Socket Mode envelope; its id."""
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
        with self._lock:
            live = [c for c in self._connections if c.open]
        assert live, "no Socket Mode connection"
        self.sent[envelope_id] = time.time()
        live[-1].send(TEXT, json.dumps(envelope).encode())
        return envelope_id

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
