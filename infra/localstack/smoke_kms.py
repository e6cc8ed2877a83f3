"""Smoke test of the KMS calls keyhost relies on, against a running LocalStack.

    .venv-localstack/bin/python infra/localstack/smoke_kms.py [--endpoint http://127.0.0.1:4566]
"""

import argparse
import os
import time

import boto3

ap = argparse.ArgumentParser()
ap.add_argument("--endpoint", default="http://127.0.0.1:4566")
args = ap.parse_args()

kms = boto3.client(
    "kms",
    endpoint_url=args.endpoint,
    region_name="us-east-1",
    aws_access_key_id="test",
    aws_secret_access_key="test",
)
ctx = {"ballot_id": "b-1"}
t0 = time.perf_counter()

key = kms.create_key(Description="keyhost smoke")["KeyMetadata"]["KeyId"]
other = kms.create_key(Description="keyhost smoke (re-encrypt target)")["KeyMetadata"]["KeyId"]

# Encrypt/Decrypt with an EncryptionContext; a wrong context must fail.
pt = os.urandom(32)
ct = kms.encrypt(KeyId=key, Plaintext=pt, EncryptionContext=ctx)["CiphertextBlob"]
assert kms.decrypt(CiphertextBlob=ct, EncryptionContext=ctx)["Plaintext"] == pt
try:
    kms.decrypt(CiphertextBlob=ct, EncryptionContext={"ballot_id": "other"})
    raise AssertionError("decrypt with the wrong EncryptionContext succeeded")
except kms.exceptions.InvalidCiphertextException:
    pass

# GenerateDataKey: the returned ciphertext decrypts to the returned plaintext.
dk = kms.generate_data_key(KeyId=key, KeySpec="AES_256", EncryptionContext=ctx)
assert len(dk["Plaintext"]) == 32
assert kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=ctx)["Plaintext"] == dk["Plaintext"]

# ReEncrypt to another key (LocalStack needs SourceKeyId).
re = kms.re_encrypt(
    CiphertextBlob=ct,
    SourceKeyId=key,
    SourceEncryptionContext=ctx,
    DestinationKeyId=other,
    DestinationEncryptionContext=ctx,
)
assert kms.decrypt(CiphertextBlob=re["CiphertextBlob"], EncryptionContext=ctx)["Plaintext"] == pt

# Rotation: old ciphertext still decrypts after EnableKeyRotation + RotateKeyOnDemand.
kms.enable_key_rotation(KeyId=key)
assert kms.get_key_rotation_status(KeyId=key)["KeyRotationEnabled"]
kms.rotate_key_on_demand(KeyId=key)
assert kms.decrypt(CiphertextBlob=ct, EncryptionContext=ctx)["Plaintext"] == pt
ct2 = kms.encrypt(KeyId=key, Plaintext=pt, EncryptionContext=ctx)["CiphertextBlob"]
assert kms.decrypt(CiphertextBlob=ct2, EncryptionContext=ctx)["Plaintext"] == pt

print(f"KMS smoke test OK against {args.endpoint} in {time.perf_counter() - t0:.2f}s (key {key})")
