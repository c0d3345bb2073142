from __future__ import annotations

import ipaddress

import pytest

from f2f_cli.api.clientip import client_address, limit_key
from f2f_cli.settings import Settings

PROXIES = Settings.from_env({"F2F_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.1,fd00::/8"}, env_file=None).trusted_proxies


@pytest.mark.parametrize(
    ("peer", "xff", "expected"),
    [
        ("203.0.113.9", ["1.2.3.4"], "203.0.113.9"),  # untrusted peer: its XFF is ignored
        ("10.1.2.3", ["1.2.3.4"], "1.2.3.4"),
        ("10.1.2.3", ["6.6.6.6, 1.2.3.4"], "1.2.3.4"),  # the client cannot choose the rightmost hop
        ("10.1.2.3", ["1.2.3.4, 10.9.9.9"], "1.2.3.4"),  # trusted hops are skipped
        ("10.1.2.3", ["1.2.3.4", "10.9.9.9"], "1.2.3.4"),  # repeated headers are one list
        ("10.1.2.3", ["10.2.2.2, 10.9.9.9"], "10.2.2.2"),  # all trusted: the leftmost
        ("10.1.2.3", ["not-an-ip, 10.9.9.9"], "10.9.9.9"),  # garbage stops the walk
        ("10.1.2.3", [], "10.1.2.3"),
        ("::ffff:10.1.2.3", ["[2001:db8::1]:443"], "2001:db8::1"),
        ("192.168.1.1", ["198.51.100.7:5000"], "198.51.100.7"),
    ],
)
def test_forwarded_for_is_believed_only_from_trusted_proxies(peer: str, xff: list[str], expected: str) -> None:
    assert client_address(peer, xff, PROXIES) == ipaddress.ip_address(expected)


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert client_address("127.0.0.1", ["1.2.3.4"], ()) == ipaddress.ip_address("127.0.0.1")
    assert client_address("testclient", [], PROXIES) is None
    assert client_address(None, ["1.2.3.4"], PROXIES) is None


def test_limit_keys_group_ipv6_by_64() -> None:
    a = limit_key(ipaddress.ip_address("2001:db8:1:2:aaaa::1"))
    b = limit_key(ipaddress.ip_address("2001:db8:1:2:bbbb::9"))
    assert a == b == "2001:db8:1:2::/64"
    assert limit_key(ipaddress.ip_address("198.51.100.7")) == "198.51.100.7"
    assert limit_key(None) == "unknown"


def test_trusted_proxies_setting_is_validated() -> None:
    from f2f_cli.errors import ConfigError

    with pytest.raises(ConfigError, match="F2F_TRUSTED_PROXIES"):
        Settings.from_env({"F2F_TRUSTED_PROXIES": "10.0.0.0/8,example.com"}, env_file=None)
    with pytest.raises(ConfigError, match="F2F_SESSIONS_PER_MINUTE"):
        Settings.from_env({"F2F_SESSIONS_PER_MINUTE": "-1"}, env_file=None)
