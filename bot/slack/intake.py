"""Intake: what happens behind each listener. Replies that need the database are computed
within a budget (the ack must leave within 3 s); downloads and submissions run on our own
pool after the ack, never on Bolt's listener threads."""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import re
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from slack_sdk import WebClient

from bot.core.commands import RunCommand, parse_command, parse_job_id
from bot.core.handler import CommandHandler
from bot.core.inputs import check_input
from bot.core.metrics import Metrics
from bot.core.models import Actor, HeldRequest, Identity, Upload
from bot.core.replies import UNAVAILABLE, Reply
from bot.core.service import JobService
from bot.errors import StoreError, UsageError, UserError
from bot.slack import journal
from bot.slack.answers import Answerer, Where
from bot.slack.formatting import Message, unescape
from bot.slack.home import HomePublisher
from bot.slack.memory import SlackMemory
from bot.slack.origin import Kind, Origin
from bot.slack.posting import CallFailed, call
from bot.slack.replyviews import problem, render
from bot.slack.uploads import FileFetcher, SlackFile
from bot.slack.views import FILE_ACTION, FILE_BLOCK, INPUT_ACTION, INPUT_BLOCK, run_modal

log = logging.getLogger(__name__)
ROUTE = "slack"
# How long an unacknowledged request waits for its journal record: with the replay check's
# own budget it keeps the ack well inside Slack's 3 s even when the database hangs.
HOLD_BUDGET_S = 0.8
WORKING = "Working on it…"
OOPS = "Something went wrong on jobbot's side; nothing was changed. Please try again."
_MENTION = re.compile(r"<@[UW][A-Z0-9]+(?:\|[^>]*)?>")


class Held(enum.Enum):
    """What became of a request's journal record by the time the ack must leave."""

    HELD = "held"  # recorded: the work is under way
    DOWN = "down"  # the database refused: nothing was saved
    PENDING = "pending"  # not known yet: the work (or a private answer) follows


@dataclass(frozen=True)
class Asker:
    """Who asked, and where."""

    team: str
    user: str
    channel: str | None = None
    response_url: str | None = None
    thread_ts: str | None = None
    display_name: str | None = None

    @property
    def where(self) -> Where:
        """Where private answers go."""
        return Where(self.user, self.channel, self.response_url, self.thread_ts)

    def origin(self, kind: Kind) -> dict[str, Any]:
        """The origin stored with a job this asker submits."""
        origin = Origin(kind, self.team, self.user, self.channel, self.response_url, self.thread_ts)
        return origin.to_dict()


def refusal(exc: UserError | StoreError) -> str:
    """What to tell the person whose request could not be done: their mistake as it is
    worded, a database failure as UNAVAILABLE (its cause goes to the log, not to them)."""
    if isinstance(exc, UserError):
        return exc.message
    log.warning("database failed under a slack request: %s", exc)
    return UNAVAILABLE.message


def first_line(message: str, limit: int = 150) -> str:
    """The first line of a message, short enough for a modal field error."""
    line = message.strip().splitlines()[0] if message.strip() else message
    return line if len(line) <= limit else line[: limit - 1] + "…"


