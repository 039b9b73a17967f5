"""Who is asking: the client address behind trusted proxies, and its keyed hash (IPs are never stored)."""

from __future__ import annotations

import functools
import hmac
import ipaddress
from collections.abc import Sequence

from service.settings import IPNetwork

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[IPNetwork]) -> IPAddress | None:
    """`X-Forwarded-For` is believed only when the peer is a trusted proxy, and then only up to the first
    address (from the right) that is not itself a trusted proxy."""
    try:
        address: IPAddress | None = ipaddress.ip_address(peer) if peer else None
    except ValueError:
        address = None
    if address is None or not forwarded_for or not any(address in net for net in trusted):
        return address
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        try:
            candidate = ipaddress.ip_address(hop)
        except ValueError:
            return address
        address = candidate
        if not any(candidate in net for net in trusted):
            break
    return address


def subject(address: IPAddress | None) -> str:
    """The unit we limit and remember: an IPv4 address, or the /64 an IPv6 address belongs to."""
    if address is None:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


#: Longer X-Forwarded-For values are hashed without being remembered, so the cache stays small.
_CACHED_FORWARDED_FOR_MAX = 256


def address_hash(secret: bytes, trusted: Sequence[IPNetwork], peer: str | None, forwarded_for: str | None) -> str:
    """The keyed hash of the client behind a peer address and its `X-Forwarded-For`."""
    if not forwarded_for:
        return _cached_address_hash(secret, (), peer, None)  # without the header, the proxies do not matter
    if len(forwarded_for) <= _CACHED_FORWARDED_FOR_MAX:
        return _cached_address_hash(secret, tuple(trusted), peer, forwarded_for)
    return keyed_hash(secret, "ip", subject(client_address(peer, forwarded_for, trusted)))


@functools.lru_cache(maxsize=4096)
def _cached_address_hash(secret: bytes, trusted: tuple[IPNetwork, ...], peer: str | None,
                         forwarded_for: str | None) -> str:
    """Parsing the addresses and the HMAC are a measurable share of a request (docs/benchmarks.md), and a
    worker hears from the same clients (or the same few proxies) again and again. The addresses stay in this
    process's memory only, as they do in aiohttp's own connection objects."""
    return keyed_hash(secret, "ip", subject(client_address(peer, forwarded_for, trusted)))


def keyed_hash(secret: bytes, purpose: str, value: str, length: int = 24) -> str:
    # hmac.digest with the digest's name is OpenSSL's one-shot HMAC; hmac.new builds a Python object around
    # two hash objects first: about 1.5 against 5 µs (docs/benchmarks.md). The same bytes.
    return hmac.digest(secret, f"{purpose}:{value}".encode(), "sha256").hex()[:length]


def email_hash(secret: bytes, email: str) -> str:
    """The sender behind an address, for rate limits and reputation: case does not make another sender."""
    return keyed_hash(secret, "email", email.casefold())


@functools.lru_cache(maxsize=4096)
def email_digests(secret: bytes, email: str) -> tuple[str, str]:
    """The address's `email_hash` and its avatar seed (a keyed hash of the case-folded address, 16 hex digits).

    A reader comes back with the same address, and a submission needs both (two HMACs and a case fold: about
    5 µs, docs/benchmarks.md): kept for the last 4,096 addresses, in this process's memory only, as the
    validated form is (`models._normalised_email`)."""
    folded = email.casefold()
    return keyed_hash(secret, "email", folded), keyed_hash(secret, "avatar", folded, 16)
