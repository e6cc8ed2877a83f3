"""Baseline for `keyhost rewrap --from env --to localstack`: the seed's stack (boto3 + psycopg +
cryptography), one row after another.

For each row of the table, in id order, in transactions of --batch rows
(`SELECT ... ORDER BY id LIMIT n FOR UPDATE`, keyset pagination, as keyhost reads them):

  1. parse the envelope (docs/ENVELOPE.md, version 1);
  2. unwrap the DEK with the env master key (AES-256-GCM, AAD "keyhost/env/v1" + key id +
     context) and check it against the envelope's key commitment;
  3. KMS Encrypt(KeyId, Plaintext=DEK, EncryptionContext=the envelope's context);
  4. build the new envelope: key section = provider "localstack", key id = the response's KeyId
     (the key ARN), wrapped = CiphertextBlob; everything else byte for byte;
  5. verify: KMS Decrypt(KeyId=that ARN, CiphertextBlob, EncryptionContext) must return the DEK
     (keyhost verifies each new wrapped key the same way by default);
  6. UPDATE ... SET envelope = new WHERE id = id AND envelope = old.

Rows already on --provider are skipped, rows of other providers left alone, as
`keyhost rewrap --from env` does. Prints one JSON line:
{rows, seconds, rows_per_sec, kms_calls, kms_calls_per_row, ...}. `seconds` is the row loop
(connections are opened and a DescribeKey warms the client before it starts).

    OPONN_MASTER_KEY=... .venv-bench/bin/python benches/rewrap_boto3.py --table ballots --key-id ARN \
        [--endpoint http://127.0.0.1:4566] [--access-key 000000000000] [--batch 200]
"""

import argparse
import hashlib
import hmac
import json
import os
import platform
import resource
import struct
import time

import boto3
import psycopg
from botocore.config import Config
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from psycopg import sql

from keyhost_format import (
    COMMITMENT_LABEL,
    MAGIC,
    env_aad,
    env_key_id,
    master_key_from_env,
)


class Envelope:
    """A parsed v1 envelope: the associated data (header), context and nonce/commitment in it,
    the key section, and the payload bytes (length prefix included)."""

    __slots__ = ("header", "context", "nonce", "commitment", "provider", "key_id", "wrapped", "payload")

    @classmethod
    def parse(cls, b: bytes) -> "Envelope":
        if b[:4] != MAGIC or len(b) < 6:
            raise ValueError("not a keyhost envelope")
        if b[4] != 1:
            raise ValueError(f"envelope version {b[4]} is not supported")
        count, pos, ctx = b[5], 6, {}
        for _ in range(count):
            kl = b[pos]
            k = b[pos + 1:pos + 1 + kl].decode()
            pos += 1 + kl
            (vl,) = struct.unpack_from(">H", b, pos)
            ctx[k] = b[pos + 2:pos + 2 + vl].decode()
            pos += 2 + vl
        e = cls()
        e.nonce, e.commitment = b[pos:pos + 12], b[pos + 12:pos + 44]
        pos += 44
        e.header, e.context = b[:pos], ctx
        pl = b[pos]
        e.provider = b[pos + 1:pos + 1 + pl].decode()
        pos += 1 + pl
        (il,) = struct.unpack_from(">H", b, pos)
        e.key_id = b[pos + 2:pos + 2 + il].decode()
        pos += 2 + il
        (wl,) = struct.unpack_from(">H", b, pos)
        e.wrapped = b[pos + 2:pos + 2 + wl]
        pos += 2 + wl
        (n,) = struct.unpack_from(">I", b, pos)
        if len(b) != pos + 4 + n or len(e.wrapped) != wl:
            raise ValueError("envelope is truncated or has trailing bytes")
        e.payload = b[pos:]
        return e

    def with_key_section(self, provider: str, key_id: str, wrapped: bytes) -> bytes:
        p, i = provider.encode(), key_id.encode()
        return b"".join((
            self.header,
            bytes([len(p)]), p,
            struct.pack(">H", len(i)), i,
            struct.pack(">H", len(wrapped)), wrapped,
            self.payload,
        ))

    def check_commitment(self, dek: bytes) -> None:
        expected = hmac.new(dek, COMMITMENT_LABEL + self.nonce, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, self.commitment):
            raise ValueError("the unwrapped data key does not match the envelope's key commitment")




