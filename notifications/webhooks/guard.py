"""The SSRF guard: a webhook goes only to public addresses (unless WEBHOOK_ALLOW_PRIVATE).

A target's host is resolved once; every address it resolves to is checked, and the request
is then made to the checked address (the URL's host name kept for `Host` and TLS's SNI and
certificate check), so a second DNS answer cannot swap a private address in (a DNS
rebind). Redirects are followed by delivery.py, each target checked here again.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from tasks import PermanentError

#: Checked besides `not is_global`: the cloud metadata services, named so that a refusal
#: says what it protected (they are link-local or unique-local, refused anyway).
METADATA = {
    ipaddress.ip_address("169.254.169.254"): "a cloud metadata service",
    ipaddress.ip_address("fd00:ec2::254"): "a cloud metadata service",
    ipaddress.ip_address("100.100.100.200"): "a cloud metadata service",
}
#: NAT64 maps IPv4 into IPv6 here: the IPv4 address inside is checked too.
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class RefusedTarget(PermanentError):
    """The target is not a public http(s) address: no retry changes that."""


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str  # the name, for Host and SNI
    port: int
    address: str  # the checked address to connect to
    path: str  # path and query


def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to. Tests replace this (or socket.getaddrinfo)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


def refusal(address: str) -> str | None:
    """Why `address` must not be contacted, or None when it is a public unicast address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # a zone (fe80::1%eth0) is no help
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or (
            ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in NAT64 else None
        )
        if inner is not None and (reason := refusal(str(inner))):
            return reason
    if ip in METADATA:
        return f"{address} is {METADATA[ip]}"
    if ip.is_unspecified:
        return f"{address} is the unspecified address"
    if ip.is_loopback:
        return f"{address} is a loopback address"
    if ip.is_link_local:
        return f"{address} is a link-local address"
    if ip.is_multicast:
        return f"{address} is a multicast address"
    if ip.is_private or ip.is_reserved or not ip.is_global:
        return f"{address} is a private or reserved address"
    return None


def check(url: str, *, allow_private: bool) -> Target:
    """Parse, resolve and check `url`; the Target to connect to. RefusedTarget when it must
    not be contacted; OSError when its name does not resolve (that may pass: retried)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RefusedTarget(f"refused: not an http(s) URL: {url[:200]!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise RefusedTarget(f"refused: bad port in {url[:200]!r}") from exc
    host = parts.hostname
    try:
        addresses = [str(ipaddress.ip_address(host))]  # a literal: nothing to resolve
    except ValueError:
        try:
            addresses = resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise OSError(f"cannot resolve {host}: {exc}") from exc
    if not addresses:
        raise OSError(f"cannot resolve {host}: no address")
    if not allow_private:
        for address in addresses:  # every answer, not just the one used: no lottery
            if reason := refusal(address):
                raise RefusedTarget(
                    f"refused: {host} resolves to {reason} (WEBHOOK_ALLOW_PRIVATE allows it)"
                )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(url, parts.scheme, host, port, addresses[0], path)
