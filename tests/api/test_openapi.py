"""The OpenAPI document describes every endpoint and every job type; the docs page shows
it without fetching anything from elsewhere."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tasks import job_types
from tasks.api import urls
from tests.api.conftest import assert_error

pytestmark = pytest.mark.django_db


def documented(doc: dict) -> dict[tuple[str, str], str]:
    """(path template, method) -> the scope the document says it needs."""
    return {(path, method.upper()): op["x-scope"] for path, item in doc["paths"].items()
            for method, op in item.items() if method in ("get", "post", "delete")}  # fmt: skip


def routed() -> dict[tuple[str, str], str]:
    """(path template, method) -> the scope its view asks for, for every URL pattern but
    the catch-all."""
    found = {}
    for pattern in urls.urlpatterns:
        if pattern.name == "api-unknown":
            continue
        names = pattern.pattern.converters
        url = reverse(pattern.name, kwargs={n: "{" + n + "}" for n in names})
        url = url.replace("%7B", "{").replace("%7D", "}").replace("{job_id}", "{jobId}")
        found |= {(url, m): s for m, s in pattern.callback.api_methods.items() if m != "HEAD"}
    return found


def test_the_document_is_openapi_3_1_and_covers_every_route_with_its_scope(api):
    response = api.get("/api/v1/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.1")
    assert documented(doc) == routed()


def test_every_ref_resolves(api):
    doc = api.get("/api/v1/openapi.json").json()
    text = api.get("/api/v1/openapi.json").content.decode()
    for ref in set(re.findall(r'"\$ref": "([^"]+)"', text)):
        node = doc
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
    assert "$defs" not in text  # hoisted into components


def test_each_job_type_is_a_trigger_body_from_its_declaration(api):
    doc = api.get("/api/v1/openapi.json").json()
    body = doc["paths"]["/api/admin/jobs/trigger"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]  # fmt: skip
    schemas = doc["components"]["schemas"]
    variants = [schemas[v["$ref"].rsplit("/", 1)[1]] for v in body["oneOf"]]
    by_type = {v["properties"]["jobType"]["const"]: v for v in variants}
    assert set(by_type) == set(job_types())
    typed = by_type["t-typed"]
    assert typed["required"] == ["jobType", "count"]
    assert typed["properties"]["count"]["type"] == "integer"
    assert typed["properties"]["options"] == {"$ref": "#/components/schemas/JobOptions"}
    assert "failTimes" in by_type["t-flaky.default"]["properties"]  # camelCase, as sent
    assert "jobId" in schemas["JobOptions"]["properties"]
    responses = doc["paths"]["/api/admin/jobs/trigger"]["post"]["responses"]
    assert {"200", "202", "400", "401", "403", "413", "415", "422"} <= set(responses)


def test_the_docs_page_lists_every_path_and_job_type_and_loads_nothing_external(api):
    response = api.get("/api/v1/docs")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    doc = api.get("/api/v1/openapi.json").json()
    for path in doc["paths"]:
        assert path in html
    for name in job_types():
        assert name in html
    assert "<script" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)


def test_the_docs_need_credentials_too(anonymous):
    assert_error(anonymous.get("/api/v1/docs"), 401)
    assert_error(anonymous.get("/api/v1/openapi.json"), 401)


def test_docs_api_md_has_a_curl_example_for_every_operation(api):
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    curls = re.findall(r"curl [^\n]*", text)
    doc = api.get("/api/v1/openapi.json").json()
    for path, item in doc["paths"].items():
        pattern = re.escape(path).replace(r"\{", "{").replace(r"\}", "}")
        pattern = re.sub(r"{[^}]+}", r"[^/\\s?\"]+", pattern) + r"([?\s\"]|$)"
        for method in item:
            if method not in ("get", "post", "delete"):
                continue
            verb = "" if method == "get" else f"-s?X {method.upper()} "
            assert any(re.search(verb + r".*\$JY" + pattern, c) for c in curls), (method, path)
