"""Request identity: restate-server signs each request to the services endpoint, which checks it.

restate-server holds an Ed25519 private key (PEM); the endpoint accepts only requests signed by
the matching public key, written the Restate way: "publickeyv1_" + base58 of the raw 32 bytes.
So nobody who reaches the services port can invoke a handler behind Restate's back.
"""

import os
from pathlib import Path

import base58
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

PUBLIC_KEY_PREFIX = "publickeyv1_"


def ensure_private_key(path: Path) -> None:
    """Create an Ed25519 private key at `path`, readable by its owner only, unless one exists."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def public_key(path: Path) -> str:
    """The public key of the private key at `path`, in the form the services endpoint is given."""
    private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(private, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PUBLIC_KEY_PREFIX + base58.b58encode(raw).decode()
