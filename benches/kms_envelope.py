"""Baseline: the seed app's KMS envelope path with boto3 (against LocalStack or real KMS).

Per 1 KiB random ballot:
  encrypt: fresh 32-byte DEK -> KMS Encrypt(DEK, EncryptionContext={"ballot_id": id}),
           AES-256-GCM the ballot with the DEK (aad = ballot id)
  decrypt: KMS Decrypt(wrapped DEK, same EncryptionContext) -> AES-256-GCM decrypt, check
Each of those is one KMS call. --op both does encrypt then decrypt per ballot (2 calls).
--op decrypt first prepares --count envelopes (not measured).

Prints one JSON line: calls, wall seconds, latency per call (mean/p50/p99 ms, including the local
AES step) and this client process's CPU time (user+sys, getrusage) per call.

    .venv-bench/bin/python benches/kms_envelope.py --key-id KEY [--op both] [--count 500] [--concurrency 1]
"""

import argparse
import json
import os
import platform
import resource
import threading
import time

import boto3
from botocore.config import Config
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def make_client(args):
    # One client per thread (clients are thread-safe, but per-thread avoids lock contention
    # in the connection pool and mirrors one-connection-per-worker servers).
    return boto3.session.Session().client(
        "kms",
        endpoint_url=args.endpoint,
        region_name=args.region,
        aws_access_key_id=args.access_key,
        aws_secret_access_key=args.secret_key,
        config=Config(retries={"max_attempts": 1}),
    )


def seal(kms, key_id, ballot_id: str, ballot: bytes) -> dict:
    dek = os.urandom(32)
    wrapped = kms.encrypt(KeyId=key_id, Plaintext=dek, EncryptionContext={"ballot_id": ballot_id})
    nonce = os.urandom(12)
    ct = AESGCM(dek).encrypt(nonce, ballot, ballot_id.encode())
    return {"ballot_id": ballot_id, "wrapped_dek": wrapped["CiphertextBlob"], "nonce": nonce, "ct": ct}


def open_(kms, env: dict) -> bytes:
    dek = kms.decrypt(CiphertextBlob=env["wrapped_dek"], EncryptionContext={"ballot_id": env["ballot_id"]})
    return AESGCM(dek["Plaintext"]).decrypt(env["nonce"], env["ct"], env["ballot_id"].encode())


def run_threads(clients, count, work):
    """Run work(kms, i) for i in range(count), spread over one thread per client."""
    errors = []

    def worker(t):
        try:
            for i in range(t, count, len(clients)):
                work(clients[t], i)
        except Exception as e:  # report it, don't hang
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(len(clients))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]


def stats_ms(lats):
    if not lats:
        return {}
    s = sorted(lats)
    pick = lambda q: s[min(len(s) - 1, round(q * (len(s) - 1)))]  # noqa: E731
    return {
        "mean_ms": round(1000 * sum(s) / len(s), 3),
        "p50_ms": round(1000 * pick(0.50), 3),
        "p99_ms": round(1000 * pick(0.99), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", default="http://127.0.0.1:4566")
    ap.add_argument("--key-id", required=True)
    ap.add_argument("--op", choices=["encrypt", "decrypt", "both"], default="both")
    ap.add_argument("--count", type=int, default=500, help="ballots (default 500)")
    ap.add_argument("--concurrency", type=int, default=1, help="threads (default 1)")
    ap.add_argument("--ballot-bytes", type=int, default=1024)
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--access-key", default=os.environ.get("AWS_ACCESS_KEY_ID", "test"))
    ap.add_argument("--secret-key", default=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"))
    args = ap.parse_args()

    ballots = [os.urandom(args.ballot_bytes) for _ in range(args.count)]
    ids = [f"ballot-{i:08d}" for i in range(args.count)]
    clients = [make_client(args) for _ in range(args.concurrency)]
    for kms in clients:  # warm-up: connection, endpoint resolution, key lookup
        open_(kms, seal(kms, args.key_id, "warmup", b"x"))

    envelopes = [None] * args.count
    by_op = {"encrypt": [], "decrypt": []}

    def timed(op, fn):
        t0 = time.perf_counter()
        result = fn()
        by_op[op].append(time.perf_counter() - t0)  # list.append is atomic under the GIL
        return result

    def do_encrypt(kms, i):
        envelopes[i] = seal(kms, args.key_id, ids[i], ballots[i])

    def work(kms, i):
        if args.op in ("encrypt", "both"):
            envelopes[i] = timed("encrypt", lambda: seal(kms, args.key_id, ids[i], ballots[i]))
        if args.op in ("decrypt", "both"):
            if timed("decrypt", lambda: open_(kms, envelopes[i])) != ballots[i]:
                raise AssertionError(f"round trip mismatch for {ids[i]}")

    if args.op == "decrypt":
        run_threads(clients, args.count, do_encrypt)  # prepare, not measured

    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    run_threads(clients, args.count, work)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)

    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    lats = by_op["encrypt"] + by_op["decrypt"]
    calls = len(lats)
    out = {
        "bench": "python-kms-envelope",
        "op": args.op,
        "endpoint": args.endpoint,
        "concurrency": args.concurrency,
        "ballots": args.count,
        "calls": calls,
        "wall_s": round(wall, 3),
        "calls_per_sec": round(calls / wall, 1),
        **stats_ms(lats),
        "client_cpu_s": round(cpu, 3),
        "client_cpu_ms_per_call": round(1000 * cpu / calls, 3),
        "python": platform.python_version(),
        "boto3": boto3.__version__,
    }
    if args.op == "both":
        out["by_op"] = {op: stats_ms(v) for op, v in by_op.items()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
