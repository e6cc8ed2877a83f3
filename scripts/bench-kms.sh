#!/usr/bin/env bash
# KMS wrap/unwrap: keyhost's sandboxed localstack plugin vs native aws-sdk-kms
# (benches/kms.rs) vs the seed's boto3 path (benches/kms_envelope.py), in one
# run against the same LocalStack, and a Markdown table of the ratios.
#
#   scripts/bench-kms.sh
#
# Environment: KMS_BENCH_CALLS (default 400: calls per path, op and
# concurrency; boto3 gets as many ballots, one Encrypt and one Decrypt each),
# KMS_BENCH_ROUNDS (8), KMS_BENCH_AUDIT=1 (add the audited plugin path),
# LOCALSTACK_PORT (4566), KMS_BENCH_ACCESS_KEY_ID (000000000042: the LocalStack
# account), BENCH_OUT (directory for the raw JSON lines, default target/bench-kms).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CALLS="${KMS_BENCH_CALLS:-400}"
PORT="${LOCALSTACK_PORT:-4566}"
ENDPOINT="http://127.0.0.1:$PORT"
ACCESS_KEY_ID="${KMS_BENCH_ACCESS_KEY_ID:-000000000042}"
ALIAS="alias/keyhost-bench-$(date +%Y%m%d-%H%M%S)-$$"
OUT_DIR="${BENCH_OUT:-$ROOT/target/bench-kms}"
STAMP="$(date +%Y%m%d-%H%M%S)"
RESULTS="$OUT_DIR/kms-$STAMP.jsonl"
PY="$ROOT/.venv-bench/bin/python"

log() { echo "bench-kms: $*" >&2; }

LOCALSTACK_PORT="$PORT" scripts/services.sh up >&2
scripts/services.sh python-venv .venv-bench benches/requirements.txt >&2
make --no-print-directory plugins >&2

mkdir -p "$OUT_DIR"
: >"$RESULTS"

log "keyhost plugin vs aws-sdk-kms: $CALLS calls per variant, key $ALIAS, account $ACCESS_KEY_ID"
KMS_BENCH_ENDPOINT="$ENDPOINT" \
    KMS_BENCH_ACCESS_KEY_ID="$ACCESS_KEY_ID" \
    KMS_BENCH_ALIAS="$ALIAS" \
    KMS_BENCH_CALLS="$CALLS" \
    cargo bench -p keyhost --bench kms | grep '^{' >>"$RESULTS"

# The same key (alias, account) for boto3; --count ballots = as many Encrypt
# and as many Decrypt calls as each Rust path made at each concurrency.
for concurrency in 1 16; do
    log "boto3 baseline: $CALLS ballots (encrypt + decrypt) at concurrency $concurrency"
    "$PY" benches/kms_envelope.py --endpoint "$ENDPOINT" --key-id "$ALIAS" --op both \
        --count "$CALLS" --concurrency "$concurrency" \
        --access-key "$ACCESS_KEY_ID" --secret-key test >>"$RESULTS"
done
log "raw results: $RESULTS"

"$PY" - "$RESULTS" <<'PYEOF'
import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
rust = [r for r in rows if r.get("bench") == "keyhost-kms"]
summary = next(r for r in rows if r.get("bench") == "keyhost-kms-summary")
boto = {r["concurrency"]: r for r in rows if r.get("bench") == "python-kms-envelope"}

def find(path, op, c):
    return next((r for r in rust if r["path"] == path and r["op"] == op and r["concurrency"] == c), None)

PATHS = [
    ("native", ("wrap", "unwrap"), "native aws-sdk-kms (Encrypt / Decrypt)"),
    ("plugin-fresh", ("wrap", "unwrap"), "keyhost plugin, fresh instance (default)"),
    ("plugin-reuse", ("wrap", "unwrap"), "keyhost plugin, `instances = \"reuse\"`"),
    ("plugin-fresh-audit", ("wrap", "unwrap"), "keyhost plugin, fresh + audit log"),
    ("keyhost-envelope", ("seal", "open"), "keyhost envelope, 1 KiB ballot (GenerateDataKey / Decrypt)"),
]

def fmt(x, digits=2):
    return "–" if x is None else f"{x:.{digits}f}"

