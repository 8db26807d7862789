"""Signed tree heads: the Ed25519 key, the signed bytes, and checking a signature.

The signed message of a tree head (documented in audit/README.md) is
    b"tcledger-tree-head-v1" || 0x00 || tree_size (u64 BE) || timestamp_ms (u64 BE) || root (32)
so that an outside verifier needs nothing but the public key to check a head.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

HEAD_FORMAT = b"tcledger-tree-head-v1"


class SigningKeyError(Exception):
    """The signing key is missing or unreadable; messages carry no key material."""


def head_message(tree_size: int, timestamp_ms: int, root_hash: bytes) -> bytes:
    return HEAD_FORMAT + b"\x00" + struct.pack(">QQ", tree_size, timestamp_ms) + root_hash


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_public_pem(text: str | bytes) -> Ed25519PublicKey:
    loaded = serialization.load_pem_public_key(text.encode() if isinstance(text, str) else text)
    if not isinstance(loaded, Ed25519PublicKey):
        raise SigningKeyError("the public key is not an Ed25519 key")
    return loaded


@dataclass(frozen=True)
class TreeHead:
    tree_size: int
    root_hash: bytes
    timestamp_ms: int
    signature: bytes
    key_id: str

    def message(self) -> bytes:
        return head_message(self.tree_size, self.timestamp_ms, self.root_hash)

    def verify(self, public_key: Ed25519PublicKey) -> bool:
        try:
            public_key.verify(self.signature, self.message())
        except InvalidSignature:
            return False
        return key_id(public_key) == self.key_id

    def as_json(self) -> dict[str, Any]:
        return {"tree_size": self.tree_size, "root_hash": self.root_hash.hex(),
                "timestamp": self.timestamp_ms,
                "timestamp_iso": datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)
                .isoformat(timespec="milliseconds"),
                "signature": base64.b64encode(self.signature).decode(),
                "key_id": self.key_id, "signature_algorithm": "Ed25519",
                "format": HEAD_FORMAT.decode()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TreeHead:
        """Raises ValueError (or KeyError/TypeError) on a malformed head."""
        root = bytes.fromhex(data["root_hash"])
        if len(root) != 32:
            raise ValueError("root_hash must be 32 bytes")
        return cls(int(data["tree_size"]), root, int(data["timestamp"]),
                   base64.b64decode(data["signature"], validate=True), str(data["key_id"]))


class HeadSigner:
    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id(self.public_key)

    @classmethod
    def from_file(cls, path: Path) -> HeadSigner:
        try:
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except OSError as exc:
            raise SigningKeyError(f"cannot read the signing key {path}: {exc.strerror}") from None
        except ValueError:
            raise SigningKeyError(f"{path} is not a PEM private key") from None
        if not isinstance(loaded, Ed25519PrivateKey):
            raise SigningKeyError(f"{path} is not an Ed25519 key")
        return cls(loaded)

    @staticmethod
    def generate_file(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)

    @property
    def public_pem(self) -> str:
        return public_pem(self.public_key)

    def sign(self, tree_size: int, root_hash: bytes, timestamp_ms: int) -> TreeHead:
        signature = self._key.sign(head_message(tree_size, timestamp_ms, root_hash))
        return TreeHead(tree_size, root_hash, timestamp_ms, signature, self.key_id)
