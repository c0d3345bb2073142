"""Which address a request comes from, trusting ``X-Forwarded-For`` only from configured proxies.

The chain is read from the right: each hop was appended by the proxy in front
of it, so the first address (from the right) that is not a trusted proxy is
the client. A client can put anything on the left of the header; that part is
never believed. Without trusted proxies the TCP peer is the client.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence

from f2f_cli.settings import IPNetwork

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


# Every request parses its peer: the few addresses a process sees are parsed once.
@functools.lru_cache(maxsize=4096)
def _parse(value: str) -> Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [2001:db8::1]:443
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # 203.0.113.7:443
        value = value.partition(":")[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, proxies: Sequence[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def client_address(peer: str | None, forwarded_for: Sequence[str], proxies: Sequence[IPNetwork]) -> Address | None:
    """The client's address: the peer, or from ``X-Forwarded-For`` when the peer is a trusted proxy."""
    address = _parse(peer) if peer else None
    if address is None or not proxies or not _trusted(address, proxies):
        return address
    hops = [hop for header in forwarded_for for hop in header.split(",") if hop.strip()]
    for hop in reversed(hops):
        parsed = _parse(hop)
        if parsed is None:
            break  # garbage in the chain: stop believing it, keep the last good hop
        address = parsed
        if not _trusted(parsed, proxies):
            break
    return address


def limit_key(address: Address | None) -> str:
    """The rate-limit bucket of an address: itself for IPv4, its /64 for IPv6 (one host owns a /64)."""
    if address is None:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False).network_address) + "/64"
    return str(address)
