"""The console's terminal: lines read with line editing when there is a terminal, and lines
written from any thread, a notice printed over the prompt redrawing it and the half-typed line
after it, as readline-based shells do."""

from __future__ import annotations

import sys
import threading
from types import ModuleType
from typing import TextIO

CLEAR_LINE = "\r\x1b[K"  # back to the start of the line, and erase it


def _line_editing(stdin: TextIO, out: TextIO) -> ModuleType | None:
    """The readline module when input() edits lines here (both ends are a terminal)."""
    if not (stdin.isatty() and out.isatty()):
        return None
    try:
        import readline  # line editing and history for input()
    except ImportError:  # pragma: no cover - not on every platform
        return None
    return readline


class Screen:
    """Reads a line after a prompt, and writes lines that may arrive while one is typed."""

    def __init__(self, out: TextIO, stdin: TextIO | None = None) -> None:
        self.out = out
        self._lock = threading.Lock()
        self._prompt: str | None = None  # shown, and input() waiting after it
        self._readline = _line_editing(stdin or sys.stdin, out)

    def read(self, prompt: str) -> str:
        """A line typed after `prompt` (EOFError at end of input, KeyboardInterrupt on ^C)."""
        with self._lock:
            self._prompt = prompt
        try:
            return input(prompt)
        finally:
            with self._lock:
                self._prompt = None

    def write(self, text: str) -> None:
        """Write a line. Over a prompt being typed at, the line goes where the prompt was, and
        the prompt and what was typed so far are drawn again below it."""
        with self._lock:
            if self._prompt is not None and self._readline is not None:
                typed = self._readline.get_line_buffer()
                self.out.write(f"{CLEAR_LINE}{text}\n{self._prompt}{typed}")
            else:
                self.out.write(text + "\n")
            self.out.flush()
