"""What the API refuses, over real HTTP on MariaDB and SQLite: each refusal an RFC 9457
problem worded as the other surfaces word it, with nothing stored; and tokens, which alone let
a request in."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import requests

from bot.api.spec import spec_text
from tests.integration.api.conftest import Api, start_api

PROBLEM = "application/problem+json"


def is_problem(answer: requests.Response, status: int) -> dict[str, Any]:
    """The answer is a problem of that status; its body."""
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"] == PROBLEM
    body: dict[str, Any] = answer.json()
    assert body["status"] == status and body["type"].startswith("urn:jobbot:problem:")
    assert body["title"] and body["detail"]
    return body


def test_no_token_a_bad_one_and_a_revoked_one_are_401(api: Api) -> None:
    alice = api.caller()
    job = alice.submit()
    missing = api.request("GET", f"/api/jobs/{job['id']}")
    assert "Authorization: Bearer" in is_problem(missing, 401)["detail"]
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="jobbot"'
    for header in ("Bearer jobbot_" + "x" * 43, "Basic YWxpY2U6c2VjcmV0", alice.token):
        answer = api.request("GET", f"/api/jobs/{job['id']}", headers={"Authorization": header})
        assert "not valid" in is_problem(answer, 401)["detail"]
        assert "input" not in answer.text
    service = api.process.runtime.service
    service.tokens.revoke(alice.actor)
    assert alice.get(f"/api/jobs/{job['id']}").status_code == 401


def test_a_new_token_retires_the_old_one(api: Api) -> None:
    alice = api.caller()
    old = alice.token
    alice.token = api.process.runtime.service.tokens.mint(alice.actor)
    assert alice.get("/api/jobs").status_code == 200
    answer = api.request("GET", "/api/jobs", headers={"Authorization": f"Bearer {old}"})
    assert answer.status_code == 401


def test_bad_json_says_where(api: Api) -> None:
    alice, before = api.caller(), api.job_count()
    answer = alice.post(
        "/api/jobs", data=b'{"code": "print(1)",\n "input": {"a": 1,}}', headers=JSON
    )
    body = is_problem(answer, 400)
    assert body["detail"].startswith("The request body is not valid JSON: ")
    assert "at line 2, column" in body["detail"] and body["line"] == 2
    assert api.job_count() == before


JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"code": "print(1)", "input": [1, 2]}, 422, "must be a JSON object"),
        ({"code": "print(1)", "input": "a=1"}, 422, "not a string"),
        ({"code": "print(1)", "input": {"__class__": 1}}, 422, "reserved by Python"),
        ({"code": "print(1)", "name": "notes.txt"}, 422, "notes.txt is not a Python file"),
        ({"code": "   "}, 422, "is empty"),
        ({"code": 12}, 400, "code must be a string"),
        ({"input": {}}, 400, "code must be a string"),
        ({"code": "print(1)", "inputs": {}}, 400, "Unknown field 'inputs'"),
        ([1, 2], 400, "must be a JSON object like"),
    ],
)
def test_bad_submissions_are_refused_with_the_core_s_words(
    api: Api, body: Any, status: int, words: str
) -> None:
    alice, before = api.caller(), api.job_count()
    answer = alice.post("/api/jobs", data=json.dumps(body), headers=JSON)
    assert words in is_problem(answer, status)["detail"]
    assert api.job_count() == before


def test_too_large_code_and_input_are_413_with_both_sizes(api: Api) -> None:
    alice, before = api.caller(), api.job_count()
    settings = api.process.settings
    code = "#" * (settings.max_code_bytes + 1)
    answer = alice.post("/api/jobs", json={"code": code, "name": "big.py"})
    assert "big.py is" in is_problem(answer, 413)["detail"] and "the limit is" in answer.text
    big_input = {"k": "v" * settings.max_input_bytes}
    answer = alice.post("/api/jobs", json={"code": "print(1)", "input": big_input})
    assert "The JSON input is" in is_problem(answer, 413)["detail"]
    assert api.job_count() == before


def test_a_body_over_the_limit_is_a_problem_and_a_huge_one_is_refused_unread(api: Api) -> None:
    alice = api.caller()
    settings = api.process.settings
    limit = 2 * (settings.max_code_bytes + settings.max_input_bytes)
    limit += settings.max_files_in_bytes + (64 << 10)
    over = alice.post("/api/jobs", data=b" " * (limit + 1), headers=JSON)
    assert f"the limit is {limit}" in is_problem(over, 413)["detail"]
    # twice the limit: waitress answers at once, before the body is sent (it would otherwise
    # read it all before the app sees the request)
    assert api.process.http is not None
    with socket.create_connection(("127.0.0.1", api.process.http.port), timeout=30) as sock:
        sock.sendall(
            b"POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {alice.token}\r\n".encode()
            + f"Content-Length: {2 * limit}\r\n\r\n".encode()
            + b'{"code": "'
        )
        head = sock.recv(65536).decode()
    assert head.startswith("HTTP/1.1 413 ")


def test_other_bodies_are_415_and_bad_forms_400(api: Api) -> None:
    alice, before = api.caller(), api.job_count()
    answer = alice.post("/api/jobs", data="print(1)", headers={"Content-Type": "text/plain"})
    assert "application/json" in is_problem(answer, 415)["detail"]
    no_file = alice.post("/api/jobs", files={"input": (None, "{}")})
    assert "file field" in is_problem(no_file, 400)["detail"]
    not_utf8 = alice.post("/api/jobs", files={"file": ("a.py", b"\xff\xfeprint(1)")})
    assert "not UTF-8" in is_problem(not_utf8, 422)["detail"]
    bad_input = alice.post(
        "/api/jobs", files={"file": ("a.py", b"print(1)")}, data={"input": "{'a': 1}"}
    )
    assert "double quotes" in is_problem(bad_input, 422)["detail"]
    nameless = (  # a part with no name beside two that have one
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.py"\r\n\r\n'
        b"print(1)\r\n--B\r\nContent-Disposition: form-data\r\n\r\nx\r\n"
        b'--B\r\nContent-Disposition: form-data; name="zz"\r\n\r\ny\r\n--B--\r\n'
    )
    answer = alice.post(
        "/api/jobs", data=nameless, headers={"Content-Type": "multipart/form-data; boundary=B"}
    )
    assert "Unknown form field" in is_problem(answer, 400)["detail"]
    assert api.job_count() == before


def test_unknown_jobs_users_routes_and_methods_are_problems(api: Api) -> None:
    alice = api.caller()
    missing = is_problem(alice.get("/api/jobs/999999999"), 404)["detail"]
    assert missing.startswith("There is no job #999999999.")
    assert f"GET /api/users/{alice.user_id}/jobs" in missing  # worded for this API
    assert "no user #999999" in is_problem(alice.get("/api/users/999999/jobs"), 404)["detail"]
    assert "not a job id" in is_problem(alice.get("/api/jobs/abc"), 400)["detail"]
    is_problem(alice.get("/api/nothing"), 404)
    wrong = alice.request("DELETE", "/api/jobs")
    assert is_problem(wrong, 405) and set(wrong.headers["Allow"].split(", ")) >= {"GET", "POST"}
    assert "page must be" in is_problem(alice.get("/api/jobs?page=0"), 400)["detail"]
    assert "wait must be" in is_problem(alice.get("/api/jobs/1?wait=-1"), 400)["detail"]
    assert "wait must be" in is_problem(alice.get("/api/jobs/1?wait=nan"), 400)["detail"]


def test_cancel_is_the_owner_s_and_only_while_it_can_be(api: Api) -> None:
    alice, bob, admin = api.caller(), api.caller(), api.admin()
    first, second = alice.submit(), alice.submit()
    refused = bob.post(f"/api/jobs/{first['id']}/cancel")
    assert "not yours" in is_problem(refused, 403)["detail"]
    cancelled = alice.post(f"/api/jobs/{first['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    is_problem(alice.post(f"/api/jobs/{first['id']}/cancel"), 409)
    assert admin.post(f"/api/jobs/{second['id']}/cancel").json()["status"] == "cancelled"
    assert "not yours" in is_problem(bob.post(f"/api/jobs/{second['id']}/rerun"), 403)["detail"]


def test_an_idempotency_key_makes_a_retried_post_one_job(api: Api) -> None:
    alice, bob = api.caller(), api.caller()
    key = {"Idempotency-Key": "build-1234"}
    first = alice.post("/api/jobs", json={"code": "print(1)"}, headers=key)
    again = alice.post("/api/jobs", json={"code": "print(1)"}, headers=key)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["Location"] == first.headers["Location"]
    # the same key from someone else is their own
    assert bob.post("/api/jobs", json={"code": "print(1)"}, headers=key).status_code == 201
    bad = alice.post("/api/jobs", json={"code": "print(1)"}, headers={"Idempotency-Key": "é"})
    assert "Idempotency-Key" in is_problem(bad, 400)["detail"]


def test_pages_of_everyone_s_jobs(api: Api) -> None:
    alice = api.caller()
    ids = [alice.submit()["id"] for _ in range(21)]
    first = alice.get("/api/jobs").json()
    assert first["page"] == 1 and len(first["jobs"]) == 20 and first["next"] == "/api/jobs?page=2"
    assert [job["id"] for job in first["jobs"]] == sorted(ids, reverse=True)[:20]
    second = alice.get(first["next"]).json()
    assert ids[0] in [job["id"] for job in second["jobs"]]
    assert alice.get("/api/jobs?page=100000").json() == {"page": 100000, "jobs": [], "next": None}


def test_an_unknown_query_parameter_is_400_naming_it_and_known_ones_still_work(
    api: Api,
) -> None:
    alice, before = api.caller(), api.job_count()
    job = alice.submit()
    refused = [
        ("/?page=2&colour=red", "'colour': this route takes page"),
        ("/?page=1&flag", "'flag': this route takes page"),  # no value is still a parameter
        (f"/api/jobs/{job['id']}?verbose=1", "'verbose': this route takes wait"),
        (f"/jobs/{job['id']}?wait=0&full=yes", "'full': this route takes wait"),
        (f"/api/users/{alice.user_id}/jobs?page=1", "'page': this route takes limit"),
        ("/api/openapi.json?v=2", "'v': it takes none"),
    ]
    for path, named in refused:
        assert is_problem(alice.get(path), 400)["detail"] == f"Unknown query parameter {named}."
    posted = alice.post("/api/jobs?dry_run=1", json={"code": "print(1)"})
    assert is_problem(posted, 400)["detail"] == "Unknown query parameter 'dry_run': it takes none."
    assert api.job_count() == before + 1  # only the job submitted above
    assert alice.get("/?page=1").json()["page"] == 1
    assert alice.get("/api/jobs?page=2").json()["page"] == 2
    for path in (f"/api/jobs/{job['id']}?wait=0", f"/jobs/{job['id']}?wait=0.1"):
        waited = alice.get(path)
        assert waited.status_code == 200 and waited.json()["id"] == job["id"], waited.text
    assert alice.get(f"/users/{alice.user_id}?limit=1").json()["jobs"][0]["id"] == job["id"]
    assert api.request("GET", "/api/openapi.json").status_code == 200


def test_the_spec_is_served_without_a_token(api: Api) -> None:
    answer = api.request("GET", "/api/openapi.json")
    assert answer.status_code == 200 and answer.json() == json.loads(spec_text())
    assert answer.json()["openapi"].startswith("3.1")


def test_each_token_is_paced_with_429_and_retry_after(backend: str, tmp_path: Path) -> None:
    paced = start_api(backend, tmp_path, workers=False, JOBBOT_API_RATE="1", JOBBOT_API_BURST="2")
    try:
        alice, bob = paced.caller(), paced.caller()
        assert [alice.get("/api/jobs").status_code for _ in range(2)] == [200, 200]
        limited = alice.get("/api/jobs")
        assert "1 requests a minute" in is_problem(limited, 429)["detail"]
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        assert bob.get("/api/jobs").status_code == 200  # another token has its own pace
    finally:
        paced.process.stop(grace_s=5)
