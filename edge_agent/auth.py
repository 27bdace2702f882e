"""Who may use the device: client keys for the answer endpoints, admin keys for adapter changes,
and a cap on request bodies. Pure ASGI middleware, in front of every route.

Keys are 256-bit random tokens sent as `Authorization: Bearer <key>` (what OpenAI clients send
and `llama-server --api-key` accepts); only their SHA-256 hashes are stored (the gateway's scheme:
nothing to brute-force, so no password KDF). Keys file (TOML), written by `dagrpo edge add-key`:

    [clients]
    laptop = "sha256:<hex>"
    [admins]
    ops = "sha256:<hex>"

An admin key also answers questions. `/health`, `/metrics` and the API docs stay open. A refusal
is 401 (no key, a malformed header, an unknown key) or 403 (a client key on an admin route),
decided before the request body is read, so it reveals nothing about the request (an adapter
path's existence included).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import tomllib
from pathlib import Path

NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")  # \Z: a trailing newline is not part of a name
KEY_PREFIX = "dek_"  # edge keys: greppable when leaked, distinct from the gateway's dgk_
OPEN_PATHS = frozenset({"/health", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
ADMIN_ROUTES = frozenset({("POST", "/v1/adapter")})
OPENAI_PREFIXES = ("/v1/chat/", "/v1/models")


def hash_key(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class EdgeKeys:
    """Hash of a presented key -> (name, is_admin)."""

    def __init__(self, clients: dict[str, str], admins: dict[str, str]):
        self._by_hash: dict[str, tuple[str, bool]] = {}
        for admin, table in ((False, clients), (True, admins)):
            for name, digest in table.items():
                if not NAME_RE.match(name):
                    raise ValueError(f"keys file: bad name {name!r} (must match {NAME_RE.pattern})")
                if not digest.startswith("sha256:") or len(digest) != 7 + 64:
                    raise ValueError(f"keys file: {name!r} needs a 'sha256:<64 hex>' hash")
                self._by_hash[digest] = (name, admin)
        if not self._by_hash:
            raise ValueError("keys file has no [clients] or [admins] keys: nobody could use the agent")

    @classmethod
    def load(cls, path: str | Path) -> EdgeKeys:
        data = tomllib.loads(Path(path).read_text())
        return cls(data.get("clients", {}), data.get("admins", {}))

    def identify(self, key: str) -> tuple[str, bool] | None:
        return self._by_hash.get(hash_key(key))


def add_key(path: str | Path, name: str, admin: bool = False) -> str:
    """Create a key for `name`, store its hash in the keys file, return the key (shown once)."""
    if not NAME_RE.match(name):
        raise ValueError(f"name {name!r} must match {NAME_RE.pattern}")
    path = Path(path)
    data = tomllib.loads(path.read_text()) if path.is_file() else {}
    clients, admins = data.get("clients", {}), data.get("admins", {})
    if name in clients or name in admins:
        raise ValueError(f"{name!r} already has a key in {path}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    (admins if admin else clients)[name] = hash_key(key)
    lines = ["# Edge agent API key hashes (dagrpo edge add-key). Keys themselves are not stored.",
             "[clients]", *(f'"{n}" = "{h}"' for n, h in clients.items()),
             "", "[admins]", *(f'"{n}" = "{h}"' for n, h in admins.items()), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines))
    tmp.replace(path)
    return key


def refusal(path: str, status: int, message: str, code: str) -> tuple[int, dict, bytes]:
    """(status, headers, body) of a refusal, in OpenAI's error shape on the OpenAI routes."""
    if path.startswith(OPENAI_PREFIXES):
        body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    else:
        body = {"detail": message}
    headers = {"content-type": "application/json"}
    if status == 401:
        headers["www-authenticate"] = "Bearer"
    return status, headers, json.dumps(body).encode()


def check_key(keys: EdgeKeys, method: str, path: str, authorization: str) -> tuple[int, str, str] | None:
    """None when the request may pass, else (status, message, code)."""
    if path in OPEN_PATHS:
        return None
    if not authorization:
        return 401, "missing API key: send 'Authorization: Bearer <key>'", "missing_api_key"
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return 401, "malformed Authorization header: expected 'Bearer <key>'", "invalid_api_key"
    who = keys.identify(key.strip())
    if who is None:
        return 401, "unknown API key", "invalid_api_key"
    if (method, path) in ADMIN_ROUTES and not who[1]:
        return 403, f"{method} {path} needs an admin key", "admin_key_required"
    return None


async def _send(send, status: int, headers: dict, body: bytes) -> None:
    headers = {**headers, "content-length": str(len(body))}
    await send({"type": "http.response.start", "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in headers.items()]})
    await send({"type": "http.response.body", "body": body})


class ApiKeyMiddleware:
    def __init__(self, app, keys: EdgeKeys):
        self.app, self.keys = app, keys

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            denied = check_key(self.keys, scope["method"], scope["path"],
                               headers.get(b"authorization", b"").decode("latin-1"))
            if denied is not None:
                status, message, code = denied
                await _send(send, *refusal(scope["path"], status, message, code))
                return
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """413 for a body over `max_bytes`: at once when its Content-Length says so (nothing of it is
    read), else as soon as the bytes received pass the cap (a chunked body, or more bytes than
    declared). Then the app sees the client disconnect and whatever it replies is dropped: the
    413 is the reply."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._refuse(scope, send)
            return
        received, started, refused = 0, False, False

        async def counted_receive():
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    if not started:
                        await self._refuse(scope, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            nonlocal started
            if refused:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not refused:  # the app's reaction to the cut-off body is not an error of the server
                raise

    async def _refuse(self, scope, send) -> None:
        await _send(send, *refusal(scope["path"], 413, f"request body over {self.max_bytes} bytes",
                                   "request_too_large"))
