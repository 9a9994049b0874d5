"""S1, ack latency: `/job status` and `/job run` (with a recent upload) answered by a real
`serve` process while 50 jobs of 2 s each are running; p50 and p99, beside the same requests
to the idle server measured in the same run. Target: p99 <= 100 ms under load.

    .venv/bin/python -m bench.slack_ack        # JOBBOT_BENCH_MYSQL_URL, default local root
"""

from __future__ import annotations

import os
import threading

from bench.slack_common import share, start, stop
from bench.stats import ms, summary, table
from bot.core.models import Identity, JobStatus
from testbed import slack_requests as sr

SAMPLES = int(os.environ.get("JOBBOT_BENCH_S1", "200"))
LOAD = 50
SLEEPER = "import time\n\ndef main():\n    time.sleep(2)\n"
TRIVIAL = "def main(a, b):\n    return a + b\n"


def measure(url: str, status_id: int, samples: int) -> tuple[list[float], list[float]]:
    """Alternate `/job status` and `/job run`; the time until each ack arrived."""
    status, run = [], []
    for _ in range(samples):
        answer = sr.post(url, sr.slash(f"status {status_id}", user="U0PROBE", channel="C0PROBE"))
        assert answer.status == 200, answer
        status.append(answer.elapsed)
        answer = sr.post(url, sr.slash('run {"a": 1, "b": 2}', user="U0PROBE", channel="C0PROBE"))
        assert answer.status == 200, answer
        assert answer.body == "", answer
        run.append(answer.elapsed)
    return status, run


def main() -> None:
    standin, server, store = start(
        "jobbot_bench_slack_ack",
        JOBBOT_WORKERS=str(LOAD + 4),
        JOBBOT_MAX_JOBS_PER_USER=str(LOAD + 4),
        JOBBOT_LOG_LEVEL="WARNING",
    )
    try:
        share(
            standin, server, store, user="U0PROBE", channel="C0PROBE", name="soma.py", code=TRIVIAL
        )
        share(
            standin, server, store, user="U0LOAD", channel="C0LOAD", name="sleep.py", code=SLEEPER
        )
        probe = store.ensure_user(Identity("slack", sr.TEAM, "U0PROBE")).id
        sr.post(server.url, sr.slash('run {"a": 1, "b": 2}', user="U0PROBE", channel="C0PROBE"))
        first = store.list_by_owner(probe, 1)
        status_id = first[0].id if first else 1
        measure(server.url, status_id, 20)  # warm-up
        idle_status, idle_run = measure(server.url, status_id, SAMPLES)

        loader = store.ensure_user(Identity("slack", sr.TEAM, "U0LOAD")).id
        stop_feeding = threading.Event()
        peak = [0]

        def in_flight() -> int:
            jobs = store.list_by_owner(loader, LOAD * 2)
            return sum(j.status in {JobStatus.WAITING, JobStatus.RUNNING} for j in jobs)

        def feed() -> None:
            while not stop_feeding.is_set():
                missing = LOAD - in_flight()
                for _ in range(max(0, missing)):
                    sr.post(server.url, sr.slash("run", user="U0LOAD", channel="C0LOAD"))
                running = store.count_by_status()[JobStatus.RUNNING]
                peak[0] = max(peak[0], running)
                stop_feeding.wait(0.2)

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        while store.count_by_status()[JobStatus.RUNNING] < LOAD:
            stop_feeding.wait(0.1)
        busy_status, busy_run = measure(server.url, status_id, SAMPLES)
        running_after = store.count_by_status()[JobStatus.RUNNING]
        stop_feeding.set()
        feeder.join()
    finally:
        stop(standin, server, store)
    rows = [["", "p50", "p99", "p99 / idle p99"]]
    for name, idle, busy in (
        ("/job status", idle_status, busy_status),
        ("/job run (recent upload)", idle_run, busy_run),
    ):
        i, b = summary(idle), summary(busy)
        rows.append([f"{name}, idle server (baseline)", ms(i["p50"]), ms(i["p99"]), "1.00"])
        rows.append(
            [
                f"{name}, {LOAD} jobs of 2 s running",
                ms(b["p50"]),
                ms(b["p99"]),
                f"{b['p99'] / i['p99']:.2f}",
            ]
        )
    print(f"S1 ack latency: signed request -> HTTP answer from `serve`, {SAMPLES} samples each")
    print(f"(jobs running while measured: {running_after} at the end, peak {peak[0]})")
    print(table(rows))
    worst = max(summary(busy_status)["p99"], summary(busy_run)["p99"])
    print(f"target p99 <= 100 ms under load: {'met' if worst <= 0.1 else 'NOT met'} ({ms(worst)})")


if __name__ == "__main__":
    main()
