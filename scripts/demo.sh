#!/usr/bin/env bash
# The main job, end to end: encrypt a sample ballot, inspect the envelope,
# decrypt it again, and check the round trip.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
keyhost=target/debug/keyhost
profile=${KEYHOST_PROFILE:-legacy}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ "$profile" = legacy ] && [ -z "${OPONN_MASTER_KEY:-}" ]; then
    # A throwaway master key for this run only, like Oponn's env var.
    OPONN_MASTER_KEY=$(head -c 32 /dev/urandom | base64)
    export OPONN_MASTER_KEY
    echo "demo: generated a throwaway OPONN_MASTER_KEY for this run"
fi

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

step "$keyhost" --profile "$profile" providers
step "$keyhost" --profile "$profile" encrypt --context ballot_id=b-000017 --context election_id=e-2026-general \
    --in examples/ballot.json --out "$work/ballot.khe"
step "$keyhost" inspect --in "$work/ballot.khe"
step "$keyhost" --profile "$profile" decrypt --context ballot_id=b-000017 --context election_id=e-2026-general \
    --in "$work/ballot.khe" --out "$work/ballot.out.json"
cmp examples/ballot.json "$work/ballot.out.json"
echo
echo "demo: the ballot came back byte for byte; a wrong context is refused:"
if "$keyhost" --profile "$profile" decrypt --context ballot_id=b-000018 --context election_id=e-2026-general \
    --in "$work/ballot.khe" >/dev/null; then
    echo "demo: error: a wrong context decrypted" >&2
    exit 1
fi
echo "demo: done"
