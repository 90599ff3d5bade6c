#!/usr/bin/env bash
# Makes sure PostgreSQL runs and that every service has its database and role.
# Idempotent.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

psql_admin() { su postgres -c "psql -v ON_ERROR_STOP=1 -qAt $*"; }

if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  cluster_version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)"
  [[ -n "$cluster_version" ]] || die "PostgreSQL is not installed (run devstack/install-deps.sh)"
  log "starting PostgreSQL $cluster_version"
  pg_ctlcluster --skip-systemctl-redirect "$cluster_version" main start
  for _ in $(seq 1 100); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.1; done
  pg_isready -h 127.0.0.1 -p 5432 -q || die "PostgreSQL did not start"
fi

# Tests start whole pipelines side by side, each service with a pool of its
# own: PostgreSQL's default of 100 connections runs out. A restart applies it.
WANTED_CONNECTIONS=400
if (( $(psql_admin "-c 'SHOW max_connections'") < WANTED_CONNECTIONS )); then
  psql_admin "-c 'ALTER SYSTEM SET max_connections = $WANTED_CONNECTIONS'"
  cluster_version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)"
  log "restarting PostgreSQL $cluster_version for max_connections = $WANTED_CONNECTIONS"
  pg_ctlcluster --skip-systemctl-redirect "$cluster_version" main restart
  for _ in $(seq 1 100); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.1; done
  pg_isready -h 127.0.0.1 -p 5432 -q || die "PostgreSQL did not come back"
fi

ensure_role() {
  local role="$1" options="$2"
  if [[ "$(psql_admin "-c \"SELECT 1 FROM pg_roles WHERE rolname = '$role'\"")" != "1" ]]; then
    psql_admin "-c \"CREATE ROLE $role LOGIN PASSWORD '$role' $options\""
    log "created role $role"
  fi
}

for service in "${SERVICE_DATABASES[@]}"; do
  ensure_role "$service" ""
  if [[ "$(psql_admin "-c \"SELECT 1 FROM pg_database WHERE datname = '$service'\"")" != "1" ]]; then
    psql_admin "-c \"CREATE DATABASE $service OWNER $service\""
    log "created database $service"
  fi
  # Nobody but the owner connects to a service's database.
  psql_admin "-c \"REVOKE CONNECT ON DATABASE $service FROM PUBLIC\""
done
ensure_role "$TEST_ROLE" "CREATEDB"
log "PostgreSQL ready: databases ${SERVICE_DATABASES[*]}"
