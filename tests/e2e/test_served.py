"""`tcledger serve` as a user runs it: a real server process whose views are kept current
by a supervised child process."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time

from tests.conftest import TEST_KEK
from tests.e2e.people import synthetic_admission


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(port: int, method: str, path: str, token: str | None = None,
         body: object = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers=headers)
    response = conn.getresponse()
    return response.status, json.loads(response.read() or b"{}")


def test_serve_keeps_the_views_current_from_a_child_process(tmp_path):
    port = free_port()
    env = {**os.environ, "TCLEDGER_VAR_DIR": str(tmp_path), "TCLEDGER_KEK": TEST_KEK,
           "TCLEDGER_LOG_LEVEL": "warning", "TCLEDGER_DATABASE_URL": ""}
    server = subprocess.Popen([sys.executable, "-m", "infra.cli", "serve", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if call(port, "GET", "/health")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        token = subprocess.run(
            [sys.executable, "-m", "infra.cli", "tokens", "create", "--role", "counselor",
             "--facility", "F-NORTH", "--name", "served test"], env=env, capture_output=True,
            text=True, check=True).stdout.strip()
        status, written = call(port, "POST", "/participants", token, synthetic_admission(1))
        assert status == 201, written
        deadline = time.monotonic() + 20
        while True:  # no min_position: the child process brings the view up to date
            status, page = call(port, "GET", "/participants", token)
            if [p["id"] for p in page["items"]] == [written["id"]]:
                break
            assert time.monotonic() < deadline, "the views were not kept current"
            time.sleep(0.2)
        while True:  # the caseload reads' own access entries are more events to follow
            health = call(port, "GET", "/health")[1]
            if all(p["lag"] == 0 for p in health["projections"]):
                break
            assert time.monotonic() < deadline, f"the views lag: {health}"
            time.sleep(0.2)
        assert len(runners_for(tmp_path)) == 1  # the one supervised child
    finally:
        server.terminate()
        server.wait(timeout=15)
    time.sleep(0.5)
    assert runners_for(tmp_path) == [], "the projections child outlived its server"


def runners_for(var_dir) -> list[str]:
    """`projections run` processes started for this test's data directory."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            continue
        if b"projections\x00run" in cmdline and f"TCLEDGER_VAR_DIR={var_dir}".encode() in environ:
            found.append(entry)
    return found
