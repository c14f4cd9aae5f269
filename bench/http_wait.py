"""The I/O-bound job of bench/io_wait.py: one GET to a local server that answers in 20 ms.

    .venv/bin/python -m bench.http_wait PORT     # the server (asyncio, one process)

The server (asyncio, HTTP/1.1 keep-alive) sleeps 20 ms per request without holding a
thread, counts the requests it answered and tells the count at `/count`. Every Python
system's job calls `get(url)`: a keep-alive `http.client` connection per thread (per
greenlet under gevent, whose monkey patching makes threading.local greenlet-local), as
BullMQ's job uses a keep-alive agent.
"""

from __future__ import annotations

import asyncio
import http.client
import sys
import threading
from urllib.parse import urlsplit

WAIT_S = 0.02

_local = threading.local()


def get(url: str) -> int:
    """GET `url` on this thread's keep-alive connection; the status."""
    parts = urlsplit(url)
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = _local.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", parts.path or "/")
        response = conn.getresponse()
        response.read()
    except (OSError, http.client.HTTPException):
        conn.close()  # the server closed an idle connection: once more on a new one
        _local.conn = None
        return get(url)
    return response.status


def count(url: str, what: str = "count") -> int:
    """Requests the server answered so far (`most`: the most it held at once since the
    last time it was asked)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", f"/{what}")
        return int(conn.getresponse().read())
    finally:
        conn.close()


async def serve(port: int) -> None:
    served = waiting = most = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served, waiting, most
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if head.startswith(b"GET /count"):
                    body = str(served).encode()
                elif head.startswith(b"GET /most"):
                    body, most = str(most).encode(), 0
                else:
                    waiting += 1
                    most = max(most, waiting)
                    await asyncio.sleep(WAIT_S)
                    waiting -= 1
                    served += 1
                    body = b"ok"
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
