"""Liveness and readiness, without authentication and without any personal data."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/health")
def health(services: ServicesDep) -> JSONResponse:
    try:
        position = services.ledger.recorder.max_notification_id() or 0
        database: dict[str, Any] = {"status": "ok", "position": position}
    except Exception as exc:  # the point of a health check is to report, not to raise
        database = {"status": "unavailable", "error": type(exc).__name__}
    ok = database["status"] == "ok"
    body = {"status": "ok" if ok else "degraded", "database": database,
            "store": "postgresql" if services.settings.uses_postgres else "sqlite",
            "projections": []}
    return JSONResponse(body, status_code=200 if ok else 503)
