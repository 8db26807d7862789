"""`tcledger integrations`: a client's token is printed once, bound to its recipient."""

from __future__ import annotations

from infra.cli import main
from infra.settings import Settings
from infra.wiring import build
from integrations.clients import IntegrationClients
from tests.conftest import TEST_KEK


def test_integrations_create_and_list(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TCLEDGER_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("TCLEDGER_KEK", TEST_KEK)
    assert main(["integrations", "create", "--recipient", "Synthetic Parole Office",
                 "--categories", "discharge, stage-progress"]) == 0
    secret = capsys.readouterr().out.strip()
    assert secret.startswith("tcl_")
    services = build(Settings())
    try:
        caller = services.tokens.authenticate(secret)
        assert caller is not None and caller.role == "integration"
        client = IntegrationClients(services.store, services.tokens).of(caller.token_id)
        assert client is not None and client.recipient == "Synthetic Parole Office"
        assert client.categories == {"discharge", "stage-progress"}
    finally:
        services.close()
    assert main(["integrations", "list"]) == 0
    listing = capsys.readouterr().out
    assert caller.token_id in listing and secret not in listing
    assert main(["tokens", "revoke", caller.token_id]) == 0
    capsys.readouterr()
    assert main(["integrations", "list"]) == 0
    assert capsys.readouterr().out == ""  # a revoked token ends its client


def test_unknown_category_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TCLEDGER_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("TCLEDGER_KEK", TEST_KEK)
    assert main(["integrations", "create", "--recipient", "X", "--categories", "gossip"]) == 2
    assert "unknown value 'gossip'" in capsys.readouterr().err
    assert main(["integrations", "create", "--recipient", "X"]) == 2
    assert "subscribe to a category or ingest" in capsys.readouterr().err
    assert main(["integrations", "create", "--recipient", "Synthetic Lab",
                 "--ingests", "lab-results"]) == 0
