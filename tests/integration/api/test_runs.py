"""Jobs through the API that really run (local sandbox, MariaDB and SQLite): submitted as JSON
or as a form, waited for with ?wait=, and shown in full only to their owner and admins."""

from __future__ import annotations

from testbed.waiting import wait_until
from tests.integration.api.conftest import Api

HIDDEN = {"input", "result", "stdout", "stderr", "stdout_truncated", "stderr_truncated", "error"}


def test_a_json_job_runs_and_one_wait_gives_its_result(running: Api) -> None:
    alice = running.caller()
    posted = alice.post(
        "/api/jobs", json={"code": "print(a + b)\n", "input": {"a": 5, "b": 3}, "name": "soma.py"}
    )
    assert posted.status_code == 201
    job = posted.json()
    assert posted.headers["Location"] == f"/api/jobs/{job['id']}"
    # taken at once by a free worker slot of the server (claim-on-submit), or queued
    assert job["status"] in {"running", "waiting"} and job["name"] == "soma.py"
    assert job["user_id"] == alice.user_id and job["input"] == {"a": 5, "b": 3}
    final = alice.get(f"/api/jobs/{job['id']}", params={"wait": 10}).json()
    assert final["status"] == "done"
    assert final["result"] == "8" and final["stdout"] == "8\n" and final["error"] is None
    assert final["duration_ms"] >= 0 and final["finished_at"] >= final["started_at"]


def test_a_form_job_with_a_py_file_and_an_input_field_runs(running: Api) -> None:
    alice = running.caller()
    code = b"def main(a, b):\n    return {'sum': a + b}\n"
    posted = alice.post(
        "/api/jobs",
        files={"file": ("soma.py", code, "text/x-python")},
        data={"input": '{"a": 2, "b": 40}'},
    )
    assert posted.status_code == 201, posted.text
    final = alice.get(posted.headers["Location"], params={"wait": 10}).json()
    assert (final["status"], final["result"], final["name"]) == ("done", {"sum": 42}, "soma.py")


def test_a_failing_job_shows_its_error_to_its_owner_and_nothing_to_others(running: Api) -> None:
    alice, bob, admin = running.caller(), running.caller(), running.admin()
    job = alice.submit("raise ValueError('no ' + word)\n", {"word": "luck"})
    final = alice.get(f"/api/jobs/{job['id']}", params={"wait": 10}).json()
    assert final["status"] == "error"
    assert final["error"]["type"] == "ValueError" and final["error"]["message"] == "no luck"
    assert "raise ValueError" in final["error"]["traceback"]
    seen_by_bob = bob.get(f"/api/jobs/{job['id']}").json()
    assert seen_by_bob["status"] == "error" and not HIDDEN & seen_by_bob.keys()
    seen_by_admin = admin.get(f"/api/jobs/{job['id']}").json()
    assert seen_by_admin["error"] == final["error"] and seen_by_admin["input"] == {"word": "luck"}


def test_listings_show_output_to_its_owner_only(running: Api) -> None:
    alice, bob = running.caller(), running.caller()
    mine = alice.submit()
    alice.get(f"/api/jobs/{mine['id']}", params={"wait": 10})
    rows = {row["id"]: row for row in bob.get("/api/jobs").json()["jobs"]}
    assert rows[mine["id"]]["status"] == "done" and not HIDDEN & rows[mine["id"]].keys()
    own = alice.get(f"/api/users/{alice.user_id}/jobs").json()
    assert own["user_id"] == alice.user_id
    assert [(j["id"], j["result"], j["stdout"]) for j in own["jobs"]] == [(mine["id"], "8", "8\n")]
    assert not HIDDEN & bob.get(f"/api/users/{alice.user_id}/jobs").json()["jobs"][0].keys()


def test_a_rerun_runs_the_same_code_and_input_as_a_new_job(running: Api) -> None:
    alice = running.caller()
    first = alice.submit()
    again = alice.post(f"/api/jobs/{first['id']}/rerun")
    assert again.status_code == 201
    rerun = again.json()
    assert rerun["id"] != first["id"] and rerun["rerun_of"] == first["id"]
    assert again.headers["Location"] == f"/api/jobs/{rerun['id']}"
    assert alice.get(again.headers["Location"], params={"wait": 10}).json()["result"] == "8"


def test_the_original_routes_run_a_job_with_the_same_json(running: Api) -> None:
    alice = running.caller()
    posted = alice.post("/jobs/", json={"code": "print(a * b)\n", "input": {"a": 6, "b": 7}})
    assert posted.status_code == 201 and posted.headers["Location"].startswith("/jobs/")
    job_id = posted.json()["id"]
    original = alice.get(f"/jobs/{job_id}", params={"wait": 10}).json()
    assert original["result"] == "42"
    assert alice.get(f"/api/jobs/{job_id}").json() == original
    assert (
        alice.get(f"/users/{alice.user_id}").json()
        == alice.get(f"/api/users/{alice.user_id}/jobs").json()
    )
    assert alice.get("/").json() == alice.get("/api/jobs").json()


def test_cancelling_a_running_job_stops_it(running: Api) -> None:
    alice = running.caller()
    job = alice.submit("import time\nprint('begun', flush=True)\ntime.sleep(30)\n", {})
    wait_until(
        lambda: alice.get(f"/api/jobs/{job['id']}").json()["status"] == "running",
        timeout=30,
        message="the job to run",
    )
    asked = alice.post(f"/api/jobs/{job['id']}/cancel")
    assert asked.status_code == 202 and asked.json()["status"] == "running"
    final = alice.get(f"/api/jobs/{job['id']}", params={"wait": 10}).json()
    assert final["status"] == "cancelled"  # not `timeout` (5 s): the stop ended it


FILES_JOB = """\
import os
os.makedirs("out", exist_ok=True)
with open("data.csv") as src, open("out/total.txt", "w") as dst:
    dst.write(str(sum(int(line) for line in src)))
print("ok")
"""


def test_data_files_go_in_and_files_out_come_back_to_their_owner_only(running: Api) -> None:
    alice, bob = running.caller(), running.caller()
    posted = alice.post(
        "/api/jobs",
        files=[
            ("file", ("sum.py", FILES_JOB.encode(), "text/x-python")),
            ("files", ("data.csv", b"1\n2\n39\n", "text/csv")),
        ],
    )
    assert posted.status_code == 201, posted.text
    job = alice.get(posted.headers["Location"], params={"wait": 10}).json()
    assert job["status"] == "done", job
    assert job["data_files"] == [{"name": "data.csv", "size": 7}]
    [out] = job["files"]
    assert (out["name"], out["size"]) == ("total.txt", 2)
    fetched = alice.get(out["url"])
    assert fetched.status_code == 200 and fetched.content == b"42"
    assert fetched.headers["Content-Disposition"].startswith("attachment;")
    assert fetched.headers["X-Content-Type-Options"] == "nosniff"
    refused = bob.get(out["url"])
    assert refused.status_code == 403 and b"42" not in refused.content
    assert "files" not in bob.get(posted.headers["Location"]).json()
    missing = alice.get(f"/api/jobs/{job['id']}/files/nothing.txt")
    assert missing.status_code == 404 and "total.txt" in missing.json()["detail"]
