"""Code sent in a message: one fenced code block (three backticks, tagged `python` or not)
beside the command, taken out of the text and cleaned of what a chat client adds."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.core.inputs import SMART_QUOTES
from bot.errors import InvalidFile, UsageError

FENCE = "```"
_BLOCK = re.compile(r"```(.*?)```", re.DOTALL)
# a language tag alone on the block's first line (Slack shows it as code; people type it)
_LANGUAGE = re.compile(r"\A[ \t]*(?:python3?|py)[ \t]*\r?\n", re.IGNORECASE)
CODE_FILE_NAME = "message.py"  # what a job from a code block is called
HOW = "Put the code between three backticks (```), after `run` and the JSON input if any."


@dataclass(frozen=True)
class MessageCode:
    """A message split into its command text and the body of its one code block (raw: the
    caller decodes it as its chat encodes text, then cleans it with `clean_code`)."""

    text: str
    code: str


def take_code(text: str) -> MessageCode | None:
    """The message's code block and the text around it; None when it has no fence at all.
    UsageError for two blocks or one that is never closed."""
    if FENCE not in text:
        return None
    blocks = list(_BLOCK.finditer(text))
    leftover = _BLOCK.sub("", text)
    if not blocks or FENCE in leftover:
        raise UsageError("Your code block is not closed: end it with three backticks (```). " + HOW)
    if len(blocks) > 1:
        raise UsageError(
            f"Your message has {len(blocks)} code blocks; I run one. Put all the code to run "
            "in a single block, or send it as a .py file."
        )
    block = blocks[0]
    rest = (text[: block.start()] + " " + text[block.end() :]).strip()
    return MessageCode(rest, _LANGUAGE.sub("", block.group(1), count=1))


def _compiles(code: str) -> bool:
    try:
        compile(code, CODE_FILE_NAME, "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def clean_code(code: str) -> str:
    """The code as the person meant it: no-break spaces (which some clients put in indents)
    as spaces, and a client's smart quotes undone, but only when that is what makes the
    code valid Python (a curly quote inside a string is kept). InvalidFile when empty."""
    code = code.replace("\u00a0", " ").strip("\r\n")
    if not code.strip():
        raise InvalidFile("Your code block is empty: there is no code to run. " + HOW)
    if not _compiles(code):
        fixed = code.translate(SMART_QUOTES)
        if fixed != code and _compiles(fixed):
            code = fixed
    return code + "\n"
