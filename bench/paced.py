"""The two halves of a Slack benchmark set against the engine: signed events sent one at a
time at a fixed pace, each timed until its answer reaches the Slack stand-in; and the same job
through the engine alone, submit until its result is stored (the baseline of the same run)."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any

from bench.engine import Engine
from testbed import slack_requests as sr
from testbed.serve_process import ServeProcess
from testbed.slack_standin import SlackStandIn

# the inner event of sample i, and the stand-in's time of its answer (None: not yet)
EventFor = Callable[[int], dict[str, Any]]
AnsweredAt = Callable[[int, dict[str, Any]], float | None]


def paced_samples(
    standin: SlackStandIn,
    server: ServeProcess,
    samples: int,
    *,
    warm: int,
    gap_s: float,
    event_for: EventFor,
    answered_at: AnsweredAt,
    timeout: float,
    what: str,
) -> tuple[list[float], int]:
    """(seconds from each event sent to its answer at the stand-in, calls answered 429) for
    `samples` events after `warm` ones, one at a time, each at least `gap_s` after the last."""
    out: list[float] = []
    limited = 0
    for i in range(samples + warm):
        inner = event_for(i)
        sent = time.time()
        answer = sr.post(server.url, sr.event(inner))
        assert answer.status == 200, answer
        found = functools.partial(answered_at, i, inner)
        # Looked at as each call reaches the stand-in, not polled: a polling thread here would
        # take the interpreter from the stand-in's handlers and time them, not the bot.
        try:
            at = standin.wait_recorded(found, timeout)
        except TimeoutError:
            raise AssertionError(f"{what}: not within {timeout} s") from None
        if i >= warm:
            out.append(at - sent)
        limited += len(standin.rate_limited())
        standin.reset()
        threading.Event().wait(max(0.0, sent + gap_s - time.time()))  # the pace, not a sync
    return out, limited


def engine_baseline(
    database: str,
    samples: int,
    *,
    warm: int,
    job: tuple[str, bytes, str],
    check: Callable[[Engine, int], None],
    **settings: str,
) -> list[float]:
    """Seconds from submit to the stored result of `job` (name, code, input) through the
    engine alone (MariaDB, a worker pool in process, the local executor), `samples` times
    after `warm`, one at a time; `check(engine, job_id)` asserts each outcome. The pool is
    not offered the job as it is submitted (it claims it), as this baseline has always been
    measured."""
    engine = Engine(database, workers=4, offer=False, **settings)
    name, code, input_json = job
    out: list[float] = []
    try:
        for i in range(samples + warm):
            took, job_id = engine.one(i, name, code, input_json)
            check(engine, job_id)
            if i >= warm:
                out.append(took)
    finally:
        engine.close()
    return out
