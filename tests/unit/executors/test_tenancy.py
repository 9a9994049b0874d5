"""Tenant ids: one per owner, stable under one key, and telling AWS's logs nothing of whom."""

from __future__ import annotations

import re

from bot.core.models import Identity
from bot.executors.aws_lambda.tenancy import (
    DOCTOR_TENANT,
    PER_USER,
    SHARED,
    function_tenancy,
    tenant_id,
)

KEY = b"k" * 32
ALICE = Identity("slack", "T0TEAM", "U0ALICE")
LAMBDA_TENANT_ID = re.compile(r"[a-zA-Z0-9._:/=+\-@ ]{1,256}")  # botocore's TenantId pattern


def test_one_owner_always_gets_the_same_tenant_id_under_one_key() -> None:
    assert tenant_id(ALICE, KEY) == tenant_id(Identity("slack", "T0TEAM", "U0ALICE"), KEY)


def test_owners_differing_anywhere_get_different_tenant_ids() -> None:
    others = [
        Identity("slack", "T0TEAM", "U0BOB"),
        Identity("slack", "T0OTHER", "U0ALICE"),
        Identity("local", "T0TEAM", "U0ALICE"),
        Identity("slack:T0TEAM", "", "U0ALICE"),  # no ambiguity where fields meet
        None,
    ]
    ids = {tenant_id(owner, KEY) for owner in [ALICE, *others]}
    assert len(ids) == len(others) + 1


def test_a_tenant_id_names_no_one_and_depends_on_the_key() -> None:
    tenant = tenant_id(ALICE, KEY)

    assert LAMBDA_TENANT_ID.fullmatch(tenant) and re.fullmatch(r"u-[0-9a-f]{32}", tenant)
    assert "ALICE" not in tenant.upper() and "T0TEAM" not in tenant.upper()
    assert tenant_id(ALICE, b"another key") != tenant
    assert tenant != DOCTOR_TENANT and LAMBDA_TENANT_ID.fullmatch(DOCTOR_TENANT)


def test_the_tenancy_of_a_function_is_read_from_its_configuration() -> None:
    assert function_tenancy({"TenancyConfig": {"TenantIsolationMode": "PER_TENANT"}}) == PER_USER
    assert function_tenancy({}) == SHARED
    assert function_tenancy({"TenancyConfig": None}) == SHARED
