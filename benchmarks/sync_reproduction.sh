#!/usr/bin/env bash
# Copy the finished records (JSON) and spectra (.npy, 16 KB each) of a reproduction run into
# benchmarks/measured/ and rebuild its table there:
#   bash benchmarks/sync_reproduction.sh [RESULTS_DIR [OUT_DIR [TABLE_ARGS...]]]
#   (defaults: results-study, benchmarks/measured/reproduction_study; TABLE_ARGS go to
#   `hessian-powerlaw reproduction` before the records, e.g. --only-run then records kept elsewhere)
# Records that are already there are overwritten by the run's; nothing else is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
src="${1:-results-study}/reproduction"
out="${2:-benchmarks/measured/reproduction_study}"
mkdir -p "$out"
for record in "$src"/records/*.json; do
    name=$(basename "$record" .json)
    cp "$record" "$out/$name.json"
    cp "$src/spectra/$name.npy" "$out/$name.npy"
done
if compgen -G "$src/proteins/*.tsv" > /dev/null; then
    mkdir -p "$out/proteins"
    cp "$src"/proteins/*.tsv "$out/proteins/"
fi
proteins=()
compgen -G "$out/proteins/*.tsv" > /dev/null && proteins=(--proteins "$out"/proteins/*.tsv)
hessian-powerlaw reproduction "${@:3}" "$out"/*_s[0-9]*.json "${proteins[@]}" --out "$out/reproduction.tsv" \
    --markdown "$out/reproduction.md" --figure "$out/slope.png"
