"""Channels to the gateway: TLS (and mutual TLS) or plaintext, and plaintext only on loopback.

Every call to the gateway carries a bearer key (a device's, or the admin's): over plaintext to
another machine anyone on the path reads it. So a client refuses plaintext to a non-loopback
address unless the caller says `insecure=True` (a private network the operator vouches for).

    ClientTLS(ca="certs/ca.crt")                                   # TLS, the gateway's CA
    ClientTLS(ca="certs/ca.crt", cert="dev-01.crt", key="dev-01.key")  # mutual TLS
    ClientTLS()                                                    # TLS, the system's roots
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import grpc


class InsecureChannel(ValueError):
    """Plaintext to a non-loopback address without an explicit opt-in."""


def target_host(address: str) -> str:
    """The host of a gRPC target: 'h:p', '[v6]:p', 'dns:///h:p'; unix sockets are 'localhost'."""
    if address.startswith(("unix:", "unix-abstract:")):
        return "localhost"
    address = address.rpartition("///")[2]
    if address.startswith("["):
        return address[1:address.find("]")]
    if address.count(":") > 1:  # a bare IPv6 address, no port
        return address
    return address.partition(":")[0]


def is_loopback(host: str) -> bool:
    """True for 'localhost' and loopback IPs; any other name counts as remote (not resolved)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plaintext_refusal(address: str, what: str, flag: str) -> str | None:
    """Why plaintext to (or on) `address` is refused, or None when it is loopback."""
    host = target_host(address)
    if is_loopback(host):
        return None
    return (f"refusing plaintext gRPC {what} {address}: API keys would cross the network in clear "
            f"text; configure TLS (docs/gateway.md#tls), or pass {flag} on a network you trust")


def _read(path: str, what: str) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"TLS {what} file not found: {path}")
    return p.read_bytes()


@dataclass(frozen=True)
class ClientTLS:
    """PEM files: `ca` signed the gateway's certificate ("" : the system's roots); `cert` and
    `key` are this client's, for a gateway that requires client certificates (mutual TLS)."""

    ca: str = ""
    cert: str = ""
    key: str = ""

    def __post_init__(self) -> None:
        if bool(self.cert) != bool(self.key):
            raise ValueError("a TLS client certificate needs its key, and a key its certificate")

    @classmethod
    def from_options(cls, tls: bool, ca: str = "", cert: str = "", key: str = "") -> ClientTLS | None:
        """TLS when asked for or when any file is named; None (plaintext) otherwise."""
        return cls(ca, cert, key) if tls or ca or cert or key else None

    def credentials(self) -> grpc.ChannelCredentials:
        import grpc

        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca, "CA") if self.ca else None,
            private_key=_read(self.key, "client key") if self.key else None,
            certificate_chain=_read(self.cert, "client certificate") if self.cert else None)


def open_channel(address: str, tls: ClientTLS | None, insecure: bool = False, options=None) -> grpc.Channel:
    """A TLS channel with `tls`; else plaintext, which off loopback needs `insecure`."""
    import grpc  # here, so that settings validation (is_loopback) stays light

    if tls is not None:
        return grpc.secure_channel(address, tls.credentials(), options=options)
    refusal = plaintext_refusal(address, "to", "--insecure (insecure=True)")
    if refusal and not insecure:
        raise InsecureChannel(refusal)
    return grpc.insecure_channel(address, options=options)
