"""service.clients: which address a request comes from, behind which proxies, and how it is remembered."""

from __future__ import annotations

import ipaddress

import pytest

from service.clients import address_hash, client_address, keyed_hash, subject
from service.settings import IPNetwork

LOCAL: list[IPNetwork] = [ipaddress.ip_network("127.0.0.1/32")]
PROXIES: list[IPNetwork] = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")]


def test_forwarded_for_is_ignored_from_an_untrusted_peer() -> None:
    assert client_address("198.51.100.7", "203.0.113.9", []) == ipaddress.ip_address("198.51.100.7")
    assert client_address("198.51.100.7", "203.0.113.9", PROXIES) == ipaddress.ip_address("198.51.100.7")


def test_forwarded_for_is_believed_from_a_trusted_peer() -> None:
    assert client_address("127.0.0.1", "203.0.113.9", LOCAL) == ipaddress.ip_address("203.0.113.9")


def test_the_rightmost_untrusted_hop_wins_so_a_client_cannot_spoof_by_prepending() -> None:
    # The client wrote "1.2.3.4" itself; the proxy chain appended the real address and the inner proxy.
    chain = "1.2.3.4, 203.0.113.9, 10.1.1.1"
    assert client_address("10.0.0.2", chain, PROXIES) == ipaddress.ip_address("203.0.113.9")


def test_garbage_in_forwarded_for_stops_at_the_last_good_address() -> None:
    assert client_address("10.0.0.2", "not-an-ip", PROXIES) == ipaddress.ip_address("10.0.0.2")
    assert client_address("10.0.0.2", "", PROXIES) == ipaddress.ip_address("10.0.0.2")


def test_unknown_or_unparseable_peer() -> None:
    assert client_address(None, "203.0.113.9", LOCAL) is None
    assert client_address("not-an-ip", None, LOCAL) is None
    assert subject(None) == "unknown"


def test_ipv6_is_grouped_by_64() -> None:
    one = ipaddress.ip_address("2001:db8:1:2:aaaa::1")
    same_64 = ipaddress.ip_address("2001:db8:1:2:ffff:ffff:ffff:ffff")
    next_64 = ipaddress.ip_address("2001:db8:1:3::1")
    assert subject(one) == subject(same_64) == "2001:db8:1:2::/64"
    assert subject(next_64) != subject(one)


def test_ipv4_is_per_address_and_ipv4_mapped_ipv6_counts_as_ipv4() -> None:
    assert subject(ipaddress.ip_address("203.0.113.9")) == "203.0.113.9"
    assert subject(ipaddress.ip_address("203.0.113.10")) != subject(ipaddress.ip_address("203.0.113.9"))
    assert subject(ipaddress.ip_address("::ffff:203.0.113.9")) == "203.0.113.9"


def test_keyed_hash_is_keyed_and_hides_the_value() -> None:
    first = keyed_hash(b"secret-one", "ip", "203.0.113.9")
    assert first == keyed_hash(b"secret-one", "ip", "203.0.113.9")
    assert first != keyed_hash(b"secret-two", "ip", "203.0.113.9")
    assert first != keyed_hash(b"secret-one", "email", "203.0.113.9")
    assert "203" not in first and len(first) == 24
    int(first, 16)


@pytest.mark.parametrize(("peer", "forwarded_for"), [
    ("198.51.100.7", None), ("198.51.100.7", "203.0.113.9"), ("10.0.0.2", "1.2.3.4, 203.0.113.9, 10.1.1.1"),
    ("10.0.0.2", "not-an-ip"), ("10.0.0.2", ""), (None, "203.0.113.9"), ("not-an-ip", None),
    ("2001:db8:1:2:aaaa::1", None), ("fd00::1", "2001:db8:1:2::7"), ("10.0.0.2", "203.0.113.9" + ", 10.0.0.3" * 40),
])
def test_address_hash_is_the_keyed_hash_of_the_subject(peer: str | None, forwarded_for: str | None) -> None:
    for trusted in ([], PROXIES):
        expected = keyed_hash(b"secret-one", "ip", subject(client_address(peer, forwarded_for, trusted)))
        for _ in range(2):  # computed, then remembered
            assert address_hash(b"secret-one", trusted, peer, forwarded_for) == expected


def test_remembered_hashes_keep_secrets_and_proxies_apart() -> None:
    chain = "203.0.113.9, 10.1.1.1"
    assert address_hash(b"secret-one", PROXIES, "10.0.0.2", chain) == address_hash(b"secret-one", PROXIES,
                                                                                 "10.0.0.9", "203.0.113.9")
    assert address_hash(b"secret-one", PROXIES, "10.0.0.2", chain) != address_hash(b"secret-one", [], "10.0.0.2",
                                                                                 chain)
    assert address_hash(b"secret-one", [], "10.0.0.2", None) != address_hash(b"secret-two", [], "10.0.0.2", None)
