"""The client behind a request, as the domain sees it: a keyed hash of its address."""

from __future__ import annotations

from aiohttp import web

from service.appkeys import SETTINGS
from service.clients import address_hash

IP_HASH = web.RequestKey("ip_hash", str)


def client_ip_hash(request: web.Request) -> str:
    if IP_HASH in request:
        return request[IP_HASH]
    settings = request.app[SETTINGS]
    peer = request.transport.get_extra_info("peername") if request.transport else None
    value = address_hash(settings.secret, settings.trusted_proxies, peer[0] if peer else None,
                         request.headers.get("X-Forwarded-For"))
    request[IP_HASH] = value
    return value
