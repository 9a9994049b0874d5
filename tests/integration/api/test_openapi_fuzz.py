"""The API against its own OpenAPI spec: schemathesis generates requests for every operation
of the spec the live server serves (waitress, MariaDB, the local sandbox running what it
submits) and checks that none gets a 500 and every answer matches the spec."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, assume, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from bot.api.spec import spec_text
from tests.conftest import clean_mariadb
from tests.integration.api.conftest import Api, Caller, start_api


@pytest.fixture(scope="module")
def served(_mariadb_schema: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """A server on MariaDB whose workers run what the fuzzer submits (1 s timeout)."""
    clean_mariadb(_mariadb_schema)
    workdir: Path = tmp_path_factory.mktemp("fuzz")
    api = start_api(_mariadb_schema, workdir, workers=True, JOBBOT_JOB_TIMEOUT="1")
    yield api
    api.process.stop(grace_s=10)


@pytest.fixture(scope="module")
def fuzzer(served: Api) -> Caller:
    """The user the fuzzer's requests act as (an admin: every field of every job shows)."""
    return served.admin()


# schemathesis 4.32 draws from `random` inside its strategies, which this hypothesis deprecates:
# its warning, not ours, is the one let through.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)

# The spec kept in the repo, which the server serves as is (test_refusals checks that).
schema = schemathesis.openapi.from_dict(json.loads(spec_text()))


def sent_as_generated(case: schemathesis.Case) -> bool:
    """Whether the request on the wire is the case: the HTTP client leaves out a query
    parameter whose value is None or an empty list, so a negative case whose only fault is
    such an unknown parameter arrives as a valid request (and is rightly answered 200)."""
    return not any(value is None or value == [] for value in (case.query or {}).values())


# derandomize: the same examples every run, so the run cannot pass or fail by chance.
@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_request_gets_a_500_and_every_answer_matches_the_spec(
    case: schemathesis.Case, served: Api, fuzzer: Caller
) -> None:
    assume(sent_as_generated(case))
    case.call_and_validate(
        base_url=served.base,
        headers={"Authorization": f"Bearer {fuzzer.token}"},
        # A schema cannot say "UTF-8 Python source in a .py file" in full: a schema-valid
        # body may still be refused (422), as it should be.
        excluded_checks=[positive_data_acceptance],
    )
