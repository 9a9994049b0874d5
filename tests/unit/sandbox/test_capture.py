"""Capture keeps the first bytes of a stream, counts the rest, and decodes without garbage."""

from __future__ import annotations

from bot.sandbox.capture import Capture


def test_output_under_the_limit_is_kept_whole() -> None:
    capture = Capture(10)
    capture.feed(b"hello ")
    capture.feed(b"you")
    assert (capture.text(), capture.truncated, capture.total) == ("hello you", False, 9)


def test_output_over_the_limit_keeps_the_first_bytes_and_counts_all() -> None:
    capture = Capture(4)
    for _ in range(1000):
        capture.feed(b"abc")
    assert (capture.data, capture.truncated, capture.total) == (b"abca", True, 3000)


def test_output_exactly_at_the_limit_is_not_truncated() -> None:
    capture = Capture(3)
    capture.feed(b"abc")
    assert not capture.truncated


def test_a_character_cut_by_the_limit_is_dropped_not_garbled() -> None:
    capture = Capture(5)
    capture.feed("aé€".encode())  # 1 + 2 + 3 bytes: the limit falls inside "€"
    assert capture.text() == "aé"


def test_invalid_utf8_is_replaced() -> None:
    capture = Capture(10)
    capture.feed(b"a\xffb\xe2\x82")  # a stray byte, then a sequence cut by the end of output
    assert capture.text() == "a\ufffdb\ufffd"
