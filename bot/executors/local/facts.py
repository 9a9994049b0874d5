"""What the local sandbox reports to `doctor`: the isolation in force and the job environment."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from bot.executors.jobenv import JobPackages
from bot.sandbox.limits import MIB, Limits


def _within(path: str, roots: Sequence[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _span(uids: Sequence[int]) -> str:
    return f"{uids[0]}-{uids[-1]}" if len(uids) > 1 else str(uids[0])


def rows(
    hello: dict[str, Any],
    pid: int | None,
    limits: Limits,
    hide_paths: Sequence[str],
    packages: JobPackages | None = None,
) -> list[tuple[str, str, bool]]:
    """(check, detail, ok) rows from the zygote's hello."""
    iso, cgroup, uids = hello["isolation"], hello["cgroup"], hello["uids"]
    notes = "; ".join(iso["notes"])
    layers = [
        "network namespace" if iso["network"] else "NO network namespace",
        "private mounts" if iso["mounts"] else "NO private mounts",
        "a uid per slot" if uids else "NO uid of its own",
        f"cgroup {cgroup['version']}" if cgroup["version"] is not None else "NO cgroup",
    ]
    full = iso["network"] and iso["mounts"] and bool(uids) and cgroup["version"] is not None
    rows = [
        (
            "isolation",
            f"local sandbox ({', '.join(layers)}); the embedded default, Lambda is the "
            "production isolation",
            full,
        ),
        (
            "zygote",
            f"pid {pid}, python {hello['python']} ({hello['executable']})"
            if pid
            else "not running (restarted on the next job)",
            pid is not None,
        ),
        (
            "network isolation",
            "a network namespace per slot (loopback down)"
            if iso["network"]
            else f"NOT isolated: namespaces unavailable ({notes})",
            iso["network"],
        ),
    ]
    if uids:
        rows.append(("privileges", f"jobs run as uid {_span(uids)}, no_new_privs", True))
    else:
        detail = f"NOT dropped: jobs run as the bot's uid {hello['euid']} (bot is non-dumpable)"
        rows.append(("privileges", detail, False))
    if not hello["stdlib_readable"]:
        detail = "NOT readable by the job uids: only preloaded modules import"
        detail += " (the same holds for the job environment's packages)"
        rows.append(("standard library", detail, False))
    has_pids = cgroup["version"] is not None and "no pids" not in cgroup["note"]
    has_memory = cgroup["version"] is not None and "no memory" not in cgroup["note"]
    nproc = "RLIMIT_NPROC on its own uid" if uids else "RLIMIT_NPROC shared with the bot's uid"
    pids = f" + {cgroup['note']} pids.max" if has_pids else f" (no cgroup: {cgroup['note']})"
    rows.append(
        ("process limit", f"{limits.max_procs} per job: {nproc}{pids}", bool(uids) or has_pids)
    )
    if has_memory:
        memory = "the job's memory_mb: a cgroup limit on the pages its processes use (the "
        memory += "template's shared pages not counted); RLIMIT_AS only a backstop"
    else:
        memory = "address space (RLIMIT_AS) = the job's memory_mb above the template, per "
        memory += "process only"
    rows.append(("memory limit", memory, has_memory))
    rows.append(
        (
            "file limits",
            f"files up to {limits.max_file_bytes // MIB} MiB, {limits.max_open_files} open",
            True,
        )
    )
    if iso["mounts"]:
        hidden = [p for p in hide_paths if _within(os.path.realpath(p), iso["masked"])]
        missing = [p for p in hide_paths if p not in hidden]
        detail = (
            f"private tmpfs /tmp ({hello['tmp_bytes'] // MIB} MiB per job), host read-only"
            if iso["readonly"]
            else f"private tmpfs /tmp ({hello['tmp_bytes'] // MIB} MiB per job), host NOT read-only"
        )
        detail += f", hidden: {', '.join(iso['masked'])}"
        if missing:
            detail += f"; NOT hidden: {', '.join(missing)}"
        rows.append(("filesystem", detail, iso["readonly"] and not missing))
    else:
        detail = "NOT isolated: jobs see the host filesystem (job dir in /tmp, removed after)"
        rows.append(("filesystem", detail, False))
    rows.append(
        (
            "environment",
            "allow-list only (PATH, LANG, TZ, HOME, *_NUM_THREADS=1: BLAS runs one thread per "
            "job, MPLBACKEND=Agg, MPLCONFIGDIR)",
            True,
        )
    )
    return rows + _job_environment(hello, packages)


def _job_environment(
    hello: dict[str, Any], packages: JobPackages | None
) -> list[tuple[str, str, bool]]:
    """What jobs can import, and what is preloaded for them."""
    venv = hello.get("job_environment")
    if venv is None:
        detail = f"NONE: jobs import the standard library only ({hello['executable']})"
        return [("job environment", detail, packages is None or not packages.pins)]
    rows = []
    offered = ", ".join(packages.offered) if packages and packages.offered else "no packages"
    stale = packages.out_of_date if packages else []
    detail = f"{venv}, read-only to jobs: the standard library and {offered}"
    if stale:
        detail += f"; NOT as pinned, run scripts/setup: {', '.join(stale)}"
    rows.append(("job environment", detail, not stale))
    template = hello.get("packages")
    light = f"standard library ({hello['rss_kb'] // 1024} MiB)"
    if template is None:
        rows.append(
            ("templates", f"{light}; no package template", not packages or not packages.preload)
        )
        return rows
    loaded = ", ".join(template["loaded"]) or "nothing"
    detail = f"{light}; packages: {loaded} ({template['rss_kb'] // 1024} MiB)"
    if template["failed"]:
        failed = "; ".join(f"{name}: {why}" for name, why in template["failed"].items())
        detail += f"; NOT preloaded: {failed}"
    rows.append(("templates", detail, not template["failed"]))
    return rows
