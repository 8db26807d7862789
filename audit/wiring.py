"""The ledger a deployment runs, built on the services: its signing key and its keeper."""

from __future__ import annotations

from audit.access import AccessLog
from audit.ledger import Ledger, LedgerKeeper
from audit.signing import HeadSigner, SigningKeyError
from infra.settings import Settings
from infra.wiring import Services


def resolve_signer(settings: Settings) -> HeadSigner:
    """The tree-head key from its file; in development, a generated key file."""
    if settings.audit_key_file is not None:
        return HeadSigner.from_file(settings.audit_key_file)
    if settings.env == "production":
        raise SigningKeyError("production needs TCLEDGER_AUDIT_KEY_FILE (an Ed25519 PEM key)")
    path = settings.var_dir / "audit-signing-key.pem"
    if not path.exists():
        HeadSigner.generate_file(path)
    return HeadSigner.from_file(path)


def build_ledger(services: Services) -> Ledger:
    recorder = services.ledger.recorder
    return Ledger(services.store, recorder.events_table_name,  # type: ignore[attr-defined]
                  signer=resolve_signer(services.settings))


def build_access_log(services: Services) -> AccessLog:
    return AccessLog(services.store, services.ledger.recorder, services.ledger.mapper)


def build_keeper(ledger: Ledger, settings: Settings,
                 access_log: AccessLog | None = None) -> LedgerKeeper:
    """Keeps the ledger and the access log's index current, and signs heads."""
    return LedgerKeeper(ledger, head_interval=settings.audit_head_interval,
                        followers=[access_log] if access_log is not None else [])
