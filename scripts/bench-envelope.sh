#!/usr/bin/env bash
# Envelope encrypt+decrypt of a 1 KiB ballot: keyhost through the env plugin
# (reused and fresh instances) beside raw aes-gcm and the Python legacy path,
# all in one run, printed as ratios for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
make --no-print-directory plugins >/dev/null
scripts/services.sh python-venv .venv-bench benches/requirements.txt >/dev/null
# Python runs before and after the Rust benchmarks, and its mean is the
# baseline: the machine's speed drifts over a run.
python_before=$(.venv-bench/bin/python benches/legacy_envelope.py --seconds 5)
cargo bench -p keyhost --bench envelope -- --noplot "$@" >&2
python_after=$(.venv-bench/bin/python benches/legacy_envelope.py --seconds 5)
echo "$python_before" >&2
echo "$python_after" >&2
python3 - "$python_before" "$python_after" <<'PY'
import json, sys
before, after = (json.loads(a)["envelopes_per_sec"] for a in sys.argv[1:3])
python = (before + after) / 2
print(f"Python legacy path: {before:,.0f} before, {after:,.0f} after the Rust runs")
def per_sec(name):
    with open(f"target/criterion/envelope_1kib/{name}/new/estimates.json") as f:
        return 1e9 / json.load(f)["mean"]["point_estimate"]
rows = [
    ("raw aes-gcm seal+open (Rust, no key wrapping)", per_sec("raw_aes_gcm_seal_open")),
    ("Python legacy path (cryptography AESGCM, env key), mean", python),
    ("keyhost, env plugin, reused instances", per_sec("keyhost_env_reuse")),
    ("keyhost, env plugin, fresh instance per operation", per_sec("keyhost_env_fresh")),
]
print("| path | envelopes/s (1 core) | vs Python legacy |")
print("|---|---:|---:|")
for name, rate in rows:
    print(f"| {name} | {rate:,.0f} | {rate / python:.2f}x |")
PY
