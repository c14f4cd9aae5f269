"""A `url` source: download the dataset, refusing private, loopback and link-local targets
(unless CATALOG_IMPORT_ALLOW_PRIVATE_URLS), within CATALOG_MAX_UPLOAD_BYTES.

The host is resolved once, every address checked, and the connection made to the checked
address (with the URL's host name for Host and TLS), so a second DNS answer cannot swap in
a private one. Redirects are not followed: each target would need the same check.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
from typing import IO
from urllib.parse import urlsplit

from catalog.imports.rows import DatasetError

CHUNK = 1024 * 1024


def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to (tests replace this: they never go out)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


def check_address(address: str) -> None:
    ip = ipaddress.ip_address(address)
    if not ip.is_global or ip.is_multicast:
        raise DatasetError(
            f"refused: the URL's host resolves to {address}, a private, loopback or"
            " reserved address (CATALOG_IMPORT_ALLOW_PRIVATE_URLS allows it)"
        )


def download(url: str, out: IO[bytes], *, max_bytes: int, allow_private: bool = False,
             timeout: float = 30.0) -> int:  # fmt: skip
    """Write the body at `url` to `out`; its size. DatasetError when no retry can help
    (refused target, 4xx, too large); OSError for what may pass (5xx, network)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DatasetError(f"not an http(s) URL: {url[:200]!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = resolve(parts.hostname, port)
    except OSError as exc:
        raise OSError(f"cannot resolve {parts.hostname}: {exc}") from exc
    if not allow_private:
        for address in addresses:
            check_address(address)
    pinned = addresses[0]
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = kind(parts.hostname, port, timeout=timeout)
    # http.client connects through this attribute: point it at the address just checked.
    conn._create_connection = lambda addr, *args, **kwargs: socket.create_connection(  # type: ignore[attr-defined]
        (pinned, addr[1]), *args, **kwargs
    )
    try:
        path = parts.path or "/"
        conn.request("GET", f"{path}?{parts.query}" if parts.query else path)
        response = conn.getresponse()
        if response.status >= 500:
            raise OSError(f"{url} answered {response.status}")
        if response.status != 200:
            raise DatasetError(f"{url} answered {response.status} {response.reason}")
        declared = response.getheader("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise DatasetError(f"the download is {declared} bytes, over the {max_bytes} limit")
        size = 0
        while chunk := response.read(CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise DatasetError(f"the download is over the {max_bytes} bytes limit")
            out.write(chunk)
        return size
    finally:
        conn.close()
