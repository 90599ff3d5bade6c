#!/usr/bin/env bash
# Installs the nisshi Kafka-protocol broker into ~/.cargo/bin once; later runs
# find it there and return at once. Building it takes about 15 minutes on two
# cores. One of its dependencies needs rustc >= 1.96, so it is built with a
# toolchain that new, if the machine has one (this kind's image carries nightly).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

if command -v nisshi >/dev/null 2>&1 && nisshi --version 2>/dev/null | grep -q "$NISSHI_VERSION"; then
  log "nisshi $NISSHI_VERSION present: $(command -v nisshi)"
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

log "building nisshi $NISSHI_VERSION with $toolchain (about 15 minutes, once)"
# --locked: the versions nisshi's authors tested, not whatever resolves today.
cargo "+$toolchain" install nisshi --version "$NISSHI_VERSION" --locked --root "$HOME/.cargo"
log "nisshi installed: $(command -v nisshi)"
