"""Schemathesis against both custom-API sandboxes over HTTP: the spec and the server cannot drift apart.

The sandbox is the reference implementation users build against, so every answer must be one its
OpenAPI document (`talk_assets/systems/custom*/openapi.json`) describes: a documented status code, a
body matching the documented schema, the documented content type, 405 with `Allow` for a method the
spec does not list, and a 4xx for a request the spec's schemas refuse. Seeded and deterministic
(same cases every run), bounded by example counts so each system finishes well under a minute.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from talk_assets.systems.customapi.openapi import spec_path
from talk_assets.systems.customapi.spec import SystemSpec
from talk_assets.systems.customcrm.spec import SPEC as CRM_SPEC
from talk_assets.systems.customwebshop.spec import SPEC as SHOP_SPEC
from talk_assets_tests.systems.customapi.conftest import System

pytestmark = pytest.mark.timeout(120)  # one operation's cases; they take seconds

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance, unsupported_method, allow_header_conformance, negative_data_rejection,
          missing_required_header, ignored_auth]


COVERAGE_ON = r"^/api(/v1)?/(customers|orders)(/|$)|^/api(/v1)?/[a-z_]+$"


def _config(spec: SystemSpec) -> schemathesis.Config:
    """Seeded and deterministic; the API key is given as the spec's security scheme (not as a header per
    call) so Schemathesis knows which requests carry it and can also check that one without it is a 401."""
    return schemathesis.Config.from_dict({
        "seed": 20261201,
        "auth": {"openapi": {"apiKey": {"bearer": spec.api_key()} if spec.auth == "bearer"
                             else {"api_key": spec.api_key()}}},
        "suppress-health-check": ["all"],
        "generation": {"max-examples": 3, "deterministic": True, "database": "none"},
        "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True},
                   "fuzzing": {"enabled": True}, "stateful": {"enabled": False}},
        # The coverage phase (every boundary and negation of every field, undeclared methods) costs
        # thousands of requests per API; it runs on the listings and on customers and orders, whose
        # records are the richest (nested lines, unique fields, references). The other entities go
        # through the same generic routes and handlers and are fuzzed.
        "operations": [{"exclude-path-regex": COVERAGE_ON, "phases": {"coverage": {"enabled": False}}}],
    })


# Loaded from the committed files at collection (schemathesis' lazy `from_fixture` loader does not work
# under pytest 9.2); each call goes to the session's sandbox on its ephemeral port.
CRM = schemathesis.openapi.from_path(spec_path(CRM_SPEC), config=_config(CRM_SPEC))
SHOP = schemathesis.openapi.from_path(spec_path(SHOP_SPEC), config=_config(SHOP_SPEC))


@pytest.fixture(scope="module")
def apis(servers: dict[str, System]) -> Iterator[dict[str, System]]:
    """The session's sandboxes, reset once after the module (not after each of the 63 operations)."""
    yield servers
    for s in servers.values():
        s.control("POST", "reset")


@CRM.parametrize()
def test_custom_crm_answers_as_its_spec_says(case: schemathesis.Case, apis: dict[str, System]) -> None:
    case.call_and_validate(base_url=apis["customcrm"].url, checks=CHECKS)


@SHOP.parametrize()
def test_custom_webshop_answers_as_its_spec_says(case: schemathesis.Case, apis: dict[str, System]) -> None:
    case.call_and_validate(base_url=apis["customwebshop"].url, checks=CHECKS)
