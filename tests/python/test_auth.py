"""Every route but the health check needs the password."""

from __future__ import annotations

import base64

import pytest
import requests

ROUTES = [
    ("GET", "/"),
    ("GET", "/api/v1/experiments"),
    ("GET", "/api/v1/experiments/sentiment_analysis1/trials"),
    ("GET", "/api/v1/experiments/sentiment_analysis1/trials.csv"),
    ("GET", "/api/v1/trials/0123456789abcdef"),
    ("GET", "/api/v1/trials/0123456789abcdef/model"),
    ("GET", "/api/v1/trials/0123456789abcdef/metrics"),
    ("GET", "/api/v1/workers"),
    ("GET", "/api/v1/files/scripts.zip"),
    ("GET", "/api/v1/files/data.zip"),
    ("GET", "/config.yaml"),
    ("GET", "/.gridexp/password"),
    ("POST", "/api/v1/workers"),
    ("POST", "/api/v1/workers/abc/claim"),
    ("POST", "/api/v1/trials/0123456789abcdef/heartbeat"),
    ("POST", "/api/v1/trials/0123456789abcdef/metrics"),
    ("POST", "/api/v1/trials/0123456789abcdef/complete"),
    ("POST", "/api/v1/trials/0123456789abcdef/fail"),
    ("POST", "/api/v1/trials/0123456789abcdef/release"),
    ("PUT", "/api/v1/trials/0123456789abcdef/model"),
    ("PUT", "/config.yaml"),
    ("DELETE", "/config.yaml"),
    ("GET", "/healthz/../api/v1/experiments"),
]


@pytest.mark.parametrize("method,path", ROUTES)
def test_every_route_refuses_without_the_password(server, method, path):
    response = requests.request(method, server.url + path, data=b"{}", timeout=10)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert "error" in response.json()


@pytest.mark.parametrize("method,path", ROUTES[:4])
def test_a_wrong_password_is_refused(server, method, path):
    for header in (
        "Bearer wrong",
        "Bearer " + server.password + "x",
        "Basic Zm9vOmJhcg==",
        "Token " + server.password,
        "Bearer",
    ):
        response = requests.request(
            method, server.url + path, headers={"Authorization": header}, timeout=10
        )
        assert response.status_code == 401, header


def test_health_check_needs_no_password_and_says_nothing_else(server):
    response = requests.get(server.url + "/healthz", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_bearer_and_basic_with_any_user_name_are_accepted(server):
    url = server.url + "/api/v1/experiments"
    assert requests.get(url, headers=server.auth(), timeout=10).status_code == 200
    for user in ("", "alice", "gridexp"):
        token = base64.b64encode(f"{user}:{server.password}".encode()).decode()
        response = requests.get(url, headers={"Authorization": f"Basic {token}"}, timeout=10)
        assert response.status_code == 200, user
    assert requests.get(url, auth=("someone", server.password), timeout=10).status_code == 200


def test_generated_password_is_kept_private_and_survives_restart(start_server, experiment_dir):
    server = start_server(experiment_dir, password=None)
    kept = experiment_dir / ".gridexp" / "password"
    assert kept.stat().st_mode & 0o777 == 0o600
    assert kept.read_text().strip() == server.banner_password
    assert len(server.banner_password) >= 20
    assert server.get("/api/v1/experiments").status_code == 200
    first = server.banner_password
    server.stop()
    again = start_server(experiment_dir, password=None)
    assert again.banner_password == first


def test_password_file_is_used_and_not_printed(start_server, experiment_dir, tmp_path):
    password_file = tmp_path / "secret"
    password_file.write_text("from-a-file\n")
    server = start_server(experiment_dir, "--password-file", str(password_file), password=None)
    assert "from-a-file" not in "".join(server.output)
    response = requests.get(
        server.url + "/api/v1/experiments",
        headers={"Authorization": "Bearer from-a-file"},
        timeout=10,
    )
    assert response.status_code == 200


def test_guessing_the_password_is_throttled(server):
    url = server.url + "/api/v1/experiments"
    # Without credentials nothing is counted: a browser's first visit is not a guess.
    for _ in range(25):
        assert requests.get(url, timeout=10).status_code == 401
    for attempt in range(20):
        response = requests.get(url, headers={"Authorization": "Bearer guess"}, timeout=10)
        assert response.status_code == 401, attempt
    refused = requests.get(url, headers={"Authorization": "Bearer guess"}, timeout=10)
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert "too many wrong passwords" in refused.json()["error"]
    # Even the right password is refused for now: the answer must tell a guesser nothing.
    assert requests.get(url, headers=server.auth(), timeout=10).status_code == 429
    login = requests.post(
        server.url + "/api/v1/session", json={"password": server.password}, timeout=10
    )
    assert login.status_code == 429
    assert requests.get(server.url + "/healthz", timeout=10).status_code == 200


def test_wrong_dashboard_logins_count_too(server):
    for _ in range(20):
        wrong = requests.post(server.url + "/api/v1/session", json={"password": "x"}, timeout=10)
        assert wrong.status_code == 401
    blocked = requests.get(server.url + "/api/v1/workers", headers=server.auth(), timeout=10)
    assert blocked.status_code == 429
