"""S2, end to end: a trivial job from the signed `/job run` request to its result message at
the Slack stand-in, through a real `serve` process with the local executor; p50, printed
beside B1 (submit -> result stored, through the engine directly) measured in the same run.
Target: S2 p50 <= 150 ms.

    .venv/bin/python -m bench.slack_e2e        # JOBBOT_BENCH_MYSQL_URL, default local root
"""

from __future__ import annotations

import os
import threading
import time

from bench.slack_common import fresh_database, share, start, stop
from bench.stats import ms, summary, table
from bot.app.config import load_settings
from bot.app.wiring import Runtime, build_executor, worker_config
from bot.core.models import Identity, JobStatus
from bot.core.worker import WorkerPool
from testbed import slack_requests as sr
from testbed.waiting import wait_until

SAMPLES = int(os.environ.get("JOBBOT_BENCH_S2", "100"))
TRIVIAL = "def main(a, b):\n    return a + b\n"


def s2(samples: int) -> list[float]:
    """Signed request sent -> final reply received by the stand-in."""
    standin, server, store = start("jobbot_bench_slack_e2e", JOBBOT_LOG_LEVEL="WARNING")
    out: list[float] = []
    try:
        share(standin, server, store, user="U0S2", channel="C0S2", name="soma.py", code=TRIVIAL)
        for i in range(samples + 10):
            want = f'"a": {i}, "b": 1'
            sent = time.time()
            answer = sr.post(
                server.url, sr.slash("run {" + want + "}", user="U0S2", channel="C0S2")
            )
            assert answer.status == 200, answer

            def arrived(expected: int = i + 1, sent: float = sent) -> float | None:
                for call in standin.calls("chat.postMessage"):
                    body = call.body
                    if (
                        call.at >= sent
                        and body.get("thread_ts")
                        and f"```{expected}```" in str(body.get("blocks"))
                    ):
                        return call.at
                return None

            at = wait_until(arrived, timeout=30, interval=0.001, message="the result message")
            if i >= 10:  # the first ones warm the zygote, pools and caches
                out.append(at - sent)
            standin.reset()
    finally:
        stop(standin, server, store)
    return out


def b1(samples: int) -> list[float]:
    """The engine alone: submit -> result stored, local executor, same MariaDB server."""
    url = fresh_database("jobbot_bench_slack_b1")
    settings = load_settings({"DATABASE_URL": url, "JOBBOT_WORKERS": "4"}, env_file=None)
    runtime = Runtime(settings)
    runtime.migrate()
    executor = build_executor(settings)
    settled = threading.Event()
    pool = WorkerPool(
        runtime.store,
        executor,
        worker_config(settings),
        on_settled=settled.set,
    )
    runtime.pool = pool
    pool.start()
    actor = runtime.service.actor(Identity("local", "bench", "b1"))
    out: list[float] = []
    try:
        for i in range(samples + 10):
            settled.clear()
            started = time.perf_counter()
            job, _ = runtime.service.submit(actor, "add.py", TRIVIAL.encode(), '{"a": 5, "b": 3}')
            settled.wait(30)
            elapsed = time.perf_counter() - started
            done = runtime.store.get(job.id)
            assert done is not None, job
            assert done.status is JobStatus.DONE, done
            if i >= 10:
                out.append(elapsed)
    finally:
        pool.stop(15)
        executor.close()
        runtime.store.close()  # type: ignore[attr-defined]
    return out


def main() -> None:
    engine = summary(b1(SAMPLES))
    slack = summary(s2(SAMPLES))
    print(
        "S2 trivial job: signed /job run -> result message at the stand-in "
        f"({SAMPLES} sequential jobs)"
    )
    print(
        table(
            [
                ["", "p50", "p95", "ratio p50 / B1 p50"],
                [
                    "B1 engine: submit -> result stored (baseline)",
                    ms(engine["p50"]),
                    ms(engine["p95"]),
                    "1.00",
                ],
                [
                    "S2 Slack: request -> result message",
                    ms(slack["p50"]),
                    ms(slack["p95"]),
                    f"{slack['p50'] / engine['p50']:.2f}",
                ],
            ]
        )
    )
    print(f"target S2 p50 <= 150 ms: {'met' if slack['p50'] <= 0.15 else 'NOT met'}")


if __name__ == "__main__":
    main()