def per_path(path, ops, c):
    w, u = find(path, ops[0], c), find(path, ops[1], c)
    if not (w and u):
        return None
    return {
        "w": w["mean_ms"], "u": u["mean_ms"],
        "w99": w["p99_ms"], "u99": u["p99_ms"],
        "mean": (w["mean_ms"] + u["mean_ms"]) / 2,
        "cps": (w["calls"] + u["calls"]) / (w["wall_s"] + u["wall_s"]),
        "cpu": (w["client_cpu_s"] + u["client_cpu_s"]) * 1e6 / (w["calls"] + u["calls"]),
    }

def per_boto(c):
    b = boto.get(c)
    if not b:
        return None
    e, d = b["by_op"]["encrypt"], b["by_op"]["decrypt"]
    return {
        "w": e["mean_ms"], "u": d["mean_ms"], "w99": e["p99_ms"], "u99": d["p99_ms"],
        "mean": (e["mean_ms"] + d["mean_ms"]) / 2,
        "cps": b["calls_per_sec"], "cpu": b["client_cpu_ms_per_call"] * 1000,
    }

out = []
out.append(f"KMS wrap/unwrap against LocalStack ({summary['endpoint']}), {summary['calls_per_variant']} calls "
           f"per path, op and concurrency, Rust paths interleaved in {summary['rounds']} rounds; boto3 "
           f"{next(iter(boto.values()))['boto3'] if boto else '?'} on Python "
           f"{next(iter(boto.values()))['python'] if boto else '?'} right after, same key. "
           "Client CPU = getrusage(RUSAGE_SELF) user+sys of the client process / calls.")
out.append("")
out.append("| path | conc | wrap mean / p99 ms | unwrap mean / p99 ms | calls/s | latency vs native | CPU µs/call | CPU vs native | boto3 CPU ÷ this |")
out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
goals = []
for c in (1, 16):
    native = per_path("native", ("wrap", "unwrap"), c)
    b = per_boto(c)
    entries = [(label, per_path(p, ops, c), p) for p, ops, label in PATHS] + [("boto3 + AESGCM (seed)", b, "boto3")]
    for label, r, key in entries:
        if not r:
            continue
        lat = r["mean"] / native["mean"] if native else None
        cpu = r["cpu"] / native["cpu"] if native else None
        vs_boto = b["cpu"] / r["cpu"] if b and key != "boto3" else None
        out.append(f"| {label} | {c} | {fmt(r['w'])} / {fmt(r['w99'])} | {fmt(r['u'])} / {fmt(r['u99'])} "
                   f"| {r['cps']:.0f} | {fmt(lat, 3)}× | {r['cpu']:.0f} | {fmt(cpu, 2)}× | {fmt(vs_boto, 1)}{'×' if vs_boto else ''} |")
        if key in ("plugin-fresh", "keyhost-envelope") and native:
            if key == "plugin-fresh":
                goals.append((f"plugin latency ≤ 1.05× native (c{c})", lat <= 1.05, f"{lat:.3f}×"))
                goals.append((f"plugin CPU ≤ native (c{c})", cpu <= 1.0, f"{cpu:.2f}×"))
            if vs_boto is not None:
                goals.append((f"{key} CPU ≤ 1/10 of boto3's (c{c})", vs_boto >= 10, f"boto3 uses {vs_boto:.1f}×"))
out.append("")
out.append("Goals:")
for name, ok, value in goals:
    out.append(f"- {'PASS' if ok else 'FAIL'} {name}: {value}")
idle = summary.get("idle_process_cpu_us_per_s")
epoch = summary.get("epoch_thread_cpu_us_per_s")
out.append("")
nat = [r for r in rust if r["path"] == "native"]
nat_epoch = sum(r["epoch_thread_cpu_us_per_call"] for r in nat) / max(1, len(nat))
out.append(f"The client process idles at {idle} µs CPU/s, nearly all of it keyhost's wasmtime epoch thread (10 ms tick); "
           f"during the run that thread used {epoch} µs CPU/s. It is charged to the keyhost rows and left out of the "
           f"native rows (≈ {nat_epoch:.0f} µs/call on average, from /proc/self/task/*/schedstat).")
print("\n".join(out))
PYEOF
