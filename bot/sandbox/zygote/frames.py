"""The zygote's wire: length-prefixed JSON frames on a stream socket, with deadlines and a cap."""

from __future__ import annotations

import array
import json
import os
import socket
import struct
import time
from typing import Any

_HEADER = struct.Struct(">Q")  # 8 bytes
GO = b"1"  # on a prepared job process's go pipe, after its request: the code may start


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
    return _body(sock, header, limit, deadline)


def _body(sock: socket.socket, header: bytes, limit: int, deadline: float) -> Any:
    """The object of the frame whose header is `header`, read after it."""
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


def send_fd(sock: socket.socket, obj: Any, fd: int, deadline: float) -> None:
    """Send one JSON frame with a file descriptor on its first byte (SCM_RIGHTS)."""
    frame = encode(obj)
    sock.settimeout(_left(deadline))
    try:
        sent = socket.send_fds(sock, [frame], [fd])
        if sent < len(frame):
            sock.sendall(frame[sent:])
    except TimeoutError as exc:
        raise FrameError("timed out sending a frame") from exc


def recv_fds(sock: socket.socket, limit: int, deadline: float) -> tuple[Any, list[int]]:
    """The next frame's object and the descriptors sent with it (close-on-exec; the
    caller's to close), or (None, []) if the peer closed the connection first."""
    sock.settimeout(_left(deadline))
    fds = array.array("i")
    try:  # (socket.recv_fds drops its flags: no close-on-exec)
        head, ancillary, _, _ = sock.recvmsg(
            _HEADER.size, socket.CMSG_SPACE(4 * fds.itemsize), socket.MSG_CMSG_CLOEXEC
        )
    except TimeoutError as exc:
        raise FrameError("timed out waiting for a frame") from exc
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    return _rest_of_frame(sock, head, list(fds), limit, deadline)


def _rest_of_frame(
    sock: socket.socket, head: bytes, fds: list[int], limit: int, deadline: float
) -> tuple[Any, list[int]]:
    """The frame whose first bytes are `head`, with `fds`; they are closed if it fails."""
    try:
        if not head:
            if fds:
                raise FrameError("descriptors without a frame")
            return None, []
        rest = _exactly(sock, _HEADER.size - len(head), deadline) if len(head) < 8 else b""
        if rest is None:
            raise FrameError("the connection closed in the middle of a frame")
        return _body(sock, head + rest, limit, deadline), fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
