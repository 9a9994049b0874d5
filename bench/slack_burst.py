"""R1, a burst under Slack's limits: 200 trivial jobs from 50 users in 5 channels, each sent as a
message event (`@jobbot run {...}` with the .py attached) to a real `serve` process, with the
stand-in enforcing Slack's published limits. Per run: the time until the last user saw their
result, divided by the bound Slack's limits set (one message per job, each channel at its rate
after its burst); the 429s the bot received; Slack calls per job. A second, small case does the
same with 5-second jobs (calls per job). Medians and ranges over the runs.

    .venv/bin/python -m bench.slack_burst     # JOBBOT_BENCH_RUNS=5, JOBBOT_BENCH_R1_JOBS=200

Targets: time / bound <= 1.2; 0 429s; calls per job <= 1.05 (trivial), <= 3 (5-second jobs).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from bench.slack_common import start, stop
from bench.stats import median_range, table
from bot.core.models import JobStatus
from bot.store import SqlStore
from testbed import slack_requests as sr
from testbed.slack_limits import POST_PER_CHANNEL, POST_PER_WORKSPACE
from testbed.slack_standin import SlackStandIn
from testbed.waiting import wait_until

RUNS = int(os.environ.get("JOBBOT_BENCH_RUNS", "5"))
JOBS = int(os.environ.get("JOBBOT_BENCH_R1_JOBS", "200"))
USERS, CHANNELS, SENDERS = 50, 5, 8
SLOW_JOBS, SLOW_CHANNELS = 20, 2
FAST = "def main(n):\n    return n + 1000\n"
SLOW = "import time\n\n\ndef main(n):\n    time.sleep(5)\n    return n + 1000\n"


@dataclass(frozen=True)
class Burst:
    """One run's figures."""

    seconds: float  # first event sent -> the last user saw a result
    bound: float  # what Slack's limits allow at best
    limited: int  # 429s received
    calls: int  # Web API calls made for the jobs (refused ones included)

    @property
    def ratio(self) -> float:
        """Time to the last result over the bound."""
        return self.seconds / self.bound


def bound(per_channel: Counter[str], jobs: int) -> float:
    """Seconds Slack's limits need for one message per job: each channel at 1 per second
    after its burst, and the workspace at its own rate after its burst."""
    busiest = max(per_channel.values())
    channel = max(0, busiest - POST_PER_CHANNEL.burst) / POST_PER_CHANNEL.per_second
    workspace = max(0, jobs - POST_PER_WORKSPACE.burst) / POST_PER_WORKSPACE.per_second
    return max(channel, workspace, 1.0)


def results_seen(standin: SlackStandIn, expected: dict[str, str]) -> dict[str, float]:
    """When each request's result reached its thread: event ts -> time of the post."""
    seen: dict[str, float] = {}
    for call in standin.calls("chat.postMessage"):
        body = call.body
        thread = str(body.get("thread_ts") or "")
        want = expected.get(thread)
        if (
            body.get("_ok")
            and want
            and want in json.dumps(body.get("blocks"))
            and thread not in seen
        ):
            seen[thread] = call.at
    return seen


def pending(store: SqlStore) -> int:
    """Outbox entries not settled yet."""
    from sqlalchemy import func, select

    from bot.store.tables import NotificationState, notifications

    with store.engine.connect() as conn:
        query = select(func.count()).where(notifications.c.state == NotificationState.PENDING)
        return int(conn.execute(query).scalar_one())


def burst(code: str, jobs: int, channels: int, users: int, timeout: float, **env: str) -> Burst:
    """One run: fresh database, stand-in and serve; `jobs` message events, 8 senders."""
    standin, server, store = start("jobbot_bench_slack_burst", JOBBOT_LOG_LEVEL="WARNING", **env)
    try:
        people = [f"U0R{u:03d}" for u in range(users)]
        files = {user: standin.add_file("job.py", code) for user in people}
        requests = []
        expected: dict[str, str] = {}
        per_channel: Counter[str] = Counter()
        for i in range(jobs):
            user = people[i % users]
            channel = f"C0R{people.index(user) % channels:02d}"
            inner = sr.file_message(
                f'<@U0BOT> run {{"n": {i}}}', [files[user]], user=user, channel=channel
            )
            expected[inner["ts"]] = f"```{i + 1000}```"
            per_channel[channel] += 1
            requests.append(sr.event(inner))
        began = time.time()

        def send(request: sr.SlackRequest) -> None:
            answer = sr.post(server.url, request)
            assert answer.status == 200, answer

        with ThreadPoolExecutor(SENDERS) as senders:
            list(senders.map(send, requests))
        seen = wait_until(
            lambda: len(s := results_seen(standin, expected)) == jobs and s,
            timeout=timeout,
            interval=0.2,
            message=f"{jobs} results seen",
        )
        wait_until(lambda: pending(store) == 0, timeout=timeout, interval=0.2, message="settled")
        counts = store.count_by_status()
        assert counts[JobStatus.DONE] == jobs, counts
        calls = [c for c in standin.web_calls() if c.at >= began]
        return Burst(
            max(seen.values()) - began,
            bound(per_channel, jobs),
            len([c for c in calls if c.status == 429]),
            len(calls),
        )
    finally:
        stop(standin, server, store)


def main() -> None:
    count = RUNS
    fast, slow = [], []
    for n in range(count):
        fast.append(burst(FAST, JOBS, CHANNELS, USERS, timeout=600))
        slow.append(
            burst(
                SLOW,
                SLOW_JOBS,
                SLOW_CHANNELS,
                SLOW_JOBS,
                timeout=300,
                JOBBOT_WORKERS=str(SLOW_JOBS),
            )
        )
        print(
            f"run {n + 1}: trivial {fast[-1].seconds:.1f} s / bound {fast[-1].bound:.0f} s = "
            f"{fast[-1].ratio:.2f}, {fast[-1].limited} x 429, {fast[-1].calls / JOBS:.2f} "
            f"calls/job; 5-second jobs {slow[-1].calls / SLOW_JOBS:.2f} calls/job, "
            f"{slow[-1].limited} x 429",
            flush=True,
        )
    print(
        f"\nR1: {JOBS} trivial jobs from {USERS} users in {CHANNELS} channels (message events, "
        f"limits on), and {SLOW_JOBS} 5-second jobs in {SLOW_CHANNELS} channels; "
        f"median (range) of {count} runs"
    )
    print(
        table(
            [
                ["", "trivial jobs", "5-second jobs", "target"],
                [
                    "time to the last result",
                    median_range([b.seconds for b in fast], "{:.1f} s"),
                    median_range([b.seconds for b in slow], "{:.1f} s"),
                    "",
                ],
                [
                    "bound set by Slack's limits (baseline)",
                    median_range([b.bound for b in fast], "{:.0f} s"),
                    "",
                    "",
                ],
                ["time / bound", median_range([b.ratio for b in fast]), "", "<= 1.2"],
                [
                    "429s received",
                    median_range([float(b.limited) for b in fast], "{:.0f}"),
                    median_range([float(b.limited) for b in slow], "{:.0f}"),
                    "0",
                ],
                [
                    "Slack calls per job",
                    median_range([b.calls / JOBS for b in fast]),
                    median_range([b.calls / SLOW_JOBS for b in slow]),
                    "<= 1.05 / <= 3",
                ],
            ]
        )
    )


if __name__ == "__main__":
    main()
