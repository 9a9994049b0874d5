"""Sizes and durations as people read them, shared by every renderer."""

from __future__ import annotations


def human_bytes(size: int) -> str:
    """1536 -> '1.5 KB'."""
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB".replace(".0 KB", " KB")
    return f"{size / (1024 * 1024):.1f} MB".replace(".0 MB", " MB")


def human_duration(duration_ms: int | None) -> str:
    """'31 ms' or '2.4 s'; empty when unknown (the job has not run)."""
    if duration_ms is None:
        return ""
    if duration_ms < 1000:
        return f"{duration_ms} ms"
    return f"{duration_ms / 1000:.1f} s"
