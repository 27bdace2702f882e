"""The agent's API keys, adapter directories and body cap (fake model; the rules are pure)."""

import openai
import pytest
from fastapi.testclient import TestClient

from edge_agent.api import allowed_adapter_path, create_app
from edge_agent.auth import EdgeKeys, add_key, check_key, hash_key
from edge_agent.settings import EdgeSettings
from edge_fakes import FakeCloud, FakeModel

KEYS = EdgeKeys({"laptop": hash_key("dek_c")}, {"ops": hash_key("dek_a")})
EASY = [{"role": "user", "content": "What is 2 + 2?"}]


@pytest.mark.parametrize("method, path, auth, expect", [
    ("GET", "/health", "", None),
    ("GET", "/metrics", "", None),
    ("POST", "/v1/chat/completions", "", 401),
    ("POST", "/v1/answer", "Basic dek_c", 401),
    ("POST", "/v1/answer", "Bearer ", 401),
    ("POST", "/v1/answer", "Bearer dek_wrong", 401),
    ("POST", "/v1/answer", "Bearer dek_c", None),
    ("POST", "/v1/chat/completions", "bearer dek_c", None),
    ("GET", "/v1/adapter", "Bearer dek_c", None),
    ("POST", "/v1/adapter", "Bearer dek_c", 403),
    ("POST", "/v1/adapter", "Bearer dek_a", None),
    ("POST", "/v1/answer", "Bearer dek_a", None),
    ("GET", "/no/such/route", "", 401),
])
def test_check_key(method, path, auth, expect):
    denied = check_key(KEYS, method, path, auth)
    assert (denied[0] if denied else None) == expect


def test_adapter_paths_outside_the_directories_are_refused_whether_or_not_they_exist(tmp_path):
    (tmp_path / "ok").mkdir()
    (tmp_path / "secret.gguf").write_text("x")
    dirs = [str(tmp_path / "ok")]
    assert allowed_adapter_path(str(tmp_path / "ok" / "a.gguf"), dirs)
    assert not allowed_adapter_path(str(tmp_path / "secret.gguf"), dirs)
    assert not allowed_adapter_path(str(tmp_path / "missing.gguf"), dirs)
    assert not allowed_adapter_path(str(tmp_path / "ok" / ".." / "secret.gguf"), dirs)
    assert allowed_adapter_path("/anything", [])


def test_keys_file_round_trip_and_bad_files(tmp_path):
    path = tmp_path / "keys.toml"
    client, admin = add_key(path, "laptop"), add_key(path, "ops", admin=True)
    keys = EdgeKeys.load(path)
    assert keys.identify(client) == ("laptop", False) and keys.identify(admin) == ("ops", True)
    assert client not in path.read_text()
    with pytest.raises(ValueError, match="already has a key"):
        add_key(path, "laptop")
    with pytest.raises(ValueError, match="nobody"):
        EdgeKeys({}, {})
    with pytest.raises(ValueError, match="must match"):  # `$` would accept the newline
        add_key(path, "laptop2\n")


@pytest.fixture
def secured(tmp_path):
    path = tmp_path / "keys.toml"
    client_key, admin_key = add_key(path, "laptop"), add_key(path, "ops", admin=True)
    (tmp_path / "adapters").mkdir()
    s = EdgeSettings(outbox_path=str(tmp_path / "u.sqlite"), flush_interval_s=3600, keys_file=str(path),
                     adapter_dirs=[str(tmp_path / "adapters")], max_body_bytes=4096)
    with TestClient(create_app(s, model=FakeModel(), cloud=FakeCloud())) as tc:
        yield tc, client_key, admin_key


def _openai(tc, key):
    return openai.OpenAI(base_url="http://testserver/v1", api_key=key, http_client=tc, max_retries=0)


def test_requests_without_the_right_key_are_refused(secured, tmp_path):
    tc, client_key, admin_key = secured
    with pytest.raises(openai.AuthenticationError) as info:
        _openai(tc, "dek_wrong").chat.completions.create(model="dagrpo-math", messages=EASY)
    assert info.value.code == "invalid_api_key"
    r = _openai(tc, client_key).chat.completions.create(model="dagrpo-math", messages=EASY)
    assert r.dagrpo["route"] == "local"
    assert tc.post("/v1/answer", json={"task": "math", "question": "q"}).status_code == 401
    assert tc.get("/health").status_code == 200 and tc.get("/metrics").status_code == 200
    client, admin = ({"Authorization": f"Bearer {k}"} for k in (client_key, admin_key))
    assert tc.post("/v1/adapter", json={"path": None}, headers=client).status_code == 403
    outside = [tc.post("/v1/adapter", json={"path": str(p)}, headers=admin)
               for p in (tmp_path / "keys.toml", tmp_path / "missing.gguf")]
    assert [r.status_code for r in outside] == [403, 403] and outside[0].json() == outside[1].json()


def test_bodies_over_the_cap_are_refused(secured):
    tc, client_key, _ = secured
    big = [{"role": "user", "content": "x" * 5000}]
    with pytest.raises(openai.APIStatusError) as info:
        _openai(tc, client_key).chat.completions.create(model="dagrpo-math", messages=big)
    assert info.value.status_code == 413
