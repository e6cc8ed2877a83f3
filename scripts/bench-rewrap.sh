#!/usr/bin/env bash
# Rewrap rows/s (Phase 3): `keyhost rewrap --from env --to localstack` at its
# best settings vs the seed's stack done sequentially (benches/rewrap_boto3.py:
# boto3 + psycopg + cryptography), against the same LocalStack and Postgres in
# one run, and a Markdown table of the ratio.
#
#   scripts/bench-rewrap.sh
#
# Each run gets its own freshly seeded table (benches/seed_envelopes.py: env-key
# envelopes in keyhost's v1 format, context {ballot_id, election_id}). Both tools
# make 2 KMS calls per row: Encrypt, then the verifying Decrypt. keyhost runs
# with `instances = "reuse"` for both providers and no audit log; it is run at
# each concurrency in BENCH_REWRAP_CONCURRENCY and the best is reported. Every
# table is checked afterwards: `keyhost scan --require-none env` on a profile
# without the env provider, and one row decrypted with keyhost.
#
# Environment: BENCH_REWRAP_ROWS (default 10000: rows per keyhost run),
# BENCH_REWRAP_PY_ROWS (default auto: ROWS, unless a 200-row probe of the Python
# baseline projects more than BENCH_REWRAP_PY_BUDGET_S seconds (default 300),
# then 1000), BENCH_REWRAP_CONCURRENCY ("16 32"), BENCH_REWRAP_BATCH (200),
# BENCH_REWRAP_ACCESS_KEY_ID (000000000077: the LocalStack account),
# LOCALSTACK_PORT (4566), DATABASE_URL (postgres://postgres@127.0.0.1:5432/test),
# BENCH_OUT (directory for the raw JSON lines, default target/bench-rewrap).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

ROWS="${BENCH_REWRAP_ROWS:-10000}"
PY_ROWS="${BENCH_REWRAP_PY_ROWS:-auto}"
PY_BUDGET_S="${BENCH_REWRAP_PY_BUDGET_S:-300}"
CONCURRENCIES="${BENCH_REWRAP_CONCURRENCY:-16 32}"
BATCH="${BENCH_REWRAP_BATCH:-200}"
ACCESS_KEY_ID="${BENCH_REWRAP_ACCESS_KEY_ID:-000000000077}"
PORT="${LOCALSTACK_PORT:-4566}"
ENDPOINT="http://127.0.0.1:$PORT"
DB_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
STAMP="$(date +%Y%m%d-%H%M%S)"
ALIAS="alias/keyhost-rewrap-bench-$STAMP-$$"
TABLE_PREFIX="keyhost_bench_rewrap_$$"
OUT_DIR="${BENCH_OUT:-$ROOT/target/bench-rewrap}"
RESULTS="$OUT_DIR/rewrap-$STAMP.jsonl"
PY="$ROOT/.venv-bench/bin/python"

log() { echo "bench-rewrap: $*" >&2; }

LOCALSTACK_PORT="$PORT" scripts/services.sh up >&2
scripts/services.sh python-venv .venv-bench benches/requirements.txt >&2
make --no-print-directory plugins >&2
cargo build --release -p keyhost --bin keyhost >&2

