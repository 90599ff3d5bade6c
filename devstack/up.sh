#!/usr/bin/env bash
# Brings the local stack up, without containers: PostgreSQL (databases and
# roles per service), the nisshi broker with durable SQLite storage, our
# schema registry, then topics and schemas. Idempotent: what already runs is
# left running (the registry is restarted so it always runs the current build).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$DEVSTACK_ROOT"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

bash devstack/postgres.sh

command -v nisshi >/dev/null 2>&1 || die "nisshi is not installed: run devstack/install-broker.sh"
if is_running nisshi; then
  log "nisshi already running (pid $(cat "$RUN_DIR/nisshi.pid"))"
elif [[ "$(listener_name "$KAFKA_PORT")" == "nisshi" ]]; then
  # Started by another checkout of this repository on this machine: one broker
  # per machine is enough, and topics and groups are per test anyway.
  listener_pid "$KAFKA_PORT" >"$RUN_DIR/nisshi.pid"
  log "using the nisshi broker already on 127.0.0.1:$KAFKA_PORT (pid $(cat "$RUN_DIR/nisshi.pid"))"
else
  port_open "$KAFKA_PORT" && die "port $KAFKA_PORT is taken by a process this stack did not start"
  mkdir -p "$STATE_DIR/nisshi"
  listener="tcp://127.0.0.1:$KAFKA_PORT"
  # SQLite, not memory: records and committed offsets must survive a crash.
  # No initial rebalance delay: a local group has no stragglers to wait for.
  # nisshi resolves a sqlite:// path against its working directory.
  (cd "$STATE_DIR/nisshi" && start_daemon nisshi nisshi broker \
    --listener-url "$listener" --advertised-listener-url "$listener" \
    --storage-engine "sqlite://nisshi.db" \
    --group-initial-rebalance-delay 0s)
  wait_for_port 127.0.0.1 "$KAFKA_PORT" 60 nisshi
  log "nisshi listening on 127.0.0.1:$KAFKA_PORT (log: $LOG_DIR/nisshi.log)"
fi

build_stack_binaries

stop_daemon schema-registry
if [[ "$(listener_name "$REGISTRY_PORT")" == "schema-registry" ]]; then
  # Another checkout's registry: replace it with this build.
  kill -TERM "$(listener_pid "$REGISTRY_PORT")" 2>/dev/null || true
  for _ in $(seq 1 50); do port_open "$REGISTRY_PORT" || break; sleep 0.1; done
fi
port_open "$REGISTRY_PORT" && die "port $REGISTRY_PORT is taken by a process this stack did not start"
PAYSTREAM_SCHEMA_REGISTRY_LISTEN="127.0.0.1:$REGISTRY_PORT" \
  start_daemon schema-registry target/debug/schema-registry
deadline=$((SECONDS + 60))
until curl -fsS "$PAYSTREAM_SCHEMA_REGISTRY_URL/healthz" >/dev/null 2>&1; do
  is_running schema-registry || die "the schema registry exited; see $LOG_DIR/schema-registry.log"
  ((SECONDS < deadline)) || die "the schema registry did not become healthy; see $LOG_DIR/schema-registry.log"
  sleep 0.2
done
log "schema registry on $PAYSTREAM_SCHEMA_REGISTRY_URL (log: $LOG_DIR/schema-registry.log)"

target/debug/paystream-provision all >>"$LOG_DIR/provision.log" 2>&1 \
  || { tail -n 20 "$LOG_DIR/provision.log" >&2; die "provisioning failed"; }
log "topics created and schemas registered (FULL_TRANSITIVE)"

cat <<INFO
Paystream local stack is up:
  Kafka (nisshi $NISSHI_VERSION)  $PAYSTREAM_KAFKA_BOOTSTRAP
  Schema registry       $PAYSTREAM_SCHEMA_REGISTRY_URL
  PostgreSQL            127.0.0.1:5432 (databases: ${SERVICE_DATABASES[*]})
  Logs                  $LOG_DIR
INFO
