"""What the Python benchmark scripts share about keyhost's formats: the labels,
the env master key's decoding and fingerprint, and the env provider's
associated data (as plugins/env/src/lib.rs and keyhost_guest::context_aad)."""

import base64
import binascii
import hashlib
import os
import struct
import sys

MAGIC = b"KHEV"
VERSION = 1
COMMITMENT_LABEL = b"keyhost/v1/key-commitment"
ENV_AAD_LABEL = b"keyhost/env/v1"
ENV_FINGERPRINT_LABEL = b"keyhost/env/fingerprint/v1"


def decode_master_key(text: str) -> bytes:
    """Trim; exactly 64 hex digits are hex, anything else base64. ValueError if not 32 bytes."""
    text = text.strip()
    if len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text):
        key = bytes.fromhex(text)
    else:
        try:
            key = base64.b64decode(text, validate=True)
        except binascii.Error as e:
            raise ValueError(f"OPONN_MASTER_KEY is neither 64 hex digits nor base64: {e}") from e
    if len(key) != 32:
        raise ValueError(f"OPONN_MASTER_KEY decodes to {len(key)} bytes, not 32")
    return key


def master_key_from_env(program: str) -> bytes:
    """OPONN_MASTER_KEY, decoded; exits with a message naming `program` if unset or malformed."""
    raw = os.environ.get("OPONN_MASTER_KEY")
    if not raw:
        sys.exit(f"{program}: set OPONN_MASTER_KEY (32 bytes, base64)")
    try:
        return decode_master_key(raw)
    except ValueError as e:
        sys.exit(f"{program}: {e}")


def env_key_id(master_key: bytes) -> str:
    return "env:sha256:" + hashlib.sha256(ENV_FINGERPRINT_LABEL + master_key).digest()[:16].hex()


def field32(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


def env_aad(key_id: str, context: dict) -> bytes:
    """keyhost_guest::context_aad(b"keyhost/env/v1", key_id, context), context in sorted order."""
    out = ENV_AAD_LABEL + field32(key_id.encode())
    for k in sorted(context, key=lambda k: k.encode()):
        out += field32(k.encode()) + field32(context[k].encode())
    return out
