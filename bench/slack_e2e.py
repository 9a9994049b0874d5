"""S2, end to end: a trivial job from a signed message event (`@jobbot run {...}` with the .py
attached) to its result message at the Slack stand-in, through a real `serve` process with the
local executor, with Slack's limits on; p50, beside B1 (submit -> result stored, through the
engine directly) measured in the same run. Samples go one at a time, round-robin over 10
channels, at most 4 a second: within Slack's limits, so S2 is the latency of a job no bucket
holds back (R1, bench/slack_burst.py, is the one under saturation). Medians and ranges of
the runs.

    .venv/bin/python -m bench.slack_e2e        # JOBBOT_BENCH_RUNS=5, JOBBOT_BENCH_S2=100

Targets: S2 p50 <= 30 ms and <= 2.5 x B1 p50 of the same run.
"""

from __future__ import annotations

import os
from typing import Any

from bench.engine import Engine
from bench.paced import engine_baseline, paced_samples
from bench.slack_common import start, stop
from bench.stats import median_range, ms, summary, table
from bot.core.models import JobStatus
from testbed import slack_requests as sr

RUNS = int(os.environ.get("JOBBOT_BENCH_RUNS", "5"))
SAMPLES = int(os.environ.get("JOBBOT_BENCH_S2", "100"))
TRIVIAL = "def main(a, b):\n    return a + b\n"
CHANNELS = 10
GAP_S = 0.25  # between samples: 4 a second in all, one every 2.5 s per channel
WARM = 10  # the first samples warm the zygote, pools and caches


def s2(samples: int) -> list[float]:
    """Signed message event sent -> result message received by the stand-in."""
    standin, server, store = start("jobbot_bench_slack_e2e", JOBBOT_LOG_LEVEL="WARNING")
    try:
        file = standin.add_file("soma.py", TRIVIAL)

        def event_for(i: int) -> dict[str, Any]:
            channel = f"C0S2{i % CHANNELS:02d}"
            return sr.file_message(
                f'<@U0BOT> run {{"a": {i}, "b": 1}}', [file], user="U0S2", channel=channel
            )

        def arrived(i: int, inner: dict[str, Any]) -> float | None:
            for call in standin.calls("chat.postMessage"):
                body = call.body
                if (
                    body.get("_ok")
                    and body.get("thread_ts") == inner["ts"]
                    and f"```{i + 1}```" in str(body.get("blocks"))
                ):
                    return call.at
            return None

        out, limited = paced_samples(
            standin,
            server,
            samples,
            warm=WARM,
            gap_s=GAP_S,
            event_for=event_for,
            answered_at=arrived,
            timeout=30,
            what="the result message",
        )
    finally:
        stop(standin, server, store)
    if limited:
        print(f"  ({limited} calls were answered 429 during S2)")
    return out


def check_sum(engine: Engine, job_id: int) -> None:
    """The trivial job finished done."""
    done = engine.runtime.store.get(job_id)
    assert done is not None, job_id
    assert done.status is JobStatus.DONE, done


def b1(samples: int) -> list[float]:
    """The engine alone: submit -> result stored, local executor, same MariaDB server."""
    return engine_baseline(
        "jobbot_bench_slack_b1",
        samples,
        warm=WARM,
        job=("add.py", TRIVIAL.encode(), '{"a": 5, "b": 3}'),
        check=check_sum,
    )


def main() -> None:
    count = RUNS
    engine, slack, ratios = [], [], []
    for n in range(count):
        b1_p50 = summary(b1(SAMPLES))["p50"]
        s2_p50 = summary(s2(SAMPLES))["p50"]
        engine.append(b1_p50)
        slack.append(s2_p50)
        ratios.append(s2_p50 / b1_p50)
        print(f"run {n + 1}: B1 p50 {ms(b1_p50)}, S2 p50 {ms(s2_p50)}, ratio {ratios[-1]:.2f}")
    print(
        "\nS2 trivial job: signed message event -> result message at the stand-in "
        f"({SAMPLES} jobs one at a time, limits on); p50, median (range) of {count} runs"
    )
    print(
        table(
            [
                ["", "p50", "ratio p50 / B1 p50"],
                ["B1 engine: submit -> result stored (baseline)", spread_ms(engine), "1.00"],
                ["S2 Slack: event -> result message", spread_ms(slack), median_range(ratios)],
            ]
        )
    )
    worst = max(slack)
    print(
        f"target S2 p50 <= 30 ms and <= 2.5 x B1: "
        f"{'met' if statistics_ok(slack, ratios) else 'NOT met'} (worst run {ms(worst)})"
    )


def spread_ms(seconds: list[float]) -> str:
    """Per-run seconds as milliseconds: median and range."""
    return median_range([s * 1000 for s in seconds], "{:.1f} ms")


def statistics_ok(slack: list[float], ratios: list[float]) -> bool:
    """The median run meets both targets."""
    import statistics

    return statistics.median(slack) <= 0.030 and statistics.median(ratios) <= 2.5


if __name__ == "__main__":
    main()
