"""The client behind a request, as the domain sees it: a keyed hash of its address."""

from __future__ import annotations

from aiohttp import web

from service.appkeys import SETTINGS
from service.clients import address_hash


def client_ip_hash(request: web.Request) -> str:
    """Remembered per client by `address_hash`, so a second call costs as little as a lookup in the request
    would (which, through `Mapping.__contains__`, raises and catches a KeyError on every first call)."""
    settings = request.app[SETTINGS]
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return address_hash(settings.secret, settings.trusted_proxies, peer[0] if peer else None,
                        request.headers.get("X-Forwarded-For"))