class Intake:
    """Turns Slack requests into service calls and answers."""

    def __init__(
        self,
        service: JobService,
        handler: CommandHandler,
        fetcher: FileFetcher,
        answerer: Answerer,
        client: WebClient,
        *,
        memory: SlackMemory,
        pool: Executor,
        home: HomePublisher,
        upload_window: float = 900.0,
        reply_budget: float = 2.0,
        hold_lease_s: float = journal.HOLD_LEASE_S,
        metrics: Metrics | None = None,
    ) -> None:
        self.service = service
        self.memory = memory
        self.handler = handler
        self.fetcher = fetcher
        self.answerer = answerer
        self.client = client
        self.pool = pool
        self.home = home
        self.upload_window = upload_window
        self.reply_budget = reply_budget
        self.hold_lease_s = hold_lease_s
        self.metrics = metrics

    # --- helpers ---------------------------------------------------------------------------

    def actor(self, asker: Asker) -> Actor:
        """The jobbot user behind a Slack user (created on first contact)."""
        return self.service.actor(Identity("slack", asker.team, asker.user), asker.display_name)

    def latest_upload(self, actor: Actor, channel: str) -> Upload | None:
        """The actor's latest .py file shared in that conversation within the upload window."""
        since = self.service.clock.now() - timedelta(seconds=self.upload_window)
        return self.memory.latest_upload(actor.user.id, channel, since)

    def later(self, fn: Callable[[], None]) -> Future[None]:
        """Run work after the ack on the intake pool; failures are logged, never raised."""

        def guarded() -> None:
            try:
                fn()
            except Exception:
                log.exception("slack intake failed")

        return self.pool.submit(guarded)

    def journaled(
        self,
        key: str,
        kind: str,
        payload: Mapping[str, Any],
        work: Callable[[], None],
        *,
        where: Where,
        budget: float | None = None,
    ) -> Held:
        """Record the request in the database (journal), then do `work` on the intake pool: if
        this process dies before finishing it, another takes it up (journal.Sweeper). A
        request already held is left to its handler.

        With a `budget` (the request is not acknowledged yet) the hold is waited for that
        long: HELD, or DOWN (the database refused: nothing was saved, say so in the ack), or
        PENDING (no answer in time: ack "working on it"; the work follows the hold, or the
        person is told privately that nothing was saved). Without one (already acknowledged)
        it is PENDING, and if the hold fails the work runs unjournaled and says what it can.
        """
        hold = self.pool.submit(self.memory.hold_request, key, kind, payload, self.hold_lease_s)

        def settle(done: Future[bool]) -> None:
            try:
                fresh = done.result()
            except StoreError as exc:
                log.warning("request not journaled: %s", exc)
                if budget is None:
                    self.later(work)
                else:
                    self.answerer.tell(where, render(UNAVAILABLE))
                return
            except Exception:
                log.exception("journal hold failed")
                self.answerer.tell(where, problem(OOPS))
                return
            if fresh:
                self.later(lambda: self._finish_held(key, work))

        if budget is None:
            hold.add_done_callback(settle)
            return Held.PENDING
        try:
            hold.result(timeout=budget)
        except StoreError as exc:
            log.warning("request not journaled: %s", exc)
            return Held.DOWN
        except TimeoutError:
            hold.add_done_callback(settle)
            return Held.PENDING
        except Exception:
            log.exception("journal hold failed")
            return Held.DOWN
        settle(hold)
        return Held.HELD

    def _finish_held(self, key: str, work: Callable[[], None]) -> None:
        try:
            work()
        finally:
            try:
                self.memory.drop_held_request(key)
            except StoreError:
                # Still held: it is taken up again later, and handled idempotently.
                log.warning("could not drop a handled request from the journal")

    def take_up(self, request: HeldRequest) -> None:
        """Finish a request another process acknowledged but did not finish."""
        self.later(lambda: self._finish_held(request.key, lambda: self._redo(request)))

    def _redo(self, request: HeldRequest) -> None:
        """Do a held request's work from what the journal recorded."""
        data = request.payload
        asker = Asker(**data["asker"]) if isinstance(data.get("asker"), dict) else None
        if request.kind == journal.HeldKind.COMMAND and asker is not None:
            command = RunCommand(data.get("path"), str(data.get("input_text") or ""))
            self._run_command(asker, command, str(data.get("trigger_id") or ""))
        elif request.kind == journal.HeldKind.FORM and asker is not None:
            file = journal.file_from_dict(data["file"])
            self._submit_as(asker, file, str(data.get("text") or ""), Kind.MODAL, request.key)
        elif request.kind == journal.HeldKind.MESSAGE and isinstance(data.get("event"), dict):
            self._message(str(data.get("team") or ""), data["event"], bool(data.get("is_request")))
        elif request.kind == journal.HeldKind.RERUN and asker is not None:
            value, from_home = str(data.get("value") or ""), bool(data.get("from_home"))
            self._rerun(asker, value, request.key, from_home)
        else:
            log.error("held request of an unknown kind dropped", extra={"kind": request.kind})

    def _reply(self, compute: Callable[[], Reply]) -> Message:
        try:
            return render(compute())
        except (UserError, StoreError) as exc:
            return problem(refusal(exc))
        except Exception:
            log.exception("command failed")
            return problem(OOPS)

    def within_budget(self, asker: Asker, compute: Callable[[], Reply]) -> dict[str, Any]:
        """The ack body for a reply computed in time; else a holding text, with the real
        reply sent through the response_url when it is ready."""
        future = self.pool.submit(self._reply, compute)
        try:
            return future.result(timeout=self.reply_budget).as_kwargs()
        except TimeoutError:
            future.add_done_callback(lambda f: self.answerer.tell(asker.where, f.result()))
            return {"text": WORKING}

    # --- /job ------------------------------------------------------------------------------

    def command(self, asker: Asker, text: str, trigger_id: str) -> dict[str, Any]:
        """The ack body of a `/job` command (work that must wait for the ack is scheduled)."""
        try:
            command = parse_command(unescape(text))
        except UsageError as exc:
            return problem(exc.message, exc.usage or self.handler.usage).as_kwargs()
        if isinstance(command, RunCommand):
            try:
                check_input(command.input_text, self.service.limits.max_input_bytes)
            except UserError as exc:
                return problem(exc.message).as_kwargs()
            payload = {
                "asker": dataclasses.asdict(asker),
                "path": command.path,
                "input_text": command.input_text,
                "trigger_id": trigger_id,
            }
            key = f"cmd:{asker.team}:{trigger_id}"
            held = self.journaled(
                key,
                journal.HeldKind.COMMAND,
                payload,
                lambda: self._run_command(asker, command, trigger_id),
                where=asker.where,
                budget=HOLD_BUDGET_S,
            )
            if held is Held.DOWN:
                return render(UNAVAILABLE).as_kwargs()
            return {"text": WORKING} if held is Held.PENDING else {}
        key = f"cmd:{asker.team}:{trigger_id}"
        return self.within_budget(
            asker,
            lambda: self.handler.handle(
                self.actor(asker),
                command,
                self._no_run,
                origin=asker.origin(Kind.COMMAND),
                route=ROUTE,
                idempotency_key=key,
            ),
        )

    @staticmethod
    def _no_run(command: RunCommand) -> Reply:
        raise UsageError("`run` is handled before this point.")  # pragma: no cover

    def _run_command(self, asker: Asker, command: RunCommand, trigger_id: str) -> None:
        try:
            actor = self.actor(asker)
            upload = None
            if command.path is None and asker.channel:
                upload = self.latest_upload(actor, asker.channel)
        except StoreError as exc:
            self.answerer.tell(asker.where, problem(refusal(exc)))
            return
        if upload is None:
            self._open_modal(asker, command.input_text, trigger_id)
            return
        file = SlackFile.from_upload(upload)
        key = f"cmd:{asker.team}:{trigger_id}"
        self.submit(actor, asker, file, command.input_text, kind=Kind.COMMAND, key=key)

    def _open_modal(self, asker: Asker, input_text: str, trigger_id: str) -> None:
        metadata = {"c": asker.channel, "r": asker.response_url, "t": asker.thread_ts}
        try:
            call(
                self.metrics,
                "views.open",
                self.client.views_open,
                trigger_id=trigger_id,
                view=run_modal(metadata, input_text.strip()),
            )
        except CallFailed as exc:
            self.answerer.tell(
                asker.where,
                problem(
                    f"The Run job form could not be opened ({exc.failure.kind}). Share a .py file "
                    "here, then try `/job run` again."
                ),
            )

    def submit(
        self,
        actor: Actor,
        asker: Asker,
        file: SlackFile,
        input_text: str,
        *,
        kind: Kind,
        key: str,
        once: str | None = None,
    ) -> None:
        """Download the file and store the job; any problem goes to the user alone (once per
        `once` key, when the same request can arrive more than once)."""
        try:
            name, data = self.fetcher.fetch(file)
            job, created = self.service.submit(
                actor,
                name,
                data,
                input_text,
                origin=asker.origin(kind),
                route=ROUTE,
                idempotency_key=key,
            )
        except (UserError, StoreError) as exc:
            log.info("submission refused", extra={"user_id": actor.user.id, "kind": kind.value})
            if once is None or self.memory.first_time(once):
                self.answerer.tell(asker.where, problem(refusal(exc)))
            return
        except Exception:
            # a bug of ours must not leave the person waiting for a job that never comes
            log.exception("submission failed", extra={"user_id": actor.user.id})
            self.answerer.tell(asker.where, problem(OOPS))
            return
        if not created:
            log.info(
                "duplicate submission merged", extra={"job_id": job.id, "user_id": actor.user.id}
            )

    # --- the Run job form ------------------------------------------------------------------

    def view_submission(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The ack body of a Run job form: field errors, or nothing (the form closes) with the
        download and submission scheduled."""
        view = body.get("view") or {}
        values = (view.get("state") or {}).get("values") or {}
        files = ((values.get(FILE_BLOCK) or {}).get(FILE_ACTION) or {}).get("files") or []
        text = ((values.get(INPUT_BLOCK) or {}).get(INPUT_ACTION) or {}).get("value") or ""
        errors: dict[str, str] = {}
        try:
            check_input(text, self.service.limits.max_input_bytes)
        except UserError as exc:
            errors[INPUT_BLOCK] = first_line(exc.message)
        file = SlackFile.from_payload(files[0]) if files else None
        if file is None:
            errors[FILE_BLOCK] = "Choose a .py file to run."
        else:
            try:
                self.fetcher.check(file)
            except UserError as exc:
                errors[FILE_BLOCK] = first_line(exc.message)
        if errors or file is None:
            return {"response_action": "errors", "errors": errors}
        try:
            metadata = json.loads(view.get("private_metadata") or "{}")
        except ValueError:
            metadata = {}
        user = body.get("user") or {}
        asker = Asker(
            team=str(user.get("team_id") or (body.get("team") or {}).get("id") or ""),
            user=str(user.get("id") or ""),
            channel=metadata.get("c"),
            response_url=metadata.get("r"),
        )
        key = f"view:{view.get('id')}"
        payload = {
            "asker": dataclasses.asdict(asker),
            "file": journal.file_to_dict(file),
            "text": text,
        }
        held = self.journaled(
            key,
            journal.HeldKind.FORM,
            payload,
            lambda: self._submit_as(asker, file, text, Kind.MODAL, key),
            where=asker.where,
            budget=HOLD_BUDGET_S,
        )
        if held is Held.DOWN:
            return {
                "response_action": "errors",
                "errors": {INPUT_BLOCK: first_line(UNAVAILABLE.message)},
            }
        return {}

    def _submit_as(self, asker: Asker, file: SlackFile, text: str, kind: Kind, key: str) -> None:
        try:
            actor = self.actor(asker)
        except StoreError as exc:
            self.answerer.tell(asker.where, problem(refusal(exc)))
            return
        self.submit(actor, asker, file, text, kind=kind, key=key)

    # --- messages --------------------------------------------------------------------------

    def message(self, team: str, event: Mapping[str, Any], bot_user_id: str | None) -> None:
        """A message event: remember shared .py files; run or answer requests to the bot."""
        if event.get("bot_id") or event.get("subtype") not in {None, "file_share"}:
            return
        if not event.get("user") or not event.get("channel") or not event.get("ts"):
            return
        text = str(event.get("text") or "")
        is_dm = event.get("channel_type") == "im"
        mentioned = bool(bot_user_id) and f"<@{bot_user_id}" in text
        if not event.get("files") and not is_dm:
            return  # channel chatter; mentions of the bot arrive as app_mention too
        self._message_later(team, event, is_dm or mentioned)

    def mention(self, team: str, event: Mapping[str, Any]) -> None:
        """An app_mention event: always a request to the bot."""
        if event.get("bot_id") or not event.get("user"):
            return
        self._message_later(team, event, True)

    def _message_later(self, team: str, event: Mapping[str, Any], is_request: bool) -> None:
        """Requests to the bot are journaled (a file shared in passing only remembered)."""

        def work() -> None:
            self._message(team, event, is_request)

        if not is_request:
            self.later(work)
            return
        key = f"msg:{event.get('channel')}:{event.get('ts')}"
        payload = {"team": team, "event": dict(event), "is_request": is_request}
        where = Where(
            str(event.get("user") or ""),
            str(event.get("channel") or ""),
            None,
            str(event.get("ts")),
        )
        self.journaled(key, journal.HeldKind.MESSAGE, payload, work, where=where)

    def _message(self, team: str, event: Mapping[str, Any], is_request: bool) -> None:
        channel, ts = str(event["channel"]), str(event["ts"])
        asker = Asker(str(event.get("team") or team), str(event["user"]), channel, None, ts)
        files = [SlackFile.from_payload(f) for f in event.get("files") or [] if isinstance(f, dict)]
        try:
            actor = self.actor(asker)
            files = [self.fetcher.resolve(f) for f in files]  # Slack Connect stubs
            for file in files:
                if file.is_python:
                    self.memory.remember_upload(
                        Upload(
                            actor.user.id,
                            channel,
                            file.id,
                            file.name,
                            file.size or 0,
                            file.meta(),
                            self.service.clock.now(),
                        )
                    )
            text = _MENTION.sub(" ", str(event.get("text") or "")).strip()
            if not is_request or (files and not text.lower().startswith("run")):
                return
            key = f"msg:{channel}:{ts}"
            command = parse_command(unescape(text))
            # A job is deduplicated by its idempotency key in the same transaction that stores
            # it, so a crash before that point never swallows Slack's re-delivery. Other
            # commands only answer, and answer once (the same message can arrive as
            # app_mention and as message, and be re-delivered).
            if not isinstance(command, RunCommand) and not self.memory.first_time(key):
                return
        except UsageError as exc:
            if self.memory.first_time(f"msg:{channel}:{ts}"):
                self.answerer.tell(asker.where, problem(exc.message, exc.usage))
            return
        except (UserError, StoreError) as exc:
            self.answerer.tell(asker.where, problem(refusal(exc)))
            return
        if isinstance(command, RunCommand):
            self._run_message(actor, asker, files, command, key)
            return
        reply = self._reply(
            lambda: self.handler.handle(
                actor,
                command,
                self._no_run,
                origin=asker.origin(Kind.MESSAGE),
                route=ROUTE,
                idempotency_key=key,
            )
        )
        self.answerer.tell(asker.where, reply)

    def _run_message(
        self, actor: Actor, asker: Asker, files: list[SlackFile], command: RunCommand, key: str
    ) -> None:
        python = [f for f in files if f.is_python]
        file = python[0] if python else (files[0] if files else None)
        refused = f"{key}:refused"  # a refusal is told once, however often the message arrives
        if file is None:
            upload = self.latest_upload(actor, str(asker.channel))
            if upload is None:
                if self.memory.first_time(refused):
                    self.answerer.tell(
                        asker.where,
                        problem("Attach a .py file to your message, or share one here first."),
                    )
                return
            file = SlackFile.from_upload(upload)
        try:
            check_input(command.input_text, self.service.limits.max_input_bytes)
        except UserError as exc:
            if self.memory.first_time(refused):
                self.answerer.tell(asker.where, problem(exc.message))
            return
        self.submit(
            actor, asker, file, command.input_text, kind=Kind.MESSAGE, key=key, once=refused
        )

    # --- buttons and the Home tab -----------------------------------------------------------

    def rerun_clicked(self, body: Mapping[str, Any], action: Mapping[str, Any]) -> None:
        """A Re-run button: the value is untrusted, the service checks ownership."""
        user = body.get("user") or {}
        container = body.get("container") or {}
        from_home = container.get("type") == "view"
        asker = Asker(
            team=str(user.get("team_id") or (body.get("team") or {}).get("id") or ""),
            user=str(user.get("id") or ""),
            channel=None
            if from_home
            else (container.get("channel_id") or (body.get("channel") or {}).get("id")),
            response_url=body.get("response_url"),
        )
        key = f"btn:{action.get('action_ts') or body.get('trigger_id')}"
        value = str(action.get("value") or "")

        def work() -> None:
            self._rerun(asker, value, key, from_home)

        payload = {"asker": dataclasses.asdict(asker), "value": value, "from_home": from_home}
        self.journaled(key, journal.HeldKind.RERUN, payload, work, where=asker.where)

    def _rerun(self, asker: Asker, value: str, key: str, from_home: bool) -> None:
        kind = Kind.HOME if from_home else Kind.BUTTON
        actor: Actor | None = None
        try:
            job_id = parse_job_id(value[:40], "rerun")
            actor = self.actor(asker)
            self.service.rerun(
                actor, job_id, origin=asker.origin(kind), route=ROUTE, idempotency_key=key
            )
        except (UserError, StoreError) as exc:
            if from_home and actor is not None:
                self.home.publish(actor, asker.user, notice=refusal(exc))
            else:
                self.answerer.tell(asker.where, problem(refusal(exc)))
            return
        if from_home:
            self.home.publish(actor, asker.user)

    def unknown_action(self, body: Mapping[str, Any], action: Mapping[str, Any]) -> None:
        """A click on something jobbot does not handle: tell the person, change nothing."""
        user = body.get("user") or {}
        container = body.get("container") or {}
        asker = Asker(
            team=str(user.get("team_id") or (body.get("team") or {}).get("id") or ""),
            user=str(user.get("id") or ""),
            channel=container.get("channel_id") or (body.get("channel") or {}).get("id"),
            response_url=body.get("response_url"),
        )
        log.info("unknown action", extra={"action": str(action.get("action_id"))[:40]})
        message = problem("jobbot does not know that button (it may be from an older version).")

        def tell() -> None:
            self.answerer.tell(asker.where, message)

        self.later(tell)

    def home_opened(self, team: str, event: Mapping[str, Any]) -> None:
        """app_home_opened on the Home tab: publish the user's jobs."""
        if event.get("tab") != "home" or not event.get("user"):
            return
        asker = Asker(team, str(event["user"]))

        def publish() -> None:
            self.home.publish(self.actor(asker), asker.user)

        self.later(publish)
