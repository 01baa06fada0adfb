"""Schemathesis against both custom-API sandboxes over HTTP: the spec and the server cannot drift apart.

The sandbox is the reference implementation users build against, so every answer must be one its
OpenAPI document (`talk_assets/systems/custom*/openapi.json`) describes: a documented status code, a
body matching the documented schema, the documented content type, 405 with `Allow` for a method the
spec does not list, and a 4xx for a request the spec's schemas refuse. Seeded and deterministic
(same cases every run), bounded by example counts so each system finishes well under a minute.
"""

from __future__ import annotations

import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
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

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance, unsupported_method, negative_data_rejection]


COVERAGE_ON = r"^/api(/v1)?/(customers|orders)(/|$)|^/api(/v1)?/[a-z_]+$"


def _config(spec: SystemSpec) -> schemathesis.Config:
    """Seeded and deterministic; the API key is configured (not passed per call) so that Schemathesis
    knows the request it sends carries it, and never calls a request with the key "missing"."""
    return schemathesis.Config.from_dict({
        "seed": 20261201,
        "headers": spec.auth_headers(spec.api_key()),
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


@CRM.parametrize()
def test_custom_crm_answers_as_its_spec_says(case: schemathesis.Case, crm: System) -> None:
    case.call_and_validate(base_url=crm.url, checks=CHECKS)


@SHOP.parametrize()
def test_custom_webshop_answers_as_its_spec_says(case: schemathesis.Case, shop: System) -> None:
    case.call_and_validate(base_url=shop.url, checks=CHECKS)
