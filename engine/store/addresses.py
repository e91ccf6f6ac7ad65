"""The client address sign-in throttling is keyed on.

A header is the client's word, so forwarded headers (X-Forwarded-For, Forwarded, X-Real-Ip) are believed only when the
connection itself comes from a proxy the administrator listed in STUDIO_TRUSTED_PROXIES (comma-separated CIDRs or
addresses; empty by default). Behind trusted proxies the client is the right-most hop that is not itself a trusted
proxy, as nginx's real_ip_recursive and the MDN X-Forwarded-For guidance describe: every hop to its right was added by
a proxy we trust, everything to its left may be forged.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

from engine import settings
from engine.errors import StudioError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK = "127.0.0.1"  # Streamlit reports a loopback peer as None


class ProxySettingError(StudioError):
    """STUDIO_TRUSTED_PROXIES holds something that is not an address or a CIDR."""


def trusted_proxies(raw: str | None = None) -> list[Network]:
    """The networks of STUDIO_TRUSTED_PROXIES; an entry that is not an address or CIDR raises ProxySettingError."""
    text = settings.current().trusted_proxies if raw is None else raw
    networks = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ProxySettingError(f"STUDIO_TRUSTED_PROXIES: {item[:60]!r} is not an address or a CIDR "
                             "(for example 10.0.0.0/8).") from None
    return networks


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip().strip('"')
    if text.startswith("["):  # Forwarded's [v6]:port
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _is_trusted(address: str, trusted: Iterable[Network]) -> bool:
    ip = _ip(address)
    return ip is not None and any(ip.version == net.version and ip in net for net in trusted)


def _forwarded_hops(headers: Mapping[str, str]) -> list[str]:
    """The client chain a proxy reported, left (farthest) to right (nearest), from the first header present."""
    lower = {k.lower(): v for k, v in headers.items()}
    if "forwarded" in lower:  # RFC 7239: for=client, for=proxy1
        hops = []
        for element in lower["forwarded"][:4096].split(","):
            for pair in element.split(";"):
                key, _, value = pair.strip().partition("=")
                if key.lower() == "for":
                    hops.append(value)
        return hops
    if "x-forwarded-for" in lower:
        return [hop for hop in lower["x-forwarded-for"][:4096].split(",") if hop.strip()]
    if "x-real-ip" in lower:
        return [lower["x-real-ip"][:64]]
    return []


def client_address(peer: str | None, headers: Mapping[str, str], trusted: list[Network] | None = None) -> str:
    """The address of the client on the other end: the connection's own peer unless that peer is a trusted proxy,
    then the right-most forwarded hop that is not one (or the left-most hop when all of them are trusted)."""
    trusted = trusted_proxies() if trusted is None else trusted
    address = peer or LOOPBACK
    if not trusted or not _is_trusted(address, trusted):
        return address[:64]
    hops = _forwarded_hops(headers)
    for hop in reversed(hops):
        ip = _ip(hop)
        if ip is None:
            return address[:64]  # a hop we cannot read: stop at the last one we could
        address = str(ip)
        if not _is_trusted(address, trusted):
            return address
    return address[:64]
