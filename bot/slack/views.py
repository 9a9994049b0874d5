"""Modal and App Home views; pure."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bot.core.models import Job
from bot.slack.formatting import Block, context, escape, section
from bot.slack.jobviews import RERUN_ACTION, one_line

RUN_MODAL = "job_run_modal"
FILE_BLOCK, FILE_ACTION = "script_block", "script_file"
INPUT_BLOCK, INPUT_ACTION = "input_block", "input_json"
DATA_BLOCK, DATA_ACTION = "data_block", "data_files"
DATA_MAX_FILES = 10  # file_input allows at most 10
INPUT_MAX = 3000  # plain_text_input max_length
HOME_JOBS = 20


def run_modal(metadata: dict[str, Any], input_text: str) -> dict[str, Any]:
    """The Run job form: one .py file, optional data files and a JSON input, the channel kept
    in the metadata."""
    text_input: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": INPUT_ACTION,
        "multiline": True,
        "max_length": INPUT_MAX,
        "placeholder": {"type": "plain_text", "text": '{"a": 5, "b": 3}'},
    }
    if input_text:
        text_input["initial_value"] = input_text[:INPUT_MAX]
    return {
        "type": "modal",
        "callback_id": RUN_MODAL,
        "title": {"type": "plain_text", "text": "Run job"},
        "submit": {"type": "plain_text", "text": "Run"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": json.dumps(metadata, separators=(",", ":"))[:3000],
        "blocks": [
            {
                "type": "input",
                "block_id": FILE_BLOCK,
                "label": {"type": "plain_text", "text": "Python file (.py)"},
                "element": {
                    "type": "file_input",
                    "action_id": FILE_ACTION,
                    "filetypes": ["py"],
                    "max_files": 1,
                },
            },
            {
                "type": "input",
                "block_id": INPUT_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "JSON input"},
                "hint": {"type": "plain_text", "text": "A JSON object; empty means {}."},
                "element": text_input,
            },
            {
                "type": "input",
                "block_id": DATA_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "Data files"},
                "hint": {
                    "type": "plain_text",
                    "text": "Placed beside the .py, read-only: open('data.csv') reads one.",
                },
                "element": {
                    "type": "file_input",
                    "action_id": DATA_ACTION,
                    "max_files": DATA_MAX_FILES,
                },
            },
        ],
    }


def home_view(jobs: Sequence[Job], notice: str | None = None) -> dict[str, Any]:
    """The App Home tab: the viewer's recent jobs, with Re-run buttons on finished ones."""
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Your recent jobs"}},
        context(
            'Share a .py file with me (or in a channel I am in), then `/job run {"a": 5}`. '
            "`/job help` lists every command."
        ),
    ]
    if notice:
        blocks.append(section(f":warning: {escape(notice)}"))
    if not jobs:
        blocks.append(section("You have no jobs yet."))
    for job in list(jobs)[:HOME_JOBS]:
        block = section(one_line(job, with_result=True))
        if job.status.is_final:
            block["accessory"] = {
                "type": "button",
                "action_id": RERUN_ACTION,
                "text": {"type": "plain_text", "text": "Re-run"},
                "value": str(job.id),
            }
        blocks.append(block)
    return {"type": "home", "blocks": blocks[:100]}
