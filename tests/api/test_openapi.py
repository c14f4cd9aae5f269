"""The OpenAPI document describes every endpoint and every job type; the docs page shows
it without fetching anything from elsewhere."""

from __future__ import annotations

import re

import pytest

from tasks import job_types
from tasks.states import EVENTS, STATES
from tests.api.conftest import assert_error

pytestmark = pytest.mark.django_db


def documented(doc: dict) -> dict[tuple[str, str], str]:
    """(path template, method) -> the scope the document says it needs."""
    return {(path, method.upper()): op["x-scope"] for path, item in doc["paths"].items()
            for method, op in item.items() if method in ("get", "post", "patch", "delete")}  # fmt: skip


#: The apps whose API views the document must describe (the catalog and notifications add
#: their paths with tasks.api_paths): every app that routes an API view.
DOCUMENTED_APPS = ("tasks", "catalog", "notifications")


def routed() -> dict[tuple[str, str], str]:
    """(path template, method) -> the scope its view asks for, for every API view that the
    project routes, but the catch-all (each of a DOCUMENTED_APPS)."""
    from django.urls import URLPattern, URLResolver, get_resolver

    def camel(match: re.Match) -> str:
        head, *rest = match.group(1).split("_")
        return "{" + head + "".join(p.title() for p in rest) + "}"

    found = {}

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and hasattr(pattern.callback, "api_methods"):
                app = pattern.callback.__module__.split(".")[0]
                if pattern.name == "api-unknown":
                    continue
                assert app in DOCUMENTED_APPS, f"{pattern.name}: {app}'s views are undocumented"
                url = "/" + re.sub(r"<(?:\w+:)?(\w+)>", camel, route)
                found.update({(url, m): s for m, s in pattern.callback.api_methods.items()
                              if m != "HEAD"})  # fmt: skip

    walk(get_resolver().url_patterns, "")
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
            if method not in ("get", "post", "patch", "delete"):
                continue
            verb = "" if method == "get" else f"-s?X {method.upper()} "
            assert any(re.search(verb + r".*\$JY" + pattern, c) for c in curls), (method, path)


def refs(node) -> list[str]:
    """Every `$ref` in a document, walked as data (not matched as text)."""
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def test_every_ref_in_the_served_document_resolves_and_every_model_is_a_component(api):
    from tasks.api import schemas
    from tasks.api.openapi import REQUESTS, model_schemas

    doc = api.get("/api/v1/openapi.json").json()
    found = refs(doc)
    assert found
    for ref in found:
        assert ref.startswith("#/components/"), ref
        node = doc
        for part in ref.removeprefix("#/").split("/"):
            assert part in node, f"{ref} does not resolve"
            node = node[part]
        assert isinstance(node, dict) and node, ref
    components = doc["components"]["schemas"]
    names, _ = model_schemas()
    for model in (*schemas.RESPONSES, *REQUESTS):
        assert names[model] in components, model
    # Each response model is what some operation (or the event stream's data) answers with.
    used = {ref.rsplit("/", 1)[1] for ref in found}
    for model in schemas.RESPONSES:
        assert names[model] in used, f"{model.__name__} is in no response"


def test_response_schemas_are_the_models_own(api):
    """Generated, not restated: each component is its model's JSON Schema (less the
    property titles), so a field added to a model is in the document at once."""
    from tasks.api import schemas

    doc = api.get("/api/v1/openapi.json").json()
    components = doc["components"]["schemas"]
    generated = schemas.Job.model_json_schema(by_alias=True, mode="serialization",
                                              ref_template=schemas.REF_TEMPLATE)  # fmt: skip
    generated.pop("$defs", None)
    for field in generated["properties"].values():
        field.pop("title", None)
    assert components["Job"] == generated
    assert set(components["Counts"]["required"]) == set(STATES)
    assert components["QueueMetrics"]["properties"]["counts"] == {
        "$ref": "#/components/schemas/Counts"}  # fmt: skip
    responses = doc["paths"]["/api/v1/queues/{queue}/jobs"]["get"]["responses"]
    assert responses["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/JobPage"}  # fmt: skip
    event = components["StreamMessage"]["properties"]
    assert event["event"]["enum"] == [*EVENTS, "end", "error"]
    assert {r["$ref"] for r in event["data"]["contentSchema"]["oneOf"]} == {
        f"#/components/schemas/{m.__name__}" for m in schemas.STREAM_DATA}  # fmt: skip


def test_an_app_path_declared_twice_or_a_taken_component_is_an_error(monkeypatch):
    import tasks
    from tasks.api import openapi

    monkeypatch.setattr(openapi, "_APP_PATHS", list(openapi._APP_PATHS))
    added = tasks.api_paths(lambda api: {"/api/v1/queues": {}})
    assert tasks.api_paths(added) is added and openapi._APP_PATHS.count(added) == 1
    with pytest.raises(ValueError, match="/api/v1/queues is declared twice"):
        openapi.build_document()
    openapi._APP_PATHS.remove(added)
    tasks.api_paths(lambda api: {"/x": {"get": api.op("x", "x", api.component("Job", {}), "x")}})
    with pytest.raises(ValueError, match="component 'Job' is taken"):
        openapi.build_document()
