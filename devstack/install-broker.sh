#!/usr/bin/env bash
# Installs the nisshi Kafka-protocol broker into ~/.cargo/bin once; later runs
# find it there and return at once. Building it takes about 15 minutes on two
# cores. One of its dependencies needs rustc >= 1.96, so it is built with a
# toolchain that new, if the machine has one (this kind's image carries nightly).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

# The storage engines the stack and the tests use: sqlite:// (libsql) and
# memory:// (which nisshi builds on its dynostore engine). The default
# features add PostgreSQL storage, which the stack never uses.
NISSHI_FEATURES="libsql,dynostore"

# cargo records what it installed with which features; a binary built with
# other features (an older install) is built again.
installed_features() {
  python3 - "$NISSHI_VERSION" <<'PY' 2>/dev/null || true
import json, pathlib, sys
installs = json.loads((pathlib.Path.home() / ".cargo" / ".crates2.json").read_text())["installs"]
for key, install in installs.items():
    if key.startswith(f"nisshi {sys.argv[1]} "):
        print(",".join(sorted(install.get("features", []))))
PY
}
wanted="$(tr ',' '\n' <<<"$NISSHI_FEATURES" | sort | paste -sd, -)"
if command -v nisshi >/dev/null 2>&1 && nisshi --version 2>/dev/null | grep -q "$NISSHI_VERSION" \
  && [[ "$(installed_features)" == "$wanted" ]]; then
  log "nisshi $NISSHI_VERSION ($NISSHI_FEATURES) present: $(command -v nisshi)"
  exit 0
fi

rustc_minor() { "$@" --version 2>/dev/null | sed -E 's/^rustc 1\.([0-9]+).*/\1/'; }
toolchain=""
if [[ "$(rustc_minor rustc)" -ge 96 ]] 2>/dev/null; then
  toolchain="stable"
else
  for candidate in $(rustup toolchain list 2>/dev/null | awk '{print $1}'); do
    if [[ "$(rustc_minor rustup run "$candidate" rustc)" -ge 96 ]] 2>/dev/null; then
      toolchain="$candidate"; break
    fi
  done
fi
[[ -n "$toolchain" ]] || die "nisshi $NISSHI_VERSION needs rustc >= 1.96 and no such toolchain is installed (rustup toolchain list)"

log "building nisshi $NISSHI_VERSION ($NISSHI_FEATURES) with $toolchain (about 15 minutes, once)"
# --locked: the versions nisshi's authors tested, not whatever resolves today.
cargo "+$toolchain" install nisshi --version "$NISSHI_VERSION" --locked --root "$HOME/.cargo" \
  --no-default-features --features "$NISSHI_FEATURES"
log "nisshi installed: $(command -v nisshi)"
