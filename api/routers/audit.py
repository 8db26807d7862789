"""The ledger for auditors: signed tree heads, the public key, inclusion and consistency proofs.

Nothing here is personal data: leaves are hashes of ciphertexts, so proofs stay valid and
answerable after a participant is erased. A proof is always given against a signed head
when one covers it (signed on demand otherwise), so that the answer can be checked with
nothing but the public key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from api.deps import require
from api.problems import Problem
from audit.access import AccessLog
from audit.bundle import BundleError, build_bundle, record_decoder
from audit.ledger import EventRows, LeafNotFound, Ledger
from audit.signing import TreeHead
from infra.tokens import Caller

router = APIRouter(prefix="/audit", tags=["audit"])
MAX_INT = 2 ** 62  # both stores' integers; beyond it no version or size can exist
# The ledger and the access log hold no clinical content: auditors and admins. A bundle
# carries the decoded record: auditors only (admins make no clinical reads).
Auditor = Annotated[Caller, Depends(require("auditor", "admin"))]
ClinicalAuditor = Annotated[Caller, Depends(require("auditor"))]


def _ledger(request: Request) -> Ledger:
    ledger: Ledger = request.app.state.audit_ledger
    return ledger


LedgerDep = Annotated[Ledger, Depends(_ledger)]


def _within(ledger: Ledger, tree_size: int) -> None:
    if tree_size > ledger.size:
        ledger.catch_up()
    size = ledger.size
    if tree_size > size:
        raise Problem(404, "tree-size-unknown", "No tree of that size yet",
                      f"the ledger holds {size} leaves; tree_size {tree_size} is beyond it",
                      tree_size=size)


def _head_for(ledger: Ledger, tree_size: int) -> TreeHead:
    _within(ledger, tree_size)
    return ledger.sign_head(tree_size)


@router.get("/tree-head")
def tree_head(ledger: LedgerDep, _: Auditor,
              tree_size: Annotated[int | None, Query(ge=0, le=MAX_INT)] = None) -> dict[str, Any]:
    """The latest signed tree head, or the head at `tree_size` (signed on demand)."""
    if tree_size is not None:
        return _head_for(ledger, tree_size).as_json()
    latest = ledger.latest_head()
    if latest is None:
        ledger.catch_up()
        latest = ledger.sign_head()
    return latest.as_json()


@router.post("/tree-head", status_code=201)
def sign_tree_head(ledger: LedgerDep, _: Auditor) -> dict[str, Any]:
    """Brings the ledger to the end of the log and signs its head now."""
    ledger.catch_up()
    return ledger.sign_head().as_json()


@router.get("/public-key")
def public_key(ledger: LedgerDep, _: Auditor) -> Response:
    signer = ledger.signer
    assert signer is not None  # the API always builds its ledger with the key
    return Response(signer.public_pem, media_type="application/x-pem-file",
                    headers={"x-key-id": signer.key_id})


@router.get("/proofs/inclusion")
def inclusion(request: Request, ledger: LedgerDep, _: Auditor,
              participant: UUID, version: Annotated[int, Query(ge=1, le=MAX_INT)],
              tree_size: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None) -> JSONResponse:
    leaf = _leaf(request, ledger, participant, version)
    index = leaf["leaf_index"]
    if tree_size is None:
        latest = ledger.latest_head()
        head = latest if latest is not None and latest.tree_size > index else None
        if head is None:
            ledger.catch_up()
            head = ledger.sign_head()
    else:
        if tree_size <= index:
            raise Problem(409, "leaf-after-tree-size", "The event is not in a tree that small",
                          f"the event is leaf {index}; a tree of {tree_size} leaves ends "
                          "before it", leaf_index=index)
        head = _head_for(ledger, tree_size)
    path = ledger.inclusion(index, head.tree_size)
    return JSONResponse({
        "participant": str(participant), "version": version, "leaf_index": index,
        "position": leaf["position"], "tree_size": head.tree_size,
        "leaf_hash": leaf["leaf_hash"].hex(), "path": [p.hex() for p in path],
        "tree_head": head.as_json()})


def _leaf(request: Request, ledger: Ledger, participant: UUID, version: int) -> dict[str, Any]:
    try:
        return ledger.leaf(participant, version)
    except LeafNotFound:
        pass
    positions = request.app.state.services.recorder.positions(participant)
    if version not in positions:
        raise Problem(404, "not-found", "No such event",
                      f"participant {participant} has no recorded version {version}")
    ledger.catch_up()  # recorded, not yet in the ledger
    return ledger.leaf(participant, version)


@router.get("/proofs/consistency")
def consistency(ledger: LedgerDep, _: Auditor, first: Annotated[int, Query(ge=1, le=MAX_INT)],
                second: Annotated[int, Query(ge=1, le=MAX_INT)]) -> dict[str, Any]:
    if first > second:
        raise Problem(400, "bad-tree-sizes", "first must not exceed second",
                      f"first={first}, second={second}")
    _within(ledger, second)  # both sizes are valid before anything is signed
    heads = {size: _head_for(ledger, size) for size in (first, second)}
    return {"first": first, "second": second,
            "path": [p.hex() for p in ledger.consistency(first, second)],
            "first_tree_head": heads[first].as_json(),
            "second_tree_head": heads[second].as_json()}


@router.get("/access-log")
def access_log(request: Request, _: Auditor,
               participant: UUID | None = None, actor: str | None = None,
               since: Annotated[datetime | None, Query(alias="from")] = None,
               until: Annotated[datetime | None, Query(alias="to")] = None,
               action: Literal["read", "write", "denied", "failed", "disclosure"] | None = None,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100,
               cursor: str | None = None) -> dict[str, Any]:
    """Who read or wrote which record, when, how and from where, in log order; `from` and
    `to` bound the time (`to` exclusive); `cursor` is the previous page's `next_cursor`."""
    for name, value in (("from", since), ("to", until)):
        if value is not None and value.tzinfo is None:
            raise Problem(422, "validation", "Invalid request",
                          f"{name}: give a time zone (for example Z)",
                          errors=[{"field": name, "message": "a time zone is required"}])
    after = _access_cursor(cursor)
    log: AccessLog = request.app.state.access_log
    log.catch_up()  # the entries of requests answered a moment ago
    if participant is not None:
        request.state.accessed = [str(participant)]  # reading who read a record is logged
    items = log.query(participant=str(participant) if participant else None, actor=actor,
                      since=since, until=until, action=action, after=after, limit=limit + 1)
    more = len(items) > limit
    items = items[:limit]
    next_cursor = f"{items[-1]['position']}:{items[-1]['participant']}" if more else None
    return {"items": items, "next_cursor": next_cursor}


