"""Frames between the executor and a job supervisor: round trip, limits, EOF, deadlines."""

from __future__ import annotations

import os
import socket
import time

import pytest

from bot.sandbox.zygote import frames


def soon() -> float:
    return time.monotonic() + 5


def test_a_frame_round_trips() -> None:
    a, b = socket.socketpair()
    with a, b:
        frames.send(a, {"x": ["é", 1]}, soon())
        assert frames.recv(b, 1000, soon()) == {"x": ["é", 1]}


def test_a_closed_connection_before_a_frame_reads_as_none() -> None:
    a, b = socket.socketpair()
    with b:
        a.close()
        assert frames.recv(b, 1000, soon()) is None


def test_a_frame_over_the_limit_is_refused() -> None:
    a, b = socket.socketpair()
    with a, b:
        frames.send(a, "x" * 100, soon())
        with pytest.raises(frames.FrameError, match="over the limit"):
            frames.recv(b, 10, soon())


def test_a_half_frame_is_an_error() -> None:
    a, b = socket.socketpair()
    with b:
        a.sendall(b"\0\0\0\0\0\0\0\x10{")
        a.close()
        with pytest.raises(frames.FrameError, match="middle of a frame"):
            frames.recv(b, 1000, soon())


def test_waiting_past_the_deadline_is_an_error() -> None:
    a, b = socket.socketpair()
    with a, b, pytest.raises(frames.FrameError, match="timed out"):
        frames.recv(b, 1000, time.monotonic() + 0.05)


def test_a_descriptor_travels_with_its_frame_after_plain_ones() -> None:
    """How a supervisor hands the executor its job process's go pipe: after the ack, read
    as a plain frame, the next frame brings the pipe's write end, close-on-exec."""
    a, b = socket.socketpair()
    read, write = os.pipe()
    with a, b:
        frames.send(a, {"ack": 1}, soon())
        frames.send_fd(a, {"ready": True}, write, soon())
        os.close(write)
        frames.send(a, {"response": 2}, soon())
        assert frames.recv(b, 1000, soon()) == {"ack": 1}
        frame, fds = frames.recv_fds(b, 1000, soon())
        assert frame == {"ready": True} and len(fds) == 1
        assert not os.get_inheritable(fds[0])
        os.write(fds[0], b"1")
        os.close(fds[0])
        assert os.read(read, 10) == b"1"
        assert os.read(read, 10) == b""  # the one we got was the last write end
        assert frames.recv_fds(b, 1000, soon()) == ({"response": 2}, [])
        a.close()
        assert frames.recv_fds(b, 1000, soon()) == (None, [])
    os.close(read)
