#!/usr/bin/env bash
# Dev/test services for keyhost: LocalStack (KMS only) and Postgres.
#
#   scripts/services.sh up                  start LocalStack + Postgres (Docker if available, else on the host)
#   scripts/services.sh postgres-up         only make sure Postgres answers on 127.0.0.1:5432
#   scripts/services.sh localstack-venv     only install the pinned LocalStack venv (tests start their own)
#   scripts/services.sh down                stop what `up` started
#   scripts/services.sh status              say whether LocalStack and Postgres answer
#   scripts/services.sh python-venv DIR REQ create venv DIR (Python >= 3.11) and install requirements file REQ
#
# Environment: LOCALSTACK_PORT (default 4566).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCALSTACK_PORT="${LOCALSTACK_PORT:-4566}"
LS_REQ="$ROOT/infra/localstack/requirements.txt"
LS_VENV="$ROOT/.venv-localstack"
LS_DIR="$ROOT/.localstack"
LS_LOG="$LS_DIR/localstack.log"
LS_PID="$LS_DIR/localstack.pid"
LS_PORT_FILE="$LS_DIR/localstack.port" # port of the instance in LS_PID
PG_MARK="$LS_DIR/postgres-started-by-services-sh" # present if `up` started the host cluster
PG_HOST=127.0.0.1
PG_PORT=5432
HEALTH_URL="http://127.0.0.1:$LOCALSTACK_PORT/_localstack/health"
START_TIMEOUT=180

log() { echo "services.sh: $*"; }
die() { echo "services.sh: error: $*" >&2; exit 1; }

# ---------------------------------------------------------------- helpers

have_docker() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

# `docker compose` v2 (the old docker-compose v1 has no --wait).
compose() {
    docker compose version >/dev/null 2>&1 ||
        die "docker works but the 'docker compose' plugin (v2) is not installed"
    docker compose -f "$ROOT/docker-compose.yml" "$@"
}

# True if something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# True if LocalStack on LOCALSTACK_PORT reports kms as available/running.
ls_healthy() {
    curl -fsS --max-time 2 "$HEALTH_URL" 2>/dev/null |
        grep -Eq '"kms": *"(available|running)"'
}

# Pid from the pid file if that process is still alive and still LocalStack (pids get reused).
ls_pid() {
    local pid
    [[ -f "$LS_PID" ]] || return 1
    pid="$(cat "$LS_PID")"
    [[ -n "$pid" ]] && ps -o args= -p "$pid" 2>/dev/null | grep -q 'localstack/run.py' && echo "$pid"
}

# Print the first interpreter (from the arguments) whose version is >= 3.MINOR.
# Shims (pyenv) that exist but fail to run are skipped.
pick_python() {
    local minor="$1" p
    shift
    for p in "$@"; do
        [[ -x "$p" ]] || p="$(command -v "$p" 2>/dev/null)" || continue
        if "$p" -c "import sys; sys.exit(sys.version_info < (3, $minor))" >/dev/null 2>&1; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# Candidate interpreters, one per line: the given names, then pyenv's 3.1x versions newest first.
python_candidates() {
    local root
    printf '%s\n' "$@"
    if command -v pyenv >/dev/null 2>&1 && root="$(pyenv root 2>/dev/null)"; then
        printf '%s\n' "$root"/versions/3.1*/bin/python | sort -rV
    fi
}

# ensure_venv DIR REQFILE PYTHON: create venv DIR with PYTHON if missing, then
# `pip install -r REQFILE` unless the sha256 stamp inside the venv already matches.
ensure_venv() {
    local dir="$1" req="$2" py="$3" stamp="$1/.requirements.sha256" sum
    [[ -f "$req" ]] || die "requirements file not found: $req"
    if [[ ! -x "$dir/bin/python" ]]; then
        log "creating venv $dir with $py ($("$py" --version 2>&1))"
        "$py" -m venv "$dir"
    fi
    sum="$(sha256sum "$req" | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$sum" ]]; then
        return 0 # requirements unchanged since last install
    fi
    log "installing $req into $dir (first time takes a few minutes)"
    "$dir/bin/python" -m pip install --disable-pip-version-check -q -r "$req"
    echo "$sum" >"$stamp"
}

# ---------------------------------------------------------------- LocalStack

