"""A FakeExecutor behaviour steered by markers in the job's code, for Slack tests that need
long, failing or hostile jobs without running anything."""

from __future__ import annotations

import json

from bot.core.models import Outcome, ResultKind, RunRequest, RunResult

TRACEBACK = "\n".join(
    ["Traceback (most recent call last):", '  File "job.py", line 2', "ZeroDivisionError: boom", ""]
)
HOSTILE = "<!channel> <@U0BOB> & ``` done \u202egnp.exe\x1b[31m"


def scripted(request: RunRequest) -> RunResult:
    """ok by default; `# fake: error|long|hostile|timeout` change the outcome."""
    code = request.code
    if "# fake: error" in code:
        return RunResult(
            Outcome.ERROR,
            12,
            error_type="ZeroDivisionError",
            error_message="division by zero",
            traceback=TRACEBACK,
            executor="fake",
        )
    if "# fake: timeout" in code:
        return RunResult(Outcome.TIMEOUT, 10000, stdout="partial\n", executor="fake")
    if "# fake: long" in code:
        out = "".join(f"line {i}\n" for i in range(200))
        return RunResult(
            Outcome.OK, 5, json.dumps(out.rstrip()), ResultKind.STDOUT, stdout=out, executor="fake"
        )
    if "# fake: hostile" in code:
        return RunResult(
            Outcome.OK,
            5,
            json.dumps(HOSTILE),
            ResultKind.STDOUT,
            stdout=HOSTILE + "\n",
            executor="fake",
        )
    value = json.loads(request.input_json or "{}")
    total = (
        sum(v for v in value.values() if isinstance(v, int | float))
        if isinstance(value, dict)
        else 0
    )
    return RunResult(Outcome.OK, 3, json.dumps(total), ResultKind.RETURN, executor="fake")
