"""Keyed blind index: exact-match lookup of an external id without storing it in clear.

HMAC-SHA-256 under an index key of its own (a system key, wrapped by the KEK like every
data key), over the id's kind and its normalised value. Equal ids give equal digests;
the digest reveals nothing without the key.
"""

from __future__ import annotations

import hashlib
import hmac
from uuid import NAMESPACE_URL, uuid5

from infra.keys import KeyStore

INDEX_KEY_STREAM = uuid5(NAMESPACE_URL, "tcledger:blind-index:v1")


class BlindIndex:
    def __init__(self, keys: KeyStore) -> None:
        self._keys = keys

    def prepare(self) -> None:
        """Makes the index key before any transaction needs it (SQLite has one writer)."""
        self._keys.system_key(INDEX_KEY_STREAM)

    def digest(self, kind: str, value: str) -> str:
        normalised = " ".join(value.split()).upper()
        message = f"{kind.upper()}\x00{normalised}".encode()
        key = self._keys.system_key(INDEX_KEY_STREAM)
        return hmac.new(key, message, hashlib.sha256).hexdigest()
