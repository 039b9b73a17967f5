"""Webhooks reach public receivers only (`service.egress`): internal and metadata destinations are refused at
registration, over the admin API, and again at connect time on the resolved address; delivery errors are
recorded as classes."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis
from support import ADMIN_TOKEN, make_app
from test_webhooks import Receiver, comment_id, emit, receiver, register, settle

from service import egress
from service.scripts import Scripts
from service.settings import IPNetwork, Settings
from service.webhooks import Delivery, DeliveryState, Webhooks, delivery_error

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SECRET = "s3cret-s3cret-s3cret"

#: From the report (the first eight) and the other internal kinds: each must be refused at registration.
REFUSED_URLS = [
    "http://127.0.0.1:8080/hook",
    "http://[::1]/",
    "http://0.0.0.0/",
    "http://169.254.169.254/latest/meta-data/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://2130706433:9/",
    "http://0x7f.1:9/",
    "http://localhost:6379/",
    "http://017700000001/",
    "http://127.1/",
    "http://0/",
    "http://0x7f000001/",
    "http://127.0.0.1./",
    "http://LOCALHOST./",
    "http://api.localhost/",
    "http://metadata/",
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://100.100.100.200/",
    "http://169.254.10.10/",
    "http://192.0.2.1/",
    "http://198.18.0.1/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://[::]/",
    "http://[fe80::1]/",
    "http://[fe80::1%25eth0]/",
    "http://[fc00::1]/",
    "http://[fd00:ec2::254]/",
    "http://[fec0::1]/",
    "http://[ff02::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:a00:1]/",
    "http://[64:ff9b::7f00:1]/",
    "http://[2002:7f00:1::]/",
    "http://[2001:db8::1]/",
    "https://1.2.3.4.5/",
    "http://999.1/",
]


@pytest.fixture
def closed_settings(settings: Settings) -> Settings:
    """The production default: no internal network allowed."""
    return settings.model_copy(update={"webhook_allowed_networks": [], "webhook_backoff_base_seconds": 0.05,
                                       "webhook_timeout_seconds": 2.0})


@pytest.fixture
async def closed_client(aiohttp_client: AiohttpClient,
                        closed_settings: Settings) -> TestClient[Any, Any]:
    return await aiohttp_client(make_app(closed_settings))


#: test_webhooks' fixture (its `Receiver` on loopback), found by pytest under this name.
FIXTURES = (receiver,)


def networks(*cidrs: str) -> list[IPNetwork]:
    return [ipaddress.ip_network(cidr) for cidr in cidrs]


@pytest.fixture
async def service(redis: Redis, closed_settings: Settings) -> AsyncIterator[Webhooks]:
    hooks = Webhooks(redis, Scripts(redis), closed_settings)
    await hooks.start()
    yield hooks
    await hooks.close()


class FixedResolver(AbstractResolver):
    """A DNS that answers `address` for every name (or fails), as a rebinding attacker's server would."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        self.asked.append(host)
        if self.address is None:
            raise OSError(socket.EAI_NONAME, "Name or service not known")
        return [ResolveResult(hostname=host, host=self.address, port=port, family=socket.AF_INET, proto=0,
                              flags=socket.AI_NUMERICHOST)]

    async def close(self) -> None:
        pass


async def only_delivery(service: Webhooks, hook_id: str) -> Delivery:
    [delivery] = await service.deliveries(hook_id)
    return delivery


# -- registration --------------------------------------------------------------------------------------------

async def test_internal_destinations_are_refused_at_registration(closed_client: TestClient[Any, Any]) -> None:
    """One app for all the URLs (an app takes seconds to stop); each answer is checked on its own."""
    for url in REFUSED_URLS:
        response = await closed_client.post("/v1/webhooks", headers=ADMIN,
                                            json={"url": url, "events": ["comment.approved"], "secret": SECRET})
        assert response.status == 422, (url, await response.text())
        assert response.content_type == "application/problem+json"
        problem = await response.json()
        assert problem["code"] == "validation_failed", url
        assert problem["errors"] == [{"field": "url", "code": "destination_not_allowed",
                                      "message": problem["errors"][0]["message"]}], url
    assert (await (await closed_client.get("/v1/webhooks", headers=ADMIN)).json()) == {"webhooks": []}


