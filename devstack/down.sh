#!/usr/bin/env bash
# Stops what devstack/up.sh started. PostgreSQL is the machine's and keeps
# running; pass --purge to also delete the broker's data and the test databases.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

for service in audit notifications rtgs-gateway cbs-debit validation gateway sandbox schema-registry nisshi; do stop_daemon "$service"; done

if [[ "${1:-}" == "--purge" ]]; then
  rm -rf "$STATE_DIR/nisshi"
  if pg_isready -h 127.0.0.1 -p 5432 -q; then
    for db in $(su postgres -c "psql -qAt -c \"SELECT datname FROM pg_database WHERE datname LIKE 'test\\_%'\""); do
      su postgres -c "psql -q -c 'DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)'"
    done
  fi
  log "purged broker data and test databases"
fi
log "stack down"
