#!/usr/bin/env bash
# The main job, end to end, on the dev profile (LocalStack KMS encrypts, the
# legacy env key still decrypts): provision the KEK, encrypt a sample ballot,
# inspect the envelope, decrypt it, rotate the KEK, and decrypt again.
# KEYHOST_PROFILE=legacy runs the same steps on the env key alone.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
keyhost=target/debug/keyhost
profile=${KEYHOST_PROFILE:-dev}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ctx=(--context ballot_id=b-000017 --context election_id=e-2026-general)

if [ -z "${OPONN_MASTER_KEY:-}" ]; then
    # A throwaway legacy master key for this run only, like Oponn's env var.
    OPONN_MASTER_KEY=$(head -c 32 /dev/urandom | base64)
    export OPONN_MASTER_KEY
    echo "demo: generated a throwaway OPONN_MASTER_KEY for this run"
fi

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

if [ "$profile" != legacy ]; then
    step "$keyhost" infra up
fi
step "$keyhost" --profile "$profile" providers
step "$keyhost" --profile "$profile" encrypt "${ctx[@]}" --in examples/ballot.json --out "$work/ballot.khe"
step "$keyhost" inspect --in "$work/ballot.khe"
step "$keyhost" --profile "$profile" decrypt "${ctx[@]}" --in "$work/ballot.khe" --out "$work/ballot.out.json"
cmp examples/ballot.json "$work/ballot.out.json"
echo "demo: the ballot came back byte for byte"

if [ "$profile" != legacy ]; then
    step "$keyhost" --profile legacy encrypt "${ctx[@]}" --in examples/ballot.json --out "$work/legacy.khe"
    step "$keyhost" --profile "$profile" decrypt "${ctx[@]}" --in "$work/legacy.khe" --out "$work/legacy.out.json"
    cmp examples/ballot.json "$work/legacy.out.json"
    echo "demo: an envelope of the legacy env key still decrypts on $profile"

    step "$keyhost" infra rotate
    step "$keyhost" --profile "$profile" decrypt "${ctx[@]}" --in "$work/ballot.khe" --out "$work/rotated.out.json"
    cmp examples/ballot.json "$work/rotated.out.json"
    echo "demo: after rotation the old envelope still decrypts"
fi

printf '\n\033[1m$ %s\033[0m\n' "$keyhost --profile $profile decrypt --context ballot_id=b-000018 ... (wrong context)"
if "$keyhost" --profile "$profile" decrypt --context ballot_id=b-000018 --context election_id=e-2026-general \
    --in "$work/ballot.khe" >/dev/null; then
    echo "demo: error: a wrong context decrypted" >&2
    exit 1
fi
echo "demo: done"
