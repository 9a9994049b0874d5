"""The console's answers: a mistake in its own words, a database outage as "nothing was saved"."""

from __future__ import annotations

from pathlib import Path

from bot.app.environment import load_settings
from bot.app.wiring.parts import service_limits
from bot.core.commands import CONSOLE_USAGE
from bot.core.handler import CommandHandler
from bot.core.models import Identity
from bot.core.replies import MAYBE_SAVED, UNAVAILABLE, Problem
from bot.core.service import JobService
from bot.terminal.console import Console
from tests.support.fakes import FakeClock, InMemoryStore


def console(store: InMemoryStore, clock: FakeClock) -> Console:
    service = JobService(store, clock, service_limits(load_settings({}, env_file=None)))
    actor = service.actor(Identity("local", "h", "alice"))
    return Console(CommandHandler(service, CONSOLE_USAGE), actor, "local:test", store)


def a_script(tmp_path: Path) -> Path:
    script = tmp_path / "a.py"
    script.write_text("print(1)\n")
    return script


def test_a_database_outage_is_answered_nothing_was_saved_try_again(
    memory_store: InMemoryStore, fake_clock: FakeClock, tmp_path: Path
) -> None:
    terminal = console(memory_store, fake_clock)
    script = a_script(tmp_path)
    memory_store.down = True

    assert terminal.reply("/job status 1") == UNAVAILABLE
    assert terminal.reply(f"/job run {script}") == UNAVAILABLE
    assert "Nothing was saved; try again." in terminal.execute("/job mine")
    memory_store.down = False
    assert memory_store.list_all(10) == []


def test_a_run_whose_answer_was_lost_in_an_outage_is_never_answered_nothing_was_saved(
    memory_store: InMemoryStore, fake_clock: FakeClock, tmp_path: Path
) -> None:
    terminal = console(memory_store, fake_clock)
    script = a_script(tmp_path)
    memory_store.answer_lost = True

    assert terminal.reply(f"/job run {script}") == MAYBE_SAVED
    assert "Nothing was saved" not in MAYBE_SAVED.message
    assert [job.file_name for job in memory_store.list_all(10)] == ["a.py"]


def test_a_mistake_is_answered_in_its_own_words(
    memory_store: InMemoryStore, fake_clock: FakeClock
) -> None:
    reply = console(memory_store, fake_clock).reply("/job status 42")
    assert isinstance(reply, Problem)
    assert reply.message.startswith("There is no job #42.")
