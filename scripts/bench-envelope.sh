#!/usr/bin/env bash
# Envelope encrypt+decrypt of a 1 KiB ballot: keyhost through the env plugin
# (reused and fresh instances) beside raw aes-gcm and the Python legacy path,
# all in one run, printed as ratios for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
make --no-print-directory plugins >/dev/null
scripts/services.sh python-venv .venv-bench benches/requirements.txt >/dev/null
cargo bench -p keyhost --bench envelope -- --noplot "$@" >&2
python_json=$(.venv-bench/bin/python benches/legacy_envelope.py --seconds 5)
echo "$python_json" >&2
python3 - "$python_json" <<'PY'
import json, sys
python = json.loads(sys.argv[1])["envelopes_per_sec"]
def per_sec(name):
    with open(f"target/criterion/envelope_1kib/{name}/new/estimates.json") as f:
        return 1e9 / json.load(f)["mean"]["point_estimate"]
rows = [
    ("raw aes-gcm seal+open (Rust, no key wrapping)", per_sec("raw_aes_gcm_seal_open")),
    ("Python legacy path (cryptography AESGCM, env key)", python),
    ("keyhost, env plugin, reused instances", per_sec("keyhost_env_reuse")),
    ("keyhost, env plugin, fresh instance per operation", per_sec("keyhost_env_fresh")),
]
print("| path | envelopes/s (1 core) | vs Python legacy |")
print("|---|---:|---:|")
for name, rate in rows:
    print(f"| {name} | {rate:,.0f} | {rate / python:.2f}x |")
PY
