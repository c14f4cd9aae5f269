"""The `pure` mark holds: a pure test gets neither the database nor Redis, and a connection
it opens fails it even when the error is swallowed (see tests/conftest.py)."""

import socket

import pytest
from django.contrib.auth.models import User

from tests.conftest import PureTestReachedOut

pytestmark = pytest.mark.pure


def test_the_database_is_refused_and_recorded(no_connections_when_pure):
    with pytest.raises(RuntimeError, match="Database access not allowed"):  # pytest-django's
        User.objects.exists()
    assert no_connections_when_pure == ["database 'default'"]  # would fail it at teardown
    no_connections_when_pure.clear()


def test_redis_and_any_other_connection_are_refused_and_recorded(no_connections_when_pure):
    from tasks.connection import get_redis

    with pytest.raises(PureTestReachedOut):
        get_redis().ping()
    with pytest.raises(PureTestReachedOut), socket.socket() as sock:
        sock.connect_ex(("127.0.0.1", 9))
    assert len(no_connections_when_pure) == 2  # each would fail the test at its teardown
    no_connections_when_pure.clear()
