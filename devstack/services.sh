#!/usr/bin/env bash
# Starts the services built so far on the local stack (which devstack/up.sh
# brings up first): the sandbox playing the external providers, the gateway,
# validation, cbs-debit (with the demo accounts loaded), rtgs-gateway, which
# the sandbox's rail calls back, and notifications (with the demo contacts
# loaded), and audit with analytics. Restarted on each run so they are the
# current build. Ports: gateway 8080, validation 8082, cbs-debit 8083,
# rtgs-gateway 8084, audit 8085, notifications 8086, sandbox 8090.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$DEVSTACK_ROOT"

SANDBOX_PORT="${PAYSTREAM_SANDBOX_PORT:-8090}"
GATEWAY_PORT="${PAYSTREAM_GATEWAY_PORT:-8080}"
VALIDATION_PORT="${PAYSTREAM_VALIDATION_PORT:-8082}"
CBS_DEBIT_PORT="${PAYSTREAM_CBS_DEBIT_PORT:-8083}"
RTGS_GATEWAY_PORT="${PAYSTREAM_RTGS_GATEWAY_PORT:-8084}"
NOTIFICATIONS_PORT="${PAYSTREAM_NOTIFICATIONS_PORT:-8086}"
AUDIT_PORT="${PAYSTREAM_AUDIT_PORT:-8085}"
RAIL_SECRET="${PAYSTREAM_RAIL_CALLBACK_SECRET:-dev-rail-secret}"
# The creditor account the demo's rail rejects (AC04, account closed).
RAIL_CLOSED_ACCOUNTS="${PAYSTREAM_SANDBOX_RTGS_CLOSED_ACCOUNTS:-DE89370400440532013000}"
SERVICES=(sandbox gateway validation cbs-debit rtgs-gateway notifications audit)

build_stack_binaries

wait_healthy() {
  local name="$1" url="$2" seconds="$3"
  local deadline=$((SECONDS + seconds))
  until curl -fsS "$url" >/dev/null 2>&1; do
    is_running "$name" || die "$name exited; see $LOG_DIR/$name.log"
    ((SECONDS < deadline)) || die "$name did not become healthy; see $LOG_DIR/$name.log"
    sleep 0.2
  done
  log "$name up on ${url%/healthz} (log: $LOG_DIR/$name.log)"
}

for name in "${SERVICES[@]}"; do stop_daemon "$name"; done

PAYSTREAM_SANDBOX_LISTEN="127.0.0.1:$SANDBOX_PORT" \
PAYSTREAM_SANDBOX_IP_INTELLIGENCE="${PAYSTREAM_SANDBOX_IP_INTELLIGENCE:-latency=lognormal:20ms:120ms}" \
PAYSTREAM_SANDBOX_AML="${PAYSTREAM_SANDBOX_AML:-latency=lognormal:30ms:200ms}" \
PAYSTREAM_SANDBOX_RTGS_RAIL="${PAYSTREAM_SANDBOX_RTGS_RAIL:-settle=lognormal:50ms:300ms}" \
PAYSTREAM_SANDBOX_RTGS_CALLBACK_URL="http://127.0.0.1:$RTGS_GATEWAY_PORT/v1/rail/status-reports" \
PAYSTREAM_SANDBOX_RTGS_CALLBACK_SECRET="$RAIL_SECRET" \
PAYSTREAM_SANDBOX_RTGS_CLOSED_ACCOUNTS="$RAIL_CLOSED_ACCOUNTS" \
  start_daemon sandbox target/debug/sandbox
# Loading the sanctions lists takes a few seconds.
wait_healthy sandbox "http://127.0.0.1:$SANDBOX_PORT/healthz" 120

PAYSTREAM_GATEWAY_LISTEN="127.0.0.1:$GATEWAY_PORT" \
PAYSTREAM_GATEWAY_WEBHOOK_SECRET="${PAYSTREAM_GATEWAY_WEBHOOK_SECRET:-dev-webhook-secret}" \
  start_daemon gateway target/debug/gateway
wait_healthy gateway "http://127.0.0.1:$GATEWAY_PORT/healthz" 60

PAYSTREAM_VALIDATION_LISTEN="127.0.0.1:$VALIDATION_PORT" \
PAYSTREAM_VALIDATION_IP_INTELLIGENCE_URL="http://127.0.0.1:$SANDBOX_PORT/ip-intelligence" \
PAYSTREAM_VALIDATION_AML_URL="http://127.0.0.1:$SANDBOX_PORT/aml" \
PAYSTREAM_VALIDATION_PROVIDER_PROTOCOL="${PAYSTREAM_VALIDATION_PROVIDER_PROTOCOL:-http2}" \
  start_daemon validation target/debug/validation
wait_healthy validation "http://127.0.0.1:$VALIDATION_PORT/healthz" 60

target/debug/cbs-debit accounts load devstack/demo-accounts.csv | sed 's/^/[devstack] cbs-debit /'
# The accounts `paystream load` spreads its payments over.
target/debug/paystream load --accounts-csv >"$STATE_DIR/load-accounts.csv"
target/debug/cbs-debit accounts load "$STATE_DIR/load-accounts.csv" | sed 's/^/[devstack] cbs-debit (load payers) /'
PAYSTREAM_CBS_DEBIT_LISTEN="127.0.0.1:$CBS_DEBIT_PORT" \
  start_daemon cbs-debit target/debug/cbs-debit serve
wait_healthy cbs-debit "http://127.0.0.1:$CBS_DEBIT_PORT/healthz" 60

PAYSTREAM_RTGS_GATEWAY_LISTEN="127.0.0.1:$RTGS_GATEWAY_PORT" \
PAYSTREAM_RTGS_GATEWAY_RAIL_URL="http://127.0.0.1:$SANDBOX_PORT/rtgs" \
PAYSTREAM_RTGS_GATEWAY_RAIL_CALLBACK_SECRET="$RAIL_SECRET" \
  start_daemon rtgs-gateway target/debug/rtgs-gateway serve
wait_healthy rtgs-gateway "http://127.0.0.1:$RTGS_GATEWAY_PORT/healthz" 60

target/debug/notifications contacts load devstack/demo-contacts.csv | sed 's/^/[devstack] notifications /'
PAYSTREAM_NOTIFICATIONS_LISTEN="127.0.0.1:$NOTIFICATIONS_PORT" \
PAYSTREAM_NOTIFICATIONS_PROVIDER_URL="http://127.0.0.1:$SANDBOX_PORT/notify" \
  start_daemon notifications target/debug/notifications serve
wait_healthy notifications "http://127.0.0.1:$NOTIFICATIONS_PORT/healthz" 60

# Checkpoints of the audit's chain heads, signed with a key of the stack's
# own, into a directory outside the database.
AUDIT_DIR="$STATE_DIR/audit"
mkdir -p "$AUDIT_DIR"
[[ -f "$AUDIT_DIR/checkpoint.key" ]] || target/debug/audit keygen --out "$AUDIT_DIR/checkpoint.key" | sed 's/^/[devstack] audit /'
PAYSTREAM_AUDIT_LISTEN="127.0.0.1:$AUDIT_PORT" \
PAYSTREAM_AUDIT_CHECKPOINT_KEY="$AUDIT_DIR/checkpoint.key" \
PAYSTREAM_AUDIT_CHECKPOINT_DIR="$AUDIT_DIR" \
PAYSTREAM_AUDIT_CHECKPOINT_INTERVAL_MS=10000 \
  start_daemon audit target/debug/audit serve
wait_healthy audit "http://127.0.0.1:$AUDIT_PORT/healthz" 60
