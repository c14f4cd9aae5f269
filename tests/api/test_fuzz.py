"""Property-based fuzzing driven by the OpenAPI document (schemathesis): valid and invalid
requests to every operation, checking that none is answered by a 5xx and that every answer
is one the document describes (status, content type and body schema).

The fuzzed jobs go to a Redis database of their own, which no worker consumes: a fuzzed
`t-sleep` of a week must not occupy the shared test worker.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tasks.api.models import ApiToken

#: Examples per operation and mode. 25 missed a planted 500 (an unparsed query integer),
#: 50 found it; the whole module runs in about a minute.
EXAMPLES = 50
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]  # fmt: skip


@pytest.fixture
def isolated_redis(settings):
    from tasks.connection import _client_for_pid, get_redis

    settings.REDIS_URL = settings.REDIS_URL.rsplit("/", 1)[0] + "/9"
    _client_for_pid.cache_clear()
    get_redis().flushdb()
    yield
    get_redis().flushdb()
    _client_for_pid.cache_clear()


@pytest.fixture
def fuzz_headers(transactional_db) -> dict[str, str]:
    _, raw = ApiToken.issue("fuzz", "write")
    return {"Authorization": f"Bearer {raw}"}


@pytest.fixture
def api_schema(isolated_redis, fuzz_headers, settings, tmp_path):
    # Fuzzed catalog uploads are stored: here, not in the project's media directory.
    settings.MEDIA_ROOT = str(tmp_path)
    # Event streams end quickly here, so each fuzzed call to /api/v1/events returns.
    settings.JOBYARD_API = {**settings.JOBYARD_API, "SSE_MAX_SECONDS": 0.2,
                            "SSE_KEEPALIVE_SECONDS": 0.1}  # fmt: skip
    return schemathesis.openapi.from_wsgi(
        "/api/v1/openapi.json", get_wsgi_application(), headers=fuzz_headers
    )


def operations() -> list[tuple[str, str]]:
    from tasks.api.openapi import build_document

    return [(method.upper(), path) for path, item in build_document()["paths"].items()
            for method in item if method in ("get", "post", "patch", "delete")]  # fmt: skip


# One test per operation and mode. (schemathesis' own pytest plugin needs pytest < 9.)
@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=["valid", "invalid"])  # fmt: skip
@pytest.mark.parametrize(("method", "path"), operations())
def test_the_api_answers_every_fuzzed_request_as_documented(api_schema, fuzz_headers, method,
                                                            path, mode):  # fmt: skip
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis_settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(HealthCheck), phases=[Phase.generate])  # fmt: skip
    def fuzz(case):
        case.call_and_validate(headers=fuzz_headers, checks=CHECKS)

    fuzz()
