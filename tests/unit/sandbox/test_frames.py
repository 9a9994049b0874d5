"""Frames between the executor and a job supervisor: round trip, limits, EOF, deadlines."""

from __future__ import annotations

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
