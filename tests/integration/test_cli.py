"""The tcledger command: tokens are printed once and stored hashed; bad policies are named."""

from __future__ import annotations

import pytest

from infra.cli import main
from infra.settings import Settings
from infra.tokens import hash_token
from infra.wiring import build
from tests.conftest import TEST_KEK


def test_tokens_create_list_revoke(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TCLEDGER_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("TCLEDGER_KEK", TEST_KEK)
    assert main(["tokens", "create", "--role", "counselor", "--facility", "F-1",
                 "--name", "Synthetic Counselor"]) == 0
    secret = capsys.readouterr().out.strip()
    assert secret.startswith("tcl_")
    services = build(Settings())
    try:
        caller = services.tokens.authenticate(secret)
        assert caller is not None and caller.role == "counselor" and caller.facility == "F-1"
        raw = services.store.fetch_all("SELECT token_hash FROM tcledger_tokens")
        assert [r["token_hash"] for r in raw] == [hash_token(secret)]  # only the hash is kept
    finally:
        services.close()
    assert main(["tokens", "list"]) == 0
    listing = capsys.readouterr().out
    assert caller.token_id in listing and secret not in listing
    assert main(["tokens", "revoke", caller.token_id]) == 0
    assert main(["tokens", "revoke", caller.token_id]) == 1
    services = build(Settings())
    try:
        assert services.tokens.authenticate(secret) is None
    finally:
        services.close()


def test_counselor_token_needs_a_facility(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TCLEDGER_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("TCLEDGER_KEK", TEST_KEK)
    assert main(["tokens", "create", "--role", "counselor", "--name", "x"]) == 2
    assert "needs a facility" in capsys.readouterr().err


def test_policy_check_names_every_problem(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[program]\ncode = "x"\n[[stages]]\ncode = "a"\nmin_days = "ten"\n')
    assert main(["policy", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "stages[0].min_days: expected an integer" in err
    assert "stages[0].name: required" in err and "program.name: required" in err
    assert main(["policy", "check", "domain/policies/default.toml"]) == 0


def test_production_refuses_to_start_without_a_key(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TCLEDGER_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("TCLEDGER_ENV", "production")
    monkeypatch.delenv("TCLEDGER_KEK", raising=False)
    assert main(["tokens", "list"]) == 2
    assert "production needs TCLEDGER_KEK" in capsys.readouterr().err


def test_a_bad_policy_file_stops_the_start(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("this is not toml [")
    monkeypatch.setenv("TCLEDGER_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("TCLEDGER_POLICY_FILES", str(bad))
    assert main(["tokens", "list"]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_key_rotation_rewraps_data_keys_and_leaves_events_alone(tmp_path, monkeypatch, capsys):
    from datetime import date

    from domain.provenance import Provenance
    from infra.keys import KeyEncryptionKey, KeyError_, KeyStore

    monkeypatch.setenv("TCLEDGER_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("TCLEDGER_KEK", TEST_KEK)
    services = build(Settings())
    try:
        pid = services.ledger.admit(
            services.policies.get("tc-default"), Provenance("s", "counselor"),
            facility="F-1", unit="U", external_ids={"DOC": {"value": "SYN-9", "issuer": "F-1"}},
            given_name="Jory9", family_name="Orrinton", date_of_birth=date(1991, 2, 2),
            admitted_on=date(2026, 1, 5), expected_release_on=None, counselor_id=None,
            referral_source=None, program_agreement_signed=True, reason="synthetic",
            assessments=[]).id
        before = [e.state for e in services.ledger.recorder.select_events(pid)]
    finally:
        services.close()
    new_key = tmp_path / "new.key"
    assert main(["keys", "generate", str(new_key)]) == 0
    assert main(["keys", "rotate", str(new_key)]) == 0
    assert "re-wrapped 1 data keys" in capsys.readouterr().out

    monkeypatch.delenv("TCLEDGER_KEK")
    monkeypatch.setenv("TCLEDGER_KEK_FILE", str(new_key))
    services = build(Settings())
    try:
        assert services.ledger.participant(pid).state.given_name == "Jory9"
        assert [e.state for e in services.ledger.recorder.select_events(pid)] == before
        old = KeyStore(KeyEncryptionKey.from_base64(TEST_KEK), services.store)
        with pytest.raises(KeyError_, match="does not unwrap"):
            old.data_key(pid)
    finally:
        services.close()


def test_projections_rebuild_and_status(tmp_path, monkeypatch, capsys):
    from datetime import date

    from domain.provenance import Provenance

    monkeypatch.setenv("TCLEDGER_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("TCLEDGER_KEK", TEST_KEK)
    services = build(Settings())
    try:
        for n in range(3):
            services.ledger.admit(
                services.policies.get("tc-default"), Provenance("s", "counselor"),
                facility="F-1", unit="U", external_ids={"DOC": {"value": f"SYN-{n}",
                                                                "issuer": "F-1"}},
                given_name=f"Ivo{n}", family_name="Marrowton", date_of_birth=date(1990, 1, 1),
                admitted_on=date(2026, 2, 2), expected_release_on=None, counselor_id=None,
                referral_source=None, program_agreement_signed=True, reason="synthetic",
                assessments=[])
    finally:
        services.close()
    assert main(["projections", "rebuild"]) == 0
    err = capsys.readouterr().err
    assert "100.0%" in err
    assert "rebuilt participant_summary, timeline, program_stats, group_sessions from 3 log " \
        "entries" in err
    assert main(["projections", "status"]) == 0
    status = capsys.readouterr().out
    assert "participant_summary\tposition 3\tlag 0" in status
    assert "timeline\tposition 3\tlag 0" in status
    assert "program_stats\tposition 3\tlag 0" in status
    assert "group_sessions\tposition 3\tlag 0" in status
    assert main(["projections", "rebuild", "nope"]) == 2