def env_unwrap(master: AESGCM, master_key_id: str, e: Envelope) -> bytes:
    if e.key_id != master_key_id:
        raise ValueError(f"wrapped with master key {e.key_id}, OPONN_MASTER_KEY holds {master_key_id}")
    return master.decrypt(e.wrapped[:12], e.wrapped[12:], env_aad(e.key_id, e.context))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", required=True, help="table name or schema.table (id bigint, envelope bytea)")
    ap.add_argument("--database-url", default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test"))
    ap.add_argument("--key-id", required=True, help="KMS key (ARN, id or alias) to wrap with")
    ap.add_argument("--provider", default="localstack", help="provider name written into the key section")
    ap.add_argument("--batch", type=int, default=200, help="rows per transaction (default 200)")
    ap.add_argument("--no-verify", action="store_true", help="skip the verifying KMS Decrypt")
    ap.add_argument("--endpoint", default="http://127.0.0.1:4566")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--access-key", default=os.environ.get("AWS_ACCESS_KEY_ID", "test"))
    ap.add_argument("--secret-key", default=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"))
    args = ap.parse_args()

    key = master_key_from_env("rewrap_boto3")
    master = AESGCM(key)
    master_key_id = env_key_id(key)

    kms = boto3.session.Session().client(
        "kms",
        endpoint_url=args.endpoint,
        region_name=args.region,
        aws_access_key_id=args.access_key,
        aws_secret_access_key=args.secret_key,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}),
    )
    # Warm-up (connection, endpoint resolution) and the key's current ARN, outside the timing,
    # as keyhost's DescribeKey before its loop.
    current_arn = kms.describe_key(KeyId=args.key_id)["KeyMetadata"]["Arn"]

    table = sql.Identifier(*args.table.split(".", 1))
    select_first = sql.SQL("SELECT id, envelope FROM {} ORDER BY id LIMIT %s FOR UPDATE").format(table)
    select_after = sql.SQL("SELECT id, envelope FROM {} WHERE id > %s ORDER BY id LIMIT %s FOR UPDATE").format(table)
    update = sql.SQL("UPDATE {} SET envelope = %s WHERE id = %s AND envelope = %s").format(table)

    tally = {"rewrapped": 0, "already_done": 0, "skipped": 0, "conflicts": 0}
    kms_calls = 0
    with psycopg.connect(args.database_url) as conn:
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        last = None
        while True:
            with conn.transaction():
                rows = conn.execute(select_first if last is None else select_after,
                                    (args.batch,) if last is None else (last, args.batch)).fetchall()
                if not rows:
                    break
                for row_id, stored in rows:
                    stored = bytes(stored)
                    e = Envelope.parse(stored)
                    if e.provider == args.provider and e.key_id == current_arn:
                        tally["already_done"] += 1
                        continue
                    if e.provider != "env":
                        tally["skipped"] += 1
                        continue
                    dek = env_unwrap(master, master_key_id, e)
                    e.check_commitment(dek)
                    resp = kms.encrypt(KeyId=args.key_id, Plaintext=dek, EncryptionContext=e.context)
                    kms_calls += 1
                    arn, blob = resp["KeyId"], resp["CiphertextBlob"]
                    if not args.no_verify:
                        check = kms.decrypt(KeyId=arn, CiphertextBlob=blob, EncryptionContext=e.context)
                        kms_calls += 1
                        e.check_commitment(check["Plaintext"])
                        if check["Plaintext"] != dek:
                            raise ValueError(f"row {row_id}: KMS Decrypt did not return the data key")
                    new = e.with_key_section(args.provider, arn, blob)
                    if conn.execute(update, (new, row_id, stored)).rowcount == 1:
                        tally["rewrapped"] += 1
                    else:
                        tally["conflicts"] += 1
                last = rows[-1][0]
        wall = time.perf_counter() - t0
        ru1 = resource.getrusage(resource.RUSAGE_SELF)

    rows_done = sum(tally.values())
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    print(json.dumps({
        "bench": "python-rewrap-boto3",
        "table": args.table,
        "rows": rows_done,
        **tally,
        "seconds": round(wall, 3),
        "rows_per_sec": round(tally["rewrapped"] / wall, 1) if wall > 0 else None,
        "kms_calls": kms_calls,
        "kms_calls_per_row": round(kms_calls / max(1, tally["rewrapped"]), 3),
        "client_cpu_s": round(cpu, 3),
        "batch": args.batch,
        "endpoint": args.endpoint,
        "python": platform.python_version(),
        "boto3": boto3.__version__,
        "psycopg": psycopg.__version__,
    }))


if __name__ == "__main__":
    main()
