"""The request body cap on a real uvicorn server (raw sockets, so the framing is the client's
choice): a declared length over the cap is refused before a byte of the body is sent, a chunked
body is cut off as soon as it passes the cap, and bodies under the cap reach the handlers."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import uvicorn

from edge_agent.api import create_app
from edge_agent.settings import EdgeSettings
from edge_fakes import FakeCloud, FakeModel

pytestmark = pytest.mark.integration
CAP = 4096


@pytest.fixture(scope="module")
def port(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("body")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = EdgeSettings(port=port, outbox_path=str(tmp / "u.sqlite"), flush_interval_s=3600,
                            max_body_bytes=CAP)
    server = uvicorn.Server(uvicorn.Config(create_app(settings, model=FakeModel(), cloud=FakeCloud()),
                                           host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(10)


def _request(port: int, headers: str, body_parts: list[bytes]) -> tuple[int, bytes]:
    """Send the head, then each part (stopping if the server already answered); the status and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"POST /v1/answer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{headers}\r\n".encode())
        for part in body_parts:
            try:
                s.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break
        data = b""
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def _length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            return int(v)
    return 0


def _chunked(body: bytes, size: int = 1000) -> list[bytes]:
    parts = [b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size]) for i in range(0, len(body), size)]
    return [*parts, b"0\r\n\r\n"]


def _answer(question: str) -> bytes:
    return json.dumps({"task": "math", "question": question}).encode()


def test_a_declared_length_over_the_cap_is_refused_before_the_body_is_sent(port):
    status, body = _request(port, "Content-Length: 1000000000\r\n", [])
    assert status == 413 and b"over 4096 bytes" in body


def test_a_chunked_body_is_cut_off_past_the_cap(port):
    status, body = _request(port, "Transfer-Encoding: chunked\r\n", _chunked(_answer("x" * 20_000)))
    assert status == 413 and b"over 4096 bytes" in body


def test_bodies_under_the_cap_reach_the_handler_whatever_the_framing(port):
    small = _answer("What is 2 + 2?")
    status, body = _request(port, f"Content-Length: {len(small)}\r\n", [small])
    assert status == 200 and json.loads(body)["route"] == "local"
    status, body = _request(port, "Transfer-Encoding: chunked\r\n", _chunked(small, 7))
    assert status == 200 and json.loads(body)["route"] == "local"
