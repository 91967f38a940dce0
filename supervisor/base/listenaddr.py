"""HOST:PORT as Go's net.Listen takes it, for the metrics endpoints of pyinit and pycrond."""

from __future__ import annotations


def listen_address(text: str, default_port: int | None) -> tuple[str, int]:
    """HOST:PORT, [V6]:PORT or :PORT (every interface); with a default port, a bare HOST too (supercronic's rule)."""
    port: str | None = None
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError("takes HOST:PORT or [IPV6]:PORT")
        port = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host = text  # a name, an IPv4 address or a bare IPv6 address
    if port is None:
        if default_port is None:
            raise ValueError("takes HOST:PORT")
        port = str(default_port)
    if not port.isdecimal() or len(port) > 5 or not 0 < int(port) <= 65535:
        raise ValueError("takes a port from 1 to 65535")
    return host, int(port)
