"""The zygote's wire: length-prefixed JSON frames on a stream socket, with deadlines and a cap."""

from __future__ import annotations

import json
import socket
import struct
import time
from typing import Any

_HEADER = struct.Struct(">Q")


class FrameError(OSError):
    """The peer sent something that is not a frame, or took too long."""


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise FrameError("timed out waiting for the other side")
    return left


def encode(obj: Any) -> bytes:
    """One frame: the length, then the JSON."""
    data = json.dumps(obj).encode("utf-8")
    return _HEADER.pack(len(data)) + data


def send(sock: socket.socket, obj: Any, deadline: float) -> None:
    """Send one JSON frame before `deadline` (time.monotonic())."""
    frame = encode(obj)
    sock.settimeout(_left(deadline))
    try:
        sock.sendall(frame)
    except TimeoutError as exc:
        raise FrameError("timed out sending a frame") from exc


def _exactly(sock: socket.socket, size: int, deadline: float) -> bytes | None:
    chunks, got = [], 0
    while got < size:
        sock.settimeout(_left(deadline))
        try:
            chunk = sock.recv(min(size - got, 1 << 20))
        except TimeoutError as exc:
            raise FrameError("timed out waiting for a frame") from exc
        if not chunk:
            if got:
                raise FrameError("the connection closed in the middle of a frame")
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv(sock: socket.socket, limit: int, deadline: float) -> Any:
    """The next frame's object, or None if the peer closed the connection first."""
    header = _exactly(sock, _HEADER.size, deadline)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > limit:
        raise FrameError(f"a frame of {size} bytes is over the limit of {limit}")
    data = _exactly(sock, size, deadline) if size else b""
    if data is None:
        raise FrameError("the connection closed in the middle of a frame")
    try:
        return json.loads(data)
    except ValueError as exc:
        raise FrameError(f"a frame is not JSON: {exc}") from exc
