"""schemathesis against /v1/openapi.json: for every operation the description names, examples
generated from its parameters and bodies (bounded), sent to the live console with an admin key.
No answer may be a 5xx, and every answer must match what the description says (status,
content type, body schema). Schema-valid input may still be refused (a 400 naming the rule:
the member limit, the last Admin, an id that opens to nothing), so schemathesis's "positive
data accepted" check is not among these."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from adminapi import openapi

pytestmark = pytest.mark.django_db(transaction=True)

schema = schemathesis.openapi.from_dict(openapi.build())
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_the_served_description_is_the_generated_one(admin_api):
    answer = httpx.get(admin_api.url + "/v1/openapi.json", timeout=30)
    assert answer.status_code == 200
    served = answer.json()
    assert served == openapi.build()
    assert served["openapi"].startswith("3.1")
    assert "/v1/organizations/users" in served["paths"]


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_operation_answers_as_described(case, admin_api):
    case.call_and_validate(
        base_url=admin_api.url,
        headers={"x-api-key": admin_api.key},
        timeout=30,
        checks=CHECKS,
    )
