"""The event cipher: AES-256-GCM per event under the stream's own data key.

The associated data binds each ciphertext to its place (stream id, version, event type), so
a ciphertext copied to another row, another stream or relabelled as another type fails
authentication instead of decrypting into the wrong record. Stored layout, version 1:
`0x01 | nonce (12 bytes) | ciphertext and tag`.
"""

from __future__ import annotations

import os
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.persistence import JSONTranscoder, Mapper, StoredEvent

from infra.keys import NONCE_BYTES, KeyStore

FORMAT_V1 = b"\x01"
# Events under a system key rather than their stream's: the access log (audit.access).
SYSTEM_KEYED_TOPIC_PREFIX = "audit.access:"
SYSTEM_KEYED_STREAM = uuid5(NAMESPACE_URL, "urn:tcledger:access-log")


class EventDecryptionError(Exception):
    """A stored event that does not authenticate where it stands; names the place, not the data."""


def associated_data(stream_id: UUID, version: int, topic: str) -> bytes:
    return (b"tcledger/event/v1|" + stream_id.bytes + version.to_bytes(8, "big") + b"|"
            + topic.encode("utf-8"))


class EncryptedMapper(Mapper[UUID]):
    def __init__(self, keys: KeyStore) -> None:
        super().__init__(transcoder=JSONTranscoder())
        self.keys = keys

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        plain = super().to_stored_event(domain_event)
        stream_id = _uuid(plain.originator_id)
        key = self._key_for(stream_id, plain.topic, new_version=plain.originator_version)
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(key).encrypt(nonce, plain.state, associated_data(
            stream_id, plain.originator_version, plain.topic))
        return StoredEvent(plain.originator_id, plain.originator_version, plain.topic,
                           FORMAT_V1 + nonce + sealed)

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        stream_id = _uuid(stored_event.originator_id)
        state = bytes(stored_event.state)
        where = "stream {} version {}"  # formatted only when it fails: decoding is hot
        if state[:1] != FORMAT_V1:
            raise EventDecryptionError(where.format(
                stream_id, stored_event.originator_version) + ": unknown ciphertext format")
        key = self._key_for(stream_id, stored_event.topic)
        try:
            plain = AESGCM(key).decrypt(
                state[1:1 + NONCE_BYTES], state[1 + NONCE_BYTES:],
                associated_data(stream_id, stored_event.originator_version, stored_event.topic))
        except InvalidTag:
            raise EventDecryptionError(
                where.format(stream_id, stored_event.originator_version)
                + ": ciphertext does not authenticate here (moved from another row, "
                "altered, or under another key)") from None
        return super().to_domain_event(StoredEvent(
            stored_event.originator_id, stored_event.originator_version, stored_event.topic,
            plain))

    def _key_for(self, stream_id: UUID, topic: str, new_version: int | None = None) -> bytes:
        """The stream's own key; the access log's entries (one stream each) share one
        system key instead of making a key per entry."""
        if topic.startswith(SYSTEM_KEYED_TOPIC_PREFIX):
            return self.keys.system_key(SYSTEM_KEYED_STREAM)
        if new_version is not None:
            return self.keys.data_key_for_new_event(stream_id, new_version)
        return self.keys.data_key(stream_id)


class FieldSealer:
    """Encrypts personal fields of read models under the participant's own data key.

    The associated data names the view and the row, so a sealed value cannot be moved to
    another row or view; destroying the participant's key makes every view copy unreadable.
    """

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys

    def seal(self, stream_id: UUID, purpose: str, plaintext: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        key = self.keys.data_key(stream_id)
        return FORMAT_V1 + nonce + AESGCM(key).encrypt(nonce, plaintext,
                                                       _field_aad(stream_id, purpose))

    def open(self, stream_id: UUID, purpose: str, sealed: bytes) -> bytes:
        key = self.keys.data_key(stream_id)
        try:
            return AESGCM(key).decrypt(sealed[1:1 + NONCE_BYTES], sealed[1 + NONCE_BYTES:],
                                       _field_aad(stream_id, purpose))
        except InvalidTag:
            raise EventDecryptionError(
                f"view {purpose} row {stream_id}: sealed value does not authenticate") from None


def _field_aad(stream_id: UUID, purpose: str) -> bytes:
    return b"tcledger/view/v1|" + stream_id.bytes + b"|" + purpose.encode("utf-8")


def _uuid(value: UUID | str) -> UUID:
    return value if isinstance(value, UUID) else UUID(value)
