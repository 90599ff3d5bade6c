#!/usr/bin/env bash
# CPU profiles of the gateway and validation under their benchmarks' load
# (`make profile`): `perf record` of each service's process over each
# scenario's counted window, then per recording a flame graph (.svg), its
# folded stacks (.folded, for diffing two builds) and the functions with the
# most samples of their own (.top.txt), all in target/profiles/.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

INFERNO_VERSION="0.12.3"
out="$DEVSTACK_ROOT/target/profiles"

if ! command -v perf >/dev/null 2>&1; then
  log "installing linux-perf"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends linux-perf
fi
if ! command -v inferno-flamegraph >/dev/null 2>&1; then
  log "installing inferno $INFERNO_VERSION (flame graphs)"
  cargo install --locked --quiet inferno --version "$INFERNO_VERSION"
fi

rm -rf "$out"
mkdir -p "$out"
cargo build --release --bins
bash "$(dirname "$0")/bench-baseline.sh"
PAYSTREAM_BENCH_PROFILE="$out" PAYSTREAM_BENCH_BASELINE_PYTHON="$DEVSTACK_ROOT/target/bench-baseline/bin/python" \
  cargo bench -p paystream-e2e --bench front_door
PAYSTREAM_BENCH_PROFILE="$out" cargo bench -p paystream-validation --bench validation_throughput

shopt -s nullglob
for data in "$out"/*.perf.data; do
  name="$(basename "$data" .perf.data)"
  perf script -i "$data" 2>/dev/null | inferno-collapse-perf > "$out/$name.folded"
  inferno-flamegraph --title "$name" < "$out/$name.folded" > "$out/$name.svg"
  # A folded line is `frame;frame;…;leaf count`: the leaf's own samples.
  awk '{ count = $NF; $NF = ""; n = split($0, frames, ";"); leaf = frames[n];
         sub(/ +$/, "", leaf); self[leaf] += count; total += count }
       END { for (leaf in self) printf "%6.2f%%  %s\n", 100 * self[leaf] / total, leaf }' \
    "$out/$name.folded" | sort -rn | awk 'NR <= 30' > "$out/$name.top.txt"
  log "$name: $out/$name.svg, $out/$name.top.txt"
done
