#!/usr/bin/env bash
# Checks every schema in schemas/*.avsc against the versions already released
# (schemas/released/<subject>/v<N>.avsc) under FULL_TRANSITIVE, with the
# compatibility logic of our own schema registry, so an incompatible edit
# fails here before any registry sees it. Prints one line per subject
# ("compatible with v1..vN"); exits non-zero on any incompatibility.
# An argument checks another schemas directory (e.g. a broken copy).
# How to release a version: schemas/README.md.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$DEVSTACK_ROOT"

dir="${1:-schemas}"
cargo run --quiet -p paystream-schema-registry --example check-schemas -- "$dir"
