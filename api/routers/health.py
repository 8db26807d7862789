"""Liveness and readiness, without authentication and without any personal data."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import ServicesDep

router = APIRouter(tags=["health"])
STALLED_AFTER_SECONDS = 30.0  # behind the log and not moving for this long


@router.get("/health")
def health(request: Request, services: ServicesDep) -> JSONResponse:
    try:
        position = services.ledger.recorder.max_notification_id() or 0
        database: dict[str, Any] = {"status": "ok", "position": position}
    except Exception as exc:  # the point of a health check is to report, not to raise
        database = {"status": "unavailable", "error": type(exc).__name__}
    projections = []
    if database["status"] == "ok":
        now = datetime.now(UTC)
        for p in request.app.state.runner.status():
            idle = (now - datetime.fromisoformat(p["updated_at"])).total_seconds()
            projections.append({**p, "stalled": p["lag"] > 0 and idle > STALLED_AFTER_SECONDS})
        ledger = request.app.state.audit_ledger.status(position)
        idle = (now - datetime.fromisoformat(ledger["updated_at"])).total_seconds()
        stalled = ledger["lag"] > 0 and idle > STALLED_AFTER_SECONDS
        projections.append({**ledger, "stalled": stalled})
    ok = database["status"] == "ok" and not any(p["stalled"] for p in projections)
    body = {"status": "ok" if ok else "degraded", "database": database,
            "store": "postgresql" if services.settings.uses_postgres else "sqlite",
            "projections": projections}
    return JSONResponse(body, status_code=200 if ok else 503)
