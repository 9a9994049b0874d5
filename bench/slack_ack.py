"""S1, ack latency: `/job status` and `/job run` (with a recent upload) answered by a real
`serve` process while 50 jobs of 2 s each are running, sent by 8 requesters at once (Slack
sends in parallel; it does not wait for one answer before the next request), with Slack's
limits on; p50 and p99, beside the same requests to the idle server measured in the same run.
Medians and ranges of the runs.

    .venv/bin/python -m bench.slack_ack        # JOBBOT_BENCH_RUNS=5, JOBBOT_BENCH_S1=50

Target: p99 <= 100 ms under load.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

from bench.slack_common import share, start, stop
from bench.stats import median_range, ms, summary, table
from bot.core.models import Identity, JobStatus
from testbed import slack_requests as sr

RUNS = int(os.environ.get("JOBBOT_BENCH_RUNS", "5"))
ROUNDS = int(os.environ.get("JOBBOT_BENCH_S1", "50"))  # per requester and kind
REQUESTERS = 8
LOAD = 50
SLEEPER = "import time\n\ndef main():\n    time.sleep(2)\n"
TRIVIAL = "def main(a, b):\n    return a + b\n"


def requester(url: str, status_id: int, rounds: int) -> tuple[list[float], list[float]]:
    """Alternate `/job status` and `/job run`; the time until each ack arrived."""
    status, run = [], []
    for _ in range(rounds):
        answer = sr.post(url, sr.slash(f"status {status_id}", user="U0PROBE", channel="C0PROBE"))
        assert answer.status == 200, answer
        status.append(answer.elapsed)
        answer = sr.post(url, sr.slash('run {"a": 1, "b": 2}', user="U0PROBE", channel="C0PROBE"))
        assert answer.status == 200, answer
        run.append(answer.elapsed)
    return status, run


def measure(url: str, status_id: int, rounds: int) -> tuple[list[float], list[float]]:
    """REQUESTERS requesters at once; every ack's latency, by kind."""
    status: list[float] = []
    run: list[float] = []
    with ThreadPoolExecutor(REQUESTERS) as pool:
        for got_status, got_run in pool.map(
            lambda _: requester(url, status_id, rounds), range(REQUESTERS)
        ):
            status += got_status
            run += got_run
    return status, run


def one_run() -> dict[str, float]:
    """One run: the p50 and p99 of each kind, idle and under load."""
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
        measure(server.url, status_id, 3)  # warm-up
        idle_status, idle_run = measure(server.url, status_id, ROUNDS)

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
        busy_status, busy_run = measure(server.url, status_id, ROUNDS)
        running_after = store.count_by_status()[JobStatus.RUNNING]
        stop_feeding.set()
        feeder.join()
    finally:
        stop(standin, server, store)
    figures = {"running": float(running_after), "peak": float(peak[0])}
    for name, idle, busy in (("status", idle_status, busy_status), ("run", idle_run, busy_run)):
        i, b = summary(idle), summary(busy)
        figures.update(
            {
                f"{name} idle p50": i["p50"],
                f"{name} idle p99": i["p99"],
                f"{name} busy p50": b["p50"],
                f"{name} busy p99": b["p99"],
            }
        )
    return figures


def main() -> None:
    count = RUNS
    results = []
    for n in range(count):
        results.append(one_run())
        r = results[-1]
        print(
            f"run {n + 1}: busy p99 status {ms(r['status busy p99'])}, run {ms(r['run busy p99'])}"
            f" ({r['running']:.0f} jobs running at the end, peak {r['peak']:.0f})",
            flush=True,
        )

    def column(key: str) -> str:
        return median_range([r[key] * 1000 for r in results], "{:.1f} ms")

    def ratio(key: str) -> str:
        return median_range([r[f"{key} busy p99"] / r[f"{key} idle p99"] for r in results])

    rows = [["", "p50", "p99", "p99 / idle p99"]]
    for key, name in (("status", "/job status"), ("run", "/job run (recent upload)")):
        rows.append(
            [f"{name}, idle (baseline)", column(f"{key} idle p50"), column(f"{key} idle p99"), ""]
        )
        rows.append(
            [
                f"{name}, {LOAD} jobs of 2 s running",
                column(f"{key} busy p50"),
                column(f"{key} busy p99"),
                ratio(key),
            ]
        )
    samples = ROUNDS * REQUESTERS
    print(
        f"\nS1 ack latency: signed request -> HTTP answer from `serve`, {REQUESTERS} requesters "
        f"at once, {samples} samples of each kind per phase; median (range) of {count} runs"
    )
    print(table(rows))
    import statistics

    worst = statistics.median([max(r["status busy p99"], r["run busy p99"]) for r in results])
    print(f"target p99 <= 100 ms under load: {'met' if worst <= 0.1 else 'NOT met'} ({ms(worst)})")


if __name__ == "__main__":
    main()
