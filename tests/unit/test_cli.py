"""The CLI's own wording of the shared core's messages."""

from __future__ import annotations

from bot.terminal.cli import cli_wording


def test_commands_named_in_messages_are_spelled_as_the_cli_takes_them() -> None:
    assert cli_wording("like `/job status 12`.") == "like `python -m bot status 12`."
    assert cli_wording("`/job mine` lists your jobs") == "`python -m bot mine` lists your jobs"
    assert cli_wording("Older jobs: `/job list 3`") == "Older jobs: `python -m bot list --page 3`"
    assert cli_wording("like `/job mine 5`") == "like `python -m bot mine --limit 5`"
    assert cli_wording("`abc` is not a job id") == "`abc` is not a job id"