# A private copy of the binary and the components: others may rebuild
# target/ and dist/ while this runs.
WORK="$(mktemp -d "${TMPDIR:-/tmp}/keyhost-bench-rewrap.XXXXXX")"
TABLES=()
sql() { "$PY" -c 'import sys, psycopg; c = psycopg.connect(sys.argv[1], autocommit=True); [c.execute(q) for q in sys.argv[2:]]' "$DB_URL" "$@"; }
cleanup() {
    local t
    for t in "${TABLES[@]}"; do sql "DROP TABLE IF EXISTS $t" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
cp target/release/keyhost "$WORK/keyhost"
cp dist/plugins/env.wasm dist/plugins/localstack.wasm "$WORK/"
KEYHOST="$WORK/keyhost"

mkdir -p "$OUT_DIR"
: >"$RESULTS"

# A fresh legacy master key for this run, as Oponn holds it (base64).
OPONN_MASTER_KEY="$(head -c 32 /dev/urandom | base64)"
export OPONN_MASTER_KEY

log "KMS key $ALIAS in LocalStack account $ACCESS_KEY_ID"
LOCALSTACK_ENDPOINT="$ENDPOINT" LOCALSTACK_ACCESS_KEY_ID="$ACCESS_KEY_ID" \
    "$KEYHOST" infra up --alias "$ALIAS" --env-file "$WORK/kms.env" >&2
ARN="$(sed -n 's/^KMS_KEY_ID=//p' "$WORK/kms.env")"
[[ -n "$ARN" ]] || { log "infra up wrote no KMS_KEY_ID"; exit 1; }

CONFIG="$WORK/keyhost.toml"
cat >"$CONFIG" <<EOF
# Written by scripts/bench-rewrap.sh. Best settings: warm instances, no audit log.
default_profile = "dev"

[runtime]
cache_dir = "$WORK/cache"

[providers.env]
component = "$WORK/env.wasm"
sha256 = "$(sha256sum "$WORK/env.wasm" | cut -d' ' -f1)"
instances = "reuse"
limits = { memory_mib = 16, deadline_ms = 10000 }
secrets.master-key = { env = "OPONN_MASTER_KEY" }

[providers.localstack]
component = "$WORK/localstack.wasm"
sha256 = "$(sha256sum "$WORK/localstack.wasm" | cut -d' ' -f1)"
instances = "reuse"
config = { key_id = "$ARN" }
limits = { deadline_ms = 60000 }

[providers.localstack.http]
endpoint = "$ENDPOINT"
allow_plain_http = true
auth = "aws-sigv4"
service = "kms"
region = "us-east-1"
static_credentials = { access_key_id = "$ACCESS_KEY_ID", secret_access_key = "test" }
allowed_targets = ["TrentService.Encrypt", "TrentService.Decrypt", "TrentService.DescribeKey"]
request_timeout_ms = 10000

[profiles.legacy]
encrypt = "env"

[profiles.dev]
encrypt = "localstack"
decrypt_only = ["env"]

[profiles.kms-only]
encrypt = "localstack"
EOF

seed() { # seed TABLE ROWS
    TABLES+=("$1")
    "$PY" benches/seed_envelopes.py --database-url "$DB_URL" --table "$1" --rows "$2" --replace >&2
    sql "CHECKPOINT" || true
}

# decrypt_row TABLE ID PROFILE: keyhost must open the row's envelope to its ballot.
decrypt_row() {
    local out expected
    "$PY" -c 'import sys, psycopg
c = psycopg.connect(sys.argv[1])
sys.stdout.buffer.write(bytes(c.execute(f"SELECT envelope FROM {sys.argv[2]} WHERE id = %s", (int(sys.argv[3]),)).fetchone()[0]))' \
        "$DB_URL" "$1" "$2" >"$WORK/row.bin"
    out="$("$KEYHOST" --config "$CONFIG" --profile "$3" decrypt --in "$WORK/row.bin" \
        -c "ballot_id=$2" -c election_id=e-2026)"
    expected="{\"ballot\": $2, \"choice\": \"measure-$(($2 % 7))\"}"
    [[ "$out" == "$expected" ]] || { log "$1 row $2 decrypted to $out, expected $expected"; exit 1; }
}

# After a rewrap: no env envelope left (checked on a profile without env), and a row opens.
check_table() { # check_table TABLE ROWS
    "$KEYHOST" --config "$CONFIG" --profile kms-only scan --database-url "$DB_URL" --table "$1" \
        --require-none env >&2
    decrypt_row "$1" $(($2 / 2 + 1)) kms-only
}

# measure LABEL CMD...: runs CMD, prints one JSON line with its stdout (parsed as
# JSON), wall time, the CPU of CMD, LocalStack and Postgres over the run, the
# machine's busy fraction, and the KMS requests LocalStack logged meanwhile.
MEASURE='
import json, os, resource, subprocess, sys, time

def ticks(match):
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if match(cmd):
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")

def localstack(cmd): return b"localstack/run.py" in cmd or b"localstack.runtime" in cmd
def postgres(cmd): return cmd.startswith(b"postgres") or b"/bin/postgres\0" in cmd

def machine():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), v[3] + v[4]

def kms_logged(path):
    try:
        with open(path, "rb") as f:
            return sum(1 for line in f if b"AWS kms." in line)
    except OSError:
        return None

label, log_path, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
ls0, pg0, (t0, i0), k0 = ticks(localstack), ticks(postgres), machine(), kms_logged(log_path)
c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
w0 = time.perf_counter()
proc = subprocess.run(cmd, stdout=subprocess.PIPE)
wall = time.perf_counter() - w0
c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
ls1, pg1, (t1, i1), k1 = ticks(localstack), ticks(postgres), machine(), kms_logged(log_path)
try:
    result = json.loads(proc.stdout)
except ValueError:
    result = proc.stdout.decode(errors="replace")
print(json.dumps({
    "label": label, "rc": proc.returncode, "process_wall_s": round(wall, 3),
    "client_cpu_s": round((c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime), 3),
    "localstack_cpu_s": round(ls1 - ls0, 3), "postgres_cpu_s": round(pg1 - pg0, 3),
    "machine_busy": round(1 - (i1 - i0) / max(1, t1 - t0), 3), "cores": os.cpu_count(),
    "loadavg": os.getloadavg()[0],
    "kms_requests_logged": None if k0 is None else k1 - k0,
    "result": result,
}))
sys.exit(proc.returncode)
'
LS_LOG="$ROOT/.localstack/localstack.log" # host-mode LocalStack logs one line per request
measure() { "$PY" -c "$MEASURE" "$1" "$LS_LOG" "${@:2}"; }

# Compatibility and warm-up: Python-seeded envelopes open with keyhost's legacy
# profile (this also compiles the components into the cache).
seed "${TABLE_PREFIX}_check" 3
decrypt_row "${TABLE_PREFIX}_check" 2 legacy
log "seeded envelopes decrypt with keyhost (legacy profile)"

