"""Bounded capture of one output stream: keeps the first bytes, counts and drops the rest."""

from __future__ import annotations

import codecs


class Capture:
    """The first `limit` bytes of a stream; everything after is counted, then discarded."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0
        self._kept = bytearray()

    def feed(self, data: bytes) -> None:
        """Take the next chunk read from the stream."""
        self.total += len(data)
        room = self.limit - len(self._kept)
        if room > 0:
            self._kept += data[:room]

    @property
    def truncated(self) -> bool:
        """True when the stream was longer than the limit."""
        return self.total > self.limit

    @property
    def data(self) -> bytes:
        """The kept bytes."""
        return bytes(self._kept)

    def text(self) -> str:
        """The kept bytes as text; a character cut in half at the limit is dropped, not garbled."""
        if not self.truncated:
            return self._kept.decode("utf-8", "replace")
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        return decoder.decode(bytes(self._kept), final=False)
