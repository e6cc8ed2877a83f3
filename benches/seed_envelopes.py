"""Seed a Postgres table with env-key envelopes in keyhost's exact v1 format.

Each row is a ballot sealed the way keyhost's `legacy` profile seals it (docs/ENVELOPE.md):

  DEK          32 random bytes; the ballot is AES-256-GCM under the DEK, with
               AAD = magic | version | context | nonce | commitment
  commitment   HMAC-SHA-256(DEK, "keyhost/v1/key-commitment" || nonce)
  key section  provider "env", key id "env:sha256:" + hex(SHA-256("keyhost/env/fingerprint/v1" || K)[:16]),
               wrapped = nonce' (12) || AES-256-GCM(K, DEK) (48), with
               AAD = "keyhost/env/v1" || u32be(len(key id)) || key id
                     || per context entry (sorted): u32be(len(k)) || k || u32be(len(v)) || v

K is the master key from OPONN_MASTER_KEY (base64, or 64 hex digits, as the env plugin reads it).
The context is {ballot_id: str(id), election_id: "e-2026"}; the ballot is
{"ballot": id, "choice": "measure-<id % 7>"} (what tests/migrate.rs seeds).

The table is `id bigint primary key, envelope bytea`; it is created, and with --replace dropped
first. Rows are loaded with COPY. Prints one JSON line.

    OPONN_MASTER_KEY=... .venv-bench/bin/python benches/seed_envelopes.py --table ballots [--rows 10000]
"""

import argparse
import hashlib
import hmac
import json
import os
import struct
import time

import psycopg
from psycopg import sql
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keyhost_format import (
    COMMITMENT_LABEL,
    MAGIC,
    VERSION,
    env_aad,
    env_key_id,
    master_key_from_env,
)






def header(context: dict, nonce: bytes, commitment: bytes) -> bytes:
    """magic | version | context | nonce | commitment: the payload's associated data."""
    out = bytearray(MAGIC + bytes([VERSION, len(context)]))
    for k in sorted(context, key=lambda k: k.encode()):
        kb, vb = k.encode(), context[k].encode()
        out += bytes([len(kb)]) + kb + struct.pack(">H", len(vb)) + vb
    return bytes(out + nonce + commitment)


def key_section(provider: str, key_id: str, wrapped: bytes) -> bytes:
    p, i = provider.encode(), key_id.encode()
    return bytes([len(p)]) + p + struct.pack(">H", len(i)) + i + struct.pack(">H", len(wrapped)) + wrapped


def seal_env(master: AESGCM, key_id: str, context: dict, plaintext: bytes) -> bytes:
    dek = os.urandom(32)
    nonce = os.urandom(12)
    commitment = hmac.new(dek, COMMITMENT_LABEL + nonce, hashlib.sha256).digest()
    aad = header(context, nonce, commitment)
    payload = AESGCM(dek).encrypt(nonce, plaintext, aad)
    wrap_nonce = os.urandom(12)
    wrapped = wrap_nonce + master.encrypt(wrap_nonce, dek, env_aad(key_id, context))
    return aad + key_section("env", key_id, wrapped) + struct.pack(">I", len(payload)) + payload


def context_for(row_id: int) -> dict:
    return {"ballot_id": str(row_id), "election_id": "e-2026"}


def ballot_for(row_id: int) -> bytes:
    return json.dumps({"ballot": row_id, "choice": f"measure-{row_id % 7}"}).encode()


def table_ident(name: str) -> sql.Composable:
    return sql.Identifier(*name.split(".", 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", required=True, help="table name or schema.table")
    ap.add_argument("--database-url", default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test"))
    ap.add_argument("--rows", type=int, default=10000, help="rows to write (default 10000), ids 1..N")
    ap.add_argument("--replace", action="store_true", help="drop the table first if it exists")
    args = ap.parse_args()

    key = master_key_from_env("seed_envelopes")
    key_id = env_key_id(key)
    master = AESGCM(key)

    t0 = time.perf_counter()
    table = table_ident(args.table)
    with psycopg.connect(args.database_url) as conn:
        if args.replace:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
        conn.execute(sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY, envelope bytea NOT NULL)").format(table))
        with conn.cursor() as cur:
            with cur.copy(sql.SQL("COPY {} (id, envelope) FROM STDIN").format(table)) as copy:
                for row_id in range(1, args.rows + 1):
                    copy.write_row((row_id, seal_env(master, key_id, context_for(row_id), ballot_for(row_id))))
        conn.execute(sql.SQL("ANALYZE {}").format(table))
    print(json.dumps({
        "bench": "seed-envelopes",
        "table": args.table,
        "rows": args.rows,
        "key_id": key_id,
        "seconds": round(time.perf_counter() - t0, 3),
    }))


if __name__ == "__main__":
    main()
