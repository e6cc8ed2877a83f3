#!/usr/bin/env bash
# Writes the sha256 of each bundled plugin to dist/plugins/digests.env as
# KEYHOST_SHA256_<NAME>=<hex>, which keyhost.toml reads as its pins.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=dist/plugins/digests.env
tmp="$out.tmp"
echo "# Written by scripts/pin-digests.sh (make plugins). Do not edit." > "$tmp"
for wasm in dist/plugins/*.wasm; do
    name=$(basename "$wasm" .wasm | tr 'a-z-' 'A-Z_')
    echo "KEYHOST_SHA256_${name}=$(sha256sum "$wasm" | cut -d' ' -f1)" >> "$tmp"
done
mv "$tmp" "$out"
