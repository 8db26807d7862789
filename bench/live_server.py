"""What the HTTP benchmarks share: a throwaway PostgreSQL database and the real app served
by uvicorn in its own process (or a thread of the bench, for profiling).

    .venv/bin/python bench/live_server.py PORT   # the server process Server starts

The server process takes its settings from TCLEDGER_* in the environment, as `tcledger
serve` does; Server waits until /health answers and every view has caught up, so that a
backlog left by the bench's own data generation does not compete with the measurement.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psycopg  # noqa: E402

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


# --- database ---------------------------------------------------------------------------

def db_url(base: str, name: str) -> str:
    head, _, _ = base.rpartition("/")
    return f"{head}/{name}"


@contextlib.contextmanager
def bench_database(base_url: str, prefix: str = "tcl_bench_") -> Iterator[tuple[str, str]]:
    """A fresh database (name, url), dropped at exit whatever happened."""
    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name, db_url(base_url, name)
    finally:
        with psycopg.connect(base_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the HTTP server --------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_main(port: int) -> None:
    """The server process; settings come from TCLEDGER_* in the environment."""
    import uvicorn

    from api.app import create_app
    from infra.logging import configure_logging
    from infra.settings import Settings
    from infra.wiring import build

    configure_logging("warning")
    services = build(Settings())
    try:
        uvicorn.run(create_app(services), host="127.0.0.1", port=port, log_level="warning",
                    access_log=False)
    finally:
        services.close()


class Server:
    """The app under uvicorn: a child process (`mode="process"`, as deployed) or a thread
    of this process sharing `services` (`mode="thread"`)."""

    def __init__(self, mode: str, services: Any, settings_env: dict[str, str],
                 ready_timeout: float = 180.0) -> None:
        self.mode = mode
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        if mode == "process":
            env = {**os.environ, **settings_env}
            self._proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), str(self.port)],
                env=env, cwd=str(ROOT))
        else:
            import uvicorn

            from api.app import create_app
            config = uvicorn.Config(create_app(services), host="127.0.0.1", port=self.port,
                                    log_level="warning", access_log=False)
            self._server = uvicorn.Server(config)
            self._thread = threading.Thread(target=self._server.run, daemon=True)
            self._thread.start()
        try:
            self._wait_ready(ready_timeout)
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"server exited with {self._proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                health = httpx.get(self.base + "/health", timeout=1.0)
                if health.status_code == 200 and all(
                        p["lag"] == 0 for p in health.json()["projections"]):
                    return
            time.sleep(0.1)
        raise RuntimeError("server did not become ready (or its views did not catch up)")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._server is not None:
            self._server.should_exit = True
            assert self._thread is not None
            self._thread.join(timeout=15)


# --- a whole run ------------------------------------------------------------------------

@dataclass
class Held:
    """What must be released before the database is dropped."""
    services: Any = None
    server: Server | None = None


T = TypeVar("T")


def on_throwaway_database(pg_url: str, prefix: str,
                          run: Callable[[str, str, str, Path, Held], T]) -> T:
    """Runs `run(dbname, url, kek, var_dir, held)` on a database and a data folder made for
    this run only, with a synthetic key, and releases the server and the services it left
    in `held` before both are thrown away, however the run ends."""
    from infra.logging import configure_logging

    configure_logging("warning")
    kek = base64.b64encode(os.urandom(32)).decode()  # synthetic, this run only
    var_dir = Path(tempfile.mkdtemp(prefix="tcl_bench_"))
    try:
        with bench_database(pg_url, prefix=prefix) as (dbname, url):
            held = Held()
            try:
                return run(dbname, url, kek, var_dir, held)
            finally:  # before the database is dropped
                if held.server is not None:
                    held.server.stop()
                if held.services is not None:
                    with contextlib.suppress(Exception):
                        held.services.close()
    finally:
        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    serve_main(int(sys.argv[1]))
