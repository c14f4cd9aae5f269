"""Fixtures of the HTTP API tests: clients holding a write token, a read token, none."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.test import Client

from tasks.api.models import ApiToken


class ApiClient(Client):
    """Django's test client with JSON helpers and, optionally, a bearer token."""

    def __init__(self, token: str | None = None, **defaults: Any) -> None:
        if token:
            defaults["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        super().__init__(**defaults)

    def post_json(self, path: str, body: Any = None, **extra: Any):
        data = b"" if body is None else json.dumps(body)
        return self.post(path, data, content_type="application/json", **extra)


@pytest.fixture
def make_token(db):
    def make(scope: str = "write", name: str | None = None) -> str:
        _, raw = ApiToken.issue(name or f"test-{uuid.uuid4().hex[:8]}", scope)
        return raw

    return make


@pytest.fixture
def api(make_token) -> ApiClient:
    """A client with a write token."""
    return ApiClient(make_token("write"))


@pytest.fixture
def reader(make_token) -> ApiClient:
    """A client with a read token."""
    return ApiClient(make_token("read"))


@pytest.fixture
def anonymous() -> ApiClient:
    return ApiClient()


def assert_error(response, status: int, code: str | None = None) -> dict[str, Any]:
    """A JSON error of the documented shape; returns its `error` object."""
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == "application/json", response["Content-Type"]
    error = response.json()["error"]
    assert isinstance(error["code"], str) and isinstance(error["message"], str)
    if code:
        assert error["code"] == code, error
    return error