async def test_public_destinations_are_registered(closed_client: TestClient[Any, Any],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    async def public(host: str, port: int) -> list[egress.IPAddress]:
        return [ipaddress.ip_address("93.184.216.34")]

    monkeypatch.setattr(egress, "resolve", public)
    for url in ("https://93.184.216.34/hook", "https://[2606:2800:220:1::]/hook", "https://hooks.example.com/x"):
        response = await closed_client.post("/v1/webhooks", headers=ADMIN,
                                            json={"url": url, "events": ["comment.approved"], "secret": SECRET})
        assert response.status == 201, (url, await response.text())


async def test_a_name_resolving_only_to_internal_addresses_is_refused(closed_client: TestClient[Any, Any],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    async def internal(host: str, port: int) -> list[egress.IPAddress]:
        return [ipaddress.ip_address("10.1.2.3"), ipaddress.ip_address("::1")]

    monkeypatch.setattr(egress, "resolve", internal)
    response = await closed_client.post("/v1/webhooks", headers=ADMIN, json={
        "url": "https://hooks.example.com/x", "events": ["comment.approved"], "secret": SECRET})
    assert response.status == 422
    assert (await response.json())["errors"][0]["code"] == "destination_not_allowed"


async def test_allowed_networks_admit_internal_receivers_but_never_metadata() -> None:
    allowed = networks("127.0.0.0/8", "169.254.0.0/16", "::1/128")
    await egress.check_url("http://127.0.0.1:9000/hook", allowed)
    await egress.check_url("http://[::1]:9000/hook", allowed)
    await egress.check_url("http://localhost:9000/hook", allowed)
    await egress.check_url("http://169.254.10.10/hook", allowed)
    for url in ("http://10.0.0.1/", "http://169.254.169.254/", "http://metadata.google.internal/",
                "http://[::ffff:169.254.169.254]/"):
        with pytest.raises(egress.DestinationNotAllowed):
            await egress.check_url(url, allowed)


@pytest.mark.parametrize(("host", "address"), [
    ("2130706433", "127.0.0.1"), ("0x7f.1", "127.0.0.1"), ("017700000001", "127.0.0.1"), ("127.1", "127.0.0.1"),
    ("0x7f.0.0.1", "127.0.0.1"), ("0177.0.0.01", "127.0.0.1"), ("0", "0.0.0.0"), ("1.2.3.4.", "1.2.3.4"),
    ("localhost", "127.0.0.1"), ("Foo.LocalHost", "127.0.0.1"), ("::FFFF:7f00:1", "::ffff:7f00:1"),
    ("example.com", None), ("1a.example", None), ("0x7f.example", None),
])
def test_hosts_are_read_as_resolvers_read_them(host: str, address: str | None) -> None:
    assert egress.host_address(host) == (ipaddress.ip_address(address) if address else None)


@pytest.mark.parametrize("host", ["1.2.3.4.5", "256.1.1.1", "1.16777216", "0x1g.1", "09.1.1.1"])
def test_numeric_hosts_that_are_no_address_are_refused(host: str) -> None:
    with pytest.raises(ValueError):
        egress.host_address(host)


# -- connect time --------------------------------------------------------------------------------------------

async def test_a_name_resolving_to_loopback_is_refused_at_connect_time(redis: Redis, service: Webhooks,
                                                                       receiver: Receiver) -> None:
    """Registered while the name was public; DNS now answers 127.0.0.1 (rebinding): nothing is sent."""
    port = receiver.url.split(":")[2].split("/")[0]
    resolver = FixedResolver("93.184.216.34")
    service.resolver = resolver

    async def public(host: str, port: int) -> list[egress.IPAddress]:
        return [ipaddress.ip_address("93.184.216.34")]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(egress, "resolve", public)
        hook = await register(service, f"http://receiver.example.com:{port}/hook", ["comment.approved"])
    resolver.address = "127.0.0.1"
    await emit(redis, "comment.approved", comment_id(1), action="approve")
    await settle(lambda: bool(resolver.asked), service)
    delivery = await only_delivery(service, hook.id)
    assert (delivery.state, delivery.last_error, delivery.last_status) == (DeliveryState.RETRYING,
                                                                           "blocked_address", None)
    assert receiver.requests == []
    assert "receiver.example.com" in resolver.asked


async def test_localhost_through_the_system_resolver_is_refused_at_connect_time(
        redis: Redis, settings: Settings, service: Webhooks, receiver: Receiver) -> None:
    """Registered while loopback was allowed, delivered after the operator removed it: the address the system
    resolver gives for `localhost`, and an IP literal (which never reaches a resolver), are both refused."""
    allowing = Webhooks(redis, Scripts(redis), settings)
    by_name = await register(allowing, receiver.url.replace("127.0.0.1", "localhost"), ["comment.approved"])
    by_address = await register(allowing, receiver.url, ["comment.approved"])
    await emit(redis, "comment.approved", comment_id(2), action="approve")
    await settle(lambda: True, service)
    for hook in (by_name, by_address):
        delivery = await only_delivery(service, hook.id)
        assert (delivery.last_error, delivery.last_status) == ("blocked_address", None)
    assert receiver.requests == []


async def test_allowed_networks_are_reached_through_a_resolver(redis: Redis, settings: Settings,
                                                               receiver: Receiver) -> None:
    allowing = Webhooks(redis, Scripts(redis), settings.model_copy(update={"webhook_allowed_networks":
                                                                             networks("127.0.0.1/32")}))
    allowing.resolver = FixedResolver("127.0.0.1")
    await allowing.start()
    try:
        port = receiver.url.split(":")[2].split("/")[0]
        hook = await register(allowing, f"http://receiver.internal:{port}/hook", ["comment.approved"])
        await emit(redis, "comment.approved", comment_id(3), action="approve")
        await settle(lambda: len(receiver.requests) == 1, allowing)
        assert (await only_delivery(allowing, hook.id)).state == DeliveryState.DELIVERED
    finally:
        await allowing.close()


async def test_delivery_errors_are_classes(redis: Redis, settings: Settings, receiver: Receiver) -> None:
    hooks = Webhooks(redis, Scripts(redis), settings.model_copy(update={"webhook_timeout_seconds": 2.0}))
    await hooks.start()
    try:
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            closed_port = unused.getsockname()[1]
        receiver.statuses = [503]
        answering = await register(hooks, receiver.url, ["comment.approved"])
        refused = await register(hooks, f"http://127.0.0.1:{closed_port}/hook", ["comment.approved"])
        tls = await register(hooks, receiver.url.replace("http://", "https://"), ["comment.approved"])
        await emit(redis, "comment.approved", comment_id(4), action="approve")
        await settle(lambda: True, hooks)
        errors = {hook.id: (await only_delivery(hooks, hook.id)).last_error for hook in (answering, refused, tls)}
        assert errors == {answering.id: "http_503", refused.id: "refused", tls.id: "tls"}

        hooks.resolver = FixedResolver(None)
        await hooks.close()  # the next session uses the failing resolver
        unresolvable = await register(hooks, "http://receiver.invalid/hook", ["comment.approved"])
        await emit(redis, "comment.approved", comment_id(5), action="approve")
        await settle(lambda: True, hooks)
        assert (await only_delivery(hooks, unresolvable.id)).last_error == "dns"
    finally:
        await hooks.close()


def test_unknown_failures_have_a_class_without_their_message() -> None:
    assert delivery_error(RuntimeError("secret internal detail 10.0.0.7:6379")) == "connection"
    assert delivery_error(TimeoutError()) == "timeout"
    assert delivery_error(ConnectionRefusedError(111, "refused by 10.0.0.7:6379")) == "refused"
    assert delivery_error(egress.BlockedAddress("no")) == "blocked_address"
