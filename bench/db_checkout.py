"""D1, the cost of finding a closed connection at checkout: the store's single-statement read
(`get`, the status lookup) and write (`hold_request` + `drop_held_request`, every Slack
request's journal) on an engine with the checkout check (bot.store.db._refuse_closed, one
poll of the socket) against the same engine without it, measured in the same run, alternated
pair by pair: each of 5 rounds times 20 blocks of 50 calls each way, alternated, so a change
in the machine's load weighs on both sides alike.

    .venv/bin/python -m bench.db_checkout       # uses JOBBOT_BENCH_MYSQL_URL or local root
Expected: a ratio within the run-to-run noise (about 1.00).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from sqlalchemy import event

from bench.databases import drop_database, fresh_database
from bench.stats import median_range, table
from bot.core.models import Identity, NewJob
from bot.store import SqlStore, make_engine
from bot.store.db import _refuse_closed

DATABASE = "jobbot_bench_checkout"
ROUNDS = 5
BLOCKS = 20
CALLS = 50


def per_call(store: SqlStore, fn: Callable[[int], object]) -> dict[bool, float]:
    """Seconds per call of fn with the check off (False) and on (True), alternated by block."""
    spent = {False: 0.0, True: 0.0}
    n = 0
    for block in range(BLOCKS):
        for on in (False, True) if block % 2 else (True, False):
            checked(store, on)
            start = time.perf_counter()
            for _ in range(CALLS):
                fn(n)
                n += 1
            spent[on] += time.perf_counter() - start
    return {on: total / (BLOCKS * CALLS) for on, total in spent.items()}


def checked(store: SqlStore, on: bool) -> None:
    """Turn the checkout check on or off on both of the store's engines."""
    engines = [store.engine, store.db.reader]
    for engine in engines:
        assert engine is not None
        listening = event.contains(engine, "checkout", _refuse_closed)
        if on and not listening:
            event.listen(engine, "checkout", _refuse_closed)
        elif not on and listening:
            event.remove(engine, "checkout", _refuse_closed)


def main() -> None:
    store = SqlStore(make_engine(fresh_database(DATABASE)))
    try:
        store.migrate()
        owner = store.ensure_user(Identity("local", "h", "bench"))
        job, _ = store.submit(NewJob(owner.id, "a.py", "print(1)", "0" * 64, "{}"))

        def read(_: int) -> object:
            return store.get(job.id)

        def write(i: int) -> object:
            store.hold_request(f"bench:{i}", "command", {}, 60)
            store.drop_held_request(f"bench:{i}")
            return None

        ratios: dict[str, list[float]] = {"read": [], "write": []}
        rows = [["round", "read off", "read on", "ratio", "write off", "write on", "ratio"]]
        for round_ in range(1, ROUNDS + 1):
            row = [str(round_)]
            for name, fn in (("read", read), ("write", write)):
                fn(-1)  # a warm connection
                seconds = per_call(store, fn)
                ratios[name].append(seconds[True] / seconds[False])
                row += [
                    f"{seconds[False] * 1e6:.0f} us",
                    f"{seconds[True] * 1e6:.0f} us",
                    f"{ratios[name][-1]:.3f}",
                ]
            rows.append(row)
        checked(store, True)
        print(table(rows))
        for name, values in ratios.items():
            print(f"D1 {name}: with the check / without, {median_range(values, '{:.3f}')}")
        print(
            f"(medians: read {statistics.median(ratios['read']):.3f}, "
            f"write {statistics.median(ratios['write']):.3f})"
        )
    finally:
        store.close()
        drop_database(DATABASE)


if __name__ == "__main__":
    main()
