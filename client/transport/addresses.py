"""Which network addresses a result file may be fetched from.

Result URLs come from RunComfy's answer. A trusted name (``*.runcomfy.net``,
``*.runcomfy.com``, a host the user listed) is still no proof of where it
points: a name can resolve to this machine, the local network or a cloud
metadata address (169.254.169.254), and a download there would read
something that is not RunComfy's. So both literal addresses and the addresses
a name resolves to must be public. The resolver is a parameter, so tests
decide what a name resolves to without any network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Awaitable, Callable

__all__ = ["Resolver", "is_loopback_name", "literal_address", "non_public", "system_resolver"]

# host, port -> the IP addresses (as text) the host resolves to; raises OSError when it does not resolve
Resolver = Callable[[str, int], Awaitable[list[str]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the system's resolver gives for ``host`` (what httpx would connect to)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def literal_address(host: str) -> IPAddress | None:
    """``host`` as an IP address when it is one (``[::1]``, ``10.0.0.1``, ``fe80::1%eth0``), else None."""
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return address


def is_loopback_name(host: str) -> bool:
    """``localhost`` and names under ``.localhost``, which always mean this machine (RFC 6761)."""
    host = host.lower().rstrip(".")
    return host == "localhost" or host.endswith(".localhost")


def non_public(address: IPAddress, *, loopback_ok: bool = False) -> str | None:
    """Why ``address`` is no place for a RunComfy file (None: it is a public address).

    ``loopback_ok``: the API itself runs on this machine (a simulator), whose
    files are on loopback too.
    """
    if address.is_loopback:
        return None if loopback_ok else "a loopback address (this machine)"
    if address.is_link_local:
        return "a link-local address (e.g. a cloud metadata service)"
    if address.is_private or address.is_unspecified or address.is_reserved or address.is_multicast:
        return "a private or reserved address"
    if not address.is_global:  # e.g. 100.64.0.0/10, shared between a provider's customers
        return "a non-public address"
    return None
