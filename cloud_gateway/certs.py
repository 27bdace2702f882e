"""`dagrpo gateway make-certs`: a private CA, the gateway's certificate and client certificates.

With the `openssl` command (present wherever the gateway's image or Debian is): EC P-256 keys,
each written 0600 into a file created beforehand (openssl keeps the mode of a file it truncates).

    DIR/ca.crt  ca.key                the fleet's CA (keep ca.key off the devices)
    DIR/server.crt  server.key        the gateway: SAN localhost, 127.0.0.1, ::1 and --server-name
    DIR/clients/NAME.crt  NAME.key    one per --client (CN = NAME, extended key usage clientAuth)

An existing file is never overwritten: a second run reuses the CA and the server certificate and
adds the clients that are new (delete a file to make it again).
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
KEY_ARGS = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


def san(names: list[str]) -> str:
    """subjectAltName value: IPs as IP:, everything else as DNS:, duplicates dropped."""
    out = []
    for n in dict.fromkeys(names):
        try:
            out.append(f"IP:{ipaddress.ip_address(n)}")
        except ValueError:
            out.append(f"DNS:{n}")
    return ",".join(out)


def _openssl(*args: str) -> None:
    if shutil.which("openssl") is None:
        raise FileNotFoundError("make-certs needs the `openssl` command (apt-get install openssl)")
    r = subprocess.run(["openssl", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {r.stderr.strip()}")


def _private(path: Path) -> Path:
    """Create `path` empty with mode 0600 (fails if it exists), for openssl to write a key into."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return path


def _make_ca(d: Path, days: int) -> None:
    _openssl("req", "-x509", *KEY_ARGS, "-keyout", str(_private(d / "ca.key")), "-out", str(d / "ca.crt"),
             "-days", str(days), "-subj", "/CN=dagrpo fleet CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")


def _make_leaf(d: Path, crt: Path, key: Path, cn: str, extensions: str, days: int) -> None:
    try:
        _sign_leaf(d, crt, key, cn, extensions, days)
    except BaseException:
        key.unlink(missing_ok=True)  # a key without its certificate would block the next run
        raise


def _sign_leaf(d: Path, crt: Path, key: Path, cn: str, extensions: str, days: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        csr, ext = Path(tmp) / "leaf.csr", Path(tmp) / "leaf.ext"
        ext.write_text(extensions)
        _openssl("req", "-new", *KEY_ARGS, "-keyout", str(_private(key)), "-out", str(csr), "-subj", f"/CN={cn}")
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(d / "ca.crt"), "-CAkey", str(d / "ca.key"),
                 "-set_serial", str(secrets.randbits(63)), "-days", str(days), "-extfile", str(ext),
                 "-out", str(crt))


def make_certs(out: str | Path, server_names: list[str] = (), clients: list[str] = (),
               days: int = 825) -> list[Path]:
    """Create what is missing in `out`; returns the files written."""
    d = Path(out)
    bad = [c for c in clients if not NAME_RE.match(c)]
    if bad:
        raise ValueError(f"client names must match {NAME_RE.pattern}: {bad}")
    (d / "clients").mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if (d / "ca.crt").exists() != (d / "ca.key").exists():
        raise ValueError(f"{d}: ca.crt and ca.key must both exist or neither")
    if not (d / "ca.crt").exists():
        _make_ca(d, days)
        written += [d / "ca.crt", d / "ca.key"]
    leaf = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
    if not (d / "server.crt").exists():
        _make_leaf(d, d / "server.crt", d / "server.key", "dagrpo gateway",
                   f"{leaf}extendedKeyUsage=serverAuth\nsubjectAltName={san([*LOCAL_NAMES, *server_names])}\n", days)
        written += [d / "server.crt", d / "server.key"]
    for name in clients:
        crt, key = d / "clients" / f"{name}.crt", d / "clients" / f"{name}.key"
        if crt.exists():
            continue
        _make_leaf(d, crt, key, name, f"{leaf}extendedKeyUsage=clientAuth\n", days)
        written += [crt, key]
    return written
