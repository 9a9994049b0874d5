"""Messages to the bot (DMs, group DMs and mentions): shared .py files are remembered; a
request is journaled, then run (with the attached or the latest shared file) or answered in its
thread."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bot.core.commands import HelpCommand, RunCommand, TokenCommand, parse_command
from bot.core.models import Actor, HeldRequest, Upload
from bot.core.snippets import CODE_FILE_NAME, MessageCode, clean_code, take_code
from bot.errors import StoreError, UpstreamUnavailable, UsageError, UserError
from bot.slack import keys
from bot.slack.formatting import unescape, unlink
from bot.slack.intake.context import ROUTE, IntakeContext, no_run, refusal
from bot.slack.intake.journal import HeldKind, Journal
from bot.slack.intake.request import Asker
from bot.slack.origin import Kind
from bot.slack.uploads import NOT_SEEN, SlackFile

_MENTION = re.compile(r"<@[UW][A-Z0-9]+(?:\|[^>]*)?>")
NO_FILE = (
    "I see no code of yours here: attach a .py file to your message, put the code in a code "
    "block after `run` (three backticks before and after it), or share a .py file here "
    "first. " + NOT_SEEN
)
RUN_FIRST = (
    "To run the code in your code block, start the message with `run` (and a JSON input if the "
    'code needs one), like: run {"a": 1} and then the code block.'
)
BLOCK_AND_FILE = (
    "Your message has both a code block and a .py file: send one or the other, and I run it."
)
# Conversations whose messages need no mention to reach the bot. In a DM each one is a request;
# in a group DM, where people also talk to each other, only one that reads as a command is.
DIRECT = {"im": False, "mpim": True}  # channel type -> whether chatter is left alone


def _from_a_person(event: Mapping[str, Any]) -> bool:
    """Sent by a person (not a bot), in a conversation, with a timestamp to answer under."""
    return not event.get("bot_id") and all(event.get(k) for k in ("user", "channel", "ts"))


ONLY_BY_SLASH = (
    "API tokens are handed out only by the slash command, whose answer only you see, once: "
    "type `/job token` (or `/job token revoke`)."
)


class MessageIntake:
    """What happens behind the message and app_mention listeners."""

    def __init__(self, context: IntakeContext, journal: Journal) -> None:
        self.context = context
        self.journal = journal
        journal.register(HeldKind.MESSAGE, self._redo)

    def message(self, team: str, event: Mapping[str, Any], bot_user_id: str | None) -> None:
        """A message event: remember shared .py files; run or answer requests to the bot."""
        if not _from_a_person(event) or event.get("subtype") not in {None, "file_share"}:
            return
        text = str(event.get("text") or "")
        direct = str(event.get("channel_type") or "") in DIRECT
        mentioned = bool(bot_user_id) and f"<@{bot_user_id}" in text
        if not event.get("files") and not direct:
            return  # channel chatter; mentions of the bot arrive as app_mention too
        chatter_ok = DIRECT.get(str(event.get("channel_type") or ""), False) and not mentioned
        self._later(team, event, direct or mentioned, chatter_ok)

    def mention(self, team: str, event: Mapping[str, Any]) -> None:
        """An app_mention event: always a request to the bot."""
        if _from_a_person(event):
            self._later(team, event, True)

    def _later(
        self, team: str, event: Mapping[str, Any], is_request: bool, chatter_ok: bool = False
    ) -> None:
        """Requests to the bot are journaled (a file shared in passing only remembered).
        With `chatter_ok` a message that does not read as a command gets no answer."""

        def work() -> None:
            self._handle(team, event, is_request, chatter_ok)

        if not is_request:
            self.context.later(work)
            return
        asker = Asker.from_message(team, event)
        key = keys.message(asker.channel, asker.thread_ts)
        payload = {
            "team": team,
            "event": dict(event),
            "is_request": is_request,
            "chatter_ok": chatter_ok,
        }
        self.journal.hold(key, HeldKind.MESSAGE, payload, work, where=asker.where)

    def _redo(self, request: HeldRequest) -> bool:
        data = request.payload
        event = data.get("event")
        if not isinstance(event, dict):
            return False
        team = str(data.get("team") or "")
        self._handle(team, event, bool(data.get("is_request")), bool(data.get("chatter_ok")))
        return True

    def _handle(
        self, team: str, event: Mapping[str, Any], is_request: bool, chatter_ok: bool
    ) -> None:
        """A request's .py files are remembered once it was handled (its job stored): the
        write is not on the way to the job's result. A failed write propagates, so that a
        journaled request is kept and taken up again (its job is not stored twice)."""
        uploads: list[Upload] = []
        try:
            self._answer(team, event, is_request, chatter_ok, uploads)
        finally:
            if is_request:
                for upload in uploads:
                    self.context.memory.remember_upload(upload)

    def _answer(
        self,
        team: str,
        event: Mapping[str, Any],
        is_request: bool,
        chatter_ok: bool,
        uploads: list[Upload],
    ) -> None:
        """Handle the message; the .py files shared in it go to `uploads`, remembered now
        when the message is no request."""
        context, asker = self.context, Asker.from_message(team, event)
        channel = str(asker.channel)
        key = keys.message(channel, asker.thread_ts)
        files = [SlackFile.from_payload(f) for f in event.get("files") or [] if isinstance(f, dict)]
        try:
            actor = context.actor(asker)
            files = [context.fetcher.resolve(f) for f in files]  # Slack Connect stubs
            uploads += [
                Upload(
                    actor.user.id,
                    channel,
                    file.id,
                    file.name,
                    file.size or 0,
                    file.meta(),
                    context.service.clock.now(),
                )
                for file in files
                if file.is_python
            ]
            if not is_request:
                for upload in uploads:
                    context.memory.remember_upload(upload)
                return
            text = _MENTION.sub(" ", str(event.get("text") or "")).strip()
            found = _code_in(text, chatter_ok)
            if found is CHATTER:
                return  # people talking to each other in a group DM
            code = None
            if isinstance(found, MessageCode) and any(file.is_python for file in files):
                # Beside a .py file a block holding a JSON object is the input, fenced as
                # people fence it in Slack (`run ```{"a": 1}````); code there is ambiguous.
                if not found.code.strip().startswith("{"):
                    raise UsageError(BLOCK_AND_FILE)
            elif isinstance(found, MessageCode):
                text = found.text
                code = _decoded(found.code)
            if files and code is None and not text.lower().startswith("run"):
                return
            try:
                command = parse_command(unescape(text))
            except UsageError:
                if chatter_ok:
                    return  # people talking to each other in a group DM
                raise
            if chatter_ok and isinstance(command, HelpCommand) and command.unknown:
                return
            if code is not None and not isinstance(command, RunCommand):
                raise UsageError(RUN_FIRST)
            # A job is deduplicated by its idempotency key in the same transaction that stores
            # it, so a crash before that point never swallows Slack's re-delivery. Other
            # commands only answer, and answer once (the same message can arrive as
            # app_mention and as message, and be re-delivered).
            if not isinstance(command, RunCommand) and not context.memory.first_time(key):
                return
        except UsageError as exc:
            if context.memory.first_time(key):
                context.tell(asker.where, exc.message, exc.usage)
            return
        except (UserError, StoreError, UpstreamUnavailable) as exc:
            context.tell(asker.where, refusal(exc))
            return
        if isinstance(command, RunCommand):
            self._run(actor, asker, files, command, key, code=code)
            return
        if isinstance(command, TokenCommand):
            # An answer to a message can stay in the conversation (a DM is a lasting post);
            # a token is shown only in a slash command's ephemeral answer.
            context.tell(asker.where, ONLY_BY_SLASH)
            return
        reply = context.reply(
            lambda: context.handler.handle(
                actor,
                command,
                no_run,
                origin=asker.origin(Kind.MESSAGE),
                route=ROUTE,
                idempotency_key=key,
            )
        )
        context.answerer.tell(asker.where, reply)

    def _run(
        self,
        actor: Actor,
        asker: Asker,
        files: list[SlackFile],
        command: RunCommand,
        key: str,
        *,
        code: str | None = None,
    ) -> None:
        context = self.context
        python = [f for f in files if f.is_python]
        file = python[0] if python else (files[0] if files else None)
        refused = keys.refused(key)  # a refusal is told once, however often the message arrives
        if code is not None:
            if not self._input_ok(asker, command, refused):
                return
            context.submit_code(
                actor,
                asker,
                CODE_FILE_NAME,
                code,
                command.input_text,
                key=key,
                once=refused,
                data_files=files,  # a .py beside a code block was refused: data only
            )
            return
        if file is None:
            upload = context.latest_upload(actor, str(asker.channel))
            if upload is None:
                context.tell_once(asker.where, refused, NO_FILE)
                return
            file = SlackFile.from_upload(upload)
        if not self._input_ok(asker, command, refused):
            return
        context.submit(
            actor,
            asker,
            file,
            command.input_text,
            kind=Kind.MESSAGE,
            key=key,
            once=refused,
            data_files=[f for f in files if f is not file],  # attached beside the .py
        )

    def _input_ok(self, asker: Asker, command: RunCommand, refused: str) -> bool:
        """Whether the command's input is acceptable; if not, the refusal is told once."""
        try:
            self.context.check_input(command.input_text)
        except UserError as exc:
            self.context.tell_once(asker.where, refused, exc.message)
            return False
        return True


CHATTER = "chatter"


def _decoded(code: str) -> str:
    """A code block's body as the person typed it: Slack's link markup and entities undone,
    then the client's smart quotes (an empty block is a usage error, told once)."""
    try:
        return clean_code(unescape(unlink(code)))
    except UserError as exc:
        raise UsageError(exc.message) from exc


def _code_in(text: str, chatter_ok: bool) -> MessageCode | str | None:
    """The message's code block, None without one, or CHATTER for a group DM message that is
    not a request (people sharing code with each other): that gets no answer."""
    try:
        found = take_code(text)
    except UsageError:
        if chatter_ok and not text.lower().startswith("run"):
            return CHATTER
        raise
    if found is not None and not found.text.lower().startswith("run"):
        if chatter_ok:
            return CHATTER
        raise UsageError(RUN_FIRST)
    return found