run_python() { # run_python TABLE
    measure python "$PY" benches/rewrap_boto3.py --database-url "$DB_URL" --table "$1" \
        --key-id "$ARN" --batch "$BATCH" --endpoint "$ENDPOINT" \
        --access-key "$ACCESS_KEY_ID" --secret-key test
}

if [[ "$PY_ROWS" == auto ]]; then
    seed "${TABLE_PREFIX}_probe" 200
    probe="$(run_python "${TABLE_PREFIX}_probe")"
    PY_ROWS="$("$PY" -c 'import json, sys
r = json.loads(sys.argv[1])["result"]
rows, budget = int(sys.argv[2]), float(sys.argv[3])
print(rows if rows / r["rows_per_sec"] <= budget else min(rows, 1000))' "$probe" "$ROWS" "$PY_BUDGET_S")"
    log "Python probe: $(echo "$probe" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["result"]["rows_per_sec"])') rows/s; baseline runs on $PY_ROWS rows"
fi

run_keyhost() { # run_keyhost TABLE CONCURRENCY
    measure "keyhost-c$2" "$KEYHOST" --config "$CONFIG" --profile dev rewrap \
        --database-url "$DB_URL" --table "$1" --from env --to localstack \
        --concurrency "$2" --batch "$BATCH" --json --quiet
}

# keyhost at the first concurrency, then the Python baseline, then keyhost at
# the others, so that drift in the machine's load hits both sides.
first=1
for c in $CONCURRENCIES; do
    table="${TABLE_PREFIX}_keyhost_c$c"
    seed "$table" "$ROWS"
    log "keyhost rewrap: $ROWS rows, concurrency $c, batch $BATCH"
    run_keyhost "$table" "$c" | tee -a "$RESULTS" >&2
    check_table "$table" "$ROWS"
    if ((first)); then
        first=0
        table="${TABLE_PREFIX}_python"
        seed "$table" "$PY_ROWS"
        log "Python baseline (boto3 + psycopg, sequential): $PY_ROWS rows, batch $BATCH"
        run_python "$table" | tee -a "$RESULTS" >&2
        check_table "$table" "$PY_ROWS"
    fi
done
log "all tables verified: no env envelope left, rows decrypt with keyhost on a KMS-only profile"
log "raw results: $RESULTS"

"$PY" - "$RESULTS" "$ROWS" <<'PYEOF'
import json
import sys

runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
python = next(r for r in runs if r["label"] == "python")
keyhost = [r for r in runs if r["label"].startswith("keyhost")]

def rate(r):
    res = r["result"]
    return res["rewrapped"] / res["seconds"]

def kms_per_row(r):
    n = r["kms_requests_logged"]
    return None if n is None else n / r["result"]["rewrapped"]

base = rate(python)
best = max(keyhost, key=rate)
pres = python["result"]
print(f"Rewrap env -> localstack, one run, same LocalStack ({pres['endpoint']}) and Postgres; "
      f"batch {pres['batch']}; boto3 {pres['boto3']}, psycopg {pres['psycopg']}, Python {pres['python']}. "
      f"Each run on its own freshly seeded table; seconds = the tool's own row loop.")
print()
print("| tool | rows | seconds | rows/s | ratio vs Python | KMS calls/row (by design / LocalStack log) | process wall s | client CPU s | LocalStack CPU s | Postgres CPU s | machine busy |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")

def line(name, r, calls):
    res = r["result"]
    logged = kms_per_row(r)
    logged = "–" if logged is None else f"{logged:.2f}"
    mark = " **(best)**" if r is best else ""
    print(f"| {name}{mark} | {res['rewrapped']:,} | {res['seconds']:.1f} | {rate(r):.1f} | {rate(r) / base:.2f}× "
          f"| {calls} / {logged} | {r['process_wall_s']:.1f} | {r['client_cpu_s']:.1f} | {r['localstack_cpu_s']:.1f} "
          f"| {r['postgres_cpu_s']:.1f} | {100 * r['machine_busy']:.0f}% |")

line("Python boto3 + psycopg, sequential", python, f"{pres['kms_calls_per_row']:g}")
for r in sorted(keyhost, key=lambda r: int(r["label"].split("-c")[1])):
    line(f"keyhost rewrap, `instances = \"reuse\"`, concurrency {r['label'].split('-c')[1]}", r, "2")
print()
ratio = rate(best) / base
print(f"Goal ≥ 5× rows/s: {'PASS' if ratio >= 5 else 'FAIL'} ({ratio:.2f}×, keyhost {best['label'].split('-')[1]} "
      f"{rate(best):.1f} rows/s vs Python {base:.1f} rows/s).")
if pres["rewrapped"] != int(sys.argv[2]):
    print(f"The Python baseline ran on {pres['rewrapped']:,} rows (not {int(sys.argv[2]):,}) to keep the script "
          f"bounded; rows/s is the metric.")
print()
print("CPU columns are core-seconds over the whole process run (client = the tool's process; LocalStack and "
      "Postgres = all their processes); machine busy = share of all cores not idle during the run, other "
      "load included. The LocalStack log counts every client's requests, not only this run's.")
PYEOF