def _access_cursor(cursor: str | None) -> tuple[int, str]:
    if cursor is None:
        return 0, ""
    position, _, participant = cursor.partition(":")
    try:
        value = int(position)
        UUID(participant)
        if not 0 <= value < 2 ** 62:
            raise ValueError
    except ValueError:
        raise Problem(422, "validation", "Invalid request", "cursor: not a cursor of this list",
                      errors=[{"field": "cursor", "message": "not a cursor of this list"}]
                      ) from None
    return value, participant


@router.get("/participants/{participant_id}/bundle")
def bundle(participant_id: UUID, request: Request, ledger: LedgerDep,
           _: ClinicalAuditor) -> JSONResponse:
    """The participant's stored events with leaves, inclusion proofs, a signed head and the
    public key: `tcledger audit verify-bundle FILE` checks it with no database."""
    services = request.app.state.services
    rows = EventRows(services.store, services.ledger.recorder.events_table_name)
    try:
        built = build_bundle(ledger, rows, participant_id,
                             decode=record_decoder(services.ledger, participant_id))
    except BundleError:
        raise Problem(404, "not-found", "No such participant",
                      f"no recorded events for {participant_id}") from None
    return JSONResponse(built, headers={
        "content-disposition": f'attachment; filename="tcledger-bundle-{participant_id}.json"'})
