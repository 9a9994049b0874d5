"""Hostile code about files, through both executors (the fixtures and the after-checks of
test_hostile_code.py: no secret in the result, a normal job right after, nothing left, the
disk kept). Each ends with a clear status and a note naming what was left out."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from bot.core.models import JobFile, Outcome, RunResult
from bot.sandbox.files import MAX_PIXELS
from tests.integration.executor.file_cases import BOMB
from tests.resilience import test_hostile_code as hostile
from tests.resilience.test_hostile_code import Target

# the hostile suite's fixtures, found by name
planted, local_target, lambda_target = hostile.planted, hostile.local_target, hostile.lambda_target
target = hostile.target

MARKER = "hostile-input-marker-7f3a"


def names(result: RunResult) -> list[str]:
    return [f.name for f in result.files]


def test_ten_gigabytes_into_out_stop_at_the_disk_limit_and_are_left_out(target: Target) -> None:
    code = (
        "chunk = b'x' * (1 << 20)\n"
        "with open('out/big.bin', 'wb') as fh:\n"
        "    for _ in range(10 * 1024):\n"  # 10 GiB, if nothing stopped it
        "        fh.write(chunk)\n"
    )

    result = target.hostile(code, timeout_s=20.0)

    # the private tmpfs (64 MiB) or the file-size limit (16 MiB locally) stops the writes
    assert result.outcome is Outcome.ERROR and result.error_type == "OSError", result
    assert "No space left" in (result.error_message or "") or "File too large" in (
        result.error_message or ""
    )
    assert result.files == ()
    assert result.files_note is not None and result.files_note.startswith("left out: big.bin (")
    assert "over the limit of 4,194,304 bytes" in result.files_note


def test_ten_thousand_files_in_out_keep_the_first_ten_and_say_so(target: Target) -> None:
    code = "for i in range(10_000):\n    open(f'out/{i:05}.txt', 'w').write(str(i))\n"

    result = target.hostile(code, timeout_s=20.0)

    # on Lambda the function's timeout (the job's 2 s and headroom) may come first: the files
    # written until then are collected all the same
    assert result.outcome in {Outcome.OK, Outcome.TIMEOUT}, result
    assert target.is_lambda or result.outcome is Outcome.OK, result
    assert names(result) == [f"{i:05}.txt" for i in range(10)]
    assert result.files_note is not None
    assert result.files_note.endswith(" more files left out: at most 10 files are kept")
    if result.outcome is Outcome.OK:
        assert result.files_note == "9990 more files left out: at most 10 files are kept"


def test_links_in_out_to_host_files_or_other_jobs_files_are_never_followed(
    target: Target, planted: Path
) -> None:
    code = (
        "import errno, glob, os\n"
        "os.symlink('/etc/passwd', 'out/passwd')\n"
        f"os.symlink({str(planted)!r} + '/.env', 'out/env')\n"
        "os.symlink('/tmp', 'out/tmp')\n"
        "for i, path in enumerate(glob.glob('/tmp/jobbot-job-*/*') + ['/etc/hostname']):\n"
        "    try:\n"
        "        os.link(path, f'out/hard{i}')\n"
        "    except OSError as exc:\n"
        "        print('link', errno.errorcode[exc.errno])\n"
        "open('out/mine.txt', 'w').write('mine')\n"
        "os.link('out/mine.txt', 'out/mine-again.txt')\n"  # two names for one file
    )

    result = target.hostile(code)

    assert result.outcome is Outcome.OK, result
    assert result.files == ()  # the only regular file has two links
    note = result.files_note or ""
    for name in ("passwd", "env", "tmp"):
        assert f"{name} (a symbolic link)" in note or "more files left out" in note
    assert "mine.txt (a hard link)" in note
    assert "link EXDEV" in result.stdout or "link EPERM" in result.stdout  # never linked


def test_names_that_climb_or_hold_control_characters_stay_plain_names(target: Target) -> None:
    code = (
        "import os\n"
        "open('out/../../x', 'w').write('outside out: not collected')\n"
        "open('out/\\x1b[2J\\n<!channel>\\u202e.txt', 'w').write('c')\n"
    )

    result = target.hostile(code)

    assert result.outcome is Outcome.OK, result
    assert result.files == (JobFile("_[2J_<!channel>_.txt", b"c"),)
    assert result.files_note is None
    assert not os.path.exists("/x")  # the host's / was never reached


def test_a_png_claiming_a_hundred_thousand_pixels_square_is_left_out(target: Target) -> None:
    code = f"open('out/bomb.png', 'wb').write({BOMB!r})\nopen('out/ok.txt', 'w').write('ok')\n"

    result = target.hostile(code)

    assert result.outcome is Outcome.OK, result
    assert names(result) == ["ok.txt"]
    assert result.files_note == (
        f"left out: bomb.png (an image of 10,000,000,000 pixels (limit {MAX_PIXELS:,}))"
    )


SEARCH = f"""\
import glob, os, time
marker = {MARKER[:8]!r} + {MARKER[8:]!r}  # never whole in this file, which is searched too

def files_under(top):
    for root, _, names in os.walk(top):
        yield from (os.path.join(root, name) for name in names)

def candidates():
    for top in ('/tmp', '/var/tmp', '/dev/shm'):
        yield from files_under(top)
    for pid in (p for p in os.listdir('/proc') if p.isdigit()):
        yield from glob.glob(f'/proc/{{pid}}/cwd/*')  # another job's directory, through its cwd
        yield from files_under(f'/proc/{{pid}}/root/tmp')  # or through its root

found, deadline = set(), time.monotonic() + wait  # `wait`: the input
while True:  # while the other job holds its file
    for path in candidates():
        try:
            with open(path, 'rb') as fh:
                if marker.encode() in fh.read(4096):
                    found.add(path)
        except OSError:
            pass
    if found or time.monotonic() > deadline:
        break
print(sorted(found))
"""


def test_a_job_cannot_read_another_jobs_data_files(target: Target) -> None:
    holder = "import time\nopen('secret.csv').read()\ntime.sleep(3)\n"
    secret = (JobFile("secret.csv", f"{MARKER}\n".encode()),)
    results: dict[str, RunResult] = {}

    def hold() -> None:
        results["holder"] = target.run(holder, files=secret, timeout_s=10.0, job_id=2)

    # locally the two run at once (two slots); the Lambda stand-in has one environment at a
    # time (a second invoke is throttled), so there the search runs in it after the holder
    thread = threading.Thread(target=hold)
    if target.is_lambda:
        hold()
        searcher = target.hostile(SEARCH, {"wait": 0}, timeout_s=10.0)
    else:
        thread.start()
        try:
            searcher = target.hostile(SEARCH, {"wait": 3}, timeout_s=10.0)
        finally:
            thread.join()

    assert results["holder"].outcome is Outcome.OK, results["holder"]
    assert searcher.outcome is Outcome.OK, searcher
    assert searcher.stdout == "[]\n"
