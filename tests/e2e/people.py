"""Synthetic people for tests: generated, never real names or numbers."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

GIVEN = ["Avel", "Brisk", "Corran", "Dovie", "Emmer", "Fenwick", "Galen", "Hollis", "Ivo", "Jory"]
FAMILY = ["Quillfeather", "Marrowby", "Tansley", "Vexmoor", "Orrin", "Pellwick", "Stroud"]


def synthetic_admission(seed: int, *, facility: str = "F-NORTH", days_ago: int = 200,
                        **overrides: Any) -> dict[str, Any]:
    rng = random.Random(seed)
    today = datetime.now(UTC).date()
    body: dict[str, Any] = {
        "program": "tc-default", "facility": facility, "unit": f"U-{rng.randint(1, 4)}",
        "doc_number": f"SYN-{seed:06d}-{rng.randint(100, 999)}",
        "given_name": f"{rng.choice(GIVEN)}{seed}", "family_name": rng.choice(FAMILY) + "ton",
        "date_of_birth": (date(1970, 1, 1) + timedelta(days=rng.randint(0, 12000))).isoformat(),
        "admitted_on": (today - timedelta(days=days_ago)).isoformat(),
        "expected_release_on": (today + timedelta(days=rng.randint(30, 600))).isoformat(),
        "counselor_id": "staff-c1", "referral_source": "synthetic court referral",
        "assessments": [{"instrument": "TCU Drug Screen 5", "score": 7, "risk_level": "high"}],
        "reason": "admitted on synthetic referral",
    }
    body.update(overrides)
    return body
