"""The broker is a Redis broker to every tool: a connection built from the URL alone, as
Flower's broker page and kombu build theirs, connects and consumes with Jobyard's channel,
and Flower reads the queues' lengths from it."""

from __future__ import annotations

import asyncio

import kombu
from flower.utils.broker import Broker

from project.celery import app
from tasks import enqueue
from tasks.worker.transport import Channel

QUEUE = "webhooks"  # no shared worker consumes it


def test_the_apps_broker_uri_is_a_redis_uri():
    with app.connection() as conn:
        assert conn.as_uri(include_password=True) == app.conf.broker_url
        assert conn.as_uri().startswith("redis://")
        assert conn.transport.driver_type == "redis"  # what Flower's `transport` reads


def test_a_connection_from_the_url_alone_uses_jobyards_channel():
    with kombu.Connection(
        app.conf.broker_url, transport_options=app.conf.broker_transport_options
    ) as conn:  # fmt: skip
        channel = conn.default_channel
        assert isinstance(channel, Channel)
        assert channel.client.ping()


def test_flower_reads_the_queues_from_the_apps_broker_uri():
    enqueue(f"t-echo.{QUEUE}", {"value": 1})
    enqueue(f"t-echo.{QUEUE}", {"value": 2}, priority=1)
    with app.connection() as conn:
        uri = conn.as_uri(include_password=True)
    broker = Broker(uri, broker_options=app.conf.broker_transport_options,
                    broker_use_ssl=app.conf.broker_use_ssl)  # fmt: skip
    assert asyncio.run(broker.queues([QUEUE])) == [{"name": QUEUE, "messages": 2}]
