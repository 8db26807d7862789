"""Static checks of the container setup: docker-compose.yml and the Dockerfile.

No Docker engine is needed: the files are parsed and their wiring checked against each other
and against the Settings the app actually reads.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from infra.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_PREFIX = "TCLEDGER_"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), "docker-compose.yml must be a mapping"
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found = compose.get("services")
    assert isinstance(found, dict), "docker-compose.yml needs a services: mapping"
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment, in either Compose form (mapping or list of KEY=VALUE)."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        pairs = (item.split("=", 1) for item in raw)
        return {k: (v[0] if v else "") for k, *v in pairs}
    return {str(k): "" if v is None else str(v) for k, v in raw.items()}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    return instructions


def test_both_services_exist(services: dict[str, Any]) -> None:
    assert {"db", "app"} <= set(services)


def test_db_is_postgres(services: dict[str, Any]) -> None:
    image = services["db"].get("image", "")
    assert image.split(":")[0].rsplit("/", 1)[-1] == "postgres"


def test_db_has_pg_isready_healthcheck(services: dict[str, Any]) -> None:
    healthcheck = services["db"].get("healthcheck")
    assert healthcheck, "db needs a healthcheck for depends_on: service_healthy"
    test = healthcheck["test"]
    command = " ".join(test) if isinstance(test, list) else str(test)
    assert "pg_isready" in command


def test_app_builds_from_project_root(services: dict[str, Any]) -> None:
    build = services["app"].get("build")
    context = build.get("context") if isinstance(build, dict) else build
    assert context in (".", "./")


def test_app_waits_for_healthy_db(services: dict[str, Any]) -> None:
    depends_on = services["app"].get("depends_on")
    assert isinstance(depends_on, dict), "use the long depends_on form to wait for health"
    assert depends_on["db"]["condition"] == "service_healthy"


def test_database_url_matches_db_service(services: dict[str, Any]) -> None:
    db_env = environment(services["db"])
    url = urlparse(environment(services["app"])["TCLEDGER_DATABASE_URL"])
    assert url.scheme in ("postgresql", "postgres")
    assert url.hostname == "db"
    assert (url.port or 5432) == 5432
    assert url.username == db_env["POSTGRES_USER"]
    assert url.password == db_env["POSTGRES_PASSWORD"]
    assert url.path.lstrip("/") == db_env.get("POSTGRES_DB", db_env["POSTGRES_USER"])


@pytest.mark.parametrize("variable", ["TCLEDGER_KEK_FILE", "TCLEDGER_AUDIT_KEY_FILE"])
def test_key_secrets_are_wired(compose: dict[str, Any], services: dict[str, Any],
                               variable: str) -> None:
    """Production refuses to start without its key-encryption key and its signing key."""
    app = services["app"]
    kek_file = environment(app).get(variable)
    assert kek_file, f"production needs {variable}"
    declared = compose.get("secrets") or {}
    attached: dict[str, str] = {}
    for entry in app.get("secrets") or []:
        if isinstance(entry, str):
            attached[entry] = f"/run/secrets/{entry}"
        else:
            target = entry.get("target", entry["source"])
            path = target if target.startswith("/") else f"/run/secrets/{target}"
            attached[entry["source"]] = path
    matching = [name for name, path in attached.items() if path == kek_file]
    assert matching, f"no secret of app is mounted at {kek_file}"
    assert all(name in declared for name in matching), "the secret must be declared top-level"
    assert declared[matching[0]].get("file"), "the KEK secret should come from a file"


def test_app_is_production(services: dict[str, Any]) -> None:
    assert environment(services["app"]).get("TCLEDGER_ENV") == "production"


def test_app_publishes_port_8000(services: dict[str, Any]) -> None:
    published: list[tuple[str, str]] = []
    for port in services["app"].get("ports") or []:
        if isinstance(port, dict):
            published.append((str(port.get("published", "")), str(port["target"])))
        else:
            parts = str(port).split("/")[0].split(":")
            published.append((parts[-2] if len(parts) > 1 else "", parts[-1]))
    assert ("8000", "8000") in published


def test_compose_variables_are_settings(services: dict[str, Any]) -> None:
    fields = set(Settings.model_fields)
    for name, service in services.items():
        for key in environment(service):
            if key.startswith(ENV_PREFIX):
                field = key[len(ENV_PREFIX):].lower()
                assert field in fields, f"{name}: {key} is not a Settings field"


def test_compose_environment_validates_as_settings(
        services: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in environment(services["app"]).items():
        if key.startswith(ENV_PREFIX):
            monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.uses_postgres
    assert settings.env == "production"
    assert settings.host == "0.0.0.0"


def test_dockerfile_cmd_serves_on_all_interfaces() -> None:
    cmds = [args for keyword, args in dockerfile_instructions() if keyword == "CMD"]
    assert cmds, "the Dockerfile needs a CMD"
    raw = cmds[-1]
    argv = json.loads(raw) if raw.startswith("[") else shlex.split(raw)
    assert argv[:2] == ["tcledger", "serve"]
    assert "--host" in argv and argv[argv.index("--host") + 1] == "0.0.0.0"
    if "--port" in argv:
        assert argv[argv.index("--port") + 1] == "8000"


def test_dockerfile_exposes_8000() -> None:
    exposed = [args.split() for keyword, args in dockerfile_instructions() if keyword == "EXPOSE"]
    assert any(p.split("/")[0] == "8000" for ports in exposed for p in ports)


def test_dockerfile_runs_unprivileged() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0][0] in ("FROM", "ARG") and any(
        k == "FROM" and a.startswith("python:3.11-slim") for k, a in instructions)
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users, "the Dockerfile needs a USER line"
    assert users[-1].split(":")[0] not in ("root", "0")


def test_dockerfile_installs_non_editable() -> None:
    runs = [args for keyword, args in dockerfile_instructions() if keyword == "RUN"]
    assert any("pip install ." in run for run in runs)
    assert not any("pip install -e" in run or "--editable" in run for run in runs)


def test_dockerignore_keeps_local_state_out() -> None:
    entries = {line.strip().rstrip("/") for line in
               (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".venv", "var", ".git"} <= entries
