"""Who records a fact, from where, in answer to what: the metadata every event carries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

ROLES = ("counselor", "supervisor", "auditor", "integration", "admin", "system")

# Clocks of the callers drift: an effective time this far ahead of ours is still "now".
CLOCK_SKEW = timedelta(minutes=5)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Provenance:
    actor_id: str
    actor_role: str
    source: str = "api"
    correlation_id: str = field(default_factory=lambda: uuid4().hex)
    causation_id: str | None = None
    now: datetime = field(default_factory=utcnow)

    def event_fields(self, reason: str, effective_at: datetime) -> dict[str, Any]:
        return {"actor_id": self.actor_id, "actor_role": self.actor_role,
                "effective_at": effective_at, "reason": reason.strip(), "source": self.source,
                "correlation_id": self.correlation_id, "causation_id": self.causation_id}

    @property
    def is_supervisor(self) -> bool:
        return self.actor_role == "supervisor"


def new_id() -> str:
    return uuid4().hex
