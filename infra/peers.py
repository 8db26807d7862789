"""Peer links: one participant's id as another participant's record holds it.

Each pair of records that a community fact ties together (a pull-up, a mentorship) gets a
key of its own in the key store, under a random link id. Each record holds the other's id
sealed under that link key (AES-256-GCM, bound to the link and to the holding record),
inside its own encrypted event; nothing in clear and no blind index ties the two. Erasing
either participant destroys the link key (`TCLedger.erase`), so the other record keeps the
fact but can no longer say who the peer was.
"""

from __future__ import annotations

import base64
import binascii
import os
from uuid import UUID, uuid4

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from domain.community import PeerSeal, Seals
from domain.errors import ParticipantErased
from infra.keys import NONCE_BYTES, KeyError_, KeyStore

FORMAT_V1 = b"\x01"


class PeerLinks:
    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys

    def link(self, first: UUID, second: UUID) -> tuple[PeerSeal, PeerSeal]:
        """A new link: the second as the first's record holds it, and the other way round."""
        link_id = uuid4()
        key = self.keys.system_key(link_id)
        return (PeerSeal(str(link_id), _seal(key, link_id, holder=first, peer=second)),
                PeerSeal(str(link_id), _seal(key, link_id, holder=second, peer=first)))

    def deferred(self, first: UUID, second: UUID) -> Seals:
        """`link`, made when first called (once a command's rules have passed: a refused
        command leaves no key) and the same link on every later call (a command retried
        after losing a race makes no second key)."""
        made: list[tuple[PeerSeal, PeerSeal]] = []

        def seals() -> tuple[PeerSeal, PeerSeal]:
            if not made:
                made.append(self.link(first, second))
            return made[0]
        return seals

    def resolve(self, link_id: str, sealed: str, holder: UUID) -> UUID | None:
        """The peer's id, or None once either side was erased (the link key is gone)."""
        try:
            link = UUID(link_id)
            self.keys.check_readable(link)  # another process may have erased since
        except (ParticipantErased, ValueError):
            return None
        return self._open(link, sealed, holder)

    def resolve_many(self, held: list[tuple[str, str, UUID]]
                     ) -> dict[tuple[str, str, UUID], UUID | None]:
        """`resolve` for many links (a caseload page) with two reads of the key store."""
        links: dict[str, UUID] = {}
        for link_id, _, _ in held:
            try:
                links[link_id] = UUID(link_id)
            except ValueError:
                continue
        gone = self.keys.destroyed(list(links.values()))
        self.keys.load([link for link in links.values() if link not in gone])
        return {(link_id, sealed, holder): None
                if link_id not in links or links[link_id] in gone
                else self._open(links[link_id], sealed, holder)
                for link_id, sealed, holder in held}

    def _open(self, link: UUID, sealed: str, holder: UUID) -> UUID | None:
        try:
            key = self.keys.data_key(link)
            raw = base64.b64decode(sealed.encode("ascii"), validate=True)
            if raw[:1] != FORMAT_V1:
                return None
            plain = AESGCM(key).decrypt(raw[1:1 + NONCE_BYTES], raw[1 + NONCE_BYTES:],
                                        _aad(link, holder))
        except (ParticipantErased, KeyError_, InvalidTag, ValueError, binascii.Error):
            return None
        return UUID(bytes=plain)


def _seal(key: bytes, link: UUID, *, holder: UUID, peer: UUID) -> str:
    nonce = os.urandom(NONCE_BYTES)
    sealed = FORMAT_V1 + nonce + AESGCM(key).encrypt(nonce, peer.bytes, _aad(link, holder))
    return base64.b64encode(sealed).decode("ascii")


def _aad(link: UUID, holder: UUID) -> bytes:
    return b"tcledger/peer/v1|" + link.bytes + b"|" + holder.bytes
