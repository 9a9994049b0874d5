"""A RunRequest becomes the sandbox's protocol request in one place, with every field."""

from __future__ import annotations

import dataclasses

from bot.core.models import RunRequest
from bot.sandbox import protocol


def test_the_run_request_and_the_protocol_request_have_the_same_fields() -> None:
    names = tuple(field.name for field in dataclasses.fields(RunRequest))

    assert names == protocol.REQUEST_FIELDS


def test_a_run_request_becomes_a_valid_protocol_request_with_its_values() -> None:
    request = RunRequest(7, "soma.py", "print(1)", '{"a": 1}', 2.5, 128, 4096)

    parsed = protocol.parse_request(protocol.request_body(request))

    assert parsed.to_dict() == {"v": protocol.VERSION, **dataclasses.asdict(request)}
