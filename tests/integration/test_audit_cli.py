"""`tcledger audit ...` as an operator runs it: keygen, sign, export, verify-bundle, and the
production rule that heads are never signed with a generated key."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from audit.signing import SigningKeyError
from audit.wiring import resolve_signer
from infra.cli import main as cli
from infra.settings import Settings
from infra.wiring import Services
from tests.conftest import TEST_KEK
from tests.integration.test_ledger import admit_some


def test_keygen_writes_a_private_key_once(tmp_path: Path, capsys) -> None:
    path = tmp_path / "audit.pem"
    assert cli(["audit", "keygen", str(path)]) == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    out = capsys.readouterr().out
    assert "BEGIN PUBLIC KEY" in out and "PRIVATE" not in out
    before = path.read_bytes()
    assert cli(["audit", "keygen", str(path)]) == 2
    assert path.read_bytes() == before


def test_production_refuses_to_sign_without_a_key_file(tmp_path: Path) -> None:
    settings = Settings(env="production", var_dir=tmp_path, kek=TEST_KEK)
    with pytest.raises(SigningKeyError, match="TCLEDGER_AUDIT_KEY_FILE"):
        resolve_signer(settings)
    assert not (tmp_path / "audit-signing-key.pem").exists()


def test_sign_export_and_verify_a_bundle_from_the_command_line(
        services: Services, tmp_path: Path, monkeypatch, capsys) -> None:
    for name, value in {"TCLEDGER_VAR_DIR": str(services.settings.var_dir),
                        "TCLEDGER_DATABASE_URL": services.settings.database_url,
                        "TCLEDGER_KEK": services.settings.kek}.items():
        monkeypatch.setenv(name, value)
    pid = admit_some(services, 3)[1]
    assert cli(["audit", "sign"]) == 0
    head = json.loads(capsys.readouterr().out)
    assert head["tree_size"] == 3
    bundle = tmp_path / "bundle.json"
    assert cli(["audit", "export", str(pid), "-o", str(bundle)]) == 0
    assert json.loads(bundle.read_text())["events"][0]["recorded"]["type"] == \
        "ParticipantAdmitted"
    from audit.wiring import build_access_log
    log = build_access_log(services)
    log.catch_up()
    exported = log.query(participant=str(pid))
    assert [(e["what"], e["role"]) for e in exported] == [("CLI tcledger audit export",
                                                           "operator")]
    assert cli(["audit", "verify-bundle", str(bundle)]) == 0
    assert "bundle verified" in capsys.readouterr().out
    assert cli(["audit", "export", "not-an-id"]) == 2
    assert cli(["audit", "export", "00000000-0000-4000-8000-000000000000"]) == 1
