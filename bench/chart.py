"""P2, a chart: a job that plots 10,000 points, from a signed message event (`@jobbot run`
with the .py attached) until its figure is shared in the job's thread at the Slack stand-in
(the files.completeUploadExternal that shares figure-1.png), through a real `serve` process
with the local executor and Slack's limits on; p50. Beside it, in the same run, the same job
through the engine alone (submit -> result and figure stored): the baseline. Samples go one
at a time, one a second (files.* are Tier 4: 100+ a minute), round-robin over 10 channels.
Medians and ranges of the runs.

    .venv/bin/python -m bench.chart            # JOBBOT_BENCH_RUNS=5, JOBBOT_BENCH_P2=20
"""

from __future__ import annotations

import os
from typing import Any

from bench.engine import Engine
from bench.paced import engine_baseline, paced_samples
from bench.slack_common import start, stop
from bench.stats import median_range, ms, summary, table
from bot.core.models import FileRole, JobStatus
from testbed import jobenv
from testbed import slack_requests as sr

RUNS = int(os.environ.get("JOBBOT_BENCH_RUNS", "5"))
SAMPLES = int(os.environ.get("JOBBOT_BENCH_P2", "20"))
WARM = 3  # the first samples warm the zygote, pools and caches
CHART = """\
import matplotlib.pyplot as plt
import numpy as np

x = np.linspace(0, 20, 10_000)
plt.plot(x, np.sin(x) * np.cos(7 * x), linewidth=0.5)
plt.title("10,000 points")
print("plotted")
"""
CHANNELS = 10
GAP_S = 1.0  # between samples: within Tier 4 for both files.* methods


def p2(samples: int) -> list[float]:
    """Signed message event sent -> the figure shared in the job's thread at the stand-in."""
    standin, server, store = start(
        "jobbot_bench_chart", JOBBOT_LOG_LEVEL="WARNING", JOBBOT_JOB_PYTHON=jobenv.job_python()
    )
    try:
        file = standin.add_file("chart.py", CHART)

        def event_for(i: int) -> dict[str, Any]:
            channel = f"C0P2{i % CHANNELS:02d}"
            return sr.file_message("<@U0BOT> run", [file], user="U0P2", channel=channel)

        def shared(i: int, inner: dict[str, Any]) -> float | None:
            for call in standin.calls("files.completeUploadExternal"):
                if call.status == 200 and call.body.get("thread_ts") == inner["ts"]:
                    assert "figure-1.png" in str(call.body.get("files")), call.body
                    return call.at
            return None

        out, limited = paced_samples(
            standin,
            server,
            samples,
            warm=WARM,
            gap_s=GAP_S,
            event_for=event_for,
            answered_at=shared,
            timeout=60,
            what="the shared figure",
        )
    finally:
        stop(standin, server, store)
    if limited:
        print(f"  ({limited} calls were answered 429 during P2)")
    return out


def check_chart(engine: Engine, job_id: int) -> None:
    """The chart job finished done, with its one figure stored."""
    done = engine.runtime.store.get(job_id)
    assert done is not None, job_id
    assert done.status is JobStatus.DONE, done
    figures = engine.runtime.store.list_files(job_id, FileRole.OUT)
    assert [f.name for f in figures] == ["figure-1.png"], figures


def engine(samples: int) -> list[float]:
    """The baseline: the same job through the engine alone, submit -> result and figure
    stored, local executor, the same MariaDB server."""
    return engine_baseline(
        "jobbot_bench_chart_engine",
        samples,
        warm=WARM,
        job=("chart.py", CHART.encode(), "{}"),
        check=check_chart,
        JOBBOT_JOB_PYTHON=jobenv.job_python(),
    )


def main() -> None:
    baseline, slack, ratios = [], [], []
    for n in range(RUNS):
        base_p50 = summary(engine(SAMPLES))["p50"]
        p2_p50 = summary(p2(SAMPLES))["p50"]
        baseline.append(base_p50)
        slack.append(p2_p50)
        ratios.append(p2_p50 / base_p50)
        print(
            f"run {n + 1}: engine p50 {ms(base_p50)}, P2 p50 {ms(p2_p50)}, ratio {ratios[-1]:.2f}"
        )
    print(
        "\nP2 chart job (10,000 points): signed message event -> figure shared in the thread at "
        f"the stand-in ({SAMPLES} jobs one at a time, limits on); p50, median (range) of {RUNS}"
        " runs"
    )
    print(
        table(
            [
                ["", "p50", "ratio p50 / engine p50"],
                [
                    "engine: submit -> result and figure stored (baseline)",
                    median_range([s * 1000 for s in baseline], "{:.0f} ms"),
                    "1.00",
                ],
                [
                    "P2 Slack: event -> figure shared in the thread",
                    median_range([s * 1000 for s in slack], "{:.0f} ms"),
                    median_range(ratios),
                ],
            ]
        )
    )


if __name__ == "__main__":
    main()
