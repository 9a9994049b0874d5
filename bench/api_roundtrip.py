"""API round trip: `POST /api/jobs` then `GET /api/jobs/{id}?wait=10` for a trivial job, over
real HTTP to serve's Flask app on waitress (MariaDB, in-process workers, the local sandbox),
beside B1 (the same job submitted in process, until its result is stored) in the same run.

    .venv/bin/python -m bench.api_roundtrip      # JOBBOT_BENCH_MYSQL_URL, default local root

JOBBOT_BENCH_RUNS runs (5) of JOBBOT_BENCH_API jobs (100) of each kind, alternating one B1 job
and one API round trip so both see the same machine; per run the p50 of each; the median and
range of the runs' differences. Target: API p50 <= B1 p50 + 10 ms.
"""

from __future__ import annotations

import os
import statistics
import time

import requests

from bench.engine import TRIVIAL, Engine
from bench.stats import median_range, ms, summary, table
from bot.api.spec import owns
from bot.app.server import HttpServer, Mount, build_web_app
from bot.app.wiring.surfaces import build_api

RUNS = int(os.environ.get("JOBBOT_BENCH_RUNS", "5"))
SAMPLES = int(os.environ.get("JOBBOT_BENCH_API", "100"))
TARGET_MS = 10.0
BODY = {"code": TRIVIAL.decode(), "input": {"a": 5, "b": 3}, "name": "add.py"}


class Client:
    """A program using the API: one keep-alive connection, its own token."""

    def __init__(self, engine: Engine, base: str) -> None:
        service = engine.runtime.service
        self.base = base
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {service.tokens.mint(engine.actors[0])}"

    def round_trip(self) -> float:
        """POST the job, GET it with ?wait=10: seconds, from the POST to the final answer."""
        start = time.perf_counter()
        posted = self.session.post(self.base + "/api/jobs", json=BODY, timeout=30)
        final = self.session.get(f"{self.base}{posted.headers['Location']}?wait=10", timeout=30)
        took = time.perf_counter() - start
        job = final.json()
        if posted.status_code != 201 or job["status"] != "done" or job["result"] != "8":
            raise SystemExit(f"API job went wrong: {posted.status_code} {job}")
        return took


def main() -> None:
    engine = Engine("jobbot_bench_api", JOBBOT_API_RATE="100000", JOBBOT_API_BURST="10000")
    api = build_api(engine.settings, engine.runtime)
    runtime = engine.runtime
    web = build_web_app(
        runtime.store.ping, runtime.metrics, [Mount(api.blueprint, owns, api.error)]
    )
    server = HttpServer(web, 0, engine.settings.http_threads, host="127.0.0.1")
    client = Client(engine, f"http://127.0.0.1:{server.port}")
    rows = [["run", "B1 p50", "API p50", "API p95", "API - B1", "API / B1"]]
    extra: list[float] = []
    try:
        for i in range(20):  # warm-up: the zygote, both pools, the statement caches
            engine.one(i, "add.py", TRIVIAL, '{"a": 5, "b": 3}')
            client.round_trip()
        for run in range(1, RUNS + 1):
            b1: list[float] = []
            trips: list[float] = []
            for i in range(SAMPLES):
                b1.append(engine.one(i, "add.py", TRIVIAL, '{"a": 5, "b": 3}')[0])
                trips.append(client.round_trip())
            base, over = summary(b1)["p50"], summary(trips)
            extra.append((over["p50"] - base) * 1000)
            rows.append(
                [
                    str(run),
                    ms(base),
                    ms(over["p50"]),
                    ms(over["p95"]),
                    f"{extra[-1]:+.2f} ms",
                    f"{over['p50'] / base:.2f}",
                ]
            )
    finally:
        server.close()
        engine.close()
    print(
        f"API round trip (POST /api/jobs + GET ?wait=10, keep-alive) beside B1 (in-process "
        f"submit -> result stored), MariaDB + local sandbox, {RUNS} runs of {SAMPLES} each, "
        "alternating"
    )
    print(table(rows))
    met = statistics.median(extra) <= TARGET_MS
    print(f"API p50 - B1 p50: {median_range(extra, '{:+.2f}')} ms")
    print(f"target <= B1 + {TARGET_MS:g} ms: {'met' if met else 'MISSED'}")


if __name__ == "__main__":
    main()
