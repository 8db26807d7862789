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


def test_id_systems_are_given_listed_and_checked(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TCLEDGER_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("TCLEDGER_KEK", TEST_KEK)
    assert main(["integrations", "create", "--recipient", "Synthetic Sheriff",
                 "--categories", "discharge", "--external-id-systems", "sid, DOC"]) == 0
    secret = capsys.readouterr().out.strip()
    assert main(["integrations", "create", "--recipient", "Synthetic Court",
                 "--categories", "discharge", "--external-id-systems", ""]) == 0
    capsys.readouterr()
    assert main(["integrations", "list"]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [(r[1], r[-1]) for r in rows] == [("Synthetic Sheriff", "SID,DOC"),
                                             ("Synthetic Court", "-")]
    services = build(Settings())
    try:
        caller = services.tokens.authenticate(secret)
        assert caller is not None
        client = IntegrationClients(services.store, services.tokens).of(caller.token_id)
        assert client is not None and client.external_id_systems == ("SID", "DOC")
    finally:
        services.close()
    assert main(["integrations", "create", "--recipient", "X", "--categories", "discharge",
                 "--external-id-systems", "DOC,not one"]) == 2
    assert "external_id_systems" in capsys.readouterr().err


def test_clients_made_before_id_systems_receive_the_doc_number(services):
    store = services.store
    store.execute("DROP TABLE IF EXISTS tcledger_integrations")
    store.execute("CREATE TABLE tcledger_integrations (token_id TEXT PRIMARY KEY,"
                  " recipient TEXT NOT NULL, categories TEXT NOT NULL, ingests TEXT NOT NULL,"
                  " created_at TEXT NOT NULL)")
    caller, _ = services.tokens.create(role="integration", name="old client")
    store.execute("INSERT INTO tcledger_integrations VALUES (?, ?, ?, ?, ?)",
                  (caller.token_id, "Synthetic Parole Office", '["discharge"]', "[]",
                   "2026-01-01T00:00:00+00:00"))
    clients = IntegrationClients(store, services.tokens)  # upgrades the table
    old = clients.of(caller.token_id)
    assert old is not None and old.external_id_systems == ("DOC",)
    IntegrationClients(store, services.tokens)  # a second start leaves it as it is
    new, _ = clients.create(recipient="Synthetic Sheriff", categories=["discharge"],
                            external_id_systems=["FBI"])
    assert [c.external_id_systems for c in clients.list()] == [("DOC",), ("FBI",)]
