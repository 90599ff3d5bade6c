#!/usr/bin/env bash
# The front-door benchmark's hand-written baseline needs a Python with
# FastAPI, uvicorn and confluent-kafka (crates/e2e/baseline/requirements.txt).
# Builds that interpreter in target/bench-baseline once, again only when the
# requirements change. If the packages cannot be installed (no registry),
# it says so and leaves the benchmark to measure the gateway alone.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

requirements="$DEVSTACK_ROOT/crates/e2e/baseline/requirements.txt"
venv="$DEVSTACK_ROOT/target/bench-baseline"
stamp="$venv/requirements.sha256"
wanted="$(sha256sum "$requirements" | cut -d' ' -f1)"

if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
  log "bench baseline present: $venv"
  exit 0
fi
rm -rf "$venv"
if python3 -m venv "$venv" && "$venv/bin/pip" install --quiet -r "$requirements"; then
  echo "$wanted" > "$stamp"
  log "bench baseline installed: $venv"
else
  rm -rf "$venv"
  log "bench baseline NOT installed (pip failed above): the front door is measured without it"
fi
