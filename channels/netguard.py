"""The SSRF guard: outbound HTTP that a template cannot point at the inside of the network.

A webhook URL may come from a template an admin wrote, fed by data a customer
typed. Without a guard, ``http://169.254.169.254/`` (cloud metadata),
``http://localhost:5432`` or an intranet host would be reached from inside.

:class:`GuardedAdapter` is a requests transport adapter that, for every
request (every redirect hop included):

1. resolves the host name once, with the system resolver;
2. refuses (:class:`BlockedAddress`, permanent) if *any* resolved address is
   not public — loopback, private, link-local, unspecified, multicast,
   reserved, shared (CGNAT), or an IPv6 address embedding such an IPv4 one;
3. connects to the first checked address itself, keeping the name for the
   ``Host`` header, TLS SNI and certificate verification.

So the address checked is the address connected to: a DNS answer that
changes between the check and the connection (DNS rebinding) cannot slip a
private address in. Proxies are never used (a proxy would resolve the name
again); sessions using this adapter should set ``trust_env = False``.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from urllib.parse import urlsplit

from requests.adapters import HTTPAdapter

from channels.base import PermanentSendError, TransientSendError

logger = logging.getLogger(__name__)

_DEFAULT_PORTS = {"http": 80, "https": 443}


class BlockedAddress(PermanentSendError):
    """The target resolves to an address outside the public internet, and private addresses are not allowed."""


def is_public(address: str) -> bool:
    """Whether ``address`` (an IP literal) is a globally reachable unicast address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6:
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None and not is_public(str(embedded)):
            return False
    return ip.is_global and not (
        ip.is_multicast or ip.is_reserved or ip.is_private or ip.is_loopback
        or ip.is_link_local or ip.is_unspecified
    )


def _kind(ip) -> str:
    for kind, test in (("unspecified", "is_unspecified"), ("loopback", "is_loopback"), ("link-local", "is_link_local"),
                       ("multicast", "is_multicast"), ("private", "is_private"), ("reserved", "is_reserved")):
        if getattr(ip, test):
            return kind
    return "not public"


def literal_refusal(url: str) -> str | None:
    """Why *url* would be refused whatever happens: its host is a literal IP address that is not
    public (``http://169.254.169.254/``). None for a host name (it can resolve anywhere later,
    which the guard checks at send time) and for a host a template fills in."""
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:
        return None
    if not host or "{" in host or "}" in host:
        return None
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if is_public(str(ip)):
        return None
    embedded = ip.ipv4_mapped if ip.version == 6 else None
    return f"{host} is a {_kind(embedded or ip)} address, not a public one"


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to for a TCP connection, in the resolver's order."""
    try:
        return [str(ipaddress.ip_address(host))]  # a literal address: nothing to resolve
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise TransientSendError(f"cannot resolve {host!r}: {error}") from None
    return list(dict.fromkeys(info[4][0] for info in infos))


def pick_address(host: str, port: int, *, allow_private: bool) -> str:
    """The address to connect to for ``host``: resolved once, every answer checked."""
    addresses = resolve(host, port)
    if not allow_private:
        blocked = [address for address in addresses if not is_public(address)]
        if blocked:
            raise BlockedAddress(
                f"{host!r} resolves to {', '.join(blocked)}: not a public address "
                f"(set allow_private_addresses to reach it)"
            )
    return addresses[0]


class GuardedAdapter(HTTPAdapter):
    """A requests adapter that checks the resolved address and connects to exactly that address."""

    def __init__(self, *, allow_private: bool = False, **kwargs):
        self.allow_private = allow_private
        super().__init__(**kwargs)

    def send(self, request, *args, **kwargs):
        # The connection goes to an IP, so the name travels in the Host header.
        # A copy: the redirect machinery rebuilds the next hop from the original.
        if "Host" not in request.headers:
            request = request.copy()
            request.headers["Host"] = urlsplit(request.url).netloc.rpartition("@")[2]
        return super().send(request, *args, **kwargs)

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        host_params, pool_kwargs = self.build_connection_pool_key_attributes(request, verify, cert)
        scheme, host = host_params["scheme"], host_params["host"]
        port = host_params["port"] or _DEFAULT_PORTS[scheme]
        address = pick_address(host, port, allow_private=self.allow_private)
        logger.debug("netguard: %s resolved to %s", host, address)
        if scheme == "https":
            # SNI and certificate checks are for the name, not for the address we pinned.
            pool_kwargs = {**pool_kwargs, "server_hostname": host, "assert_hostname": host}
        return self.poolmanager.connection_from_host(
            host=address, port=port, scheme=scheme, pool_kwargs=pool_kwargs
        )
