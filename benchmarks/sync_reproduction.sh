#!/usr/bin/env bash
# Copy the finished reproduction records (JSON) and spectra (.npy, 16 KB each) of a
# reproduce_cpu.yaml run into benchmarks/measured/reproduction_cpu/ and rebuild its table:
#   bash benchmarks/sync_reproduction.sh [RESULTS_DIR]   (default results-reproduce)
set -euo pipefail
cd "$(dirname "$0")/.."
src="${1:-results-reproduce}/reproduction"
out=benchmarks/measured/reproduction_cpu
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
hessian-powerlaw reproduction "$out"/*.json --proteins "$out"/proteins/*.tsv --out "$out/reproduction.tsv" \
    --markdown "$out/reproduction.md" --figure "$out/slope.png"
