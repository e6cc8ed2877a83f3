"""Baseline: the Oponn app's legacy Python envelope path (local master key, no KMS).

Per envelope, for a 1 KiB random ballot: fresh 32-byte DEK, AES-256-GCM the ballot with it,
wrap the DEK with AES-256-GCM under the master key, then unwrap the DEK, decrypt the ballot
and check it round-trips. One thread, fixed duration after a warm-up; prints one JSON line.

    .venv-bench/bin/python benches/legacy_envelope.py [--seconds 3]
"""

import argparse
import json
import os
import platform
import time

import cryptography
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def envelope_roundtrip(master_key: bytes, ballot: bytes, aad: bytes) -> None:
    # seal
    dek = os.urandom(32)
    ballot_nonce = os.urandom(12)
    ballot_ct = AESGCM(dek).encrypt(ballot_nonce, ballot, aad)
    wrap_nonce = os.urandom(12)
    wrapped_dek = AESGCM(master_key).encrypt(wrap_nonce, dek, aad)
    # open
    dek2 = AESGCM(master_key).decrypt(wrap_nonce, wrapped_dek, aad)
    if AESGCM(dek2).decrypt(ballot_nonce, ballot_ct, aad) != ballot:
        raise AssertionError("envelope round trip mismatch")


def run_for(seconds: float, master_key: bytes, ballot: bytes, aad: bytes) -> tuple[int, float]:
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        envelope_roundtrip(master_key, ballot, aad)
        n += 1
    return n, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0, help="measured duration (default 3)")
    ap.add_argument("--warmup", type=float, default=0.5, help="warm-up duration (default 0.5)")
    ap.add_argument("--ballot-bytes", type=int, default=1024)
    args = ap.parse_args()

    master_key = os.urandom(32)
    ballot = os.urandom(args.ballot_bytes)
    aad = b"ballot_id=00000000-0000-0000-0000-000000000001"

    run_for(args.warmup, master_key, ballot, aad)
    n, elapsed = run_for(args.seconds, master_key, ballot, aad)

    print(json.dumps({
        "bench": "python-legacy-envelope",
        "envelopes_per_sec": round(n / elapsed, 1),
        "seconds": round(elapsed, 3),
        "envelopes": n,
        "ballot_bytes": args.ballot_bytes,
        "python": platform.python_version(),
        "cryptography": cryptography.__version__,
    }))


if __name__ == "__main__":
    main()
