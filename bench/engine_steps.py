"""Where B1's time goes: the wall time of each step of a trivial job, p50 over JOBBOT_BENCH_B1
jobs (100) in a row, and of each SQL statement and COMMIT on the way, beside a bare
`python -I -S -c pass` measured between the jobs.

    .venv/bin/python -m bench.engine_steps

The store's and the executor's methods are timed by wrapping them on this engine's own
instances; SQL statements by SQLAlchemy's cursor events (on both pools: transactions, and
autocommit for single-statement reads and writes), commits by wrapping pymysql's.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import pymysql.connections
from sqlalchemy import event

from bench.engine import B1_SAMPLES, TRIVIAL, Engine, bare_interpreter
from bench.stats import table

STEPS = [
    ("t0", "submit_s", "to the store"),
    ("submit_s", "submit_e", "submit (claimed by a free slot, or waiting)"),
    ("submit_e", "run_s", "hand-off to the job thread"),
    ("run_s", "invoked_s", "to the start gate"),
    ("invoked_s", "invoked_e", "the start gate: invoked_at committed"),
    ("invoked_e", "run_e", "the sandbox after the gate"),
    ("run_e", "finish_s", "to the result"),
    ("finish_s", "finish_e", "the result committed"),
    ("finish_e", "t1", "to the waiter"),
    ("t0", "t1", "total"),
]


def main() -> None:
    engine = Engine("jobbot_bench_steps")
    marks: dict[int, dict[str, float]] = {}
    statements: dict[str, list[float]] = {}

    def timed(name: str, fn: Callable[..., Any], job: Callable[[tuple[Any, ...], Any], Any]) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            result = fn(*args, **kwargs)
            job_id = job(args, result)
            if job_id is not None:
                marks.setdefault(job_id, {}).update(
                    {f"{name}_s": start, f"{name}_e": time.perf_counter()}
                )
            return result

        return wrapper

    store, executor = engine.runtime.store, engine.executor
    store.submit_claimed = timed("submit", store.submit_claimed, lambda a, r: r[0].id)  # type: ignore[method-assign]
    store.submit = timed("submit", store.submit, lambda a, r: r[0].id)  # type: ignore[method-assign]
    store.claim = timed("claim", store.claim, lambda a, r: r[0].job.id if r else None)  # type: ignore[method-assign]
    store.mark_invoked = timed("invoked", store.mark_invoked, lambda a, r: a[0])  # type: ignore[method-assign]
    store.finish = timed("finish", store.finish, lambda a, r: a[0])  # type: ignore[method-assign]
    executor.run = timed("run", executor.run, lambda a, r: a[0].job_id)  # type: ignore[method-assign]

    def _before(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        conn.info["bench_t"] = time.perf_counter()

    def _after(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        key = " ".join(statement.split()[:3])[:40]
        if conn.engine is autocommit:  # a read or a single-statement write, no COMMIT
            key = "(autocommit) " + key
        statements.setdefault(key, []).append(time.perf_counter() - conn.info["bench_t"])

    autocommit = store.db.reader  # type: ignore[attr-defined]
    for sql in (store.engine, autocommit):  # type: ignore[attr-defined]
        event.listen(sql, "before_cursor_execute", _before)
        event.listen(sql, "after_cursor_execute", _after)

    commit = pymysql.connections.Connection.commit

    def timed_commit(self: pymysql.connections.Connection) -> None:
        start = time.perf_counter()
        commit(self)
        statements.setdefault("COMMIT", []).append(time.perf_counter() - start)

    pymysql.connections.Connection.commit = timed_commit  # type: ignore[method-assign]
    try:
        for i in range(20):  # warm-up
            engine.one(i, "add.py", TRIVIAL, '{"a": 5, "b": 3}')
        marks.clear()
        statements.clear()
        bare: list[float] = []
        ids: list[int] = []
        for i in range(B1_SAMPLES):
            start = time.perf_counter()
            took, job_id = engine.one(i, "add.py", TRIVIAL, '{"a": 5, "b": 3}')
            marks[job_id].update({"t0": start, "t1": start + took})
            ids.append(job_id)
            bare.extend(bare_interpreter(1))
    finally:
        pymysql.connections.Connection.commit = commit  # type: ignore[method-assign]
        engine.close()
    taken = [j for j in ids if "claim_s" not in marks[j]]
    print(f"{len(taken)} of {len(ids)} jobs taken as submitted; the rest claimed")
    rows = [["step", "p50"]]
    for a, b, what in STEPS:
        spans = [marks[j][b] - marks[j][a] for j in taken]
        rows.append([what, f"{statistics.median(spans) * 1000:.2f} ms"])
    rows.append(["bare `python -I -S -c pass`", f"{statistics.median(bare) * 1000:.2f} ms"])
    print(table(rows))
    print()
    rows = [["statement", "count", "p50"]]
    for key, values in sorted(statements.items(), key=lambda kv: -len(kv[1])):
        rows.append([key, str(len(values)), f"{statistics.median(values) * 1000:.2f} ms"])
    print(table(rows))


if __name__ == "__main__":
    main()