localstack_up_docker() {
    log "docker available: starting LocalStack with docker compose"
    compose up -d --wait localstack
}

# The pinned LocalStack venv. Tests start their own instances from it, so
# it is made even when a LocalStack is already running.
localstack_venv() {
    local py="$LS_VENV/bin/python" candidates
    # The venv needs Python >= 3.12 (a venv made by an older one, e.g. by hand, is rebuilt).
    if ! pick_python 12 "$py" >/dev/null; then
        [[ -e "$LS_VENV" ]] && log "removing $LS_VENV: no usable Python >= 3.12 in it" && rm -rf "$LS_VENV"
        mapfile -t candidates < <(python_candidates python3.13 python3.12 python3)
        py="$(pick_python 12 "${candidates[@]}")" ||
            die "LocalStack 4.14.0 needs Python >= 3.12: none found (tried python3.13, python3.12, python3 on PATH and \$(pyenv root)/versions/3.1*)"
    fi
    ensure_venv "$LS_VENV" "$LS_REQ" "$py"
}

localstack_up_host() {
    local pid waited=0

    localstack_venv
    if ls_healthy; then
        log "LocalStack already running and healthy on 127.0.0.1:$LOCALSTACK_PORT"
        return 0
    fi
    if pid="$(ls_pid)"; then
        [[ "$(cat "$LS_PORT_FILE" 2>/dev/null)" == "$LOCALSTACK_PORT" ]] ||
            die "LocalStack started by services.sh (pid $pid) runs on port $(cat "$LS_PORT_FILE" 2>/dev/null || echo '?'), not $LOCALSTACK_PORT; run 'down' first"
        log "LocalStack (pid $pid) is running but not healthy yet; waiting for it"
    else
        port_open "$LOCALSTACK_PORT" &&
            die "port $LOCALSTACK_PORT is taken by something that is not a healthy LocalStack"

        mkdir -p "$LS_DIR/state"
        log "starting LocalStack on 127.0.0.1:$LOCALSTACK_PORT (log: $LS_LOG)"
        # run.py = `python -m localstack.runtime.main` that really binds to GATEWAY_LISTEN's host.
        # OVERRIDE_IN_DOCKER=0: this may itself be a container; otherwise LocalStack thinks it
        #   is in its own image (binds 0.0.0.0, pings the docker bridge, writes /var/lib/localstack).
        # FILESYSTEM_ROOT: where host-mode LocalStack keeps its files (default: inside the venv).
        # DNS_ADDRESS=0: no DNS server on port 53 (and no /etc/resolv.conf edits).
        # DISABLE_EVENTS=1, SKIP_SSL_CERT_DOWNLOAD=1: no analytics, no certificate download.
        # EAGER_SERVICE_LOADING=1: load KMS at startup, so "healthy" means "kms running".
        (
            cd "$LS_DIR"
            GATEWAY_LISTEN="127.0.0.1:$LOCALSTACK_PORT" \
                SERVICES=kms \
                EAGER_SERVICE_LOADING=1 \
                LOCALSTACK_VOLUME_DIR="$LS_DIR/state" \
                FILESYSTEM_ROOT="$LS_DIR/state" \
                OVERRIDE_IN_DOCKER=0 \
                DNS_ADDRESS=0 \
                DISABLE_EVENTS=1 \
                SKIP_SSL_CERT_DOWNLOAD=1 \
                nohup "$LS_VENV/bin/python" "$ROOT/infra/localstack/run.py" >"$LS_LOG" 2>&1 </dev/null &
            echo $! >"$LS_PID"
        )
        echo "$LOCALSTACK_PORT" >"$LS_PORT_FILE"
        pid="$(cat "$LS_PID")"
    fi

    # Wait for /_localstack/health to list kms.
    until ls_healthy; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "services.sh: error: LocalStack process $pid exited before becoming healthy; last log lines:" >&2
            tail -n 20 "$LS_LOG" >&2 || true
            rm -f "$LS_PID" "$LS_PORT_FILE"
            exit 1
        fi
        if ((waited >= START_TIMEOUT)); then
            echo "services.sh: error: LocalStack not healthy after ${START_TIMEOUT}s ($HEALTH_URL); last log lines:" >&2
            tail -n 20 "$LS_LOG" >&2 || true
            exit 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    log "LocalStack healthy on 127.0.0.1:$LOCALSTACK_PORT after ${waited}s (pid $pid)"
}

