"""Where the service's outbound requests (webhook deliveries) may go.

Public addresses only, unless the operator allows an internal network (`COMMENTS_WEBHOOK_ALLOWED_NETWORKS`);
cloud metadata endpoints never, whatever is allowed. A destination is checked twice:

* when a URL is registered (`check_url`): its host as written, read the way resolvers read it, so that the IPv4
  spellings `inet_aton` accepts (`2130706433`, `0x7f.1`, `017700000001`, `127.1`) and `localhost` are seen for
  the loopback addresses they are; and the addresses its name resolves to now, for an early, clear refusal;
* when a connection is made (`guarded_socket`, aiohttp's `socket_factory`): every address the connector is
  about to connect to, after DNS. This is the check that counts: a name can resolve elsewhere later (DNS
  rebinding), and IP literals never reach aiohttp's resolver, but every connection attempt goes through the
  socket factory, with its address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from typing import Final
from urllib.parse import urlsplit

from aiohappyeyeballs import AddrInfoType, SocketFactoryType

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Instance metadata services (AWS/GCP/Azure/OpenStack, AWS over IPv6, ECS tasks, Alibaba): credentials live
#: there. Refused even inside an allowed network.
METADATA_ADDRESSES: Final = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "fd00:ec2::254", "169.254.170.2", "100.100.100.200"))
METADATA_NAMES: Final = frozenset({"metadata.google.internal", "metadata.goog", "metadata",
                                   "instance-data", "instance-data.ec2.internal"})
#: Prefixes whose addresses carry an IPv4 address in their low 32 bits (NAT64 well-known prefix, 6to4 is
#: handled by `ipaddress` itself): checked as that IPv4 address too.
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")
RESOLVE_TIMEOUT_SECONDS: Final = 3.0


class BlockedAddress(ConnectionRefusedError):
    """A connection the service refused to make: its destination is internal or a metadata service.

    A `ConnectionRefusedError` (an `OSError`) so that aiohttp treats it as a failed connection attempt and
    tries the next address of the name, if any."""


class DestinationNotAllowed(ValueError):
    """A receiver URL whose host is, or resolves only to, addresses webhooks may not reach."""


def _ipv4_number(part: str) -> int | None:
    """One part of a WHATWG/inet_aton IPv4 host: decimal, octal with a leading 0, hex with 0x."""
    if part[:2] in ("0x", "0X"):
        digits, base = part[2:], 16
        if digits == "":
            return 0
    elif len(part) > 1 and part.startswith("0"):
        digits, base = part[1:], 8
    else:
        digits, base = part, 10
    charset = {16: "0123456789abcdefABCDEF", 10: "0123456789", 8: "01234567"}[base]
    if not digits or len(digits) > 40 or any(ch not in charset for ch in digits):
        return None
    return int(digits, base)


def _legacy_ipv4(host: str) -> ipaddress.IPv4Address | bool | None:
    """The IPv4 address a numeric host names (`127.1`, `0x7f.1`, `2130706433`), None for a name, or False for
    a host that looks numeric but is no valid address (refused: resolvers disagree about such hosts)."""
    parts = host.split(".")
    if parts and parts[-1] == "" and len(parts) > 1:
        parts.pop()  # one trailing dot, as in an absolute name
    if not parts or _ipv4_number(parts[-1]) is None:
        return None  # a domain name ("ends in a number" is the WHATWG URL rule)
    numbers = [_ipv4_number(part) for part in parts]
    if len(parts) > 4 or any(n is None for n in numbers):
        return False
    values = [n for n in numbers if n is not None]
    if any(n > 255 for n in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        return False
    address = values[-1]
    for index, number in enumerate(values[:-1]):
        address += number << (8 * (3 - index))
    return ipaddress.IPv4Address(address)


def host_address(host: str) -> IPAddress | None:
    """The address a URL host names literally (any spelling), None for a DNS name; `ValueError` for a host
    that is neither."""
    host = host.lower()
    if ":" in host:  # IPv6 (urlsplit has removed the brackets); a zone id does not change the address
        return ipaddress.IPv6Address(host.split("%", 1)[0])
    legacy = _legacy_ipv4(host)
    if legacy is False:
        raise ValueError("a numeric host that is not a valid IPv4 address")
    if isinstance(legacy, ipaddress.IPv4Address):
        return legacy
    name = host.rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):  # RFC 6761: always loopback
        return ipaddress.IPv4Address("127.0.0.1")
    return None


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IPAddress) -> bool:
    """A globally routable unicast address: not loopback, private, shared (CGNAT), link-local, unique-local,
    site-local, unspecified, multicast, documentation or otherwise reserved."""
    site_local = isinstance(address, ipaddress.IPv6Address) and address.is_site_local
    return address.is_global and not (address.is_loopback or address.is_private or address.is_link_local
                                      or address.is_multicast or address.is_reserved or address.is_unspecified
                                      or site_local)


def address_allowed(address: IPAddress, allowed: Sequence[IPNetwork] = ()) -> bool:
    embedded = _embedded_ipv4(address)
    if embedded is not None and not address_allowed(embedded, allowed):
        return False
    if address in METADATA_ADDRESSES:
        return False
    if any(address.version == network.version and address in network for network in allowed):
        return True
    return is_public(address)


async def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses `host` resolves to now (empty when it does not, within a few seconds)."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError, UnicodeError):
        return []
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


async def check_url(url: str, allowed: Sequence[IPNetwork] = ()) -> None:
    """Raise `DestinationNotAllowed` for a receiver URL the service may not reach. A name that does not resolve
    now is accepted: its deliveries are checked when they connect."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    if host in METADATA_NAMES:
        raise DestinationNotAllowed("a cloud metadata service")
    try:
        literal = host_address(host)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise DestinationNotAllowed("not a valid host") from exc
    addresses = [literal] if literal is not None else await resolve(host, port)
    if addresses and not any(address_allowed(address, allowed) for address in addresses):
        raise DestinationNotAllowed("an internal address")


def guarded_socket(allowed: Sequence[IPNetwork]) -> SocketFactoryType:
    """aiohttp's `socket_factory`: a socket for an allowed destination, else `BlockedAddress`."""

    def factory(addr_info: AddrInfoType) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if not address_allowed(address, allowed):
            raise BlockedAddress("the destination address is not allowed for webhooks")
        return socket.socket(family=family, type=type_, proto=proto)

    return factory
