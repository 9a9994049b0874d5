"""A RunRequest becomes the sandbox's protocol request in one place, with every field but its
owner (who the job is for stays with the bot: the Lambda executor turns it into a tenant id)."""

from __future__ import annotations

import dataclasses

from bot.core.models import Identity, JobFile, RunRequest
from bot.sandbox import protocol


def test_the_run_request_and_the_protocol_request_have_the_same_fields() -> None:
    names = tuple(field.name for field in dataclasses.fields(RunRequest))

    assert names == (*protocol.REQUEST_FIELDS, "owner")


def test_a_run_request_becomes_a_valid_protocol_request_with_its_values() -> None:
    request = RunRequest(
        7,
        "soma.py",
        "print(1)",
        '{"a": 1}',
        2.5,
        128,
        4096,
        files=(JobFile("data.csv", b"a,b\n"),),
        max_files_out=3,
        owner=Identity("a", "b", "c"),
    )

    body = protocol.request_body(request)
    parsed = protocol.parse_request(body)

    fields = dataclasses.asdict(request)
    del fields["owner"]
    fields["files"] = [{"name": "data.csv", "data": "YSxiCg=="}]  # base64
    assert parsed.to_dict() == body == {"v": protocol.VERSION, **fields}