localstack_down_host() {
    local pid i
    if ! pid="$(ls_pid)"; then
        rm -f "$LS_PID"
        log "LocalStack (host) not running"
        return 0
    fi
    log "stopping LocalStack (pid $pid)"
    kill -TERM "$pid"
    for ((i = 0; i < 30; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "LocalStack did not exit after 30s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$LS_PID" "$LS_PORT_FILE"
}

# ---------------------------------------------------------------- Postgres

# Real check: psql select 1 on db `test` (trust auth), else pg_isready, else a TCP connect.
pg_ok() {
    if command -v psql >/dev/null 2>&1; then
        psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d test -Atqc 'select 1' >/dev/null 2>&1
    elif command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -h "$PG_HOST" -p "$PG_PORT"
    else
        port_open "$PG_PORT"
    fi
}

cmd_postgres_up() {
    local i
    if ! port_open "$PG_PORT"; then
        if have_docker; then
            log "starting Postgres with docker compose"
            compose up -d --wait postgres
        elif command -v pg_ctlcluster >/dev/null 2>&1 && [[ -d /etc/postgresql ]]; then
            local ver
            # shellcheck disable=SC2012
            ver="$(ls /etc/postgresql | sort -V | tail -n 1)"
            log "starting host Postgres cluster $ver/main"
            pg_ctlcluster --skip-systemctl-redirect "$ver" main start
            mkdir -p "$LS_DIR" && echo "$ver" >"$PG_MARK"
        else
            die "nothing listens on $PG_HOST:$PG_PORT and neither docker nor pg_ctlcluster is available"
        fi
    fi
    for ((i = 0; i < 30; i++)); do
        if pg_ok; then
            log "Postgres reachable on $PG_HOST:$PG_PORT (db test, user postgres)"
            return 0
        fi
        sleep 1
    done
    die "Postgres on $PG_HOST:$PG_PORT does not answer 'select 1' as user postgres on db test (is trust auth set and db 'test' created?)"
}

# ---------------------------------------------------------------- subcommands

cmd_up() {
    if have_docker; then
        localstack_up_docker
    else
        localstack_up_host
    fi
    cmd_postgres_up
}

cmd_down() {
    if [[ -f "$LS_PID" ]]; then
        localstack_down_host
    elif have_docker; then
        log "stopping docker compose services"
        compose down
    else
        log "LocalStack not started by services.sh"
    fi
    if [[ -f "$PG_MARK" ]]; then
        log "stopping host Postgres cluster $(cat "$PG_MARK")/main"
        pg_ctlcluster --skip-systemctl-redirect "$(cat "$PG_MARK")" main stop || true
        rm -f "$PG_MARK"
    fi
}

cmd_status() {
    local rc=0
    if ls_healthy; then
        echo "LocalStack: up, kms ready ($HEALTH_URL)"
    else
        echo "LocalStack: DOWN ($HEALTH_URL)"
        rc=1
    fi
    if pg_ok; then
        echo "Postgres:   up ($PG_HOST:$PG_PORT, db test)"
    else
        echo "Postgres:   DOWN ($PG_HOST:$PG_PORT, db test)"
        rc=1
    fi
    return "$rc"
}

cmd_python_venv() {
    [[ $# -eq 2 ]] || die "usage: services.sh python-venv DIR REQFILE"
    local py="$1/bin/python" candidates
    if ! pick_python 11 "$py" >/dev/null; then
        mapfile -t candidates < <(python_candidates python3 python3.13 python3.12 python3.11)
        py="$(pick_python 11 "${candidates[@]}")" ||
            die "need Python >= 3.11: none found (tried python3, python3.1[1-3], pyenv versions)"
    fi
    ensure_venv "$1" "$2" "$py"
    log "venv ready: $1 ($("$1/bin/python" --version 2>&1))"
}

case "${1:-}" in
up) cmd_up ;;
localstack-venv) localstack_venv ;;
postgres-up) cmd_postgres_up ;;
down) cmd_down ;;
status) cmd_status ;;
python-venv) shift && cmd_python_venv "$@" ;;
*)
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
