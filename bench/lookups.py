"""B3, lookups at scale: the database time of `status` and `mine` with 1,000,000 jobs across
10,000 users in MariaDB, beside a `SELECT 1` round trip measured in the same run.

    .venv/bin/python -m bench.lookups            # uses JOBBOT_BENCH_MYSQL_URL or local root
Target: p50 <= 2 ms for both.
"""

from __future__ import annotations

import os
import random
import sys
import time

from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench.databases import BASE, fresh_database
from bench.stats import ms, summary, table
from bot.store import SqlStore, make_engine

DATABASE = "jobbot_bench_lookups"
JOBS = int(os.environ.get("JOBBOT_BENCH_JOBS", "1000000"))
USERS = 10_000
SAMPLES = 2000


def populate() -> None:
    """Create the database and fill it with MariaDB's sequence engine (a few seconds); it
    is kept for JOBBOT_BENCH_REUSE=1."""
    store = SqlStore(make_engine(fresh_database(DATABASE)))
    store.migrate()
    with store.engine.begin() as conn:
        conn.execute(
            text(
                f"INSERT INTO users (id, provider, team, external_id, created_at, last_seen_at) "
                f"SELECT seq, 'slack', 'T0BENCH', CONCAT('U', seq), UTC_TIMESTAMP(6), "
                f"UTC_TIMESTAMP(6) FROM seq_1_to_{USERS}"
            )
        )
    # Insert in slices so the undo log stays small; each job is a realistic small row.
    step = 100_000
    for start in range(1, JOBS + 1, step):
        end = min(JOBS, start + step - 1)
        with store.engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO jobs (owner_id, status, file_name, code, code_sha256, input_json, "
                "result_json, result_kind, stdout, stdout_truncated, stderr_truncated, "
                "duration_ms, executor, attempts, not_before, created_at, finished_at) "
                f"SELECT 1 + (seq MOD {USERS}), 'done', 'soma.py', "
                "'def soma(a, b):\\n    return a + b\\nprint(soma(a, b))\\n', "
                "SHA2(seq, 256), '{\"a\":5,\"b\":3}', '\"8\"', 'stdout', '8\\n', 0, 0, 31, "
                "'local', 1, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) "
                f"FROM seq_{start}_to_{end}"
            )
        print(f"  inserted {end:,} jobs", file=sys.stderr)
    with store.engine.begin() as conn:
        conn.execute(text("ANALYZE TABLE jobs, users"))
    store.close()


def timed(fn: object, samples: int) -> list[float]:
    out: list[float] = []
    for _ in range(samples):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    url = make_url(BASE).set(database=DATABASE).render_as_string(hide_password=False)
    started = time.perf_counter()
    if os.environ.get("JOBBOT_BENCH_REUSE") != "1":
        populate()
    fill_s = time.perf_counter() - started
    store = SqlStore(make_engine(url))
    rng = random.Random(7)
    job_ids = [rng.randint(1, JOBS) for _ in range(SAMPLES)]
    user_ids = [rng.randint(1, USERS) for _ in range(SAMPLES)]
    with store.engine.connect() as conn:
        total = conn.execute(text("SELECT COUNT(*) FROM jobs")).scalar()
    # Warm the pool and the buffer pool for a fair steady-state figure.
    for i in range(200):
        store.get(job_ids[i])
        store.list_by_owner(user_ids[i], 10)
    ids = iter(job_ids)
    users = iter(user_ids)
    baseline = summary(timed(store.ping, SAMPLES))
    status = summary(timed(lambda: store.get(next(ids)), SAMPLES))
    mine = summary(timed(lambda: store.list_by_owner(next(users), 10), SAMPLES))
    store.close()
    rows = [["query", "p50", "p95", "p50 / SELECT 1"]]
    for name, figures in (
        ("SELECT 1 (baseline)", baseline),
        ("status (get by id)", status),
        ("mine (last 10 of a user)", mine),
    ):
        rows.append(
            [
                name,
                ms(figures["p50"]),
                ms(figures["p95"]),
                f"{figures['p50'] / baseline['p50']:.2f}x",
            ]
        )
    print(
        f"B3 lookups: {total:,} jobs, {USERS:,} users, {SAMPLES} samples each (fill {fill_s:.0f} s)"
    )
    print(table(rows))
    print(
        f"target p50 <= 2 ms: status {'met' if status['p50'] <= 0.002 else 'MISSED'}, "
        f"mine {'met' if mine['p50'] <= 0.002 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
