"""`dagrpo gateway ...`: serve, add-device, revoke, make-certs, and the admin commands set-tau / budgets / reset.

Light module: argparse only at import; grpc, redis and the server load inside the commands.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from dagrpo.errors import UserError

ADMIN_KEY_ENV = "GATEWAY_ADMIN_KEY"


def register(subparsers) -> None:
    p = subparsers.add_parser("gateway", help="the cloud gateway: budgets, metering, cloud backends",
                              description="The cloud gateway (gRPC collab.v1). See docs/gateway.md.")
    sub = p.add_subparsers(dest="gateway_command", metavar="SUBCOMMAND", required=True)

    s = sub.add_parser("serve", help="run the gateway (config: --config TOML, env GATEWAY_*, flags)")
    s.add_argument("--config", type=Path, help="TOML file with GatewaySettings fields")
    s.add_argument("--host", help="gRPC listen address (default 127.0.0.1)")
    s.add_argument("--port", type=int, help="gRPC port (default 50051; 0 picks a free one)")
    s.add_argument("--metrics-port", type=int, help="Prometheus /metrics port (default 9464; -1 off; "
                   "worker i of --workers serves it on PORT+i)")
    s.add_argument("--workers", type=int, help="gateway processes sharing the gRPC port (default 1; >1 needs "
                   "--redis-url)")
    s.add_argument("--keys-file", type=Path, help="device/admin key hashes (default gateway-keys.toml)")
    s.add_argument("--redis-url", help="use Redis (redis://host:port/db, or a Redis Cluster: "
                   "redis+cluster://host:port[,host:port...]) instead of SQLite")
    s.add_argument("--sqlite-path", type=Path, help="SQLite store file (default gateway.db)")
    s.add_argument("--backend", choices=("reference", "openai"), help="cloud model backend")
    s.add_argument("--tls-cert", type=Path, help="PEM certificate of the gateway: serve TLS (with --tls-key)")
    s.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")
    s.add_argument("--tls-client-ca", type=Path, help="require client certificates signed by this CA (mutual TLS)")
    s.add_argument("--insecure", action="store_const", const=True, dest="allow_insecure",
                   help="allow plaintext on a non-loopback --host (keys in clear text: trusted networks only)")
    s.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    s.set_defaults(func=_serve)

    c = sub.add_parser("make-certs", help="create a CA, the gateway's TLS certificate and client certificates",
                       description="Create what is missing in DIR (openssl): ca.crt/ca.key, server.crt/server.key "
                       "(SAN localhost, 127.0.0.1, ::1 and every --server-name) and clients/NAME.crt/NAME.key "
                       "for every --client. Existing files are kept. See docs/gateway.md#tls.")
    c.add_argument("dir", type=Path, metavar="DIR", help="output directory")
    c.add_argument("--server-name", action="append", default=[], metavar="NAME",
                   help="a DNS name or IP clients use to reach the gateway (repeatable)")
    c.add_argument("--client", action="append", default=[], metavar="NAME",
                   help="a client certificate to create, e.g. a device name or 'admin' (repeatable)")
    c.add_argument("--days", type=int, default=825, help="validity in days (default 825)")
    c.set_defaults(func=_make_certs)

    a = sub.add_parser("add-device", help="create an API key for a device (printed once, only its hash is stored)")
    a.add_argument("name", help="device name ([A-Za-z0-9._-], at most 64 characters)")
    a.add_argument("--keys-file", type=Path, default=Path("gateway-keys.toml"), help="keys file to update")
    a.add_argument("--admin", action="store_true", help="create an admin key instead of a device key")
    a.set_defaults(func=_add_device)

    v = sub.add_parser("revoke", help="remove a device's (or admin's) key; a running gateway drops it within "
                       "keys_poll_s (or at once on SIGHUP)")
    v.add_argument("name")
    v.add_argument("--keys-file", type=Path, default=Path("gateway-keys.toml"), help="keys file to update")
    v.set_defaults(func=_revoke)

    t = sub.add_parser("set-tau", help="set a task's tau (a value or a schedule), mode and burst")
    t.add_argument("task")
    t.add_argument("tau", nargs="?", type=float, help="constant tau in [0, 1]")
    t.add_argument("--schedule", help="'FROM:TAU,...' keyed on each device's responses, e.g. '0:0.1,1000:0.3'")
    t.add_argument("--mode", choices=("meter", "enforce"), default="", help="keep the current mode if omitted")
    t.add_argument("--burst", type=float, default=0.0, help="credit cap in help requests (0 keeps the current)")
    t.add_argument("--window", type=int, default=0, help="responses per ratio window (0 keeps the current)")
    _admin_args(t)
    t.set_defaults(func=_set_tau)

    b = sub.add_parser("budgets", help="list task policies and every device's budget")
    b.add_argument("--device", default="", help="only this device")
    b.add_argument("--task", default="", help="only this task")
    _admin_args(b)
    b.set_defaults(func=_budgets)

    r = sub.add_parser("reset", help="reset a device's counters (all tasks, or --task)")
    r.add_argument("device")
    r.add_argument("--task", default="", help="only this task")
    _admin_args(r)
    r.set_defaults(func=_reset)


def _admin_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", default=os.environ.get("GATEWAY_ADDRESS", "127.0.0.1:50051"),
                   help="gateway host:port (env GATEWAY_ADDRESS; default 127.0.0.1:50051)")
    p.add_argument("--admin-key-file", type=Path,
                   help=f"file holding the admin key (default: env {ADMIN_KEY_ENV})")
    tls_client_args(p)


def tls_client_args(p: argparse.ArgumentParser) -> None:
    """--tls / --tls-ca / --tls-cert / --tls-key / --insecure of a client of the gateway."""
    p.add_argument("--tls", action="store_true", help="TLS with the system's CA roots (implied by --tls-ca)")
    p.add_argument("--tls-ca", default="", help="PEM CA that signed the gateway's certificate")
    p.add_argument("--tls-cert", default="", help="PEM client certificate (gateways requiring mutual TLS)")
    p.add_argument("--tls-key", default="", help="PEM private key of --tls-cert")
    p.add_argument("--insecure", action="store_true",
                   help="allow plaintext to a non-loopback gateway (keys in clear text)")


def _serve(args) -> int:
    import logging

    from pydantic import ValidationError

    from cloud_gateway.config import load_settings
    from cloud_gateway.server import LOG_FORMAT, WorkerFailed, serve

    logging.basicConfig(level=args.log_level.upper(), format=LOG_FORMAT, force=True)  # over dagrpo's --log-level
    flags = {k: v for k, v in dict(host=args.host, port=args.port, metrics_port=args.metrics_port,
                                   workers=args.workers, keys_file=args.keys_file, redis_url=args.redis_url,
                                   sqlite_path=args.sqlite_path, backend=args.backend, tls_cert=args.tls_cert,
                                   tls_key=args.tls_key, tls_client_ca=args.tls_client_ca,
                                   allow_insecure=args.allow_insecure).items() if v is not None}
    try:
        settings = load_settings(args.config, **flags)
        serve(settings)
    except ValidationError as exc:
        raise UserError(f"bad gateway config: {exc}") from None
    except (FileNotFoundError, ValueError, WorkerFailed) as exc:
        raise UserError(str(exc)) from None
    return 0


def _add_device(args) -> int:
    from cloud_gateway.auth import add_key

    try:
        key = add_key(args.keys_file, args.name, admin=args.admin)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    print(key)
    return 0


def _revoke(args) -> int:
    from cloud_gateway.auth import revoke_key

    try:
        found = revoke_key(args.keys_file, args.name)
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None
    if not found:
        raise UserError(f"{args.name!r} has no key in {args.keys_file}")
    print(f"revoked {args.name}: a running gateway drops the key at its next keys-file check (or on SIGHUP)")
    return 0


def _make_certs(args) -> int:
    from cloud_gateway.certs import make_certs

    try:
        written = make_certs(args.dir, args.server_name, args.client, args.days)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        raise UserError(str(exc)) from None
    for path in written:
        print(path)
    return 0


def _admin(args):
    from collab.channel import ClientTLS
    from collab.gateway_client import AdminClient

    if args.admin_key_file:
        key = args.admin_key_file.read_text().strip()
    else:
        key = os.environ.get(ADMIN_KEY_ENV, "")
    if not key:
        raise UserError(f"no admin key: set {ADMIN_KEY_ENV} or pass --admin-key-file")
    try:
        tls = ClientTLS.from_options(args.tls, args.tls_ca, args.tls_cert, args.tls_key)
        return AdminClient(args.address, key, tls=tls, insecure=args.insecure)
    except (ValueError, FileNotFoundError) as exc:  # InsecureChannel is a ValueError
        raise UserError(str(exc)) from None


def _rpc(fn):
    import grpc

    try:
        return fn()
    except grpc.RpcError as exc:
        raise UserError(f"gateway: {exc.code().name}: {exc.details()}") from None


def parse_schedule(text: str) -> list[tuple[int, float]]:
    try:
        steps = [(int(a), float(b)) for a, b in (part.split(":") for part in text.split(",") if part.strip())]
    except ValueError:
        raise UserError(f"--schedule: expected 'FROM:TAU,...' (e.g. '0:0.1,1000:0.3'), got {text!r}") from None
    if not steps:
        raise UserError("--schedule: empty")
    return steps


def _set_tau(args) -> int:
    if (args.tau is None) == (args.schedule is None):
        raise UserError("give exactly one of TAU or --schedule")
    schedule = [(0, args.tau)] if args.schedule is None else parse_schedule(args.schedule)
    client = _admin(args)
    p = _rpc(lambda: client.set_tau(args.task, schedule, args.mode, args.burst, args.window))
    print(_policy_line(p))
    return 0


def _budgets(args) -> int:
    from collab.gateway_client import MODE_NAMES

    client = _admin(args)
    resp = _rpc(lambda: client.budgets(args.device, args.task))
    for p in resp.policies:
        print(_policy_line(p))
    # help: the gateway's count (Assist traffic); reported: the device's; mismatch: reports that disagreed;
    # flagged: reports that claimed more responses than the claim limit (excess: those not believed);
    # throttled: Assist calls over the cloud-call limit
    print(f"{'device':<16} {'task':<12} {'mode':<8} {'tau':>5} {'resp':>8} {'help':>7} {'reported':>8} "
          f"{'mismatch':>8} {'calls':>7} {'denied':>6} {'tokens':>9} {'window':>7} {'life':>6} {'credit':>7} "
          f"{'flagged':>7} {'excess':>9} {'throttled':>9}")
    for t in resp.budgets:
        print(f"{t.device:<16} {t.task:<12} {MODE_NAMES.get(t.mode, '?'):<8} {t.tau:>5.2f} {t.responses:>8} "
              f"{t.help_requests:>7} {t.reported_help_requests:>8} {t.mismatches:>8} {t.cloud_calls:>7} "
              f"{t.denials:>6} {t.tokens:>9} {t.window_ratio:>7.3f} {t.lifetime_ratio:>6.3f} {t.credit:>7.2f} "
              f"{t.flagged_reports:>7} {t.excess_responses:>9} {t.throttled:>9}")
    return 0


def _reset(args) -> int:
    client = _admin(args)
    n = _rpc(lambda: client.reset(args.device, args.task))
    print(f"reset {n} budget(s) of {args.device}")
    return 0


def _policy_line(p) -> str:
    from collab.gateway_client import MODE_NAMES

    sched = ",".join(f"{s.from_responses}:{s.tau:g}" for s in p.schedule)
    return (f"task {p.task}: tau {sched} mode {MODE_NAMES.get(p.mode, '?')} burst {p.burst:g} "
            f"window {p.window_responses}")
