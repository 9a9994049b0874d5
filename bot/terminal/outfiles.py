"""A job's files out on this machine: saved under jobbot-out/<id>/ and listed, for the CLI
and the console."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bot.core.models import Job, JobFile
from bot.core.units import human_bytes

OUT_ROOT = Path("jobbot-out")  # relative to the current directory


def save_files(job_id: int, files: Sequence[JobFile], root: Path = OUT_ROOT) -> list[Path]:
    """Write a job's files into root/<id>/ (replacing earlier copies); their paths. Names
    are the sandbox's plain ones; any other is skipped, never followed out of the folder."""
    directory = root / str(job_id)
    saved = []
    for f in files:
        if Path(f.name).name != f.name or f.name in ("", ".", ".."):
            continue
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f.name
        path.write_bytes(f.data)
        saved.append(path)
    return saved


def saved_lines(
    job: Job, paths: Sequence[Path], files: Sequence[JobFile], *, note: bool = True
) -> list[str]:
    """What to print about a job's files: where each went, and (with `note`) the note on
    those left out."""
    lines = []
    if paths:
        sizes = {f.name: len(f.data) for f in files}
        lines.append(f"Files of job #{job.id}, saved:")
        lines += [f"  {path} ({human_bytes(sizes.get(path.name, 0))})" for path in paths]
    if note and job.files_note:
        lines.append(f"Some files were left out: {job.files_note}")
    return lines


def read_data_file(path_text: str) -> tuple[str, bytes]:
    """(file name, bytes) of a local data file for a job, with a clear message for each way
    it can fail (the service checks the size)."""
    from bot.errors import InvalidFile

    path = Path(path_text).expanduser()
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise InvalidFile(f"{path_text} {what}. Give the path of a data file for the job.")
    try:
        with path.open("rb") as handle:
            data = handle.read(64 * 1024 * 1024 + 1)  # the service reports the exact size
    except OSError as exc:
        raise InvalidFile(f"{path_text} cannot be read: {exc.strerror}.") from exc
    return path.name, data
